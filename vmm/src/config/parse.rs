//! The command line, QEMU's way: options in any order, `key=value,...` lists with `,,` for a
//! comma, and the checks between options once all are read.
use super::device::{parse_chardev, parse_device, parse_object};
use super::*;
use super::{logging, monitor};

pub(super) fn bad(option: &str, value: &str, hint: &str) -> ConfigError {
    ConfigError::BadValue {
        option: option.into(),
        value: value.into(),
        hint: hint.into(),
    }
}

/// Splits QEMU's `a=b,c=d` (a leading bare word is returned as the first key with an empty value).
/// As in QEMU, `,,` is a comma inside a value.
/// An option's `key=value` parts, in order.
pub(super) type Parts = Vec<(String, String)>;

/// `KIND,id=ID,...` (`-netdev`, `-chardev`): the leading kind, the id, which must be given and
/// not empty, and every `key=value` after the kind (the id among them).
pub(super) fn kind_and_id(option: &str, s: &str) -> Result<(String, String, Parts), ConfigError> {
    let mut parts = key_values(s);
    let kind = if parts.is_empty() {
        String::new()
    } else {
        parts.remove(0).0
    };
    let id = parts
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| bad(option, s, ": it needs id=ID"))?;
    Ok((kind, id, parts))
}

pub(super) fn key_values(s: &str) -> Vec<(String, String)> {
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

pub(super) fn on_off_auto(option: &str, v: &str) -> Result<OnOffAuto, ConfigError> {
    match v {
        "on" | "yes" | "true" => Ok(OnOffAuto::On),
        "off" | "no" | "false" => Ok(OnOffAuto::Off),
        "auto" => Ok(OnOffAuto::Auto),
        _ => Err(bad(option, v, ": use on, off or auto")),
    }
}

pub(super) fn on_off(option: &str, v: &str) -> Result<bool, ConfigError> {
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

/// `-m [size=]N[,slots=S,maxmem=M]`: hot-plug slots and the maximum are accepted and noted
/// (microvm has no memory hot-plug), once checked as QEMU checks them.
fn parse_m(value: &str, notes: &mut Vec<String>) -> Result<u64, ConfigError> {
    let mut parts = value.split(',');
    let size = parse_memory(parts.next().unwrap_or(""))?;
    let mut hotplug = Vec::new();
    for part in parts {
        match part.split_once('=') {
            Some(("slots", n)) if n.parse::<u32>().is_ok() => hotplug.push(part),
            Some(("maxmem", m)) if parse_memory(m)? >= size => hotplug.push(part),
            Some(("maxmem", m)) => {
                return Err(bad(
                    "-m maxmem",
                    m,
                    ": the maximum must be at least the initial size",
                ))
            }
            _ => return Err(bad("-m", part, ": give size=N, slots=N, maxmem=N")),
        }
    }
    if !hotplug.is_empty() {
        notes.push(format!(
            "-m {}: accepted, without effect: microvm has no memory hot-plug",
            hotplug.join(",")
        ));
    }
    Ok(size)
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
            "vmport" if on_off_auto(&option, v)? == OnOffAuto::On => {
                return Err(bad(
                    "-M vmport",
                    v,
                    ": microvm has no VMware I/O port (nor has QEMU's microvm)",
                ))
            }
            "vmport" => {}
            other if v.is_empty() => {
                return Err(bad("-M", other, ": Minnow provides the microvm machine only"))
            }
            _ => return Err(ConfigError::UnknownOption(option)),
        }
    }
    Ok(())
}

/// `-serial`: COM1's backend, or (`chardev:ID`) the name of a `-chardev` resolved later. As in
/// QEMU, the first `-serial` is COM1's; later ones are for ports the microvm does not have, so
/// they are checked and then left unused.
fn parse_serial(s: &str, pending: &mut Pending, serial: &mut Serial) -> Result<(), ConfigError> {
    let mut this = Pending::default();
    let backend = parse_one_serial(s, &mut this)?;
    if !pending.serial_given {
        pending.serial_given = true;
        pending.serial_mux = this.serial_mux;
        pending.serial_chardev = this.serial_chardev;
        *serial = backend;
    }
    Ok(())
}

fn parse_one_serial(s: &str, pending: &mut Pending) -> Result<Serial, ConfigError> {
    if let Some(rest) = s.strip_prefix("mon:") {
        if rest != "stdio" {
            return Err(bad(
                "-serial mon:",
                rest,
                ": the monitor multiplexes with stdio only (mon:stdio)",
            ));
        }
        pending.serial_mux = true;
    }
    let s = s.strip_prefix("mon:").unwrap_or(s);
    if let Some(id) = s.strip_prefix("chardev:") {
        pending.serial_chardev = Some(id.to_string());
        return Ok(Serial::None);
    }
    match s {
        "stdio" => Ok(Serial::Stdio),
        "none" | "null" => Ok(Serial::None),
        _ => match s.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(Serial::File(path.into())),
            _ => Err(bad("-serial", s, ": use stdio, file:PATH, chardev:ID or none")),
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

/// `-name NAME` or `-name guest=NAME[,debug-threads=on|off][,process=P]`: the VM's name.
fn parse_name(s: &str) -> String {
    key_values(s)
        .into_iter()
        .find_map(|(k, v)| match (k.as_str(), v.is_empty()) {
            ("guest", false) => Some(v),
            (_, true) if !k.starts_with("debug-threads") => Some(k),
            _ => None,
        })
        .unwrap_or_default()
}

/// `-serial chardev:ID`: COM1 on a `-chardev` (stdio or a file; a socket is not built for COM1).
fn serial_on_chardev(chardevs: &[Chardev], id: &str) -> Result<Serial, ConfigError> {
    let chardev = chardevs
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| bad("-serial chardev", id, ": no -chardev has that id"))?;
    match &chardev.backend {
        ChardevBackend::Stdio => Ok(Serial::Stdio),
        ChardevBackend::File(path) => Ok(Serial::File(path.clone())),
        ChardevBackend::Socket(_) => Err(bad(
            "-serial chardev",
            id,
            ": COM1 on a socket is not built; use a stdio or file chardev",
        )),
    }
}

/// stdin and stdout serve one character device, as in QEMU: COM1, a console or a monitor.
fn check_stdio_users(c: &Config) -> Result<(), ConfigError> {
    let monitors = c
        .monitors
        .iter()
        .filter(|m| m.channel == MonitorChannel::Stdio)
        .count();
    let serial = usize::from(c.serial == Serial::Stdio && c.machine.isa_serial);
    if monitors > 0 && monitors + serial + c.virtconsoles_on_stdio() > 1 {
        return Err(ConfigError::StdioTaken);
    }
    Ok(())
}

/// What the command line asks for: a VM, or a help text printed instead.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Config>),
    /// `-h`/`--help` ([`super::HELP`]) or `-device help`/`-device ?` ([`super::help::DEVICES`]).
    Help(&'static str),
}

impl Parsed {
    /// The VM's configuration; `None` when help was asked for.
    pub fn config(self) -> Option<Config> {
        match self {
            Self::Run(c) => Some(*c),
            Self::Help(_) => None,
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, ConfigError> {
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
            "h" | "help" => return Ok(Parsed::Help(super::HELP)),

            "boot-timeline" => {
                c.boot_timeline = Some(TimelineOutput::Stderr);
                c.firmware_milestones = true;
            }
            _ if opt.starts_with("boot-timeline=") => {
                c.firmware_milestones = true;
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
            "cpu" => c.cpu = super::cpu::parse_cpu(&value()?)?,
            "overcommit" => c.cpu_pm = super::cpu::parse_overcommit(&value()?, c.cpu_pm)?,
            "m" => c.memory = parse_m(&value()?, &mut c.notes)?,
            "rtc" => c.rtc_base = super::rtc::parse_rtc(&value()?, &mut c.notes)?,
            "global" => c.pit_lost_ticks = super::global::parse_global(&value()?)?,
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
            "serial" => parse_serial(&value()?, &mut pending, &mut c.serial)?,
            "fw_cfg" => c.fw_cfg.push(parse_fw_cfg(&value()?)?),
            "device" => match value()?.as_str() {
                "help" | "?" => return Ok(Parsed::Help(super::help::DEVICES)),
                v => parse_device(&mut c, v, &mut pending)?,
            },
            "chardev" => c.chardevs.push(parse_chardev(&value()?)?),
            "netdev" => c.netdevs.push(super::netdev::parse_netdev(&value()?)?),
            "object" => parse_object(&value()?)?,
            "drive" => c.drives.push(drive::parse_drive(&value()?)?),
            "name" => c.name = Some(parse_name(&value()?)),
            "qmp" | "qmp-pretty" => {
                let pretty = opt == "qmp-pretty";
                let channel = monitor::parse_channel(&arg, &value()?)?;
                c.monitors.extend(channel.map(|channel| Monitor {
                    mode: MonitorMode::Control,
                    pretty,
                    channel,
                }));
            }
            "monitor" => {
                let channel = monitor::parse_channel(&arg, &value()?)?;
                c.monitors.extend(channel.map(|channel| Monitor {
                    mode: MonitorMode::Readline,
                    pretty: false,
                    channel,
                }));
            }
            "mon" => pending.mons.push(monitor::parse_mon(&value()?)?),
            "S" => c.start_paused = true,
            "incoming" => {
                c.incoming =
                    Some(crate::snapshot::uri::Incoming::parse(&value()?).map_err(ConfigError::Incoming)?);
            }
            "sandbox" => c.sandbox = super::sandbox::parse_sandbox(&value()?)?,
            #[cfg(feature = "sandbox-test")]
            "x-sandbox-violate" => c.sandbox_violate = Some(super::sandbox::parse_violate(&value()?)?),
            "no-shutdown" => c.no_shutdown = true,
            "snapshot" => pending.snapshot = true,
            "pidfile" => c.pidfile = Some(value()?.into()),
            "L" => c.data_dirs.push(value()?.into()),
            "display" => match value()?.as_str() {
                "none" => {}
                v => return Err(bad("-display", v, ": Minnow has no display; use -display none")),
            },
            "nographic" | "nodefaults" | "no-user-config" => {}
            "no-reboot" => c.no_reboot = true,
            "no-acpi" => c.machine.acpi = OnOffAuto::Off,
            "d" => c.log.items = logging::parse_items(&value()?)?,
            "D" => c.log.file = Some(value()?.into()),
            "msg" => logging::parse_msg(&mut c.log, &value()?)?,
            "daemonize" => c.daemonize = true,
            "run-with" => super::run_with::parse_run_with(&value()?, &mut c.run_with)?,
            "runas" => c.run_with.user = Some(super::run_with::parse_user("-runas", &value()?)?),
            "chroot" => c.run_with.chroot = Some(value()?.into()),
            "nic" | "net" => {
                match value()?.as_str() {
                    "none" => {}
                    v => return Err(bad(
                        &arg,
                        v,
                        ": give the NIC as -netdev tap,id=ID,... with -device virtio-net-device,netdev=ID",
                    )),
                }
            }
            "vga" => match value()?.as_str() {
                "none" => {}
                v => return Err(bad("-vga", v, ": the microvm machine has no VGA; use -vga none")),
            },
            // The VNC and SDL keymap: with no display there is no keyboard to map.
            "k" => drop(value()?),
            _ => return Err(ConfigError::UnknownOption(arg)),
        }
    }
    // QEMU's -snapshot: every drive gets its throw-away overlay (here snapshot=off does not
    // take a drive back out).
    if pending.snapshot {
        c.drives.iter_mut().for_each(|d| d.snapshot = true);
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
    if let Some(id) = &pending.serial_chardev {
        c.serial = serial_on_chardev(&c.chardevs, id)?;
    }
    if pending.serial_mux && c.serial == Serial::Stdio {
        c.monitors.push(Monitor {
            mode: MonitorMode::Readline,
            pretty: false,
            channel: MonitorChannel::SerialMux,
        });
    }
    if c.daemonize && !pending.serial_given {
        c.serial = Serial::None;
    }
    for (id, mode, pretty) in pending.mons {
        let chardev = c
            .chardevs
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| bad("-mon chardev", &id, ": no -chardev has that id"))?;
        let channel = match &chardev.backend {
            ChardevBackend::Stdio => MonitorChannel::Stdio,
            ChardevBackend::Socket(s) => MonitorChannel::Socket(s.clone()),
            ChardevBackend::File(_) => {
                return Err(bad(
                    "-mon chardev",
                    &id,
                    ": a monitor needs a socket or stdio chardev",
                ))
            }
        };
        c.monitors.push(Monitor {
            mode,
            pretty,
            channel,
        });
    }
    check_stdio_users(&c)?;
    if c.daemonize && c.uses_stdio() {
        return Err(ConfigError::StdioWithDaemonize);
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
    Ok(Parsed::Run(Box::new(c)))
}
