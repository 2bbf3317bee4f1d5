//! `tap-add NAME UID`: makes a persistent TAP interface (IFF_TAP | IFF_NO_PI) that user UID may
//! open without CAP_NET_ADMIN, as `ip tuntap add NAME mode tap user UID` does; busybox has
//! neither that nor tunctl's `-u`. Run as root in the nested KVM host.
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

const TUNSETIFF: libc::c_ulong = 0x4004_54CA;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54CB;
const TUNSETOWNER: libc::c_ulong = 0x4004_54CC;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(Ok(uid))) = (args.first(), args.get(1).map(|u| u.parse::<libc::c_ulong>())) else {
        eprintln!("usage: tap-add NAME UID");
        return ExitCode::from(2);
    };
    if name.len() >= libc::IFNAMSIZ {
        eprintln!("tap-add: {name}: interface names are at most 15 bytes");
        return ExitCode::from(2);
    }
    let tun = match OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tap-add: /dev/net/tun: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    let fd = tun.as_raw_fd();
    // SAFETY: TUNSETIFF reads and writes one struct ifreq; TUNSETOWNER and TUNSETPERSIST take a
    // number. All on our own descriptor.
    let failed = unsafe {
        [
            libc::ioctl(fd, TUNSETIFF as _, &mut req),
            libc::ioctl(fd, TUNSETOWNER as _, uid),
            libc::ioctl(fd, TUNSETPERSIST as _, 1 as libc::c_ulong),
        ]
        .iter()
        .any(|r| *r < 0)
    };
    if failed {
        eprintln!("tap-add: {name}: {}", std::io::Error::last_os_error());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
