//! Opening what a `-netdev` names, once, when the VM is built: a TAP, a stream or datagram
//! socket, or passt for `user`. Each becomes a [`FrameIo`] a virtio-net device owns.
use super::{io, MachineError};
use crate::config::{NetBackend, NetDev, SocketAddr};
use crate::devices::virtio::net::dgram::DgramFrames;
use crate::devices::virtio::net::passt::Passt;
use crate::devices::virtio::net::stream::StreamFrames;
use crate::devices::virtio::net::tap::{FrameIo, Tap};
use std::net::TcpStream;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};

/// The frames of `n`.
pub(super) fn open(n: &NetDev) -> Result<Box<dyn FrameIo>, MachineError> {
    let name = format!("-netdev {}", n.id);
    match &n.backend {
        NetBackend::Tap { ifname, fd } => tap(&n.id, ifname, *fd),
        NetBackend::Stream(addr) => {
            let what = || format!("{name}: connecting to {}", describe(addr));
            let frames: Box<dyn FrameIo> = match addr {
                SocketAddr::Unix(path) => {
                    let s = UnixStream::connect(path).map_err(io(what()))?;
                    Box::new(StreamFrames::new(s, &name).map_err(io(what()))?)
                }
                SocketAddr::Inet { host, port } => {
                    let s = TcpStream::connect((host.as_str(), *port)).map_err(io(what()))?;
                    s.set_nodelay(true).map_err(io(what()))?;
                    Box::new(StreamFrames::new(s, &name).map_err(io(what()))?)
                }
                SocketAddr::Fd(fd) => {
                    let s = adopt_socket(*fd, libc::SOCK_STREAM, &name)?;
                    Box::new(StreamFrames::new(UnixStream::from(s), &name).map_err(io(what()))?)
                }
            };
            Ok(frames)
        }
        NetBackend::Dgram { local, remote } => {
            let what = || format!("{name}: opening {}", describe(local));
            let frames = match (local, remote) {
                (SocketAddr::Fd(fd), _) => {
                    let s = adopt_socket(*fd, libc::SOCK_DGRAM, &name)?;
                    DgramFrames::connected(UnixDatagram::from(s))
                }
                (SocketAddr::Unix(l), Some(SocketAddr::Unix(r))) => DgramFrames::unix(l, r.clone()),
                (SocketAddr::Inet { host, port }, Some(SocketAddr::Inet { host: rh, port: rp })) => {
                    DgramFrames::udp(&format!("{host}:{port}"), &format!("{rh}:{rp}"))
                }
                _ => {
                    return Err(MachineError::Unsupported(format!(
                        "{name}: a datagram link joins two unix or two inet addresses"
                    )))
                }
            };
            Ok(Box::new(frames.map_err(io(what()))?))
        }
        NetBackend::User(user) => Ok(Box::new(
            Passt::start(user, &name).map_err(io(format!("{name} (user networking)")))?,
        )),
    }
}

fn describe(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::Unix(p) => p.display().to_string(),
        SocketAddr::Inet { host, port } => format!("{host}:{port}"),
        SocketAddr::Fd(fd) => format!("fd {fd}"),
    }
}

/// A duplicate of the caller's socket `fd`, checked to be of `kind`.
fn adopt_socket(fd: i32, kind: libc::c_int, name: &str) -> Result<std::os::fd::OwnedFd, MachineError> {
    let what = || format!("{name}: the socket passed as fd {fd}");
    let file = crate::host_fd::adopt(fd).map_err(io(what()))?;
    let actual = crate::host_fd::socket_type(fd).map_err(io(what()))?;
    if actual != kind {
        let want = if kind == libc::SOCK_STREAM {
            "a stream"
        } else {
            "a datagram"
        };
        return Err(MachineError::Unsupported(format!(
            "{}: it must be {want} socket (its type is {actual})",
            what()
        )));
    }
    // SAFETY: the descriptor was just duplicated and is owned by nothing else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(file.into_raw_fd()) })
}

/// A TAP by name (created if it does not exist and minnow may), or the caller's `fd`.
fn tap(id: &str, ifname: &str, fd: Option<i32>) -> Result<Box<dyn FrameIo>, MachineError> {
    if let Some(fd) = fd {
        let (tap, name) = Tap::adopt(fd).map_err(io(format!(
            "-netdev {id},fd={fd} (it must be an open TAP, IFF_TAP | IFF_NO_PI)"
        )))?;
        crate::report!("-netdev {id}: using the TAP interface {name} (fd {fd})");
        return Ok(Box::new(tap));
    }
    let shown = if ifname.is_empty() { "tapN" } else { ifname };
    let (tap, opened) = Tap::open(ifname).map_err(io(format!(
        "opening the TAP interface {shown} (minnow needs CAP_NET_ADMIN, or an existing TAP it may use: \
         `ip tuntap add {shown} mode tap user $USER`, then ifname={shown}; or -netdev user, which needs no root)"
    )))?;
    if ifname.is_empty() {
        crate::report!("-netdev {id}: using the TAP interface {opened}");
    }
    Ok(Box::new(tap))
}
