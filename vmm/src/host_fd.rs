//! File descriptors a caller hands minnow already open (`-netdev tap,fd=`, `vhostfd=`), so a
//! sandboxed minnow needs no access to the device nodes behind them.
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, RawFd};

/// A close-on-exec duplicate of the caller's open `fd`, owned by minnow; the caller keeps its own.
pub fn adopt(fd: RawFd) -> io::Result<File> {
    // SAFETY: F_DUPFD_CLOEXEC only reads `fd`'s entry; an fd that is not open gives EBADF.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(dup) })
}

/// Makes `fd`'s file non-blocking (a duplicate the caller kept shares the change, as QEMU's does).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL change only the file status flags of the descriptor's file.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The socket type of `fd` (SOCK_STREAM, SOCK_DGRAM), or an error saying it is no socket.
pub fn socket_type(fd: RawFd) -> io::Result<libc::c_int> {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_TYPE writes one int, whose size is given, into `kind`.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    match ret {
        0 => Ok(kind),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_descriptor_that_is_not_open_is_refused() {
        assert_eq!(
            adopt(1_000_000).err().and_then(|e| e.raw_os_error()),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn the_adopted_descriptor_is_a_duplicate_and_the_callers_stays_open() {
        let f = File::open("/dev/null").unwrap();
        let copy = adopt(f.as_raw_fd()).unwrap();
        assert_ne!(copy.as_raw_fd(), f.as_raw_fd());
        drop(copy);
        // SAFETY: F_GETFD only reads the descriptor table.
        assert!(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFD) } >= 0);
    }
}
