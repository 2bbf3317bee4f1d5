//! A host TAP interface (`-netdev tap,ifname=T`, or `fd=N` for one the caller opened): Ethernet
//! frames in and out of one fd.
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

const TUNSETIFF: libc::c_ulong = 0x4004_54CA;
const TUNGETIFF: libc::c_ulong = 0x8004_54D2;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;

/// struct ifreq, as TUNSETIFF reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl IfReq {
    /// The interface name, up to its NUL.
    fn name(&self) -> String {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..len]).into_owned()
    }
}

/// Where frames go and come from: a TAP device, a stream or datagram socket (passt, QEMU's
/// socket back ends), or in tests a socket pair.
pub trait FrameIo: Send {
    /// Sends one frame; a full host queue drops it, as a busy link would.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Receives one frame into `buf`; `WouldBlock` when there is none.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// The fd to poll for incoming frames; none once the link is down for good (a stream's
    /// peer gone), so a hung-up descriptor is not polled forever.
    fn fd(&self) -> Option<RawFd>;
}

pub struct Tap {
    file: File,
}

impl Tap {
    /// Opens (creating it if it does not exist and we may) the TAP interface `name`; with no
    /// name the kernel picks one (tapN), as QEMU's `-netdev tap` without `ifname=`. Returns the
    /// interface's name too.
    pub fn open(name: &str) -> io::Result<(Tap, String)> {
        if name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface names are at most 15 bytes",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `req` is, on our own fd.
        // The request type differs between glibc (c_ulong) and musl (c_int).
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((Tap { file }, req.name()))
    }
}

impl Tap {
    /// Takes a duplicate of the caller's open TAP `fd` (QEMU's `-netdev tap,fd=N`), so minnow
    /// needs neither CAP_NET_ADMIN nor /dev/net/tun. It must be a TAP without packet information
    /// or virtio-net headers (IFF_TAP | IFF_NO_PI), which is what minnow itself opens. The fd is
    /// made non-blocking, as QEMU makes it, which the caller's copy shares. Returns the name too.
    pub fn adopt(fd: RawFd) -> io::Result<(Tap, String)> {
        let file = crate::host_fd::adopt(fd)?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        // SAFETY: TUNGETIFF writes one struct ifreq, which `req` is; on a file that is not an
        // attached TUN/TAP it fails and writes nothing.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNGETIFF as _, &mut req) } < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not an attached TAP device ({})", io::Error::last_os_error()),
            ));
        }
        let kind = req.flags & (IFF_TUN | IFF_TAP);
        if kind != IFF_TAP || req.flags & IFF_NO_PI == 0 || req.flags & IFF_VNET_HDR != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a TUN/TAP with flags {:#x}: minnow needs IFF_TAP | IFF_NO_PI, without IFF_VNET_HDR",
                    req.flags
                ),
            ));
        }
        crate::host_fd::set_nonblocking(file.as_raw_fd())?;
        Ok((Tap { file }, req.name()))
    }
}

impl FrameIo for Tap {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.file.write(frame) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_fd_that_is_not_a_tap_is_refused_with_the_reason() {
        let f = File::open("/dev/null").unwrap();
        let err = Tap::adopt(f.as_raw_fd()).err().expect("/dev/null is no TAP");
        assert!(err.to_string().contains("not an attached TAP device"), "{err}");
        assert_eq!(
            Tap::adopt(1_000_000).err().and_then(|e| e.raw_os_error()),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn a_tap_the_caller_opened_is_taken_with_its_name() {
        let (tap, name) = match Tap::open("") {
            Ok(t) => t,
            Err(e) => {
                eprintln!("not supported here: creating a TAP needs CAP_NET_ADMIN and /dev/net/tun ({e})");
                return;
            }
        };
        let (adopted, same) = Tap::adopt(tap.fd().unwrap()).unwrap();
        assert_eq!(same, name);
        assert_ne!(adopted.fd(), tap.fd());
    }
}
