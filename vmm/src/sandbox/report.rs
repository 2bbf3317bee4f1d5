//! What happens when a filter refuses a call: the kernel sends SIGSYS to the thread that made
//! it; this handler writes one line naming the thread and the call, puts the terminal back if
//! minnow made it raw, and makes the same call again with the handler gone, so the process dies
//! by SIGSYS, as QEMU's does under `-sandbox on`. Everything here is async-signal-safe: no
//! allocation, no lock, one `write`.
use std::cell::Cell;
use std::io;
use std::sync::OnceLock;

/// Long enough for "vcpu255" and "minnow-events".
const NAME_LEN: usize = 16;

thread_local! {
    /// This thread's name for the report, set when its filter goes on. Const-initialised: a
    /// signal handler may read it.
    static THREAD_NAME: Cell<[u8; NAME_LEN]> = const { Cell::new([0; NAME_LEN]) };
}

/// The terminal as it was before minnow made it raw, to put back before dying.
static SAVED_TERMINAL: OnceLock<libc::termios> = OnceLock::new();

/// Names this thread in reports.
pub fn name_this_thread(name: &str) {
    let mut buf = [0u8; NAME_LEN];
    let n = name.len().min(NAME_LEN);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    THREAD_NAME.with(|c| c.set(buf));
}

/// Remembers the terminal's settings from before raw mode.
pub fn remember_terminal(saved: libc::termios) {
    let _ = SAVED_TERMINAL.set(saved);
}

/// Installs the handler, process-wide, before any filter goes on.
pub fn install_handler() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value, filled in below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigsys as *const () as usize;
    // RESETHAND: the call made again below meets the default action (death by SIGSYS).
    // NODEFER: SIGSYS stays deliverable inside the handler for that second call.
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_NODEFER;
    // SAFETY: sigaction reads `action`, which lives across the call; the handler only makes
    // async-signal-safe calls.
    if unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A bounded buffer a signal handler can format into.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn number(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// The one line, as bytes: `minnow: sandbox: thread vcpu0 made a forbidden system call:
/// getppid (110); stopping`.
fn describe(thread: &[u8], call: i64) -> Line {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let name_end = thread.iter().position(|b| *b == 0).unwrap_or(thread.len());
    line.push(b"minnow: sandbox: thread ");
    line.push(if name_end == 0 {
        b"unnamed"
    } else {
        &thread[..name_end]
    });
    line.push(b" made a forbidden system call: ");
    if let Some(name) = super::names::name(call) {
        line.push(name.as_bytes());
        line.push(b" (");
        line.number(call as u64);
        line.push(b")");
    } else {
        line.push(b"number ");
        line.number(call as u64);
    }
    line.push(b"; stopping (-sandbox off runs without filters)\n");
    line
}

extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // For SIGSYS from seccomp, the kernel's siginfo has the call's number at byte 24
    // (`si_syscall`, after si_signo, si_errno, si_code, padding and si_call_addr).
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let call = unsafe { std::ptr::read_unaligned((info as *const u8).add(24) as *const i32) };
    let line = describe(&THREAD_NAME.with(Cell::get), i64::from(call));
    // SAFETY: write(2) of a buffer on this stack; async-signal-safe.
    unsafe { libc::write(2, line.buf.as_ptr().cast(), line.len) };
    if let Some(saved) = SAVED_TERMINAL.get() {
        // SAFETY: tcsetattr on stdin with settings read from it earlier; async-signal-safe.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
    }
    // SAFETY: the context is the interrupted thread's, which the kernel passes to the handler;
    // its registers hold the refused call's arguments. Making the call again, with the handler
    // reset by SA_RESETHAND, ends the process by SIGSYS.
    unsafe {
        let regs = &(*(context as *const libc::ucontext_t)).uc_mcontext.gregs;
        libc::syscall(
            i64::from(call),
            regs[libc::REG_RDI as usize],
            regs[libc::REG_RSI as usize],
            regs[libc::REG_RDX as usize],
            regs[libc::REG_R10 as usize],
            regs[libc::REG_R8 as usize],
            regs[libc::REG_R9 as usize],
        );
        libc::_exit(128 + libc::SIGSYS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_thread_and_the_call() {
        let mut name = [0u8; NAME_LEN];
        name[..5].copy_from_slice(b"vcpu0");
        let line = describe(&name, libc::SYS_getppid);
        assert_eq!(
            std::str::from_utf8(&line.buf[..line.len]).ok(),
            Some("minnow: sandbox: thread vcpu0 made a forbidden system call: getppid (110); stopping (-sandbox off runs without filters)\n")
        );
        let line = describe(&[0; NAME_LEN], 4242);
        let text = String::from_utf8_lossy(&line.buf[..line.len]).into_owned();
        assert!(
            text.contains("thread unnamed") && text.contains("number 4242"),
            "{text}"
        );
    }
}
