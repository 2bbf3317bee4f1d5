//! Why the VM stopped, and how a device or vCPU asks for it: a guest-triggered stop (power off,
//! reset, a triple fault, an isa-debug-exit write, a VMM failure on a vCPU) parks every vCPU at
//! once, so no further guest instruction runs, and wakes the lifecycle controller, which decides
//! what follows (reboot in place, stay stopped, or end).
use crate::runtime::vcpu_control::{Command, VcpuControl};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

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
    /// SIGTERM, SIGINT or SIGHUP.
    Signal(i32),
    /// The embedding application (or a monitor's `quit`) stopped the VM.
    Quit,
    /// The VMM failed before the guest ran (the error is reported separately): QEMU's 1.
    Failure,
    /// The VM failed while it ran (a KVM internal or emulation error, a failed guest entry or
    /// `KVM_RUN`, the event loop or a reset failing; reported separately). Its status is even, so
    /// it cannot read as an isa-debug-exit status (always odd; 1 is kvm-unit-tests' PASS).
    VmFailed,
}

/// The exit status of a VM that failed while it ran: even, and none of the others.
pub const VM_FAILED_STATUS: u8 = 4;

impl ExitReason {
    /// The process exit status, QEMU-compatible where QEMU defines one. isa-debug-exit's is
    /// QEMU's `exit((value << 1) | 1)` as the OS reports it: the low 8 bits, so a guest that writes
    /// 0x40000000 gets 1 (failure), never 0.
    pub fn status(self) -> u8 {
        match self {
            Self::PowerOff | Self::Reset | Self::Quit => 0,
            Self::DebugExit(v) => (v.wrapping_shl(1) | 1) as u8,
            Self::TripleFault => 2,
            Self::Signal(s) => (128 + s) as u8,
            Self::Failure => 1,
            Self::VmFailed => VM_FAILED_STATUS,
        }
    }
}

struct Inner {
    events: Mutex<VecDeque<ExitReason>>,
    wake: EventFd,
    vcpus: Arc<VcpuControl>,
}

/// Shared by the devices and the vCPU threads: what the guest asked for, in order.
#[derive(Clone)]
pub struct ExitSignal {
    inner: Arc<Inner>,
}

impl Default for ExitSignal {
    /// A signal with no vCPUs behind it (device tests, fuzzing).
    fn default() -> Self {
        Self::new(Arc::new(VcpuControl::new(0))).expect("an eventfd for a test's exit signal")
    }
}

impl ExitSignal {
    pub fn new(vcpus: Arc<VcpuControl>) -> std::io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                events: Mutex::new(VecDeque::new()),
                wake: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
                vcpus,
            }),
        })
    }

    /// Stops every vCPU and tells the controller why.
    pub fn request(&self, reason: ExitReason) {
        self.inner.vcpus.set(Command::Park);
        self.inner
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(reason);
        let _ = self.inner.wake.write(1);
    }

    /// The oldest request not yet taken.
    pub fn take(&self) -> Option<ExitReason> {
        self.inner
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// The oldest request not yet taken, left in place (for device tests).
    pub fn requested(&self) -> Option<ExitReason> {
        self.inner
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front()
            .copied()
    }

    /// Readable while requests wait (for the event loop).
    pub fn event(&self) -> &EventFd {
        &self.inner.wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_come_out_in_order_and_park_the_vcpus() {
        let vcpus = Arc::new(VcpuControl::new(1));
        vcpus.set(Command::Run);
        let exit = ExitSignal::new(vcpus.clone()).unwrap();
        exit.request(ExitReason::DebugExit(0x10));
        exit.request(ExitReason::PowerOff);
        assert_eq!(vcpus.command(), Command::Park);
        assert_eq!(exit.event().read().unwrap(), 2);
        assert_eq!(exit.take(), Some(ExitReason::DebugExit(0x10)));
        assert_eq!(exit.take(), Some(ExitReason::PowerOff));
        assert_eq!(exit.take(), None);
        assert_eq!(ExitReason::DebugExit(0x10).status(), 33);
        assert_eq!(ExitReason::Signal(15).status(), 143);
    }

    #[test]
    fn a_vm_that_failed_while_running_never_exits_as_a_debug_exit_write_could() {
        let failed = ExitReason::VmFailed.status();
        assert_eq!(failed % 2, 0, "every isa-debug-exit status is odd");
        assert_ne!(failed, ExitReason::PowerOff.status());
        assert_ne!(failed, ExitReason::TripleFault.status());
        assert_ne!(failed, ExitReason::Failure.status());
        for v in [0u32, 1, 0x7f, 0x80, 0xff, 0x4000_0000, u32::MAX] {
            assert_ne!(ExitReason::DebugExit(v).status(), failed, "value {v:#x}");
        }
    }
}
