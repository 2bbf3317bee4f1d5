//! The monitors, as QEMU takes them: `-qmp`, `-qmp-pretty` and `-monitor` with a channel
//! (`unix:PATH`, `tcp:HOST:PORT`, `telnet:HOST:PORT`, `stdio`, `none`), and `-mon
//! chardev=ID,mode=control|readline` over a `-chardev socket` or `-chardev stdio`. Monitors listen
//! (QEMU's `server=on`); `wait=on` (QEMU's default for a server) holds the guest until the first
//! client connects.
use super::{bad, key_values, ConfigError};
use std::path::PathBuf;

/// Where a socket listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddress {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

/// A listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSocket {
    pub address: SocketAddress,
    /// Hold the guest until the first client connects.
    pub wait: bool,
    /// Speak telnet's option negotiation (`telnet:` or `telnet=on`).
    pub telnet: bool,
}

/// Which protocol a monitor speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorMode {
    /// QMP: JSON commands and events (`-qmp`, `mode=control`).
    Control,
    /// HMP: lines for people (`-monitor`, `mode=readline`).
    Readline,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonitorChannel {
    Stdio,
    Socket(ServerSocket),
    /// `-serial mon:stdio`: HMP shares stdio with COM1; Ctrl-A c switches between them.
    SerialMux,
}

/// One monitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub mode: MonitorMode,
    /// QMP replies indented (`-qmp-pretty`, `pretty=on`).
    pub pretty: bool,
    pub channel: MonitorChannel,
}

const CHANNEL_HINT: &str =
    ": use unix:PATH,server=on,wait=off, tcp:HOST:PORT,server=on,wait=off, telnet:HOST:PORT,server,nowait, stdio or none";

/// `HOST:PORT`, the host may be empty (all addresses, as QEMU takes it).
fn host_port(option: &str, s: &str) -> Result<SocketAddress, ConfigError> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| bad(option, s, CHANNEL_HINT))?;
    let port = port
        .parse()
        .map_err(|_| bad(option, s, ": the port is a number"))?;
    let host = match host.trim_matches(['[', ']']) {
        "" => "0.0.0.0".to_string(),
        h => h.to_string(),
    };
    Ok(SocketAddress::Tcp { host, port })
}

/// The listening options after the address: `server[=on]`, `wait=on|off` or `nowait`,
/// `telnet=on|off`. Returns (wait, telnet).
fn listen_options(
    option: &str,
    opts: &[(String, String)],
    telnet: bool,
) -> Result<(bool, bool), ConfigError> {
    let (mut server, mut wait, mut telnet) = (false, true, telnet);
    for (k, v) in opts {
        let on = match v.as_str() {
            "" | "on" | "yes" | "true" => true,
            "off" | "no" | "false" => false,
            _ => return Err(bad(&format!("{option} {k}"), v, ": use on or off")),
        };
        match k.as_str() {
            "server" => server = on,
            "wait" => wait = on,
            "nowait" => wait = false,
            "telnet" => telnet = on,
            // Accepted: the address family and socket options do not change a listener here.
            "ipv4" | "ipv6" | "nodelay" | "reconnect" | "abstract" | "tight" => {}
            _ => return Err(bad(option, k, CHANNEL_HINT)),
        }
    }
    if !server {
        return Err(bad(
            option,
            "server=off",
            ": minnow's monitors listen for their clients: add server=on (and wait=off)",
        ));
    }
    Ok((wait, telnet))
}

/// A monitor channel as `-qmp` and `-monitor` take it; `None` for `none`.
pub fn parse_channel(option: &str, spec: &str) -> Result<Option<MonitorChannel>, ConfigError> {
    let parts = key_values(spec);
    let Some(((first, first_value), opts)) = parts.split_first() else {
        return Err(bad(option, spec, CHANNEL_HINT));
    };
    // key_values splits "unix:/p" as a bare word; "tcp:h:p" too.
    let word = match first_value.is_empty() {
        true => first.clone(),
        false => format!("{first}={first_value}"),
    };
    let (address, telnet) = match word.split_once(':') {
        _ if word == "stdio" && opts.is_empty() => return Ok(Some(MonitorChannel::Stdio)),
        _ if word == "none" && opts.is_empty() => return Ok(None),
        Some(("unix", path)) if !path.is_empty() => (SocketAddress::Unix(path.into()), false),
        Some(("tcp", hp)) => (host_port(option, hp)?, false),
        Some(("telnet", hp)) => (host_port(option, hp)?, true),
        _ => return Err(bad(option, spec, CHANNEL_HINT)),
    };
    let (wait, telnet) = listen_options(option, opts, telnet)?;
    Ok(Some(MonitorChannel::Socket(ServerSocket {
        address,
        wait,
        telnet,
    })))
}

/// `-chardev socket,id=ID,path=P|host=H,port=N,server=on,wait=off[,telnet=on]`: the socket.
pub fn parse_socket_chardev(opts: &[(String, String)]) -> Result<ServerSocket, ConfigError> {
    const OPTION: &str = "-chardev socket";
    let (mut path, mut host, mut port) = (None, String::new(), None);
    let mut rest = Vec::new();
    for (k, v) in opts {
        match k.as_str() {
            "path" => path = Some(PathBuf::from(v)),
            "host" => host = v.clone(),
            "port" => {
                port = Some(
                    v.parse::<u16>()
                        .map_err(|_| bad(OPTION, v, ": port is a number"))?,
                )
            }
            "id" | "mux" | "signal" | "logfile" | "logappend" => {}
            _ => rest.push((k.clone(), v.clone())),
        }
    }
    let address = match (path, port) {
        (Some(p), None) => SocketAddress::Unix(p),
        (None, Some(port)) => SocketAddress::Tcp {
            host: if host.is_empty() { "0.0.0.0".into() } else { host },
            port,
        },
        _ => return Err(bad(OPTION, "", ": give path=PATH, or host=HOST,port=PORT")),
    };
    let (wait, telnet) = listen_options(OPTION, &rest, false)?;
    Ok(ServerSocket {
        address,
        wait,
        telnet,
    })
}

/// `-mon chardev=ID[,mode=control|readline][,pretty=on]`: (chardev id, mode, pretty).
pub fn parse_mon(spec: &str) -> Result<(String, MonitorMode, bool), ConfigError> {
    let (mut id, mut mode, mut pretty) = (None, MonitorMode::Readline, false);
    for (k, v) in key_values(spec) {
        match (k.as_str(), v.as_str()) {
            ("chardev", id_) => id = Some(id_.to_string()),
            ("mode", "control") => mode = MonitorMode::Control,
            ("mode", "readline") => mode = MonitorMode::Readline,
            ("pretty", v) => pretty = super::on_off("-mon pretty", v)?,
            ("default", _) => {}
            _ => {
                return Err(bad(
                    "-mon",
                    &k,
                    ": use chardev=ID,mode=control|readline[,pretty=on]",
                ))
            }
        }
    }
    let id = id.ok_or_else(|| bad("-mon", spec, ": it needs chardev=ID"))?;
    Ok((id, mode, pretty))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(spec: &str) -> ServerSocket {
        match parse_channel("-qmp", spec).unwrap() {
            Some(MonitorChannel::Socket(s)) => s,
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn qemus_spellings_of_a_listening_monitor_parse() {
        let s = socket("unix:/tmp/q.sock,server=on,wait=off");
        assert_eq!(s.address, SocketAddress::Unix("/tmp/q.sock".into()));
        assert!(!s.wait && !s.telnet);
        assert!(!socket("unix:/tmp/q.sock,server,nowait").wait);
        assert!(
            socket("unix:/tmp/q.sock,server").wait,
            "a server waits by default"
        );
        let t = socket("telnet:127.0.0.1:1234,server,nowait");
        assert_eq!(
            t.address,
            SocketAddress::Tcp {
                host: "127.0.0.1".into(),
                port: 1234
            }
        );
        assert!(t.telnet);
        let any = socket("tcp::4444,server=on,wait=off");
        assert_eq!(
            any.address,
            SocketAddress::Tcp {
                host: "0.0.0.0".into(),
                port: 4444
            }
        );
        assert_eq!(
            parse_channel("-qmp", "stdio").unwrap(),
            Some(MonitorChannel::Stdio)
        );
        assert_eq!(parse_channel("-monitor", "none").unwrap(), None);
    }

    #[test]
    fn what_minnow_cannot_do_says_so() {
        for (spec, says) in [
            ("unix:/tmp/q.sock", "add server=on"),
            ("unix:/tmp/q.sock,server=off", "add server=on"),
            ("vc", "unix:PATH"),
            ("tcp:nohost", "unix:PATH"),
            ("tcp:h:port,server", "port is a number"),
            ("unix:/tmp/q.sock,server,colour=red", "colour"),
        ] {
            let e = parse_channel("-qmp", spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn a_socket_chardev_and_its_mon_parse() {
        let opts = key_values("id=m0,path=/run/m.sock,server=on,wait=off");
        let s = parse_socket_chardev(&opts).unwrap();
        assert_eq!(s.address, SocketAddress::Unix("/run/m.sock".into()));
        let opts = key_values("id=m1,host=127.0.0.1,port=5555,server=on,wait=off,telnet=on");
        assert!(parse_socket_chardev(&opts).unwrap().telnet);
        assert_eq!(
            parse_mon("chardev=m0,mode=control,pretty=on").unwrap(),
            ("m0".to_string(), MonitorMode::Control, true)
        );
        assert_eq!(parse_mon("chardev=m1").unwrap().1, MonitorMode::Readline);
        assert!(parse_mon("mode=control").is_err());
    }
}
