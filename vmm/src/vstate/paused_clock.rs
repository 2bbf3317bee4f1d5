//! The guest's kvmclock across `stop` and `cont`, as QEMU keeps it: read when the vCPUs stop
//! and written back when they run again, so the guest does not see the pause as time passing
//! (no jump of its monotonic clock, no watchdog taking the gap for a lockup). Its wall clock
//! falls behind by the pause, as under QEMU, until the guest syncs it.
use kvm_bindings::kvm_clock_data;
use kvm_ioctls::VmFd;
use std::sync::Mutex;

#[derive(Default)]
pub struct PausedClock {
    saved: Mutex<Option<kvm_clock_data>>,
}

impl PausedClock {
    /// The vCPUs have stopped: remembers the clock (the first stop's, if stopped twice).
    pub fn stop(&self, vm: &VmFd) -> Result<(), kvm_ioctls::Error> {
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        if saved.is_none() {
            *saved = Some(vm.get_clock()?);
        }
        Ok(())
    }

    /// The clock as it stopped, if the vCPUs are stopped.
    pub fn stopped_at(&self) -> Option<u64> {
        self.saved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|c| c.clock)
    }

    /// A restore: the vCPUs run next from `clock` ns (as if they had stopped there).
    pub fn set_stopped_at(&self, clock: u64) {
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some(kvm_clock_data {
            clock,
            ..Default::default()
        });
    }

    /// The vCPUs are about to run: the clock continues from where it stopped.
    pub fn resume(&self, vm: &VmFd) -> Result<(), kvm_ioctls::Error> {
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner()).take();
        match saved {
            Some(clock) => vm.set_clock(&kvm_clock_data {
                clock: clock.clock,
                ..Default::default()
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a real KVM: a pause of 200 ms leaves the clock where it stopped, give or take.
    #[test]
    fn the_guest_clock_does_not_count_a_pause() {
        let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm: this test needs KVM");
        let vm = kvm.create_vm().expect("a VM");
        let clock = PausedClock::default();
        clock.stop(&vm).expect("KVM_GET_CLOCK");
        let stopped_at = vm.get_clock().expect("KVM_GET_CLOCK").clock;
        std::thread::sleep(std::time::Duration::from_millis(200));
        clock.resume(&vm).expect("KVM_SET_CLOCK");
        let resumed_at = vm.get_clock().expect("KVM_GET_CLOCK").clock;
        let gap_ms = resumed_at.saturating_sub(stopped_at) / 1_000_000;
        assert!(gap_ms < 100, "the clock moved {gap_ms} ms over a 200 ms pause");
    }
}
