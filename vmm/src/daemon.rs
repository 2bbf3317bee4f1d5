//! `-daemonize`, QEMU's way: the process forks before it has any thread; the parent waits
//! until the child says its VM runs (then the parent exits 0) or the child ends first (then the
//! parent exits 1: the child has printed why, on the stderr both still share). The child leaves
//! the caller's session and, once its VM runs, points stdin, stdout and stderr at /dev/null.
//!
//! Minnow stays in its working directory (QEMU changes to `/`), so the relative paths it
//! removes at exit (the pid file, Unix sockets) still name the right files.
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Which side of the fork this is.
pub enum Forked {
    /// The caller's process: `ready` says whether the child's VM came up.
    Parent { ready: bool },
    /// The daemon: call [`Daemon::ready`] once the VM runs.
    Child(Daemon),
}

/// The daemon's end of the pipe to its waiting parent.
pub struct Daemon {
    to_parent: File,
}

/// Forks. Call it while the process has one thread: the child gets only the caller's.
pub fn daemonize() -> io::Result<Forked> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given, which holds two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are open descriptors that nothing else owns.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the caller promises one thread; the child continues with copies of everything.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(read_end);
            // SAFETY: setsid takes no arguments; after fork the child is no group leader.
            if unsafe { libc::setsid() } == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(Forked::Child(Daemon {
                to_parent: File::from(write_end),
            }))
        }
        _ => {
            drop(write_end);
            let mut byte = [0u8; 1];
            let ready = matches!(File::from(read_end).read(&mut byte), Ok(1));
            Ok(Forked::Parent { ready })
        }
    }
}

impl Daemon {
    /// The VM runs: lets the parent exit and detaches from the terminal.
    pub fn ready(mut self) -> io::Result<()> {
        let null = File::options().read(true).write(true).open("/dev/null")?;
        for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        self.to_parent.write_all(&[1])
    }
}
