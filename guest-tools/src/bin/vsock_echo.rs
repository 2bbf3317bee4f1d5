//! `vsock-echo`: the two ends of a vsock echo test, small enough for a busybox initramfs (busybox
//! has no AF_VSOCK). Built static (musl) by xtask.
//!
//! * `vsock-echo listen PORT`: accepts one connection on any CID, echoes it until EOF, exits;
//! * `vsock-echo send CID PORT MESSAGE [SECONDS]`: connects (retrying while the other end is not
//!   listening yet, for up to SECONDS, 30 by default), sends MESSAGE, reads the echo back and
//!   prints it.
use std::io::{Error, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn address(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain data; all-zero is a valid value to fill in.
    let mut a: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    a.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    a.svm_cid = cid;
    a.svm_port = port;
    a
}

fn socket() -> Result<OwnedFd, Error> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(ret: libc::c_int, what: &str) -> Result<(), String> {
    if ret < 0 {
        return Err(format!("{what}: {}", Error::last_os_error()));
    }
    Ok(())
}

/// A connected vsock socket, read and written like a stream (UnixStream only wraps the fd).
fn stream(fd: RawFd) -> UnixStream {
    // SAFETY: `fd` is a connected stream socket owned by the caller, handed over here.
    unsafe { UnixStream::from_raw_fd(fd) }
}

fn listen(port: u32) -> Result<(), String> {
    let sock = socket().map_err(|e| format!("socket(AF_VSOCK): {e}"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let addr = address(libc::VMADDR_CID_ANY, port);
    let len = std::mem::size_of_val(&addr) as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_vm of `len` bytes.
    check(unsafe { libc::bind(fd, (&raw const addr).cast(), len) }, "bind")?;
    // SAFETY: listen(2) on our own socket.
    check(unsafe { libc::listen(fd, 1) }, "listen")?;
    println!("vsock-echo: listening on port {port}");
    // SAFETY: accept(2) on our listening socket; the peer address is not wanted.
    let conn = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    check(conn, "accept")?;
    let mut s = stream(conn);
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).map_err(|e| format!("write: {e}"))?;
        total += n;
    }
    println!("vsock-echo: echoed {total} bytes");
    Ok(())
}

fn connect(cid: u32, port: u32, patience: Duration) -> Result<UnixStream, String> {
    let start = Instant::now();
    loop {
        let sock = socket().map_err(|e| format!("socket(AF_VSOCK): {e}"))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
        let addr = address(cid, port);
        let len = std::mem::size_of_val(&addr) as libc::socklen_t;
        // SAFETY: `addr` is a valid sockaddr_vm of `len` bytes.
        if unsafe { libc::connect(fd, (&raw const addr).cast(), len) } == 0 {
            return Ok(stream(std::os::fd::IntoRawFd::into_raw_fd(sock)));
        }
        let err = Error::last_os_error();
        if start.elapsed() > patience {
            return Err(format!("connect to cid {cid} port {port}: {err}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn send(cid: u32, port: u32, message: &str, patience: Duration) -> Result<(), String> {
    let mut s = connect(cid, port, patience)?;
    s.write_all(message.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut back = String::new();
    s.read_to_string(&mut back).map_err(|e| format!("read: {e}"))?;
    println!("{back}");
    Ok(())
}

fn number(arg: Option<&String>, what: &str) -> Result<u32, String> {
    let arg = arg.ok_or(format!("missing {what}"))?;
    arg.parse().map_err(|_| format!("bad {what} {arg:?}"))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("listen") => listen(number(args.get(1), "PORT")?),
        Some("send") => {
            let message = args.get(3).ok_or("missing MESSAGE")?;
            let secs = match args.get(4) {
                Some(_) => number(args.get(4), "SECONDS")?,
                None => 30,
            };
            send(
                number(args.get(1), "CID")?,
                number(args.get(2), "PORT")?,
                message,
                Duration::from_secs(secs.into()),
            )
        }
        _ => Err("usage: vsock-echo listen PORT | send CID PORT MESSAGE [SECONDS]".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vsock-echo: {e}");
            ExitCode::FAILURE
        }
    }
}
