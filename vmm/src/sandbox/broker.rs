//! The broker: a small process the VM forks before any thread is confined (and after
//! `-run-with` has dropped privileges and changed root), which does for the confined VMM the
//! two things its filters forbid it: opening a file (`migrate file:PATH`) and running a shell
//! command (`migrate exec:CMD`), handing back descriptors. It has the VMM's identity and root,
//! nothing more, and no guest memory (guest RAM is `MADV_DONTFORK`).
//!
//! It lives until the VMM closes its socket, or dies: then its `recvmsg` sees the end and it
//! exits. Between fork and exit it makes only async-signal-safe calls on buffers on its stack:
//! the VMM may have had other threads when it forked.
//!
//! Protocol, one request at a time on a SOCK_SEQPACKET pair, each answered once:
//! - `O` + flags as 4 bytes + path + NUL: open; the answer is 0 and the descriptor, or an errno.
//! - `X` + command + NUL, with three descriptors (stdin, stdout, stderr): `/bin/sh -c command`,
//!   waited for; the answer is its wait status, or minus an errno if it could not start.
//!
//! The broker keeps none of the VMM's standard streams (a daemon's are closed after it forks,
//! and a test reading minnow's stderr to its end must see it): stderr comes with each command.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Requests are at most this long: a path or a shell command.
const MAX_REQUEST: usize = 4096;
/// The broker's end of the socket, in the broker.
const BROKER_FD: RawFd = 3;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("starting the helper process that opens files and runs exec: commands: {0}")]
    Start(io::Error),
    #[error("{0} is too long for the helper (at most {MAX_REQUEST} bytes)")]
    TooLong(&'static str),
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    #[error("the helper process that opens files and runs exec: commands is gone: {0}")]
    Gone(io::Error),
    #[error("{path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("starting /bin/sh: {0}")]
    Spawn(io::Error),
}

/// The VMM's side: a socket to the broker and its pid, reaped when dropped.
pub struct Broker {
    socket: OwnedFd,
    pid: libc::pid_t,
}

/// A command the broker started: its answer (the wait status) comes once it has ended.
pub struct Running<'a> {
    broker: &'a Broker,
}

impl Running<'_> {
    /// Waits for the command to end; returns its exit code (128 + signal if killed).
    pub fn wait(self) -> Result<i32, BrokerError> {
        let (status, _) = self.broker.answer().map_err(BrokerError::Gone)?;
        if status < 0 {
            return Err(BrokerError::Spawn(io::Error::from_raw_os_error(-status)));
        }
        Ok(match (libc::WIFEXITED(status), libc::WIFSIGNALED(status)) {
            (true, _) => libc::WEXITSTATUS(status),
            (_, true) => 128 + libc::WTERMSIG(status),
            _ => 255,
        })
    }
}

impl Broker {
    /// Forks the broker.
    pub fn start() -> Result<Self, BrokerError> {
        let mut pair = [0; 2];
        // SAFETY: socketpair writes two descriptors into the array.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(BrokerError::Start(io::Error::last_os_error()));
        }
        // SAFETY: both descriptors were just created and nothing else owns them.
        let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        // SAFETY: fork has no preconditions; the child only runs `serve`, which makes
        // async-signal-safe calls and never returns.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(BrokerError::Start(io::Error::last_os_error())),
            0 => serve(theirs.as_raw_fd()),
            pid => Ok(Self { socket: ours, pid }),
        }
    }

    /// Opens `path` with `flags` (mode 0600 when it creates a file), in the broker.
    pub fn open(&self, path: &str, flags: i32) -> Result<OwnedFd, BrokerError> {
        let mut request = vec![b'O'];
        request.extend_from_slice(&flags.to_le_bytes());
        push_text(&mut request, path, "the path")?;
        self.send(&request, &[]).map_err(BrokerError::Gone)?;
        let (errno, fd) = self.answer().map_err(BrokerError::Gone)?;
        match fd {
            Some(fd) if errno == 0 => Ok(fd),
            _ => Err(BrokerError::Open {
                path: path.into(),
                source: io::Error::from_raw_os_error(errno.max(1)),
            }),
        }
    }

    /// Starts `/bin/sh -c command` with `stdin` and `stdout`; its stderr is the VMM's.
    pub fn run(&self, command: &str, stdin: &OwnedFd, stdout: &OwnedFd) -> Result<Running<'_>, BrokerError> {
        let mut request = vec![b'X'];
        push_text(&mut request, command, "the command")?;
        self.send(
            &request,
            &[stdin.as_raw_fd(), stdout.as_raw_fd(), libc::STDERR_FILENO],
        )
        .map_err(BrokerError::Gone)?;
        Ok(Running { broker: self })
    }

    fn send(&self, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
        let mut iov = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        let mut control = [0u64; 8];
        // SAFETY: an all-zero msghdr is valid (no name, no iovecs, no control).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let len = std::mem::size_of_val(fds);
            msg.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE only computes a size.
            msg.msg_controllen = unsafe { libc::CMSG_SPACE(len as u32) } as _;
            // SAFETY: the control buffer (64 bytes) holds one header and three descriptors; the
            // header pointer comes from the msghdr that points at it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(len as u32) as _;
                std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
            }
        }
        // SAFETY: msg points at live buffers for the call's duration.
        let n = unsafe { libc::sendmsg(self.socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        match n {
            n if n < 0 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        }
    }

    /// The broker's answer: a 4-byte number and maybe a descriptor.
    fn answer(&self) -> io::Result<(i32, Option<OwnedFd>)> {
        let mut value = [0u8; 4];
        let mut fd = -1;
        let n = loop {
            // SAFETY: the buffers are live and sized as passed.
            let n =
                unsafe { recv_with_fds(self.socket.as_raw_fd(), &mut value, std::slice::from_mut(&mut fd)) };
            match n {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        // SAFETY: a descriptor the kernel just installed for us, owned by nobody else.
        let fd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
        match n {
            4 => Ok((i32::from_le_bytes(value), fd)),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "it closed its socket",
            )),
        }
    }
}

impl Drop for Broker {
    /// Closing the socket ends the broker; it is reaped if it has (it is never waited for
    /// longer: one blocked in a hung command ends when that command does).
    fn drop(&mut self) {
        // SAFETY: shutdown on our own socket.
        unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RDWR) };
        for _ in 0..50 {
            let mut status = 0;
            // SAFETY: waitpid on our own child, writing its status into a local.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r != 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

fn push_text(request: &mut Vec<u8>, text: &str, what: &'static str) -> Result<(), BrokerError> {
    if text.as_bytes().contains(&0) {
        return Err(BrokerError::Nul(what));
    }
    if request.len() + text.len() + 1 > MAX_REQUEST {
        return Err(BrokerError::TooLong(what));
    }
    request.extend_from_slice(text.as_bytes());
    request.push(0);
    Ok(())
}

/// recvmsg into `buf`, taking up to `fds.len()` descriptors (the rest of `fds` stays -1).
/// Async-signal-safe: the broker calls it too.
///
/// # Safety
/// `socket` must be a socket descriptor.
// cmsg_len is a usize with glibc and a u32 with musl: the cast is needed on one of them.
#[allow(clippy::unnecessary_cast)]
unsafe fn recv_with_fds(socket: RawFd, buf: &mut [u8], fds: &mut [RawFd]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers; CLOEXEC so a command started later does not inherit.
    let n = unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control messages the kernel wrote into `control`, within
    // msg_controllen; each SCM_RIGHTS payload is an array of ints.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        let mut taken = 0;
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count =
                    ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    let fd = data.add(i).read_unaligned();
                    match fds.get_mut(taken) {
                        Some(slot) => *slot = fd,
                        None => {
                            libc::close(fd);
                        }
                    }
                    taken += 1;
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n as usize)
}

/// The broker process: serves requests until the VMM's end of the socket closes.
fn serve(socket: RawFd) -> ! {
    // SAFETY: async-signal-safe calls on descriptors this process owns; `_exit` never returns.
    unsafe {
        // Only the socket stays open, as fd 3.
        if libc::dup2(socket, BROKER_FD) < 0 {
            libc::_exit(1);
        }
        libc::syscall(libc::SYS_close_range, BROKER_FD + 1, u32::MAX, 0);
        libc::syscall(libc::SYS_close_range, 0, BROKER_FD - 1, 0);
        let mut request = [0u8; MAX_REQUEST];
        loop {
            let mut fds = [-1; 3];
            let n = match recv_with_fds(BROKER_FD, &mut request, &mut fds) {
                Ok(0) => libc::_exit(0),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => libc::_exit(0),
            };
            // Requests end in NUL; one that does not is refused.
            let (answer, fd) = match (request.first(), request.get(n.wrapping_sub(1))) {
                (Some(b'O'), Some(0)) if n > 5 => open_for_vmm(&request[..n]),
                (Some(b'X'), Some(0)) if n > 1 => (run_command(&request, fds), -1),
                _ => (-libc::EINVAL, -1),
            };
            for fd in fds.into_iter().filter(|&fd| fd >= 0) {
                libc::close(fd);
            }
            reply(answer, fd);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    }
}

/// `O` flags path NUL: opens it (0600 if created). Returns (0 or errno, fd).
///
/// # Safety
/// Async-signal-safe; `request` ends in NUL.
unsafe fn open_for_vmm(request: &[u8]) -> (i32, RawFd) {
    let flags = i32::from_le_bytes([request[1], request[2], request[3], request[4]]);
    // SAFETY: the path starts at byte 5 and the request ends in NUL.
    let fd = unsafe { libc::open(request[5..].as_ptr().cast(), flags | libc::O_CLOEXEC, 0o600) };
    match fd {
        fd if fd < 0 => (errno(), -1),
        fd => (0, fd),
    }
}

/// `X` command NUL with stdin, stdout and stderr: runs /bin/sh -c command and waits. Returns
/// the wait status, or minus an errno.
///
/// # Safety
/// Async-signal-safe; `request` holds a NUL-terminated command from byte 1.
unsafe fn run_command(request: &[u8; MAX_REQUEST], fds: [RawFd; 3]) -> i32 {
    if fds.iter().any(|&fd| fd < 0) {
        return -libc::EBADF;
    }
    // SAFETY: fork in a single-threaded process; the child execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return -errno();
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls, then exec or _exit.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            // Each to its place, through copies above them (a received descriptor may already
            // sit where another must go); dup2's copies are not close-on-exec.
            let high = fds.map(|fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10));
            for (fd, target) in high.into_iter().zip(0..) {
                libc::dup2(fd, target);
            }
            libc::close(BROKER_FD);
            let argv = [
                c"sh".as_ptr(),
                c"-c".as_ptr(),
                request[1..].as_ptr().cast::<libc::c_char>(),
                std::ptr::null(),
            ];
            libc::execv(c"/bin/sh".as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        match unsafe { libc::waitpid(pid, &mut status, 0) } {
            r if r == pid => return status,
            _ if errno() == libc::EINTR => continue,
            _ => return -errno(),
        }
    }
}

/// Sends a 4-byte answer, with `fd` when it is one.
///
/// # Safety
/// Async-signal-safe.
unsafe fn reply(value: i32, fd: RawFd) {
    let bytes = value.to_le_bytes();
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is valid; the control buffer (32 bytes) holds one header and
    // one descriptor.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if fd >= 0 {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(4) as _;
            libc::CMSG_DATA(cmsg).cast::<RawFd>().write_unaligned(fd);
        }
        libc::sendmsg(BROKER_FD, &msg, libc::MSG_NOSIGNAL);
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}
