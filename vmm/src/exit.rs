//! Why the VM stopped, and how any thread asks it to stop.
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The reason a VM ended. `minnow` turns it into its exit status (see `ExitReason::status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest powered off (ACPI S5, or i8042/keyboard controller power-off).
    PowerOff,
    /// The guest reset the machine; with `-no-reboot` that ends the VM.
    Reset,
    /// The guest wrote `value` to isa-debug-exit: QEMU's status `((value << 1) | 1) & 0xff`.
    DebugExit(u32),
    /// A vCPU triple-faulted (KVM_EXIT_SHUTDOWN).
    TripleFault,
    /// SIGTERM or SIGINT.
    Signal(i32),
    /// The VMM failed (the error is reported separately).
    Failure,
}

impl ExitReason {
    /// The process exit status, QEMU-compatible where QEMU defines one. isa-debug-exit's is
    /// QEMU's `exit((value << 1) | 1)` as the OS reports it: the low 8 bits, so a guest that writes
    /// 0x40000000 gets 1 (failure), never 0.
    pub fn status(self) -> u8 {
        match self {
            Self::PowerOff | Self::Reset => 0,
            Self::DebugExit(v) => (v.wrapping_shl(1) | 1) as u8,
            Self::TripleFault => 2,
            Self::Signal(s) => (128 + s) as u8,
            Self::Failure => 1,
        }
    }
}

/// Shared by the devices, the vCPU threads and the signal handling: the first request wins.
#[derive(Clone, Default)]
pub struct ExitSignal {
    state: Arc<(Mutex<Option<ExitReason>>, Condvar)>,
}

impl ExitSignal {
    pub fn request(&self, reason: ExitReason) {
        let (reason_slot, wake) = &*self.state;
        reason_slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
        wake.notify_all();
    }

    pub fn requested(&self) -> Option<ExitReason> {
        *self.state.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `timeout` for a request.
    pub fn wait(&self, timeout: Duration) -> Option<ExitReason> {
        let (reason_slot, wake) = &*self.state;
        let guard = reason_slot.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = wake
            .wait_timeout_while(guard, timeout, |r| r.is_none())
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_wins_and_wakes_waiters() {
        let exit = ExitSignal::default();
        assert_eq!(exit.wait(Duration::from_millis(1)), None);
        let other = exit.clone();
        let t = std::thread::spawn(move || other.wait(Duration::from_secs(10)));
        exit.request(ExitReason::DebugExit(0x10));
        exit.request(ExitReason::PowerOff);
        assert_eq!(t.join().unwrap(), Some(ExitReason::DebugExit(0x10)));
        assert_eq!(ExitReason::DebugExit(0x10).status(), 33);
        assert_eq!(ExitReason::Signal(15).status(), 143);
    }
}
