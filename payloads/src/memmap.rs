//! The memory map a loader hands over (e820 numbering in every protocol) and its checks.
use crate::{bad, Check};
use minnow_bootproto::e820;

/// Most entries kept: boot_params' own table size, more than any loader here produces.
pub const MAX_ENTRIES: usize = 128;
/// The BIOS ROM's low alias: never RAM, whatever firmware runs.
pub const ROM_LOW: (u64, u64) = (0xF_0000, 0x10_0000);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

impl Region {
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}

/// A memory map in the order the loader gave it.
#[derive(Clone, Debug)]
pub struct MemMap {
    entries: [Region; MAX_ENTRIES],
    len: usize,
    /// The loader gave more than [`MAX_ENTRIES`].
    truncated: bool,
}

impl Default for MemMap {
    fn default() -> Self {
        Self {
            entries: [Region::default(); MAX_ENTRIES],
            len: 0,
            truncated: false,
        }
    }
}

impl MemMap {
    pub fn push(&mut self, addr: u64, size: u64, kind: u32) {
        match self.entries.get_mut(self.len) {
            Some(slot) => {
                *slot = Region { addr, size, kind };
                self.len += 1;
            }
            None => self.truncated = true,
        }
    }

    pub fn entries(&self) -> &[Region] {
        &self.entries[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy sorted by address (an insertion sort: stable, small, and maps are short).
    pub fn sorted(&self) -> MemMap {
        let mut copy = self.clone();
        let e = &mut copy.entries[..copy.len];
        for i in 1..e.len() {
            let mut j = i;
            while j > 0 && e[j - 1].addr > e[j].addr {
                e.swap(j - 1, j);
                j -= 1;
            }
        }
        copy
    }

    pub fn is_sorted(&self) -> bool {
        self.entries().windows(2).all(|p| p[0].addr <= p[1].addr)
    }

    /// The whole check: [`MemMap::check_layout`] on a sorted copy, then the order itself. A map
    /// whose only fault is its order still answers RAM questions through [`MemMap::sorted`].
    pub fn check(&self) -> Check {
        self.sorted().check_layout()?;
        if !self.is_sorted() {
            return bad("unsorted");
        }
        Ok(())
    }

    /// For a sorted map: no overlaps, no empty entries, some RAM, and the ROM not RAM.
    pub fn check_layout(&self) -> Check {
        if self.truncated {
            return bad("more-than-128-entries");
        }
        if self.is_empty() {
            return bad("empty");
        }
        if self.entries().iter().any(|r| r.size == 0) {
            return bad("zero-length-entry");
        }
        if self
            .entries()
            .iter()
            .any(|r| r.addr.checked_add(r.size).is_none())
        {
            return bad("entry-wraps");
        }
        if self.entries().windows(2).any(|p| p[1].addr < p[0].end()) {
            return bad("overlap");
        }
        if self.ram_bytes() == 0 {
            return bad("no-ram");
        }
        if self.touches_ram(ROM_LOW.0, ROM_LOW.1 - ROM_LOW.0) {
            return bad("rom-0xf0000-is-ram");
        }
        Ok(())
    }

    /// Total RAM (type 1), in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.entries()
            .iter()
            .filter(|r| r.kind == e820::RAM)
            .fold(0u64, |t, r| t.saturating_add(r.size))
    }

    /// Whether RAM entries cover all of `[start, start + len)` (adjacent entries may share it).
    /// Assumes a sorted map that passed [`MemMap::check_layout`].
    pub fn is_ram(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        let mut at = start;
        for r in self.entries().iter().filter(|r| r.kind == e820::RAM) {
            if r.addr <= at && at < r.end() {
                at = r.end();
            }
            if at >= end {
                return true;
            }
        }
        len == 0
    }

    /// Whether any RAM entry overlaps `[start, start + len)`.
    pub fn touches_ram(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        self.entries()
            .iter()
            .any(|r| r.kind == e820::RAM && r.addr < end && start < r.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_like() -> MemMap {
        let mut m = MemMap::default();
        m.push(0, 0x9FC00, e820::RAM);
        m.push(0x9FC00, 0x400, e820::RESERVED);
        m.push(0xF0000, 0x10000, e820::RESERVED);
        m.push(0x10_0000, 0x1FEF_0000, e820::RAM);
        m.push(0x1FFF_0000, 0x1_0000, e820::RESERVED);
        m
    }

    #[test]
    fn a_good_map_passes_and_sums_its_ram() {
        let m = qemu_like();
        assert_eq!(m.check(), Ok(()));
        assert_eq!(m.ram_bytes(), 0x9FC00 + 0x1FEF_0000);
        assert!(m.is_ram(0x10_0000, 0x1000));
        assert!(!m.is_ram(0x9F000, 0x1000), "runs into the reserved KiB");
        assert!(!m.is_ram(0x1FFE_F000, 0x2000));
        assert!(!m.touches_ram(0xA0000, 0x60000));
        assert!(m.touches_ram(0x9F000, 0x2000));
    }

    #[test]
    fn ram_split_across_adjacent_entries_is_still_ram() {
        let mut m = MemMap::default();
        m.push(0x10_0000, 0x10_0000, e820::RAM);
        m.push(0x20_0000, 0x10_0000, e820::RAM);
        assert!(m.is_ram(0x1F_F000, 0x2000));
        assert!(!m.is_ram(0x2F_F000, 0x2000));
    }

    #[test]
    fn bad_maps_name_the_problem() {
        let mut m = qemu_like();
        m.push(0x9E000, 0x1000, e820::RAM);
        assert_eq!(m.check(), bad("overlap"), "layout faults come before the order");

        // qboot's: an extra zero-length entry of type 0 at the end, reservations before RAM.
        let mut m = MemMap::default();
        m.push(0, 0x9FC00, e820::RAM);
        m.push(0xF0000, 0x10000, e820::RESERVED);
        m.push(0xFD_0000_0000, 0x3_0000_0000, e820::RESERVED);
        m.push(0x10_0000, 0x1FF0_0000, e820::RAM);
        assert_eq!(m.check(), bad("unsorted"));
        assert_eq!(m.sorted().check_layout(), Ok(()));
        assert!(m.sorted().is_ram(0x20_0000, 0x1000));
        m.push(0, 0, 0);
        assert_eq!(m.check(), bad("zero-length-entry"));

        let mut m = MemMap::default();
        m.push(0, 0xA0000, e820::RAM);
        m.push(0x9F000, 0x1000, e820::RESERVED);
        assert_eq!(m.check(), bad("overlap"));

        let mut m = MemMap::default();
        m.push(0, 0x10_0000, e820::RAM);
        assert_eq!(m.check(), bad("rom-0xf0000-is-ram"));

        let mut m = MemMap::default();
        m.push(0, 0x9F000, e820::RAM);
        m.push(0x10_0000, 0, e820::RAM);
        assert_eq!(m.check(), bad("zero-length-entry"));

        assert_eq!(MemMap::default().check(), bad("empty"));

        let mut m = MemMap::default();
        for i in 0..=MAX_ENTRIES as u64 {
            m.push(i * 0x1000, 0x1000, e820::RAM);
        }
        assert_eq!(m.check(), bad("more-than-128-entries"));
    }
}
