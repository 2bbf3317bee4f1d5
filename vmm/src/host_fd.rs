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
