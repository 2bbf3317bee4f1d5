//! Everything a guest can do to the machine's legacy devices, through the buses the vCPUs use:
//! port I/O to COM1, the i8042, the CMOS/RTC, isa-debug-exit, the milestone port and pc-testdev's
//! register, page flush and interrupt lines; MMIO to the GED, pc-testdev's memory window and an
//! I/O APIC whose routes go to a recorder; of any width at any address, with machine
//! resets and RTC ticks in between. Nothing may panic, and an I/O APIC route may only ever name
//! one of its own pins.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::bus::Bus;
use minnow_vmm::devices::cmos::Cmos;
use minnow_vmm::devices::debug_exit::DebugExit;
use minnow_vmm::devices::ged::{self, Ged};
use minnow_vmm::devices::i8042::I8042;
use minnow_vmm::devices::ioapic::{self, IoApic, Msi, RouteSink};
use minnow_vmm::devices::pc_testdev::{self as testdev, FlushPage, IoMem, IrqLines, Register};
use minnow_vmm::devices::serial::Serial;
use minnow_vmm::exit::ExitSignal;
use minnow_vmm::irq::{IrqLine, RecordedLevels};
use minnow_vmm::runtime::guest_log::GuestLog;
use minnow_vmm::runtime::output::GuestOutput;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IOAPIC_BASE: u64 = 0xFEC0_0000;
const GED_BASE: u64 = 0xFEA0_0000;
const GSI_BASE: u32 = 24;

/// Checks every route the I/O APIC sets names one of its pins.
struct Routes;

impl RouteSink for Routes {
    fn set_route(&mut self, gsi: u32, _msi: Option<Msi>) {
        assert!(
            (GSI_BASE..GSI_BASE + ioapic::PINS).contains(&gsi),
            "route for GSI {gsi}"
        );
    }
}

fn log() -> GuestLog {
    GuestLog::new(
        Box::new(std::io::sink()),
        minnow_vmm::config::LogItems {
            guest_errors: true,
            unimp: true,
        },
    )
}

fn buses() -> (Bus, Bus, Arc<Mutex<Cmos>>, Arc<Mutex<Ged>>) {
    let exit = ExitSignal::default();
    let line = |gsi| IrqLine::new(gsi).expect("an eventfd");
    let mut pio = Bus::ports();
    let out = GuestOutput::null("COM1").expect("output");
    let serial = Serial::new(line(4), out, log());
    pio.insert(0x3F8, 8, Arc::new(Mutex::new(serial))).unwrap();
    let i8042 = I8042::new(exit.clone(), log());
    pio.insert(0x60, 5, Arc::new(Mutex::new(i8042))).unwrap();
    let cmos = Arc::new(Mutex::new(Cmos::new(512 << 20, 0, line(8), log()).expect("cmos")));
    pio.insert(0x70, 2, cmos.clone()).unwrap();
    pio.insert(0xF4, 4, Arc::new(Mutex::new(DebugExit::new(exit.clone()))))
        .unwrap();
    let ram =
        vm_memory::GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 20)]).expect("guest RAM");
    pio.insert(0xE0, 4, Arc::new(Mutex::new(Register::default())))
        .unwrap();
    pio.insert(0xE4, 4, Arc::new(Mutex::new(FlushPage::new(ram))))
        .unwrap();
    let lines = IrqLines::new(Arc::new(RecordedLevels::default()));
    pio.insert(0x2000, testdev::IRQ_LINES, Arc::new(Mutex::new(lines)))
        .unwrap();
    let mut mmio = Bus::memory();
    mmio.insert(
        testdev::IOMEM,
        testdev::IOMEM_LEN,
        Arc::new(Mutex::new(IoMem::default())),
    )
    .unwrap();
    let ioapic = IoApic::new(1, GSI_BASE, Box::new(Routes));
    mmio.insert(IOAPIC_BASE, ioapic::MMIO_LEN, Arc::new(Mutex::new(ioapic)))
        .unwrap();
    let ged = Arc::new(Mutex::new(Ged::new(exit, line(9))));
    mmio.insert(GED_BASE, ged::RANGE_LEN, ged.clone()).unwrap();
    (pio, mmio, cmos, ged)
}

fuzz_target!(|data: &[u8]| {
    let (pio, mmio, cmos, ged) = buses();
    let ports = [
        0x3F8u64, 0x60, 0x64, 0x70, 0x71, 0xF4, 0x3F0, 0xE0, 0xE4, 0x2000, 0x2010,
    ];
    let start = Instant::now();
    // Each op: kind, address selector, width, value (4 bytes).
    for op in data.chunks_exact(7) {
        let width = [1usize, 2, 4, 8][usize::from(op[2] & 3)];
        let value = [op[3], op[4], op[5], op[6], op[3], op[4], op[5], op[6]];
        let pio_addr = ports[usize::from(op[1]) % ports.len()] + u64::from(op[2] >> 2);
        let mmio_addr = match op[1] & 3 {
            0 => IOAPIC_BASE + u64::from(op[1] >> 2) * 4,
            1 => testdev::IOMEM + testdev::IOMEM_LEN - 64 + u64::from(op[1] >> 2),
            _ => GED_BASE + u64::from(op[1] >> 1) + if op[2] & 0x80 != 0 { 0x200 } else { 0 },
        };
        match op[0] % 8 {
            0 => _ = pio.read(pio_addr, &mut [0u8; 8][..width]),
            1 | 2 => _ = pio.write(pio_addr, &value[..width]),
            3 => _ = mmio.read(mmio_addr, &mut [0u8; 8][..width]),
            4 | 5 => _ = mmio.write(mmio_addr, &value[..width]),
            6 => cmos
                .lock()
                .unwrap()
                .tick(start + Duration::from_millis(u64::from(op[3]) * 16)),
            _ => match op[1] % 2 {
                0 => {
                    pio.reset();
                    mmio.reset();
                }
                _ => ged.lock().unwrap().power_button(),
            },
        }
    }
});
