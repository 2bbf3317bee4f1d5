//! SIGTERM, SIGINT and SIGHUP as an event on the VM's loop: the handler only stores the signal
//! and writes an eventfd (both async-signal-safe); the loop stops the VM cleanly, flushing its
//! disks and output. Installed by the `minnow` binary: an application that embeds a VM keeps its
//! own signal handling and stops the VM through its handle.
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::register_signal_handler;

/// The signals that stop the VM.
pub const TERMINATION: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The last termination signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// The eventfd the handler writes, or -1.
static EVENT_FD: AtomicI32 = AtomicI32::new(-1);
static EVENT: OnceLock<EventFd> = OnceLock::new();

extern "C" fn on_termination(num: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    RECEIVED.store(num, Ordering::SeqCst);
    let fd = EVENT_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) of 8 bytes from a live local to an eventfd; async-signal-safe.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// The process's termination signals, as an event. One per process.
pub struct Termination {
    event: &'static EventFd,
}

impl Termination {
    /// Installs the handlers (once per process; later calls share them).
    pub fn install() -> std::io::Result<Self> {
        let event = match EVENT.get() {
            Some(e) => e,
            None => {
                let e = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
                let e = EVENT.get_or_init(|| e);
                EVENT_FD.store(e.as_raw_fd(), Ordering::SeqCst);
                e
            }
        };
        for sig in TERMINATION {
            register_signal_handler(sig, on_termination)
                .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
        }
        Ok(Self { event })
    }

    /// Readable once a termination signal arrived.
    pub fn event(&self) -> &EventFd {
        self.event
    }

    /// The signal received since the last call, if any.
    pub fn take(&self) -> Option<i32> {
        let _ = self.event.read();
        match RECEIVED.swap(0, Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }
}
