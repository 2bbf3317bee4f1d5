//! `-device`, `-netdev`, `-chardev` and `-object`: the devices a VM gets, checked as they are
//! parsed; drives and back ends named by ID are resolved once the whole command line is read.
use super::netdev::parse_fd;
use super::*;

fn parse_number(option: &str, v: &str) -> Result<u16, ConfigError> {
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| bad(option, v, ": give a number, e.g. 0xf4"))
}

/// A vsock guest CID: 0-2 name the hypervisor, loopback and host, and u32::MAX is "any".
fn parse_cid(v: &str) -> Result<u64, ConfigError> {
    use crate::devices::virtio::vsock::{MAX_GUEST_CID, MIN_GUEST_CID};
    match v.parse::<u64>() {
        Ok(cid) if (MIN_GUEST_CID..=MAX_GUEST_CID).contains(&cid) => Ok(cid),
        _ => Err(bad(
            "-device vhost-vsock-device,guest-cid",
            v,
            ": give a number from 3 to 4294967294 (0-2 are the hypervisor, loopback and host)",
        )),
    }
}

/// A MAC address, `52:54:00:12:34:56`.
fn parse_mac(s: &str) -> Result<[u8; 6], ConfigError> {
    let hint = ": use six hex bytes, 52:54:00:12:34:56";
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad("-device virtio-net-device,mac", s, hint))?;
    bytes
        .try_into()
        .map_err(|_| bad("-device virtio-net-device,mac", s, hint))
}

/// `-chardev stdio,id=ID` or `-chardev file,id=ID,path=PATH`.
pub(super) fn parse_chardev(s: &str) -> Result<Chardev, ConfigError> {
    let (kind, id, parts) = super::parse::kind_and_id("-chardev", s)?;
    if kind == "socket" {
        let socket = super::monitor::parse_socket_chardev(&parts)?;
        return Ok(Chardev {
            id,
            backend: ChardevBackend::Socket(socket),
        });
    }
    let mut path = None;
    for (k, v) in parts {
        match k.as_str() {
            "id" | "signal" | "mux" => {}
            "path" if kind == "file" => path = Some(PathBuf::from(v)),
            _ => {
                return Err(bad(
                    &format!("-chardev {kind}"),
                    &k,
                    ": use id=ID (and path=PATH for file)",
                ))
            }
        }
    }
    let backend = match (kind.as_str(), path) {
        ("stdio", _) => ChardevBackend::Stdio,
        ("file", Some(p)) => ChardevBackend::File(p),
        ("file", None) => return Err(bad("-chardev", s, ": file needs path=PATH")),
        _ => return Err(bad("-chardev", &kind, ": supported: stdio, file, socket")),
    };
    Ok(Chardev { id, backend })
}

/// A UUID as text (`324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87`), in the byte order the VM
/// generation ID specification stores it (the first three fields little-endian), as QEMU's.
fn parse_guid(text: &str) -> Result<[u8; 16], ConfigError> {
    let err = || {
        bad(
            "-device vmgenid,guid",
            text,
            ": give auto or a UUID, e.g. 324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87",
        )
    };
    let fields: Vec<&str> = text.split('-').collect();
    if fields.iter().map(|f| f.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return Err(err());
    }
    let hex: String = fields.concat();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(err)?, 16).map_err(|_| err())?;
    }
    b[..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Ok(b)
}

pub(super) fn parse_device(c: &mut Config, s: &str, pending: &mut Pending) -> Result<(), ConfigError> {
    let pending_drives = &mut pending.drives;
    let pending_netdevs = &mut pending.netdevs;
    let pending_chardevs = &mut pending.chardevs;
    let mut parts = key_values(s).into_iter();
    let (driver, _) = parts.next().unwrap_or_default();
    match driver.as_str() {
        "isa-debug-exit" => {
            let mut d = DebugExit {
                iobase: 0x501,
                iosize: 2,
            };
            for (k, v) in parts {
                let (k, v) = (k.as_str(), v.as_str());
                match k {
                    "iobase" => d.iobase = parse_number("-device isa-debug-exit,iobase", v)?,
                    "iosize" => d.iosize = parse_number("-device isa-debug-exit,iosize", v)?,
                    _ => return Err(bad("-device isa-debug-exit", k, ": use iobase=PORT,iosize=N")),
                }
            }
            c.debug_exit = Some(d);
            Ok(())
        }
        "pc-testdev" => match parts.next() {
            None => {
                c.pc_testdev = true;
                Ok(())
            }
            Some((k, _)) => Err(bad("-device pc-testdev", &k, ": pc-testdev takes no options")),
        },
        "virtio-blk-device" => {
            let mut drive = None;
            for (k, v) in parts {
                match k.as_str() {
                    "drive" => drive = Some(v),
                    // Accepted for QEMU compatibility.
                    "id" | "serial" | "bootindex" => {}
                    _ => return Err(bad("-device virtio-blk-device", &k, ": use drive=ID")),
                }
            }
            let id = drive.ok_or_else(|| bad("-device virtio-blk-device", s, ": it needs drive=ID"))?;
            // The drive may come later on the command line: resolved after parsing.
            pending_drives.push((c.virtio.len(), id));
            c.virtio.push(VirtioDeviceConfig::Block { drive: usize::MAX });
            Ok(())
        }
        "virtio-net-device" => {
            let mut netdev = None;
            let mut mac = crate::devices::virtio::net::DEFAULT_MAC;
            for (k, v) in parts {
                match k.as_str() {
                    "netdev" => netdev = Some(v),
                    "mac" => mac = parse_mac(&v)?,
                    "id" => {}
                    _ => {
                        return Err(bad(
                            "-device virtio-net-device",
                            &k,
                            ": use netdev=ID[,mac=52:54:00:12:34:56]",
                        ))
                    }
                }
            }
            let id = netdev.ok_or_else(|| bad("-device virtio-net-device", s, ": it needs netdev=ID"))?;
            pending_netdevs.push((c.virtio.len(), id));
            c.virtio.push(VirtioDeviceConfig::Net {
                netdev: usize::MAX,
                mac,
            });
            Ok(())
        }
        // The virtio-serial bus: its one console port is the virtconsole that follows.
        "virtio-serial-device" => {
            c.virtio_serial_bus = true;
            Ok(())
        }
        // Minnow's machine always has one (with ACPI); this sets its GUID.
        "vmgenid" => {
            for (k, v) in parts {
                match k.as_str() {
                    "guid" if v == "auto" => c.vmgenid_guid = None,
                    "guid" => c.vmgenid_guid = Some(parse_guid(&v)?),
                    "id" => {}
                    _ => return Err(bad("-device vmgenid", &k, ": use guid=auto|UUID")),
                }
            }
            Ok(())
        }
        "virtconsole" => {
            if !c.virtio_serial_bus {
                return Err(bad(
                    "-device",
                    "virtconsole",
                    ": it needs -device virtio-serial-device before it",
                ));
            }
            let mut chardev = None;
            for (k, v) in parts {
                match k.as_str() {
                    "chardev" => chardev = Some(v),
                    "id" | "name" => {}
                    _ => return Err(bad("-device virtconsole", &k, ": use chardev=ID")),
                }
            }
            let id = chardev.ok_or_else(|| bad("-device virtconsole", s, ": it needs chardev=ID"))?;
            pending_chardevs.push((c.virtio.len(), id));
            c.virtio.push(VirtioDeviceConfig::Console { chardev: usize::MAX });
            Ok(())
        }
        "virtio-rng-device" => {
            for (k, _) in parts {
                // rng=ID names an -object rng-random/rng-builtin: minnow's source is getrandom.
                if !matches!(k.as_str(), "rng" | "id") {
                    return Err(bad("-device virtio-rng-device", &k, ": use rng=ID or nothing"));
                }
            }
            c.virtio.push(VirtioDeviceConfig::Rng);
            Ok(())
        }
        "vhost-vsock-device" => {
            let hint = ": use guest-cid=N (3 or more)[,vhostfd=FD]";
            let (mut cid, mut vhostfd) = (None, None);
            for (k, v) in parts {
                match k.as_str() {
                    "guest-cid" => cid = Some(parse_cid(&v)?),
                    "vhostfd" => {
                        vhostfd = Some(parse_fd("-device vhost-vsock-device,vhostfd", &v, "an open")?)
                    }
                    "id" => {}
                    _ => return Err(bad("-device vhost-vsock-device", &k, hint)),
                }
            }
            let cid = cid.ok_or_else(|| bad("-device vhost-vsock-device", s, ": it needs guest-cid=N"))?;
            if c.virtio
                .iter()
                .any(|d| matches!(d, VirtioDeviceConfig::Vsock { .. }))
            {
                return Err(bad(
                    "-device",
                    "vhost-vsock-device",
                    ": a VM has one vsock device",
                ));
            }
            c.virtio.push(VirtioDeviceConfig::Vsock { cid, vhostfd });
            Ok(())
        }
        _ => Err(bad(
            "-device",
            &driver,
            ": supported: isa-debug-exit, pc-testdev, virtio-blk-device, virtio-net-device, virtio-rng-device, \
             virtio-serial-device with virtconsole, vhost-vsock-device",
        )),
    }
}

/// `-object rng-random|rng-builtin,id=...`: accepted for `virtio-rng-device,rng=ID`; the entropy
/// always comes from getrandom(2), which is what /dev/urandom gives too.
pub(super) fn parse_object(s: &str) -> Result<(), ConfigError> {
    let kind = key_values(s)
        .into_iter()
        .next()
        .map(|(k, _)| k)
        .unwrap_or_default();
    match kind.as_str() {
        "rng-random" | "rng-builtin" => Ok(()),
        _ => Err(bad("-object", &kind, ": supported: rng-random, rng-builtin")),
    }
}
