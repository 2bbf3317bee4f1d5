//! A terminal on stdin, as QEMU's stdio character device sets it: raw (each key reaches the
//! guest or the monitor as it is typed, nothing echoed by the terminal, no CR/LF mapping), but
//! with signals kept, so Ctrl-C still stops minnow cleanly. The old settings come back when the
//! [`RawTerminal`] is dropped.
use std::os::fd::AsRawFd;

pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// Makes stdin raw if it is a terminal; `None` otherwise (a pipe, a file, /dev/null).
    pub fn enter() -> Option<Self> {
        let fd = std::io::stdin().as_raw_fd();
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(fd) } != 1 {
            return None;
        }
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes into the termios it is given.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        // A refused system call ends the process from a signal handler: it puts this back.
        crate::sandbox::remember_terminal(saved);
        let mut raw = saved;
        raw.c_iflag &= !(libc::IGNBRK
            | libc::BRKINT
            | libc::PARMRK
            | libc::ISTRIP
            | libc::INLCR
            | libc::IGNCR
            | libc::ICRNL
            | libc::IXON);
        raw.c_oflag |= libc::OPOST;
        raw.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN);
        raw.c_cflag &= !(libc::CSIZE | libc::PARENB);
        raw.c_cflag |= libc::CS8;
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: tcsetattr reads the termios it is given.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: tcsetattr reads the settings saved when the terminal was made raw.
        unsafe { libc::tcsetattr(std::io::stdin().as_raw_fd(), libc::TCSANOW, &self.saved) };
    }
}
