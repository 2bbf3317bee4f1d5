//! `-netdev user`: networking without root through passt (Debian's `passt` package), which
//! minnow starts when the VM is built and which ends with it. The two talk over a socket pair in
//! QEMU's stream framing (`stream.rs`); passt gets its end as `--fd`, and exits when minnow's
//! end closes, however minnow ends (even killed). passt is told QEMU's slirp addresses, so a
//! guest sees what it sees under QEMU's `-netdev user`: DHCP gives 10.0.2.15/24, the gateway
//! 10.0.2.2 is the host (its loopback), 10.0.2.3 answers DNS; `hostfwd=` become passt's `-t`
//! and `-u`. Started as root, passt drops to nobody itself.
use super::stream::StreamFrames;
use super::tap::FrameIo;
use crate::config::{HostFwd, UserNet};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program, found in PATH.
pub const PROGRAM: &str = "passt";
/// How long minnow waits, once it closes its end, for passt to exit before leaving it to exit
/// on its own.
const EXIT_LIMIT: Duration = Duration::from_secs(1);

/// A running passt and the framed socket to it.
pub struct Passt {
    frames: StreamFrames<UnixStream>,
    child: Child,
}

/// passt's arguments for `user`, its socket being descriptor `fd`.
pub fn arguments(user: &UserNet, fd: RawFd, root: bool) -> Vec<String> {
    let mut args: Vec<String> = ["--foreground", "--quiet", "--fd"].map(String::from).to_vec();
    args.push(fd.to_string());
    if user.ipv4 {
        for (option, value) in [
            ("--address", "10.0.2.15"),
            ("--netmask", "24"),
            ("--gateway", "10.0.2.2"),
            ("--dns", "10.0.2.3"),
            ("--dns-forward", "10.0.2.3"),
        ] {
            args.extend([option.to_string(), value.to_string()]);
        }
    }
    match (user.ipv4, user.ipv6) {
        (true, false) => args.push("--ipv4-only".into()),
        (false, true) => args.push("--ipv6-only".into()),
        _ => {}
    }
    for f in &user.hostfwd {
        args.push(if f.udp { "--udp-ports" } else { "--tcp-ports" }.into());
        args.push(port_spec(f));
    }
    if root {
        // passt's own default as root, said so it does not print that it chose it.
        args.extend(["--runas".into(), "nobody".into()]);
    }
    args
}

/// `[ADDR/]HOSTPORT:GUESTPORT`, passt's spelling of one forward.
fn port_spec(f: &HostFwd) -> String {
    let addr = f.host_addr.as_ref().map(|a| format!("{a}/")).unwrap_or_default();
    format!("{addr}{}:{}", f.host_port, f.guest_port)
}

impl Passt {
    /// Starts passt for `user`; `name` names the link in messages.
    pub fn start(user: &UserNet, name: &str) -> io::Result<Passt> {
        let (ours, theirs) = UnixStream::pair()?;
        let fd = theirs.as_raw_fd();
        // SAFETY: geteuid has no arguments and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let mut command = Command::new(PROGRAM);
        command.args(arguments(user, fd, root)).stdin(Stdio::null());
        // SAFETY: runs in the child between fork and exec, making one async-signal-safe call
        // on a descriptor the child inherited: passt's end stays open across exec.
        unsafe {
            command.pre_exec(move || match libc::fcntl(fd, libc::F_SETFD, 0) {
                -1 => Err(io::Error::last_os_error()),
                _ => Ok(()),
            });
        }
        let child = command.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => io::Error::new(
                e.kind(),
                format!("{PROGRAM} is not in PATH: -netdev user runs passt (apt-get install passt)"),
            ),
            _ => io::Error::new(e.kind(), format!("starting {PROGRAM}: {e}")),
        })?;
        drop(theirs);
        Ok(Passt {
            frames: StreamFrames::new(ours, name)?,
            child,
        })
    }
}

impl FrameIo for Passt {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.frames.send(frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.frames.recv(buf)
    }

    fn fd(&self) -> Option<RawFd> {
        self.frames.fd()
    }
}

impl Drop for Passt {
    /// Closes minnow's end, which ends passt, and reaps it.
    fn drop(&mut self) {
        self.frames.shut_down();
        let until = Instant::now() + EXIT_LIMIT;
        while Instant::now() < until {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        crate::report!(
            "{PROGRAM} (pid {}) did not exit within {} s of its socket closing; leaving it",
            self.child.id(),
            EXIT_LIMIT.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passt_is_told_qemus_addresses_and_the_forwards() {
        let user = UserNet {
            hostfwd: vec![
                HostFwd {
                    udp: false,
                    host_addr: None,
                    host_port: 2222,
                    guest_port: 22,
                },
                HostFwd {
                    udp: true,
                    host_addr: Some("127.0.0.1".into()),
                    host_port: 5353,
                    guest_port: 53,
                },
            ],
            ipv4: true,
            ipv6: false,
        };
        let args = arguments(&user, 7, true).join(" ");
        assert_eq!(
            args,
            "--foreground --quiet --fd 7 --address 10.0.2.15 --netmask 24 --gateway 10.0.2.2 \
             --dns 10.0.2.3 --dns-forward 10.0.2.3 --ipv4-only --tcp-ports 2222:22 \
             --udp-ports 127.0.0.1/5353:53 --runas nobody"
        );
    }
}
