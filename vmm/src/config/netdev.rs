//! `-netdev`: where a virtio-net device's frames go. `tap` (a host TAP, by name or `fd=`),
//! QEMU 7.2's socket framings `stream` (each frame after its length, 4 bytes big-endian, on a
//! Unix or TCP stream; minnow connects, `server=off`) and `dgram` (a frame per datagram, Unix
//! or UDP), and `user`: networking without root through passt, which minnow starts and ends,
//! with QEMU's slirp addresses (the guest 10.0.2.15/24, the host 10.0.2.2, DNS 10.0.2.3).
use super::parse::{bad, kind_and_id};
use super::ConfigError;
use std::path::PathBuf;

/// `-netdev TYPE,id=ID,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDev {
    pub id: String,
    pub backend: NetBackend,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// `tap,ifname=NAME` (empty: the kernel names a new one) or `tap,fd=N`.
    Tap { ifname: String, fd: Option<i32> },
    /// `stream,server=off,addr.type=...`: minnow connects to a peer that listens.
    Stream(SocketAddr),
    /// `dgram,local.type=...[,remote.type=...]`.
    Dgram {
        local: SocketAddr,
        remote: Option<SocketAddr>,
    },
    /// `user[,hostfwd=...]`, through passt.
    User(UserNet),
}

/// QEMU's SocketAddress, as `addr.`, `local.` and `remote.` keys spell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddr {
    Unix(PathBuf),
    Inet {
        host: String,
        port: u16,
    },
    /// A socket the caller passes open.
    Fd(i32),
}

/// `-netdev user`'s options minnow carries over to passt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserNet {
    pub hostfwd: Vec<HostFwd>,
    pub ipv4: bool,
    pub ipv6: bool,
}

/// `hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFwd {
    pub udp: bool,
    pub host_addr: Option<String>,
    pub host_port: u16,
    pub guest_port: u16,
}

/// A file descriptor number the caller passes open; `what` says what it must be.
pub(super) fn parse_fd(option: &str, v: &str, what: &str) -> Result<i32, ConfigError> {
    v.parse::<i32>()
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| bad(option, v, &format!(": give {what} file descriptor number")))
}

pub(super) fn parse_netdev(s: &str) -> Result<NetDev, ConfigError> {
    let (kind, id, parts) = kind_and_id("-netdev", s)?;
    let rest: Vec<(String, String)> = parts.into_iter().filter(|(k, _)| k != "id").collect();
    let backend = match kind.as_str() {
        "tap" => parse_tap(&rest)?,
        "stream" => parse_stream(&rest)?,
        "dgram" => parse_dgram(&rest)?,
        "user" => NetBackend::User(parse_user(&rest)?),
        _ => {
            return Err(bad(
                "-netdev",
                &kind,
                ": supported: tap, stream, dgram, user (through passt)",
            ))
        }
    };
    Ok(NetDev { id, backend })
}

fn parse_tap(parts: &[(String, String)]) -> Result<NetBackend, ConfigError> {
    let (mut ifname, mut fd) = (String::new(), None);
    for (k, v) in parts {
        match (k.as_str(), v.as_str()) {
            ("ifname", _) => ifname = v.clone(),
            ("fd", _) => fd = Some(parse_fd("-netdev tap,fd", v, "an open TAP's")?),
            ("script" | "downscript", "no") | ("vhost", "off") => {}
            ("script" | "downscript", _) => return Err(bad(
                "-netdev tap",
                &format!("{k}={v}"),
                ": minnow runs no scripts: set the interface up yourself and pass script=no,downscript=no",
            )),
            _ => {
                return Err(bad(
                    "-netdev tap",
                    k,
                    ": use id=ID,ifname=NAME|fd=FD[,script=no,downscript=no]",
                ))
            }
        }
    }
    // Without ifname= the kernel names a new TAP, as with QEMU.
    if fd.is_some() && !ifname.is_empty() {
        return Err(bad(
            "-netdev tap",
            &ifname,
            ": fd= and ifname= name two TAPs; give one",
        ));
    }
    Ok(NetBackend::Tap { ifname, fd })
}

/// The `PREFIX.` keys of one SocketAddress (`addr`, `local`, `remote`); `None` if none is given.
fn socket_address(
    option: &str,
    prefix: &str,
    parts: &[(String, String)],
) -> Result<Option<SocketAddr>, ConfigError> {
    let get = |key: &str| {
        parts
            .iter()
            .find(|(k, _)| k.strip_prefix(prefix).and_then(|k| k.strip_prefix('.')) == Some(key))
            .map(|(_, v)| v.as_str())
    };
    let Some(kind) = get("type") else {
        return match parts.iter().find(|(k, _)| k.starts_with(&format!("{prefix}."))) {
            Some((k, _)) => Err(bad(
                option,
                k,
                &format!(": give {prefix}.type=unix|inet|fd first"),
            )),
            None => Ok(None),
        };
    };
    let need = |key: &str| {
        get(key).filter(|v| !v.is_empty()).ok_or_else(|| {
            bad(
                option,
                &format!("{prefix}.type={kind}"),
                &format!(": it needs {prefix}.{key}"),
            )
        })
    };
    Ok(Some(match kind {
        "unix" => SocketAddr::Unix(need("path")?.into()),
        "inet" => {
            let port = need("port")?;
            SocketAddr::Inet {
                host: need("host")?.to_string(),
                port: port
                    .parse()
                    .map_err(|_| bad(option, port, ": a port is a number up to 65535"))?,
            }
        }
        "fd" => SocketAddr::Fd(parse_fd(option, need("str")?, "an open socket's")?),
        _ => return Err(bad(option, kind, &format!(": {prefix}.type is unix, inet or fd"))),
    }))
}

/// Keys other than the SocketAddresses' are refused by name.
fn only_addresses(
    option: &str,
    parts: &[(String, String)],
    prefixes: &[&str],
    also: &[&str],
) -> Result<(), ConfigError> {
    let address_key = |k: &str| {
        prefixes.iter().any(|p| {
            k.strip_prefix(p)
                .and_then(|k| k.strip_prefix('.'))
                .is_some_and(|k| ["type", "path", "host", "port", "str"].contains(&k))
        })
    };
    match parts
        .iter()
        .find(|(k, _)| !address_key(k) && !also.contains(&k.as_str()))
    {
        Some((k, v)) => Err(bad(
            option,
            &format!("{k}={v}"),
            ": not supported by minnow (unix, inet and fd addresses: type, path, host, port, str)",
        )),
        None => Ok(()),
    }
}

fn parse_stream(parts: &[(String, String)]) -> Result<NetBackend, ConfigError> {
    const OPTION: &str = "-netdev stream";
    only_addresses(OPTION, parts, &["addr"], &["server"])?;
    if let Some((_, v)) = parts.iter().find(|(k, _)| k == "server") {
        if !matches!(v.as_str(), "off" | "no" | "false") {
            return Err(bad(
                OPTION,
                &format!("server={v}"),
                ": minnow connects to a listening peer (server=off), as to passt; it does not listen",
            ));
        }
    }
    let addr = socket_address(OPTION, "addr", parts)?
        .ok_or_else(|| bad(OPTION, "", ": give addr.type=unix,addr.path=P, addr.type=inet,addr.host=H,addr.port=N or addr.type=fd,addr.str=N"))?;
    Ok(NetBackend::Stream(addr))
}

fn parse_dgram(parts: &[(String, String)]) -> Result<NetBackend, ConfigError> {
    const OPTION: &str = "-netdev dgram";
    only_addresses(OPTION, parts, &["local", "remote"], &[])?;
    let local = socket_address(OPTION, "local", parts)?;
    let remote = socket_address(OPTION, "remote", parts)?;
    match (local, remote) {
        (Some(SocketAddr::Fd(fd)), None) => Ok(NetBackend::Dgram {
            local: SocketAddr::Fd(fd),
            remote: None,
        }),
        (Some(SocketAddr::Fd(_)), Some(_)) => Err(bad(OPTION, "remote", ": a local.type=fd socket is already connected; give no remote")),
        (Some(local), Some(remote)) => {
            let same_family = matches!(
                (&local, &remote),
                (SocketAddr::Unix(_), SocketAddr::Unix(_)) | (SocketAddr::Inet { .. }, SocketAddr::Inet { .. })
            );
            if !same_family {
                return Err(bad(OPTION, "remote.type", ": local and remote are both unix or both inet"));
            }
            Ok(NetBackend::Dgram {
                local,
                remote: Some(remote),
            })
        }
        _ => Err(bad(
            OPTION,
            "",
            ": give local.* and remote.* (unix or inet), or local.type=fd,local.str=N (minnow has no multicast)",
        )),
    }
}

fn parse_user(parts: &[(String, String)]) -> Result<UserNet, ConfigError> {
    const OPTION: &str = "-netdev user";
    let mut user = UserNet {
        ipv4: true,
        ipv6: true,
        ..Default::default()
    };
    for (k, v) in parts {
        match k.as_str() {
            "hostfwd" => user.hostfwd.push(parse_hostfwd(v)?),
            "ipv4" | "ipv6" => {
                let on = super::parse::on_off(&format!("{OPTION},{k}"), v)?;
                *if k == "ipv4" { &mut user.ipv4 } else { &mut user.ipv6 } = on;
            }
            _ => {
                return Err(bad(
                    OPTION,
                    &format!("{k}={v}"),
                    ": not supported: minnow's user networking is passt with QEMU's default addresses (keys: hostfwd, ipv4, ipv6)",
                ))
            }
        }
    }
    if !user.ipv4 && !user.ipv6 {
        return Err(bad(OPTION, "ipv4=off,ipv6=off", ": leave one of them on"));
    }
    Ok(user)
}

/// `tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT` (the guest address is always the
/// guest's, 10.0.2.15, with passt).
fn parse_hostfwd(v: &str) -> Result<HostFwd, ConfigError> {
    let wrong = || {
        bad(
            "-netdev user,hostfwd",
            v,
            ": use tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT",
        )
    };
    let (proto, rest) = match v.split_once(':') {
        Some((p @ ("tcp" | "udp" | ""), rest)) => (p, rest),
        _ => return Err(wrong()),
    };
    let (host, guest) = rest.split_once('-').ok_or_else(wrong)?;
    let (host_addr, host_port) = host.rsplit_once(':').ok_or_else(wrong)?;
    let (guest_addr, guest_port) = guest.rsplit_once(':').ok_or_else(wrong)?;
    if !matches!(guest_addr, "" | "10.0.2.15") {
        return Err(bad(
            "-netdev user,hostfwd",
            v,
            ": the guest's address is 10.0.2.15 (leave it out)",
        ));
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(wrong);
    Ok(HostFwd {
        udp: proto == "udp",
        host_addr: Some(host_addr.to_string()).filter(|a| !a.is_empty()),
        host_port: port(host_port)?,
        guest_port: port(guest_port)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(s: &str) -> Result<NetBackend, String> {
        parse_netdev(s).map(|n| n.backend).map_err(|e| e.to_string())
    }

    #[test]
    fn stream_and_dgram_take_qemus_addresses() {
        assert_eq!(
            backend("stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/passt.sock"),
            Ok(NetBackend::Stream(SocketAddr::Unix("/tmp/passt.sock".into())))
        );
        assert_eq!(
            backend("stream,id=n0,addr.type=inet,addr.host=127.0.0.1,addr.port=5555"),
            Ok(NetBackend::Stream(SocketAddr::Inet {
                host: "127.0.0.1".into(),
                port: 5555
            }))
        );
        assert_eq!(
            backend("dgram,id=n0,local.type=unix,local.path=/a,remote.type=unix,remote.path=/b"),
            Ok(NetBackend::Dgram {
                local: SocketAddr::Unix("/a".into()),
                remote: Some(SocketAddr::Unix("/b".into()))
            })
        );
        assert_eq!(
            backend("dgram,id=n0,local.type=fd,local.str=4"),
            Ok(NetBackend::Dgram {
                local: SocketAddr::Fd(4),
                remote: None
            })
        );
    }

    #[test]
    fn what_minnow_does_not_do_is_refused_by_name() {
        for (s, says) in [
            (
                "stream,id=n0,server=on,addr.type=unix,addr.path=/x",
                "does not listen",
            ),
            ("stream,id=n0", "addr.type=unix"),
            ("stream,id=n0,addr.type=unix", "it needs addr.path"),
            ("stream,id=n0,addr.type=vsock,addr.cid=3", "addr.cid=3"),
            (
                "stream,id=n0,addr.type=inet,addr.host=h,addr.port=99999",
                "up to 65535",
            ),
            (
                "dgram,id=n0,remote.type=inet,remote.host=224.0.0.1,remote.port=5",
                "no multicast",
            ),
            (
                "dgram,id=n0,local.type=unix,local.path=/a,remote.type=inet,remote.host=h,remote.port=1",
                "both unix",
            ),
            ("user,id=n0,net=10.0.3.0/24", "net=10.0.3.0/24"),
            ("user,id=n0,ipv4=off,ipv6=off", "leave one"),
            ("user,id=n0,hostfwd=tcp::2222-10.0.2.16:22", "10.0.2.15"),
            ("socket,id=n0", "supported: tap, stream"),
            ("user", "it needs id=ID"),
        ] {
            let e = backend(s).expect_err(s);
            assert!(e.contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn user_networking_forwards_ports_as_qemu_spells_them() {
        let NetBackend::User(u) =
            backend("user,id=n0,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53,ipv6=off")
                .expect("parses")
        else {
            panic!("not user networking");
        };
        assert_eq!(
            u.hostfwd,
            [
                HostFwd {
                    udp: false,
                    host_addr: None,
                    host_port: 2222,
                    guest_port: 22
                },
                HostFwd {
                    udp: true,
                    host_addr: Some("127.0.0.1".into()),
                    host_port: 5353,
                    guest_port: 53
                },
            ]
        );
        assert!(u.ipv4 && !u.ipv6);
    }
}
