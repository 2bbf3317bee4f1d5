//! From a `Config` to a VM ready to start, in order: validate, read the files, map memory,
//! create the VM and vCPUs (keeping their power-on state for resets), attach the devices, fill
//! fw_cfg. `runtime::vm` starts it.
use crate::bus::{Bus, BusError, SharedDevice};
use crate::config::{Bios, Config, OnOffAuto, Serial};
use crate::devices::cmos::Cmos;
use crate::devices::debug_exit::DebugExit;
use crate::devices::ged::{self, Ged};
use crate::devices::i8042::I8042;
use crate::devices::ioapic::{self, IoApic};
use crate::devices::milestones::{Milestone, MilestonePort};
use crate::devices::serial;
use crate::devices::virtio::{mmio::MmioTransport, placement};
use crate::devices::vmgenid::{VmGenId, VMGENID_ADDR, VMGENID_LEN};
use crate::direct_boot::{CpuEntry, DirectBootError, DirectBootImage};
use crate::exit::ExitSignal;
use crate::fw_cfg_setup::{self, FwCfgSetupError};
use crate::irq::IrqLine;
use crate::layout::{gsi, port};
use crate::output_file::Existing;
use crate::rom::{self, RomError};
use crate::runtime::guest_log::{Category, GuestLog};
use crate::runtime::output::GuestOutput;
use crate::runtime::stdin::InputSink;
use crate::runtime::vcpu_control::VcpuControl;
use crate::snapshot::format::MachineSpec;
use crate::timeline::{Event, FirstByte, Timeline};
use crate::vstate::cpuid;
use crate::vstate::irqchip_state::{IrqchipState, IrqchipStateError};
use crate::vstate::memory::{self, MemoryError, Rom};
use crate::vstate::msi_routes::MsiRoutes;
use crate::vstate::paused_clock::PausedClock;
use crate::vstate::vcpu::{ExitHandlers, Vcpu, VcpuError};
use crate::vstate::vm::{self, Irqchip, VmError};
use kvm_ioctls::{Cap, Kvm, VmFd};
use std::sync::{Arc, Mutex};
use vm_memory::GuestMemoryMmap;

mod net_backends;
pub mod snapshot;
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
    #[error(transparent)]
    Irqchip(#[from] IrqchipStateError),
    #[error("-drive id={id}: {source}")]
    Disk {
        id: String,
        source: crate::devices::virtio::block::disk::DiskError,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MachineError {
    let what = what.into();
    move |source| MachineError::Io { what, source }
}

/// A built VM, ready to start: its vCPUs (for their threads), what the vCPU threads need to
/// handle exits, what the lifecycle controller keeps, and what the event loop serves.
pub struct Machine {
    pub vcpus: Vec<Vcpu>,
    pub handlers: ExitHandlers,
    pub control: Arc<VcpuControl>,
    pub core: MachineCore,
    pub io: MachineIo,
}

/// The host fds the event loop serves.
pub struct MachineIo {
    /// Transports whose device has a host fd (a TAP, vhost's signal, console input).
    pub virtio: Vec<Arc<Mutex<MmioTransport>>>,
    pub rtc: Option<Arc<Mutex<Cmos>>>,
    /// The device stdin feeds, if any.
    pub stdin: Option<Box<dyn InputSink>>,
    /// COM1's output when it goes to stdout: `mon:stdio` writes the monitor through it too, so
    /// the two keep their order.
    pub serial_stdout: Option<GuestOutput>,
}

/// What the lifecycle controller keeps for the VM's life: what a reset puts back, what the end
/// flushes, and what the guest's memory and KVM objects hang on.
pub struct MachineCore {
    // Field order is drop order: the devices (which may hold the VM: the I/O APICs route through
    // it) before the VM, the VM before the memory it maps.
    pio: Bus,
    mmio: Bus,
    transports: Vec<Arc<Mutex<MmioTransport>>>,
    ged: Option<Arc<Mutex<Ged>>>,
    vmgenid: Option<Arc<Mutex<VmGenId>>>,
    /// COM1's and the virtio consoles' output.
    pub outputs: Vec<GuestOutput>,
    irqchip: Option<IrqchipState>,
    direct_boot: Option<DirectBootImage>,
    milestones: Arc<Mutex<Vec<Milestone>>>,
    pub guest_log: GuestLog,
    timeline: Arc<Timeline>,
    clock: PausedClock,
    /// What a snapshot says this machine is (its devices are read from the buses).
    spec: MachineSpec,
    /// With KVM's in-kernel chips: whether it has the PIT. `None`: the split irqchip.
    kvm_pit: Option<bool>,
    vm: Arc<VmFd>,
    _kvm: Kvm,
    ram: GuestMemoryMmap,
    /// Last: guest memory's ROM windows point into this mapping.
    rom: Option<(Rom, Vec<u8>)>,
}

impl MachineCore {
    /// The GED, whose power button `system_powerdown` presses (with ACPI).
    pub fn ged(&self) -> Option<&Arc<Mutex<Ged>>> {
        self.ged.as_ref()
    }

    /// The VM generation ID (with ACPI), as its 16 bytes.
    pub fn generation_id(&self) -> Option<[u8; 16]> {
        self.vmgenid
            .as_ref()
            .map(|g| g.lock().unwrap_or_else(|p| p.into_inner()).guid())
    }

    /// The milestones the firmware wrote, in order.
    pub fn milestones(&self) -> Vec<Milestone> {
        self.milestones.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops (or restarts) the devices taking input from the host while the VM is paused.
    pub fn set_devices_paused(&self, paused: bool) {
        for t in &self.transports {
            t.lock().unwrap_or_else(|p| p.into_inner()).set_paused(paused);
        }
    }

    /// The vCPUs stopped (`paused`) or are about to run again: the guest's clock stops with
    /// them, as under QEMU.
    pub fn set_clock_paused(&self, paused: bool) {
        let done = match paused {
            true => self.clock.stop(&self.vm),
            false => self.clock.resume(&self.vm),
        };
        if let Err(e) = done {
            crate::report!("the guest's clock across a pause: {e}");
        }
    }

    /// Everything but the vCPUs back to power-on, the vCPUs parked: the devices, KVM's
    /// interrupt controllers and PIT, the ROM's bytes (the firmware keeps data in it), and with
    /// `-bios none` the kernel and its boot structures, loaded again from memory. Returns vCPU
    /// 0's entry for `-bios none`.
    pub fn reset_devices_and_memory(&self) -> Result<Option<CpuEntry>, MachineError> {
        self.pio.reset();
        self.mmio.reset();
        if let Some(chips) = &self.irqchip {
            chips.restore(&self.vm)?;
        }
        if let Some((rom, image)) = &self.rom {
            rom.restore(image);
        }
        Ok(match &self.direct_boot {
            Some(image) => Some(image.load(&self.ram)?),
            None => None,
        })
    }

    /// The end: every disk flushed and synced, and what the guest said written out, waiting up
    /// to `output_limit` for a slow reader. Reports what could not be saved.
    pub fn shutdown(&self, output_limit: std::time::Duration) {
        for t in &self.transports {
            let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = t.flush() {
                crate::report!("{}: flushing at exit: {e}", t.name());
            }
        }
        let until = std::time::Instant::now() + output_limit;
        for out in &self.outputs {
            let dropped = out.finish(until.saturating_duration_since(std::time::Instant::now()));
            if dropped > 0 {
                crate::report!(
                    "{}: {dropped} bytes of guest output were dropped: nothing read them",
                    out.name()
                );
            }
        }
        self.timeline.set_guest_events(self.guest_log.counts());
    }
}

/// Where COM1 writes: its output, marking the timeline's first serial byte.
pub type Output = FirstByte<GuestOutput>;

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

/// Builds the VM `c` describes, marking its phases in `timeline`. Every file is read and every
/// host resource opened here, once: a reset reuses them.
pub fn build(c: &Config, timeline: Arc<Timeline>) -> Result<Machine, MachineError> {
    validate(c)?;
    let guest_log = GuestLog::for_config(&c.log).map_err(|source| MachineError::Io {
        what: format!(
            "-D {}",
            c.log
                .file
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        ),
        source,
    })?;
    let rom = match rom::image(c)? {
        Some(image) => Some((Rom::new(&image)?, image)),
        None => None,
    };
    let ram = memory::create(c.memory, rom.as_ref().map(|(r, _)| r))?;
    let kvm = vm::open_kvm()?;
    let irqchip = match c.pic() {
        true => Irqchip::InKernel { pit: c.pit() },
        false => Irqchip::Split {
            pins: ioapic::PINS * (1 + u32::from(c.ioapic2())),
        },
    };
    let vm = Arc::new(vm::create(&kvm, &ram, irqchip)?);
    if c.pit() && c.pit_lost_ticks == crate::config::global::LostTickPolicy::Discard {
        vm::discard_lost_pit_ticks(&vm)?;
    }
    let guest_mwait = match c.cpu_pm {
        true => vm::disable_power_exits(&vm)?,
        false => false,
    };
    timeline.mark(Event::VmCreated);
    let irqchip_state = match irqchip {
        Irqchip::InKernel { pit } => Some(IrqchipState::save(&vm, pit)?),
        Irqchip::Split { .. } => None,
    };
    let mut supported = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(MachineError::Cpuid)?;
    cpuid::add_emulated(
        &mut supported,
        kvm.check_extension(Cap::TscDeadlineTimer),
        guest_mwait,
    );
    for f in cpuid::apply(&mut supported, &c.cpu) {
        crate::report!("warning: host doesn't support requested feature: {f}");
    }
    let msrs: Arc<[u32]> = kvm
        .get_msr_index_list()
        .map_err(MachineError::Cpuid)?
        .as_slice()
        .into();
    let vcpus = (0..c.cpus)
        .map(|id| Vcpu::new(&vm, &supported, &msrs, id, c.cpus))
        .collect::<Result<Vec<_>, _>>()?;
    let direct_boot = match c.bios {
        Bios::None => {
            // Direct boot: the kernel and its boot structures in RAM, vCPU 0 at its entry.
            let image = DirectBootImage::read(c, cpuid::signature(&supported, c.cpus))?;
            if let Some(bsp) = vcpus.first() {
                bsp.enter(&image.load(&ram)?)?;
            }
            Some(image)
        }
        _ => None,
    };

    let control = Arc::new(VcpuControl::new(vcpus.len()));
    let exit = ExitSignal::new(control.clone()).map_err(io("creating the VM's exit eventfd"))?;
    let mut pio = Bus::ports();
    let milestones = Arc::new(Mutex::new(Vec::new()));
    attach_milestones(&mut pio, c, &milestones, &timeline)?;
    let mut outputs = Vec::new();
    let serial = match c.machine.isa_serial {
        true => Some(attach_serial(
            &mut pio,
            &vm,
            &c.serial,
            &timeline,
            &guest_log,
            &mut outputs,
        )?),
        false => None,
    };
    let serial_stdout = match (&serial, &c.serial) {
        (Some(_), Serial::Stdio) => outputs.first().cloned(),
        _ => None,
    };
    let rtc = match c.machine.rtc.or(true) {
        true => Some(attach_rtc(&mut pio, &vm, c, &guest_log)?),
        // With ACPI the FADT says the RTC is absent; nothing can tell a guest without ACPI.
        false if c.acpi() => None,
        false => {
            crate::report!(
                "warning: rtc=off without ACPI: Linux will probe the missing RTC and stall for seconds"
            );
            None
        }
    };
    let i8042 = Arc::new(Mutex::new(I8042::new(exit.clone(), guest_log.clone())));
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
    let mut mmio = Bus::memory();
    if matches!(irqchip, Irqchip::Split { .. }) {
        attach_ioapics(&mut mmio, &vm, c.ioapic2())?;
    }
    if c.pc_testdev {
        attach_pc_testdev(&mut pio, &mut mmio, &vm, &ram)?;
    }
    let virtio = attach_virtio(&mut mmio, &vm, c, &ram, &guest_log, &mut outputs)?;
    let mut vmgenid = None;
    let ged = match c.acpi() {
        true => {
            let ged = Arc::new(Mutex::new(Ged::new(exit.clone(), irq_line(&vm, gsi::GED)?)));
            mmio.insert(crate::layout::GED_EVENT, ged::RANGE_LEN, ged.clone())?;
            let generation = Arc::new(Mutex::new(VmGenId::new(c.vmgenid_guid, ged.clone())));
            mmio.insert(VMGENID_ADDR, VMGENID_LEN, generation.clone())?;
            vmgenid = Some(generation);
            Some(ged)
        }
        false => None,
    };
    // stdin feeds one device: COM1 on stdio, unless a virtio console on stdio asked for it.
    let stdin: Option<Box<dyn InputSink>> = match (virtio.console_input.clone(), &serial) {
        (Some(console), _) => Some(Box::new(console)),
        (None, Some(serial)) if c.serial == Serial::Stdio => Some(Box::new(serial.clone())),
        _ => None,
    };
    let handlers = ExitHandlers {
        pio: pio.clone(),
        mmio: mmio.clone(),
        exit,
        timeline: timeline.clone(),
        unimp: guest_log.wants(Category::Unimp).then(|| guest_log.clone()),
    };
    Ok(Machine {
        vcpus,
        handlers,
        control,
        io: MachineIo {
            virtio: virtio.with_io,
            rtc: rtc.clone(),
            stdin,
            serial_stdout,
        },
        core: MachineCore {
            pio,
            mmio,
            transports: virtio.all,
            ged,
            vmgenid,
            outputs,
            irqchip: irqchip_state,
            direct_boot,
            milestones,
            guest_log,
            timeline,
            clock: PausedClock::default(),
            spec: MachineSpec {
                memory: c.memory,
                cpus: c.cpus,
                irqchip: format!("{irqchip:?}"),
                cpuid: cpuid_checksum(&supported, c.cpus),
                rom_size: rom.as_ref().map_or(0, |(r, _)| r.size()),
                devices: Vec::new(),
            },
            kvm_pit: match irqchip {
                Irqchip::InKernel { pit } => Some(pit),
                Irqchip::Split { .. } => None,
            },
            vm,
            _kvm: kvm,
            ram,
            rom,
        },
    })
}

/// A checksum of the CPUID vCPU 0 of `cpus` gets: a snapshot taken under another differs.
fn cpuid_checksum(supported: &kvm_bindings::CpuId, cpus: u8) -> u32 {
    let cpuid = cpuid::for_vcpu(supported, 0, cpus);
    let entries = cpuid.as_slice().to_vec();
    crate::snapshot::codec::encode("CPUID", &entries).map_or(0, |b| crc32fast::hash(&b))
}

/// QEMU's pc-testdev: its register twice (0xe0, 0xe8), the page flush, the interrupt lines and
/// the memory window.
fn attach_pc_testdev(
    pio: &mut Bus,
    mmio: &mut Bus,
    vm: &Arc<VmFd>,
    ram: &GuestMemoryMmap,
) -> Result<(), MachineError> {
    use crate::devices::pc_testdev::{self as t, FlushPage, IoMem, IrqLines, Register};
    let register: SharedDevice = Arc::new(Mutex::new(Register::default()));
    pio.insert(u64::from(t::REGISTER_PORT), 4, register.clone())?;
    pio.insert(u64::from(t::REGISTER_BYTE_PORT), 4, register)?;
    let flush = Arc::new(Mutex::new(FlushPage::new(ram.clone())));
    pio.insert(u64::from(t::FLUSH_PORT), 4, flush)?;
    let lines = Arc::new(crate::vstate::vm::KvmIrqLines(vm.clone()));
    pio.insert(
        u64::from(t::IRQ_PORT),
        t::IRQ_LINES,
        Arc::new(Mutex::new(IrqLines::new(lines))),
    )?;
    mmio.insert(t::IOMEM, t::IOMEM_LEN, Arc::new(Mutex::new(IoMem::default())))?;
    Ok(())
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

/// Opens where `output` goes: stdout, a file (truncated, as QEMU's file chardev; never through a
/// symbolic link), or nowhere.
pub(crate) fn open_output(name: &str, output: &Serial) -> Result<GuestOutput, MachineError> {
    match output {
        Serial::Stdio => GuestOutput::stdout(name),
        Serial::File(path) => {
            let file = crate::output_file::create(path, Existing::Truncate, 0o644)
                .map_err(io(format!("opening the {name} log {}", path.display())))?;
            GuestOutput::file(name, file)
        }
        Serial::None => GuestOutput::null(name),
    }
    .map_err(io(format!("setting up {name}'s output")))
}

fn attach_serial(
    pio: &mut Bus,
    vm: &VmFd,
    output: &Serial,
    timeline: &Arc<Timeline>,
    log: &GuestLog,
    outputs: &mut Vec<GuestOutput>,
) -> Result<Arc<Mutex<serial::Serial<Output>>>, MachineError> {
    let out = open_output("COM1", output)?;
    outputs.push(out.clone());
    let out = FirstByte::new(out, timeline.clone());
    let dev = Arc::new(Mutex::new(serial::Serial::new(
        irq_line(vm, gsi::COM1)?,
        out,
        log.clone(),
    )));
    pio.insert(u64::from(port::COM1), 8, dev.clone())?;
    Ok(dev)
}

fn attach_rtc(
    pio: &mut Bus,
    vm: &VmFd,
    c: &Config,
    log: &GuestLog,
) -> Result<Arc<Mutex<Cmos>>, MachineError> {
    let low = c.memory.min(crate::layout::LOW_RAM_MAX);
    let mut cmos = Cmos::new(low, c.memory - low, irq_line(vm, gsi::RTC)?, log.clone())
        .map_err(io("creating the RTC"))?;
    cmos.shift_time(c.rtc_base.offset_ns(std::time::SystemTime::now()));
    let dev = Arc::new(Mutex::new(cmos));
    pio.insert(u64::from(port::RTC), 2, dev.clone())?;
    Ok(dev)
}
