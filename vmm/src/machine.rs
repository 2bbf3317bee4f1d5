//! From a `Config` to a running VM, in order: validate, map memory, create the VM and vCPUs,
//! attach the devices, fill fw_cfg; then run the vCPUs to the end.
use crate::bus::{Bus, BusError, SharedDevice};
use crate::config::{Bios, Config, OnOffAuto, Serial};
use crate::devices::cmos::Cmos;
use crate::devices::debug_exit::DebugExit;
use crate::devices::ged::{self, Ged};
use crate::devices::i8042::I8042;
use crate::devices::ioapic::{self, IoApic};
use crate::devices::milestones::{Milestone, MilestonePort};
use crate::devices::serial;
use crate::devices::virtio::{io_thread, mmio::MmioTransport, placement};
use crate::direct_boot::{self, DirectBootError};
use crate::exit::{ExitReason, ExitSignal};
use crate::fw_cfg_setup::{self, FwCfgSetupError};
use crate::irq::IrqLine;
use crate::layout::{gsi, port};
use crate::rom::{self, RomError};
use crate::signals;
use crate::timeline::{Event, FirstByte, Timeline};
use crate::vstate::cpuid;
use crate::vstate::memory::{self, MemoryError, Rom};
use crate::vstate::msi_routes::MsiRoutes;
use crate::vstate::vcpu::{ExitHandlers, Vcpu, VcpuError};
use crate::vstate::vm::{self, Irqchip, VmError};
use kvm_ioctls::{Cap, Kvm, VmFd};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::Killable;

mod virtio_devices;

use virtio_devices::attach_virtio;
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Rom(#[from] RomError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    #[error("placing devices: {0}")]
    Bus(#[from] BusError),
    #[error("-device vhost-vsock-device: {0}")]
    Vsock(#[from] crate::devices::virtio::vsock::VsockError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("reading KVM's supported CPUID: {0}")]
    Cpuid(kvm_ioctls::Error),
    #[error("routing interrupt {gsi}: {source}")]
    Irq { gsi: u32, source: kvm_ioctls::Error },
    #[error(transparent)]
    FwCfg(#[from] FwCfgSetupError),
    #[error(transparent)]
    DirectBoot(#[from] DirectBootError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MachineError {
    let what = what.into();
    move |source| MachineError::Io { what, source }
}

/// A built VM, ready to run.
pub struct Machine {
    // Field order is drop order: vCPUs and the VM go before the memory they map.
    vcpus: Vec<Vcpu>,
    // The devices may hold the VM (the I/O APICs route through it): they go before it.
    handlers: ExitHandlers,
    _vm: Arc<VmFd>,
    _kvm: Kvm,
    _ram: GuestMemoryMmap,
    milestones: Arc<Mutex<Vec<Milestone>>>,
    rtc: Option<Arc<Mutex<Cmos>>>,
    /// virtio transports whose device polls a host fd, each served by an I/O thread.
    virtio_io: Vec<Arc<Mutex<MmioTransport>>>,
    serial: Option<(Arc<Mutex<serial::Serial<Output>>>, bool)>,
    /// Last: guest memory's ROM windows point into this mapping.
    _rom: Option<Rom>,
}

/// Where COM1 writes.
pub type Output = Box<dyn Write + Send>;

/// Refuses combinations that cannot work, saying why, before anything is created.
pub fn validate(c: &Config) -> Result<(), MachineError> {
    let m = &c.machine;
    let unsupported = |s: &str| Err(MachineError::Unsupported(s.into()));
    if !c.pic() && !c.acpi() {
        return unsupported(
            "-M pic=off,acpi=off: without ACPI the machine is described by an MP table, which assumes \
             the PC/AT 8259 PICs (Linux then routes ISA interrupts through them and has no timer); \
             use acpi=on or pic=on",
        );
    }
    if !c.pic() && m.pit == OnOffAuto::On {
        return unsupported(
            "-M pic=off,pit=on: KVM's PIT delivers through KVM's PIC, and Minnow has no PIT of its own; \
             use pit=off (or auto)",
        );
    }
    if m.ioapic2 == OnOffAuto::On && c.pic() {
        return unsupported(
            "-M ioapic2=on: KVM's in-kernel irqchip has one I/O APIC, and a second needs the VMM to run \
             them (pic=off, as Minnow has no 8259 of its own); add pic=off",
        );
    }
    if placement::transports(c).is_none() {
        return Err(MachineError::Unsupported(format!(
            "{} virtio devices, but this machine has {} virtio-mmio transports{}",
            c.virtio.len(),
            placement::capacity(c),
            if c.acpi() && !c.ioapic2() {
                " (24 with -M pic=off, which adds the second I/O APIC)"
            } else {
                ""
            }
        )));
    }
    if m.ioapic2 == OnOffAuto::On && !c.acpi() {
        return unsupported(
            "-M ioapic2=on,acpi=off: without ACPI only the MP table could describe the second I/O APIC, \
             and the firmware's MP table has one; use acpi=on or ioapic2=off",
        );
    }
    Ok(())
}

/// Builds the VM `c` describes, marking its phases in `timeline`.
pub fn build(c: &Config, timeline: Arc<Timeline>) -> Result<Machine, MachineError> {
    validate(c)?;
    let rom = rom::image(c)?.map(|image| Rom::new(&image)).transpose()?;
    let ram = memory::create(c.memory, rom.as_ref())?;
    let kvm = vm::open_kvm()?;
    let irqchip = match c.pic() {
        true => Irqchip::InKernel { pit: c.pit() },
        false => Irqchip::Split {
            pins: ioapic::PINS * (1 + u32::from(c.ioapic2())),
        },
    };
    let vm = Arc::new(vm::create(&kvm, &ram, irqchip)?);
    timeline.mark(Event::VmCreated);
    let mut supported = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(MachineError::Cpuid)?;
    cpuid::add_emulated(&mut supported, kvm.check_extension(Cap::TscDeadlineTimer));
    let vcpus = (0..c.cpus)
        .map(|id| Vcpu::new(&vm, &supported, id, c.cpus))
        .collect::<Result<Vec<_>, _>>()?;
    if c.bios == Bios::None {
        // Direct boot: the kernel and its boot structures in RAM, vCPU 0 at its entry.
        let entry = direct_boot::load_files(c, &ram, cpuid::signature(&supported, c.cpus))?;
        if let Some(bsp) = vcpus.first() {
            bsp.enter(&entry)?;
        }
    }

    let exit = ExitSignal::default();
    let mut pio = Bus::new();
    let milestones = Arc::new(Mutex::new(Vec::new()));
    attach_milestones(&mut pio, c, &milestones, &timeline)?;
    let serial = match c.machine.isa_serial {
        true => Some((
            attach_serial(&mut pio, &vm, &c.serial, &timeline)?,
            // stdin feeds one device: a virtio console on stdio, which was asked for by name.
            c.serial == Serial::Stdio && c.virtconsoles_on_stdio() == 0,
        )),
        false => None,
    };
    let rtc = match c.machine.rtc.or(true) {
        true => Some(attach_rtc(&mut pio, &vm, c.memory)?),
        // With ACPI the FADT says the RTC is absent; nothing can tell a guest without ACPI.
        false if c.acpi() => None,
        false => {
            eprintln!("minnow: warning: rtc=off without ACPI: Linux will probe the missing RTC and stall for seconds");
            None
        }
    };
    let i8042 = Arc::new(Mutex::new(I8042::new(exit.clone())));
    pio.insert(u64::from(port::I8042_DATA), 5, i8042)?;
    if let Some(d) = c.debug_exit {
        let dev = Arc::new(Mutex::new(DebugExit::new(exit.clone())));
        pio.insert(u64::from(d.iobase), u64::from(d.iosize.max(1)), dev)?;
    }
    let fw_cfg = Arc::new(Mutex::new(fw_cfg_setup::build(c, &ram)?));
    pio.insert(
        u64::from(port::FW_CFG),
        u64::from(minnow_bootproto::fw_cfg::PORT_RANGE_DMA),
        fw_cfg,
    )?;
    let mut mmio = Bus::new();
    if matches!(irqchip, Irqchip::Split { .. }) {
        attach_ioapics(&mut mmio, &vm, c.ioapic2())?;
    }
    let virtio_io = attach_virtio(&mut mmio, &vm, c, &ram)?;
    if c.acpi() {
        let ged = Ged::new(exit.clone(), irq_line(&vm, gsi::GED)?);
        mmio.insert(
            crate::layout::GED_EVENT,
            ged::RANGE_LEN,
            Arc::new(Mutex::new(ged)),
        )?;
    }
    let handlers = ExitHandlers {
        pio,
        mmio,
        exit,
        timeline,
    };
    Ok(Machine {
        vcpus,
        _vm: vm,
        _kvm: kvm,
        _ram: ram,
        _rom: rom,
        handlers,
        milestones,
        rtc,
        virtio_io,
        serial,
    })
}

/// The VMM's I/O APICs (split irqchip): GSIs 0..23 and, with `ioapic2`, 24..47.
fn attach_ioapics(mmio: &mut Bus, vm: &Arc<VmFd>, ioapic2: bool) -> Result<(), MachineError> {
    let routes = MsiRoutes::new(vm.clone());
    let mut add = |id: u8, base: u64| {
        let dev = IoApic::new(id, u32::from(id) * ioapic::PINS, Box::new(routes.clone()));
        mmio.insert(base, ioapic::MMIO_LEN, Arc::new(Mutex::new(dev)))
    };
    add(0, crate::layout::IOAPIC)?;
    if ioapic2 {
        add(1, crate::layout::IOAPIC2)?;
    }
    Ok(())
}

/// A device's interrupt line, routed through KVM's irqchip.
fn irq_line(vm: &VmFd, gsi: u32) -> Result<IrqLine, MachineError> {
    let line = IrqLine::new(gsi).map_err(io("creating an interrupt eventfd"))?;
    vm.register_irqfd(line.event(), gsi)
        .map_err(|source| MachineError::Irq { gsi, source })?;
    Ok(line)
}

fn attach_milestones(
    pio: &mut Bus,
    c: &Config,
    record: &Arc<Mutex<Vec<Milestone>>>,
    timeline: &Arc<Timeline>,
) -> Result<(), MachineError> {
    // A user's isa-debug-exit on the port takes it, as a device placed there would in QEMU.
    if c.milestone_port_is_free() {
        let dev: SharedDevice = Arc::new(Mutex::new(MilestonePort::new(
            port::MILESTONES,
            record.clone(),
            timeline.clone(),
        )));
        pio.insert(u64::from(port::MILESTONES), 1, dev)?;
    }
    Ok(())
}

fn attach_serial(
    pio: &mut Bus,
    vm: &VmFd,
    output: &Serial,
    timeline: &Arc<Timeline>,
) -> Result<Arc<Mutex<serial::Serial<Output>>>, MachineError> {
    let out: Output = match output {
        Serial::Stdio => Box::new(std::io::stdout()),
        Serial::File(path) => Box::new(
            // Appended to: `minnow_vmm::run` truncates it once, and a reboot keeps writing to it.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io(format!("opening the serial log {}", path.display())))?,
        ),
        Serial::None => Box::new(std::io::sink()),
    };
    let out: Output = Box::new(FirstByte::new(out, timeline.clone()));
    let dev = Arc::new(Mutex::new(serial::Serial::new(irq_line(vm, gsi::COM1)?, out)));
    pio.insert(u64::from(port::COM1), 8, dev.clone())?;
    Ok(dev)
}

fn attach_rtc(pio: &mut Bus, vm: &VmFd, memory: u64) -> Result<Arc<Mutex<Cmos>>, MachineError> {
    let low = memory.min(crate::layout::LOW_RAM_MAX);
    let cmos = Cmos::new(low, memory - low, irq_line(vm, gsi::RTC)?).map_err(io("creating the RTC"))?;
    let dev = Arc::new(Mutex::new(cmos));
    pio.insert(u64::from(port::RTC), 2, dev.clone())?;
    Ok(dev)
}

/// Forwards stdin to COM1 until stdin ends. The thread is detached: a read cannot be interrupted,
/// so it ends with the process (or at EOF).
fn forward_stdin(serial: Arc<Mutex<serial::Serial<Output>>>) {
    let _ = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = std::io::stdin().read(&mut buf) {
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let taken = serial
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .enqueue_input(rest);
                rest = &rest[taken..];
                if taken == 0 {
                    // The guest has not drained the FIFO yet.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    });
}

impl Machine {
    /// A handle that stops this VM from another thread (an embedding application's "stop").
    pub fn exit_signal(&self) -> ExitSignal {
        self.handlers.exit.clone()
    }

    /// The milestones the firmware wrote, in order.
    pub fn milestones(&self) -> Vec<Milestone> {
        self.milestones.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs every vCPU on its own thread until the VM stops; returns why.
    pub fn run(self) -> Result<ExitReason, MachineError> {
        signals::install().map_err(io("installing signal handlers"))?;
        let Machine {
            vcpus,
            handlers,
            rtc,
            serial,
            virtio_io,
            ..
        } = self;
        if let Some((serial, true)) = serial {
            forward_stdin(serial);
        }
        let stop_helpers = EventFd::new(libc::EFD_NONBLOCK).map_err(io("creating an eventfd"))?;
        let rtc_thread = match rtc {
            Some(rtc) => Some(
                crate::rtc_timer::spawn(rtc, stop_helpers.try_clone().map_err(io("eventfd"))?)
                    .map_err(io("starting the RTC timer"))?,
            ),
            None => None,
        };
        let io_threads = virtio_io
            .into_iter()
            .map(|t| {
                let stop = stop_helpers.try_clone().map_err(io("eventfd"))?;
                io_thread::spawn(t, stop).map_err(io("starting a virtio I/O thread"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let threads = vcpus
            .into_iter()
            .map(|mut vcpu| {
                let h = handlers.clone();
                std::thread::Builder::new()
                    .name(format!("vcpu{}", vcpu.id()))
                    .spawn(move || vcpu.run(&h))
                    .map_err(io("starting a vCPU thread"))
            })
            .collect::<Result<Vec<JoinHandle<ExitReason>>, _>>()?;
        let mut signalled = None;
        let reason = loop {
            if let Some(sig) = signals::take_termination() {
                signalled = Some(sig);
                handlers.exit.request(ExitReason::Signal(sig));
            }
            if let Some(reason) = handlers.exit.wait(Duration::from_millis(20)) {
                break reason;
            }
        };
        // A signal that raced a guest reset wins: a reset loop must not make minnow unkillable.
        let reason = match (reason, signalled) {
            (ExitReason::Reset, Some(sig)) => ExitReason::Signal(sig),
            (reason, _) => reason,
        };
        // vCPUs blocked in KVM_RUN leave it when signalled; repeat in case one was not in it yet.
        for t in threads {
            // A vCPU that asked for the exit itself is already on its way out: look before kicking.
            for _ in 0..10 {
                if t.is_finished() {
                    break;
                }
                std::thread::yield_now();
            }
            while !t.is_finished() {
                let _ = t.kill(signals::kick_signal());
                std::thread::sleep(Duration::from_micros(100));
            }
            let _ = t.join();
        }
        // One stop eventfd for the helper threads: written once, it stays readable for all.
        let _ = stop_helpers.write(1);
        if let Some(t) = rtc_thread {
            let _ = t.join();
        }
        for t in io_threads {
            let _ = t.join();
        }
        Ok(reason)
    }
}
