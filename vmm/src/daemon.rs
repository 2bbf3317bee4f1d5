//! `-daemonize`, QEMU's way: the process forks before it has any thread; the parent waits
//! until the daemon says its VM runs (then the parent exits 0) or the daemon ends first (then
//! the parent exits 1: the daemon has printed why, on the stderr both still share). In between,
//! a first child leaves the caller's session and forks again, so the daemon leads no session and
//! can never take a controlling terminal; the daemon sets umask 027, ignores the terminal's stop
//! signals and, once its VM runs, points stdin, stdout and stderr at /dev/null.
//!
//! Minnow stays in its working directory (QEMU changes to `/`), so the relative paths it
//! removes at exit (the pid file, Unix sockets) still name the right files.
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Which side of the fork this is.
pub enum Forked {
    /// The caller's process: `ready` says whether the daemon's VM came up.
    Parent { ready: bool },
    /// The daemon: call [`Daemon::ready`] once the VM runs.
    Child(Daemon),
}

/// The daemon's end of the pipe to its waiting parent.
pub struct Daemon {
    to_parent: File,
    /// Opened at the fork: once the VM runs, a chroot or the seccomp filter forbids opening it.
    null: File,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    match ret {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(n),
    }
}

/// Forks into the background.
///
/// # Safety
/// The process must have one thread: the daemon continues with a copy of the caller's memory
/// and only the calling thread, so a lock another thread held would stay locked forever.
pub unsafe fn daemonize() -> io::Result<Forked> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given, which holds two.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded: both are open descriptors that nothing else owns.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the caller promises one thread; the child continues with copies of everything.
    let child = check(unsafe { libc::fork() })?;
    if child != 0 {
        drop(write_end);
        let mut byte = [0u8; 1];
        let ready = matches!(File::from(read_end).read(&mut byte), Ok(1) if byte[0] == 1);
        // SAFETY: reaps the first child, which exits as soon as it has forked the daemon.
        unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        return Ok(Forked::Parent { ready });
    }
    drop(read_end);
    // SAFETY: setsid takes no arguments; after fork the child is no group leader.
    check(unsafe { libc::setsid() })?;
    // SAFETY: as above, still one thread.
    if check(unsafe { libc::fork() })? != 0 {
        // SAFETY: _exit ends the first child without running the parent's exit handlers twice.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: umask and signal(SIG_IGN) change this process's settings only.
    unsafe {
        libc::umask(0o027);
        for sig in [libc::SIGTSTP, libc::SIGTTOU, libc::SIGTTIN] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let null = File::options().read(true).write(true).open("/dev/null")?;
    Ok(Forked::Child(Daemon {
        to_parent: File::from(write_end),
        null,
    }))
}

impl Daemon {
    /// The VM runs: lets the parent exit 0 and detaches from the terminal. On an error the
    /// parent is told nothing and exits 1 once the daemon ends, which its caller must then do.
    pub fn ready(mut self) -> io::Result<()> {
        for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            check(unsafe { libc::dup2(self.null.as_raw_fd(), fd) })?;
        }
        self.to_parent.write_all(&[1])
    }
}
