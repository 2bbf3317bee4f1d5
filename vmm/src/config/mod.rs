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

mod device;
mod drive;
use device::{parse_chardev, parse_device, parse_netdev, parse_object};
pub use drive::{CacheMode, DiskFormat, Drive};

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

/// `-chardev stdio,id=ID` or `-chardev file,id=ID,path=PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chardev {
    pub id: String,
    /// None: stdio.
    pub path: Option<PathBuf>,
}

/// `-netdev tap,id=ID,ifname=NAME|fd=FD[,script=no,downscript=no]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDev {
    pub id: String,
    pub ifname: String,
    /// A TAP the caller already opened (then `ifname` is empty).
    pub fd: Option<i32>,
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
    pub machine: Machine,
    pub bios: Bios,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    pub serial: Serial,
    pub no_reboot: bool,
    pub fw_cfg: Vec<FwCfgFile>,
    pub debug_exit: Option<DebugExit>,
    pub name: Option<String>,
    pub pidfile: Option<PathBuf>,
    /// `-boot-timeline[=json:PATH]`: report the boot's phases when the VM stops.
    pub boot_timeline: Option<TimelineOutput>,
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
}

impl Config {
    /// How many virtconsoles have a stdio chardev (at most one may: it takes stdin from COM1).
    pub fn virtconsoles_on_stdio(&self) -> usize {
        self.virtio
            .iter()
            .filter(|d| match d {
                VirtioDeviceConfig::Console { chardev } => {
                    self.chardevs.get(*chardev).is_some_and(|ch| ch.path.is_none())
                }
                _ => false,
            })
            .count()
    }

    /// Whether the guest gets ACPI tables: `acpi=on`, or `auto` (on, as on QEMU's microvm),
    /// installed by the firmware or, with `-bios none`, by direct boot where the firmware would.
    pub fn acpi(&self) -> bool {
        self.machine.acpi.or(true)
    }

    /// Whether the 8259 PICs exist (`pic=on|auto`). Without them KVM runs only the local APICs
    /// and the VMM the I/O APICs (the split irqchip).
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
            machine: Machine::default(),
            bios: Bios::Builtin,
            kernel: None,
            initrd: None,
            append: None,
            serial: Serial::Stdio,
            no_reboot: false,
            fw_cfg: Vec::new(),
            debug_exit: None,
            name: None,
            pidfile: None,
            data_dirs: Vec::new(),
            boot_timeline: None,
            virtio: Vec::new(),
            drives: Vec::new(),
            netdevs: Vec::new(),
            chardevs: Vec::new(),
            virtio_serial_bus: false,
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
}

fn bad(option: &str, value: &str, hint: &str) -> ConfigError {
    ConfigError::BadValue {
        option: option.into(),
        value: value.into(),
        hint: hint.into(),
    }
}

/// Splits QEMU's `a=b,c=d` (a leading bare word is returned as the first key with an empty value).
/// As in QEMU, `,,` is a comma inside a value.
fn key_values(s: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ',' {
            current.push(c);
        } else if chars.next_if_eq(&',').is_some() {
            current.push(',');
        } else {
            parts.push(std::mem::take(&mut current));
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p, String::new()),
        })
        .collect()
}

fn on_off_auto(option: &str, v: &str) -> Result<OnOffAuto, ConfigError> {
    match v {
        "on" | "yes" | "true" => Ok(OnOffAuto::On),
        "off" | "no" | "false" => Ok(OnOffAuto::Off),
        "auto" => Ok(OnOffAuto::Auto),
        _ => Err(bad(option, v, ": use on, off or auto")),
    }
}

fn on_off(option: &str, v: &str) -> Result<bool, ConfigError> {
    match on_off_auto(option, v)? {
        OnOffAuto::Auto => Err(bad(option, v, ": use on or off")),
        o => Ok(o.or(false)),
    }
}

/// QEMU's size syntax: a number with an optional K/M/G/T suffix; a bare number means MiB.
pub fn parse_memory(s: &str) -> Result<u64, ConfigError> {
    let err = || ConfigError::BadMemory(s.into());
    let s2 = s.strip_prefix("size=").unwrap_or(s);
    let (num, shift) = match s2.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(err()),
            };
            (&s2[..i], shift)
        }
        _ => (s2, 20),
    };
    let value: f64 = num.parse().map_err(|_| err())?;
    let bytes = value * (1u64 << shift) as f64;
    if !(bytes >= 1.0 && bytes < (1u64 << 46) as f64) {
        return Err(err());
    }
    // Whole pages, as KVM maps them.
    Ok((bytes as u64 + 0xFFF) & !0xFFF)
}

fn parse_smp(s: &str) -> Result<u8, ConfigError> {
    let mut cpus: Option<String> = None;
    for (k, v) in key_values(s) {
        match (k.as_str(), v.as_str()) {
            (_, "") => cpus = Some(k),
            ("cpus", _) | ("maxcpus", _) => cpus = cpus.or(Some(v)),
            ("sockets" | "cores" | "threads" | "dies", _) => {}
            _ => return Err(ConfigError::BadSmp(s.into())),
        }
    }
    match cpus.and_then(|n| n.parse::<u8>().ok()) {
        Some(n) if (1..=MAX_CPUS).contains(&n) => Ok(n),
        _ => Err(ConfigError::BadSmp(s.into())),
    }
}

fn parse_machine(m: &mut Machine, s: &str) -> Result<(), ConfigError> {
    for (k, v) in key_values(s) {
        let (k, v) = (k.as_str(), v.as_str());
        let option = format!("-M {k}");
        match k {
            "microvm" if v.is_empty() => {}
            "type" if v == "microvm" => {}
            "accel" if v == "kvm" => {}
            "accel" => return Err(bad("-M accel", v, ": Minnow runs on KVM only (accel=kvm)")),
            "pic" => m.pic = on_off_auto(&option, v)?,
            "pit" => m.pit = on_off_auto(&option, v)?,
            "rtc" => m.rtc = on_off_auto(&option, v)?,
            "acpi" => m.acpi = on_off_auto(&option, v)?,
            "ioapic2" => m.ioapic2 = on_off_auto(&option, v)?,
            "isa-serial" => m.isa_serial = on_off(&option, v)?,
            "auto-kernel-cmdline" => m.auto_kernel_cmdline = on_off(&option, v)?,
            "x-option-roms" => m.option_roms = on_off(&option, v)?,
            // Accepted for compatibility: no effect on this machine.
            "kernel-irqchip" | "smm" | "usb" | "graphics" => {}
            other if v.is_empty() => {
                return Err(bad("-M", other, ": Minnow provides the microvm machine only"))
            }
            _ => return Err(ConfigError::UnknownOption(option)),
        }
    }
    Ok(())
}

fn parse_serial(s: &str) -> Result<Serial, ConfigError> {
    let s = s.strip_prefix("mon:").unwrap_or(s);
    match s {
        "stdio" => Ok(Serial::Stdio),
        "none" | "null" => Ok(Serial::None),
        _ => match s.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(Serial::File(path.into())),
            _ => Err(bad("-serial", s, ": use stdio, file:PATH or none")),
        },
    }
}

fn parse_fw_cfg(s: &str) -> Result<FwCfgFile, ConfigError> {
    let (mut name, mut source) = (None, None);
    for (k, v) in key_values(s) {
        let (k, v) = (k.as_str(), v.as_str());
        match k {
            "name" => name = Some(v.to_string()),
            "file" => source = Some(FwCfgSource::File(v.into())),
            "string" => source = Some(FwCfgSource::String(v.to_string())),
            _ => {
                return Err(bad(
                    "-fw_cfg",
                    k,
                    ": use name=NAME,file=PATH or name=NAME,string=TEXT",
                ))
            }
        }
    }
    match (name, source) {
        (Some(name), Some(source)) if !name.is_empty() => Ok(FwCfgFile { name, source }),
        _ => Err(bad(
            "-fw_cfg",
            s,
            ": use name=NAME,file=PATH or name=NAME,string=TEXT",
        )),
    }
}

/// The backends devices name, resolved once every -drive, -netdev and -chardev is read:
/// (virtio device index, backend id) for each.
#[derive(Default)]
struct Pending {
    drives: Vec<(usize, String)>,
    netdevs: Vec<(usize, String)>,
    chardevs: Vec<(usize, String)>,
}

/// Parses the arguments after the program name. `Ok(None)` means `--help` was asked for.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Config>, ConfigError> {
    let mut c = Config::default();
    let mut pending = Pending::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // QEMU accepts --option as well as -option.
        let opt = arg
            .strip_prefix('-')
            .map(|a| a.strip_prefix('-').unwrap_or(a))
            .unwrap_or("");
        let mut value = || args.next().ok_or_else(|| ConfigError::MissingValue(arg.clone()));
        match opt {
            "h" | "help" => return Ok(None),
            "boot-timeline" => c.boot_timeline = Some(TimelineOutput::Stderr),
            _ if opt.starts_with("boot-timeline=") => {
                let v = &opt["boot-timeline=".len()..];
                c.boot_timeline = match v.strip_prefix("json:") {
                    Some(path) if !path.is_empty() => Some(TimelineOutput::Json(path.into())),
                    _ => {
                        return Err(bad(
                            "-boot-timeline",
                            v,
                            ": use -boot-timeline or -boot-timeline=json:PATH",
                        ))
                    }
                };
            }
            "M" | "machine" => parse_machine(&mut c.machine, &value()?)?,
            "enable-kvm" => {}
            "accel" => match value()?.as_str() {
                "kvm" => {}
                v => return Err(bad("-accel", v, ": Minnow runs on KVM only")),
            },
            "cpu" => match value()?.as_str() {
                "host" | "max" => {}
                v => return Err(bad("-cpu", v, ": use host (the host's CPU, as KVM reports it)")),
            },
            "m" => c.memory = parse_memory(&value()?)?,
            "smp" => c.cpus = parse_smp(&value()?)?,
            "kernel" => c.kernel = Some(value()?.into()),
            "initrd" => c.initrd = Some(value()?.into()),
            "append" => c.append = Some(value()?),
            "bios" => {
                c.bios = match value()?.as_str() {
                    "none" => Bios::None,
                    path => Bios::File(path.into()),
                }
            }
            "serial" => c.serial = parse_serial(&value()?)?,
            "fw_cfg" => c.fw_cfg.push(parse_fw_cfg(&value()?)?),
            "device" => parse_device(&mut c, &value()?, &mut pending)?,
            "chardev" => c.chardevs.push(parse_chardev(&value()?)?),
            "netdev" => c.netdevs.push(parse_netdev(&value()?)?),
            "object" => parse_object(&value()?)?,
            "drive" => c.drives.push(drive::parse_drive(&value()?)?),
            "name" => c.name = Some(value()?),
            "pidfile" => c.pidfile = Some(value()?.into()),
            "L" => c.data_dirs.push(value()?.into()),
            "display" => match value()?.as_str() {
                "none" => {}
                v => return Err(bad("-display", v, ": Minnow has no display; use -display none")),
            },
            "nographic" | "nodefaults" | "no-user-config" => {}
            "no-reboot" => c.no_reboot = true,
            _ => return Err(ConfigError::UnknownOption(arg)),
        }
    }
    for (device, id) in pending.drives {
        let index = c
            .drives
            .iter()
            .position(|d| d.id == id)
            .ok_or_else(|| bad("-device virtio-blk-device,drive", &id, ": no -drive has that id"))?;
        c.virtio[device] = VirtioDeviceConfig::Block { drive: index };
    }
    for (device, id) in pending.chardevs {
        let index = c
            .chardevs
            .iter()
            .position(|d| d.id == id)
            .ok_or_else(|| bad("-device virtconsole,chardev", &id, ": no -chardev has that id"))?;
        c.virtio[device] = VirtioDeviceConfig::Console { chardev: index };
    }
    if c.virtconsoles_on_stdio() > 1 {
        return Err(bad(
            "-device virtconsole,chardev",
            "stdio",
            ": stdin can feed one console; give the others -chardev file",
        ));
    }
    for (device, id) in pending.netdevs {
        let index = c.netdevs.iter().position(|n| n.id == id).ok_or_else(|| {
            bad(
                "-device virtio-net-device,netdev",
                &id,
                ": no -netdev has that id",
            )
        })?;
        if let VirtioDeviceConfig::Net { netdev, .. } = &mut c.virtio[device] {
            *netdev = index;
        }
    }
    if c.kernel.is_none() && (c.initrd.is_some() || c.append.is_some()) {
        return Err(ConfigError::NeedsKernel);
    }
    if c.bios == Bios::None && c.kernel.is_none() {
        return Err(ConfigError::DirectBootNeedsKernel);
    }
    Ok(Some(c))
}

/// What `minnow --help` prints.
pub const HELP: &str = "\
usage: minnow [options]   (QEMU's microvm command line, on KVM)

  -M, -machine microvm[,opt=val...]   pic, pit, rtc, acpi, ioapic2=on|off|auto;
                                      isa-serial, auto-kernel-cmdline, x-option-roms=on|off;
                                      accel=kvm
  -accel kvm, -enable-kvm, -cpu host  accepted (KVM only; the host CPU)
  -m SIZE                             guest RAM (default 128M; K, M, G, T suffixes)
  -smp N                              vCPUs (1-254)
  -bios FILE|none                     firmware ROM (default: Minnow's built-in ROM);
                                      none: boot -kernel directly
  -L DIR                              look here first for -bios names and option ROMs
                                      (then /usr/share/qemu); x-option-roms=on serves
                                      QEMU's linuxboot_dma.bin/pvh.bin/multiboot_dma.bin
  -kernel FILE                        bzImage, ELF with a PVH note, or multiboot kernel
  -initrd FILE, -append CMDLINE       initrd and kernel command line
  -fw_cfg name=NAME,file=PATH|string=TEXT
  -serial stdio|file:PATH|none        COM1 (default stdio; mon:stdio accepted)
  -device isa-debug-exit,iobase=PORT,iosize=N
                                      a guest write of V exits with status (V << 1) | 1
  -drive file=F,format=raw|qcow2,if=none,id=ID[,readonly=on][,cache=MODE]
  -device virtio-blk-device,drive=ID  virtio disk (flush, discard, write-zeroes)
  -netdev tap,id=ID,ifname=TAP|fd=FD[,script=no,downscript=no]
  -device virtio-net-device,netdev=ID[,mac=52:54:00:12:34:56]
                                      virtio NIC on a host TAP interface
  -chardev stdio|file,id=ID[,path=P] -device virtio-serial-device -device virtconsole,chardev=ID
                                      virtio console (hvc0), output to stdio or a file
  -device virtio-rng-device[,rng=ID]  virtio entropy device, fed from getrandom(2)
                                      (-object rng-random|rng-builtin,id=ID accepted)
  -device vhost-vsock-device,guest-cid=N[,vhostfd=FD]
                                      vsock through the host's vhost_vsock module (FD: an
                                      open /dev/vhost-vsock, so minnow needs no access to it)
  -no-reboot                          a guest reset ends minnow (otherwise it reboots)
  -boot-timeline[=json:PATH]          when the VM stops, print each boot phase's host time
                                      and VM exits (or write them as JSON); a guest marks
                                      the end of its boot by writing to port 0xf6
  -name NAME, -pidfile PATH
  -nodefaults, -no-user-config, -display none, -nographic   accepted

exit status: 0 guest power-off (or reset with -no-reboot), (V << 1) | 1 isa-debug-exit,
             2 triple fault (minnow stops, where QEMU would reboot),
             128+N signal N, 1 error.
";

#[cfg(test)]
mod tests;
