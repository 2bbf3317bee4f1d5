//! What to build, parsed from QEMU's command-line syntax (the microvm subset). Parsing only: no KVM
//! object exists yet, so every mistake is reported before anything is created.
use std::path::PathBuf;

/// QEMU's on/off/auto option values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnOffAuto {
    On,
    Off,
    #[default]
    Auto,
}

impl OnOffAuto {
    /// The value with `auto` resolved to `default`.
    pub fn or(self, default: bool) -> bool {
        match self {
            Self::On => true,
            Self::Off => false,
            Self::Auto => default,
        }
    }
}

/// `-M microvm,...` options, with QEMU's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub pic: OnOffAuto,
    pub pit: OnOffAuto,
    /// QEMU turns the RTC off under KVM when `auto`; Minnow keeps it on (the RTC fixups).
    pub rtc: OnOffAuto,
    pub isa_serial: bool,
    pub acpi: OnOffAuto,
    pub ioapic2: OnOffAuto,
    pub auto_kernel_cmdline: bool,
    pub option_roms: bool,
}

impl Default for Machine {
    fn default() -> Self {
        Self {
            pic: OnOffAuto::Auto,
            pit: OnOffAuto::Auto,
            rtc: OnOffAuto::Auto,
            isa_serial: true,
            acpi: OnOffAuto::Auto,
            ioapic2: OnOffAuto::Auto,
            auto_kernel_cmdline: true,
            option_roms: true,
        }
    }
}

/// Which firmware runs first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bios {
    /// Minnow's own ROM, built into the binary.
    Builtin,
    /// A ROM image (a multiple of 64 KiB).
    File(PathBuf),
    /// `-bios none`: direct kernel boot, no firmware.
    None,
}

/// Where COM1's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serial {
    Stdio,
    File(PathBuf),
    None,
}

/// `-fw_cfg name=...,file=...|string=...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwCfgFile {
    pub name: String,
    pub source: FwCfgSource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FwCfgSource {
    File(PathBuf),
    String(String),
}

pub mod cpu;
mod device;
mod drive;
pub mod global;
mod help;
pub mod logging;
pub mod monitor;
mod netdev;
mod parse;
pub mod rtc;
mod run_with;
mod sandbox;
pub use netdev::{HostFwd, NetBackend, NetDev, SocketAddr, UserNet};
pub use run_with::{RunAs, RunWith};

pub use drive::{CacheMode, DiskFormat, Drive};
pub use help::HELP;
pub use logging::{LogConfig, LogItems};
pub use monitor::{Monitor, MonitorChannel, MonitorMode, ServerSocket, SocketAddress};
use parse::{bad, key_values, on_off};
pub use parse::{parse, parse_memory, Parsed};

/// A virtio device (`-device virtio-*-device`), in command-line order: it gets the next free
/// virtio-mmio transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioDeviceConfig {
    /// `-device virtio-rng-device`: entropy from the host's getrandom.
    Rng,
    /// `-device virtio-blk-device,drive=ID`: `drives[index]`.
    Block { drive: usize },
    /// `-device virtio-net-device,netdev=ID[,mac=...]`: `netdevs[index]`.
    Net { netdev: usize, mac: [u8; 6] },
    /// `-device virtconsole,chardev=ID` (after `-device virtio-serial-device`):
    /// `chardevs[index]`.
    Console { chardev: usize },
    /// `-device vhost-vsock-device,guest-cid=N[,vhostfd=FD]`: the host kernel's vhost-vsock,
    /// opened by minnow or already open in the caller's FD.
    Vsock { cid: u64, vhostfd: Option<i32> },
}

/// What a `-chardev` is connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChardevBackend {
    Stdio,
    File(PathBuf),
    /// A listening socket (for `-mon`).
    Socket(ServerSocket),
}

/// `-chardev stdio|file|socket,id=ID,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chardev {
    pub id: String,
    pub backend: ChardevBackend,
}

/// Where `-boot-timeline` goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimelineOutput {
    /// A table on stderr.
    Stderr,
    /// `-boot-timeline=json:PATH`.
    Json(PathBuf),
}

/// `-device isa-debug-exit,iobase=...,iosize=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugExit {
    pub iobase: u16,
    pub iosize: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Guest RAM in bytes.
    pub memory: u64,
    pub cpus: u8,
    /// `-cpu`: the model and the CPUID flags switched on or off.
    pub cpu: cpu::CpuConfig,
    /// `-overcommit cpu-pm=on`: HLT, MWAIT, PAUSE and C-states run in the guest.
    pub cpu_pm: bool,
    pub machine: Machine,
    pub bios: Bios,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    pub serial: Serial,
    pub no_reboot: bool,
    pub fw_cfg: Vec<FwCfgFile>,
    pub debug_exit: Option<DebugExit>,
    /// `-device pc-testdev`: QEMU's test device for kvm-unit-tests.
    pub pc_testdev: bool,
    pub name: Option<String>,
    pub pidfile: Option<PathBuf>,
    /// `-boot-timeline[=json:PATH]`: report the boot's phases when the VM stops.
    pub boot_timeline: Option<TimelineOutput>,
    /// Ask minnow.rom for its start and handoff milestones (fw_cfg `opt/org.minnow/milestones`),
    /// for the timeline's firmware phases. `-boot-timeline` sets it. Off, the ROM writes to no
    /// port a user device could sit on.
    pub firmware_milestones: bool,
    /// The virtio devices, in order.
    pub virtio: Vec<VirtioDeviceConfig>,
    /// `-drive`s, which virtio-blk devices name.
    pub drives: Vec<Drive>,
    /// `-netdev`s, which virtio-net devices name.
    pub netdevs: Vec<NetDev>,
    /// `-chardev`s, which virtconsole devices name.
    pub chardevs: Vec<Chardev>,
    /// `-device virtio-serial-device` was given: virtconsole may follow.
    pub virtio_serial_bus: bool,
    /// `-L DIR`: where to look for firmware and option ROMs named without a path, before QEMU's
    /// data directory.
    pub data_dirs: Vec<PathBuf>,
    /// `-qmp`, `-monitor`, `-mon`: the monitors, in command-line order.
    pub monitors: Vec<Monitor>,
    /// `-S`: the vCPUs wait for a monitor's `cont`.
    pub start_paused: bool,
    /// `-rtc base=`: where the guest's RTC starts.
    pub rtc_base: rtc::RtcBase,
    /// `-global kvm-pit.lost_tick_policy`.
    pub pit_lost_ticks: global::LostTickPolicy,
    /// Options accepted without effect here, each as one line to warn with at start.
    pub notes: Vec<String>,
    /// `-device vmgenid,guid=`: the VM generation ID's first value (random when `None`).
    pub vmgenid_guid: Option<[u8; 16]>,
    /// `-incoming`: the VM starts from a snapshot (or waits for one, `defer`).
    pub incoming: Option<crate::snapshot::uri::Incoming>,
    /// Each thread runs under its seccomp filter (the default; `-sandbox off` turns them off).
    pub sandbox: bool,
    /// Tests only (`-x-sandbox-violate vcpu|events`): that thread kind makes a forbidden call.
    #[cfg(feature = "sandbox-test")]
    pub sandbox_violate: Option<crate::sandbox::ThreadKind>,
    /// `-no-shutdown`: a guest power-off stops the vCPUs and leaves the VM (and its monitors)
    /// in the `shutdown` state, as QEMU does, instead of ending minnow.
    pub no_shutdown: bool,
    /// `-d`, `-D`, `-msg`: what is logged about the guest, where, and how stderr lines begin.
    pub log: LogConfig,
    /// `-daemonize`: the CLI detaches once the VM runs (the library ignores it).
    pub daemonize: bool,
    /// `-run-with`, `-runas`, `-chroot`: the user and root directory to switch to once every
    /// host resource is open, before the first guest instruction.
    pub run_with: RunWith,
}

impl Config {
    /// How many virtconsoles have a stdio chardev (at most one may: it takes stdin from COM1).
    pub fn virtconsoles_on_stdio(&self) -> usize {
        self.virtio
            .iter()
            .filter(|d| match d {
                VirtioDeviceConfig::Console { chardev } => self
                    .chardevs
                    .get(*chardev)
                    .is_some_and(|ch| ch.backend == ChardevBackend::Stdio),
                _ => false,
            })
            .count()
    }

    /// Whether a device or monitor reads stdin or writes stdout.
    pub fn uses_stdio(&self) -> bool {
        (self.serial == Serial::Stdio && self.machine.isa_serial)
            || self.virtconsoles_on_stdio() > 0
            || self
                .monitors
                .iter()
                .any(|m| matches!(m.channel, MonitorChannel::Stdio | MonitorChannel::SerialMux))
    }

    /// Whether the guest gets ACPI tables: `acpi=on`, or `auto` (on, as on QEMU's microvm),
    /// installed by the firmware or, with `-bios none`, by direct boot where the firmware would.
    pub fn acpi(&self) -> bool {
        self.machine.acpi.or(true)
    }

    /// Whether the 8259 PICs exist (`pic=on|auto`). Without them KVM runs only the local APICs
    /// and the VMM the I/O APICs (the split irqchip).
    /// Whether the milestone port (0x3f0) is Minnow's: a user's isa-debug-exit there takes it.
    pub fn milestone_port_is_free(&self) -> bool {
        let p = minnow_bootproto::milestone::PORT;
        !self
            .debug_exit
            .is_some_and(|d| (d.iobase..d.iobase.saturating_add(d.iosize)).contains(&p))
    }

    pub fn pic(&self) -> bool {
        self.machine.pic.or(true)
    }

    /// Whether the PIT exists: `pit=on`, or `auto` when the PICs do (KVM's PIT needs its PIC).
    pub fn pit(&self) -> bool {
        self.machine.pit.or(self.pic())
    }

    /// Whether the second I/O APIC exists: `ioapic2=on`, or `auto` (as on QEMU: with ACPI) when
    /// the VMM runs the I/O APICs (`pic=off`); KVM's own irqchip has one.
    pub fn ioapic2(&self) -> bool {
        self.machine.ioapic2.or(self.acpi() && !self.pic())
    }
}

/// QEMU's default RAM size.
pub const DEFAULT_MEMORY: u64 = 128 << 20;
/// Most vCPUs (the MP table and our APIC ids are 8-bit).
pub const MAX_CPUS: u8 = 254;

impl Default for Config {
    fn default() -> Self {
        Self {
            memory: DEFAULT_MEMORY,
            cpus: 1,
            cpu: cpu::CpuConfig::default(),
            cpu_pm: false,
            machine: Machine::default(),
            bios: Bios::Builtin,
            kernel: None,
            initrd: None,
            append: None,
            serial: Serial::Stdio,
            no_reboot: false,
            fw_cfg: Vec::new(),
            debug_exit: None,
            pc_testdev: false,
            name: None,
            pidfile: None,
            data_dirs: Vec::new(),
            boot_timeline: None,
            firmware_milestones: false,
            virtio: Vec::new(),
            drives: Vec::new(),
            netdevs: Vec::new(),
            chardevs: Vec::new(),
            virtio_serial_bus: false,
            monitors: Vec::new(),
            start_paused: false,
            incoming: None,
            vmgenid_guid: None,
            rtc_base: rtc::RtcBase::Utc,
            pit_lost_ticks: global::LostTickPolicy::Delay,
            notes: Vec::new(),
            sandbox: true,
            #[cfg(feature = "sandbox-test")]
            sandbox_violate: None,
            no_shutdown: false,
            log: LogConfig::default(),
            daemonize: false,
            run_with: RunWith::default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unsupported option {0} (see `minnow --help` for what is supported)")]
    UnknownOption(String),
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("{option}: unsupported value {value:?}{hint}")]
    BadValue {
        option: String,
        value: String,
        hint: String,
    },
    #[error("bad memory size {0:?}: give a number with an optional K, M, G or T suffix, e.g. -m 512M")]
    BadMemory(String),
    #[error("bad -smp {0:?}: give a number of vCPUs from 1 to {MAX_CPUS}")]
    BadSmp(String),
    #[error("-initrd and -append need -kernel")]
    NeedsKernel,
    #[error("-bios none boots a kernel directly: pass -kernel")]
    DirectBootNeedsKernel,
    #[error("cannot use stdio with -daemonize (which closes it): give -serial none or file:PATH, and monitors a socket")]
    StdioWithDaemonize,
    #[error("-incoming: {0}")]
    Incoming(crate::snapshot::uri::UriError),
    #[error("cannot use stdio by multiple character devices (a monitor on stdio takes it: give COM1 -serial none or file:PATH, or use mon:stdio)")]
    StdioTaken,
}

/// The backends devices name, resolved once every -drive, -netdev and -chardev is read:
/// (virtio device index, backend id) for each.
#[derive(Default)]
struct Pending {
    drives: Vec<(usize, String)>,
    /// `-snapshot`: every drive as if with snapshot=on.
    snapshot: bool,
    netdevs: Vec<(usize, String)>,
    chardevs: Vec<(usize, String)>,
    /// `-mon`: (chardev id, mode, pretty), in order.
    mons: Vec<(String, MonitorMode, bool)>,
    /// `-serial chardev:ID`.
    serial_chardev: Option<String>,
    /// `-serial mon:stdio`: an HMP monitor shares stdio with COM1.
    serial_mux: bool,
    /// `-serial` was given (else `-daemonize` turns the default stdio off, as QEMU has no stdio then).
    serial_given: bool,
}

#[cfg(test)]
mod tests;
