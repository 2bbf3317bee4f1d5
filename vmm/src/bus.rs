//! One bus model for port I/O and MMIO: devices claim address ranges and see only the offset into
//! their own range. The vCPU loop hands every PIO and MMIO exit to a `Bus`. Unclaimed reads return
//! what QEMU's do: all-ones from a port, as on a PC, and zeros from memory (QEMU's unassigned
//! memory); unclaimed writes are dropped.
use crate::snapshot::codec::StateError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device register block.
///
/// Devices are called with the bus's lock released and their own `Mutex` held, one access at a
/// time: a device never sees two concurrent accesses. A device must not panic or block on guest
/// input: bad values are logged and ignored.
pub trait BusDevice: Send {
    /// Fills `data` from the register at `offset` (bytes past what the device defines read as 0xFF).
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Writes `data` to the register at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
    /// The machine resets: back to the power-on state, keeping the host resources the device
    /// was given (its output, its files, its interrupt line).
    fn reset(&mut self) {}
    /// What the device is, as a snapshot names it: a restore checks that the same kind of
    /// device sits at each address.
    fn kind(&self) -> &'static str {
        "device"
    }
    /// The device's guest-visible state, for a snapshot; empty for a device that keeps none.
    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        Ok(Vec::new())
    }
    /// The snapshot [`BusDevice::save_state`] was taken for is written, or failed: host-side
    /// work the device stopped for it starts again.
    fn state_saved(&mut self) {}
    /// The whole machine is restored (every device, KVM's chips, the vCPUs) and the guest has
    /// not run yet: what the device tells the guest about the move. An interrupt raised in
    /// [`BusDevice::restore_state`] would be lost to the chips' and vCPUs' restore after it.
    fn after_restore(&mut self) {}
    /// Puts back what [`BusDevice::save_state`] gave, keeping the host resources this device
    /// was built with.
    fn restore_state(&mut self, state: &[u8]) -> Result<(), StateError> {
        match state.is_empty() {
            true => Ok(()),
            false => Err(StateError::refused(
                self.kind(),
                "keeps no state, but the snapshot has some",
            )),
        }
    }
}

pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("device range {base:#x}+{len:#x} overlaps the one at {other:#x}")]
    Overlap { base: u64, len: u64, other: u64 },
    #[error("device range at {0:#x} is empty")]
    Empty(u64),
}

#[derive(Clone)]
struct Range {
    len: u64,
    device: SharedDevice,
}

/// Address ranges to devices. Cheap to clone: every vCPU thread holds one.
#[derive(Clone)]
pub struct Bus {
    ranges: BTreeMap<u64, Range>,
    /// What each byte of an unclaimed read holds.
    unclaimed: u8,
}

impl Bus {
    /// The port I/O space: an unclaimed read gives all-ones.
    pub fn ports() -> Self {
        Self {
            ranges: BTreeMap::new(),
            unclaimed: 0xFF,
        }
    }

    /// The MMIO space: an unclaimed read gives zeros, as in QEMU.
    pub fn memory() -> Self {
        Self {
            ranges: BTreeMap::new(),
            unclaimed: 0,
        }
    }

    /// Gives `device` the range `[base, base + len)`.
    pub fn insert(&mut self, base: u64, len: u64, device: SharedDevice) -> Result<(), BusError> {
        if len == 0 {
            return Err(BusError::Empty(base));
        }
        let end = base.saturating_add(len);
        if let Some((&other, _)) = self
            .ranges
            .range(..end)
            .next_back()
            .filter(|(&b, r)| b + r.len > base)
        {
            return Err(BusError::Overlap { base, len, other });
        }
        self.ranges.insert(base, Range { len, device });
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(u64, &Range)> {
        let (&base, range) = self.ranges.range(..=addr).next_back()?;
        (addr - base < range.len).then_some((addr - base, range))
    }

    /// Reads at `addr`; the bus's unclaimed bytes where no device claims it. Returns whether one
    /// did.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((offset, range)) => {
                lock(&range.device).read(offset, data);
                true
            }
            None => {
                data.fill(self.unclaimed);
                false
            }
        }
    }

    /// Resets every device on the bus (a machine reset).
    pub fn reset(&self) {
        for range in self.ranges.values() {
            lock(&range.device).reset();
        }
    }

    /// Every device with its range, in address order: `(base, len, device)`.
    pub fn devices(&self) -> impl Iterator<Item = (u64, u64, &SharedDevice)> {
        self.ranges.iter().map(|(&base, r)| (base, r.len, &r.device))
    }

    /// Writes at `addr`; dropped where no device claims it. Returns whether one did.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr) {
            Some((offset, range)) => {
                lock(&range.device).write(offset, data);
                true
            }
            None => false,
        }
    }
}

/// Locks a device, recovering it if a previous holder panicked: a device bug must not take the
/// whole VMM down with poisoned locks.
pub fn lock(device: &SharedDevice) -> std::sync::MutexGuard<'_, dyn BusDevice + 'static> {
    device.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Vec<(u64, Vec<u8>)>);
    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn devices_see_offsets_and_unclaimed_port_reads_are_all_ones() {
        let dev = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = Bus::ports();
        bus.insert(0x3F8, 8, dev.clone()).unwrap();
        let mut b = [0u8; 2];
        assert!(bus.read(0x3FA, &mut b));
        assert_eq!(b, [2, 2]);
        assert!(!bus.read(0x400, &mut b));
        assert_eq!(b, [0xFF, 0xFF]);
        assert!(bus.write(0x3F8, &[0x41]));
        assert!(!bus.write(0x3F7, &[0x41]));
        assert_eq!(dev.lock().unwrap().0, vec![(0, vec![0x41])]);
    }

    #[test]
    fn unclaimed_memory_reads_are_zeros_as_in_qemu() {
        let mut bus = Bus::memory();
        bus.insert(0xFEB0_0000, 0x200, Arc::new(Mutex::new(Recorder::default())))
            .unwrap();
        let mut b = [0xAAu8; 4];
        assert!(!bus.read(0xD000_0000, &mut b));
        assert_eq!(b, [0; 4]);
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let mut bus = Bus::ports();
        let dev = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x510, 12, dev()).unwrap();
        assert_eq!(
            bus.insert(0x514, 4, dev()),
            Err(BusError::Overlap {
                base: 0x514,
                len: 4,
                other: 0x510
            })
        );
        assert_eq!(
            bus.insert(0x500, 0x11, dev()),
            Err(BusError::Overlap {
                base: 0x500,
                len: 0x11,
                other: 0x510
            })
        );
        assert!(bus.insert(0x51C, 4, dev()).is_ok());
        assert_eq!(bus.insert(0x600, 0, dev()), Err(BusError::Empty(0x600)));
    }
}
