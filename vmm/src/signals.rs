//! Process signals: SIGTERM and SIGINT stop the VM cleanly, and a real-time signal kicks vCPU
//! threads out of KVM_RUN. Handlers only store a number (async-signal-safe); the VM's main thread
//! polls it.
use std::sync::atomic::{AtomicI32, Ordering};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

/// The last termination signal received, or 0. A signal handler can reach nothing else.
static TERMINATION: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_termination(num: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    TERMINATION.store(num, Ordering::SeqCst);
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// The signal that interrupts a vCPU's KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

/// Installs the handlers. Errors only if the kernel refuses them.
pub fn install() -> std::io::Result<()> {
    let to_io = |e: vmm_sys_util::errno::Error| std::io::Error::from_raw_os_error(e.errno());
    register_signal_handler(libc::SIGTERM, on_termination).map_err(to_io)?;
    register_signal_handler(libc::SIGINT, on_termination).map_err(to_io)?;
    register_signal_handler(kick_signal(), on_kick).map_err(to_io)
}

/// The termination signal received since the last call, if any.
pub fn take_termination() -> Option<i32> {
    match TERMINATION.swap(0, Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}
