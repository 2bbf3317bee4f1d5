//! The e820 memory map the firmware builds and hands to the kernel: QEMU's RAM ranges, with the
//! firmware's own reservations carved out.
use crate::fw_cfg::{FwCfg, FwCfgError};
use minnow_bootproto::e820::{self, E820Entry};
use minnow_bootproto::fw_cfg::file;
use zerocopy::IntoBytes;

/// Most entries the map holds. QEMU gives 1-2, the firmware carves a handful.
pub const MAX_ENTRIES: usize = 32;
/// Kind of a range that is not memory at all (a hole); never reported.
const HOLE: u32 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    pub kind: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// More distinct ranges than [`MAX_ENTRIES`].
    Full,
    /// Neither `etc/e820` nor the CMOS gave any RAM.
    NoRam,
    FwCfg(FwCfgError),
}

impl From<FwCfgError> for MapError {
    fn from(e: FwCfgError) -> Self {
        Self::FwCfg(e)
    }
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Full => write!(f, "memory map has more than {MAX_ENTRIES} ranges"),
            Self::NoRam => write!(
                f,
                "no RAM found: fw_cfg has no etc/e820 and the CMOS reports none"
            ),
            Self::FwCfg(e) => write!(f, "reading the memory map: {e}"),
        }
    }
}

/// A sorted, non-overlapping set of typed ranges; later insertions win where they overlap.
#[derive(Clone, Debug)]
pub struct MemoryMap {
    regions: [Region; MAX_ENTRIES],
    len: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    pub const fn new() -> Self {
        Self {
            regions: [Region {
                start: 0,
                end: 0,
                kind: HOLE,
            }; MAX_ENTRIES],
            len: 0,
        }
    }

    /// The ranges the kernel sees (holes omitted).
    pub fn regions(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions[..self.len].iter().filter(|r| r.kind != HOLE)
    }

    /// The map as e820 entries.
    pub fn entries(&self) -> impl Iterator<Item = E820Entry> + '_ {
        self.regions()
            .map(|r| E820Entry::new(r.start, r.end - r.start, r.kind))
    }

    pub fn count(&self) -> usize {
        self.regions().count()
    }

    /// Marks `[start, start + size)` as `kind`, replacing whatever was there.
    pub fn set(&mut self, start: u64, size: u64, kind: u32) -> Result<(), MapError> {
        if size == 0 {
            return Ok(());
        }
        let end = start.saturating_add(size);
        let regions = &self.regions[..self.len];
        // Regions first..last overlap [start, end); the new range replaces them, keeping the parts
        // of the first and last that stick out.
        let first = regions.iter().position(|r| r.end > start).unwrap_or(self.len);
        let last = first + regions[first..].iter().take_while(|r| r.start < end).count();
        let mut new = [Region { start, end, kind }; 3];
        let mut n = 0;
        if first < last && regions[first].start < start {
            new[n] = Region {
                end: start,
                ..regions[first]
            };
            n += 1;
        }
        new[n] = Region { start, end, kind };
        n += 1;
        if first < last && regions[last - 1].end > end {
            new[n] = Region {
                start: end,
                ..regions[last - 1]
            };
            n += 1;
        }
        let len = self.len - (last - first) + n;
        if len > MAX_ENTRIES {
            return Err(MapError::Full);
        }
        self.regions.copy_within(last..self.len, first + n);
        self.regions[first..first + n].copy_from_slice(&new[..n]);
        self.len = len;
        self.merge_adjacent();
        Ok(())
    }

    /// Removes `[start, start + size)` from the map.
    pub fn remove(&mut self, start: u64, size: u64) -> Result<(), MapError> {
        self.set(start, size, HOLE)
    }

    /// Whether all of `[start, start + size)` is RAM.
    pub fn is_ram(&self, start: u64, size: u64) -> bool {
        let Some(end) = start.checked_add(size) else {
            return false;
        };
        self.regions()
            .any(|r| r.kind == e820::RAM && r.start <= start && end <= r.end)
    }

    /// End of the RAM range that contains `addr`, if any.
    pub fn ram_end_from(&self, addr: u64) -> Option<u64> {
        self.regions()
            .find(|r| r.kind == e820::RAM && r.start <= addr && addr < r.end)
            .map(|r| r.end)
    }

    /// The highest `align`-aligned address where `size` bytes of RAM fit below `limit`.
    pub fn highest_fit(&self, size: u64, align: u64, limit: u64) -> Option<u64> {
        self.highest_fit_avoiding(size, align, limit, &[])
    }

    /// As [`Self::highest_fit`], also clear of every `(start, size)` range in `avoid`.
    pub fn highest_fit_avoiding(
        &self,
        size: u64,
        align: u64,
        limit: u64,
        avoid: &[(u64, u64)],
    ) -> Option<u64> {
        let align = align.max(1);
        self.regions()
            .filter(|r| r.kind == e820::RAM)
            .filter_map(|r| {
                let mut top = r.end.min(limit);
                loop {
                    let base = top.checked_sub(size)? & !(align - 1);
                    if base < r.start || top <= r.start {
                        return None;
                    }
                    let end = base + size;
                    // Below an obstacle the candidate strictly drops, so this ends.
                    match avoid
                        .iter()
                        .find(|&&(s, n)| n > 0 && base < s.saturating_add(n) && s < end)
                    {
                        Some(&(s, _)) => top = s,
                        None => return Some(base),
                    }
                }
            })
            .max()
    }

    /// Total RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.regions()
            .filter(|r| r.kind == e820::RAM)
            .map(|r| r.end - r.start)
            .sum()
    }

    fn merge_adjacent(&mut self) {
        let mut w = 0;
        for i in 0..self.len {
            let r = self.regions[i];
            if w > 0 && self.regions[w - 1].end == r.start && self.regions[w - 1].kind == r.kind {
                self.regions[w - 1].end = r.end;
            } else {
                self.regions[w] = r;
                w += 1;
            }
        }
        self.len = w;
    }
}

/// Reads QEMU's `etc/e820` (RAM ranges only on microvm; pc also lists reservations).
pub fn from_fw_cfg(cfg: &mut dyn FwCfg) -> Result<Option<MemoryMap>, MapError> {
    let Some(f) = cfg.file(file::E820) else {
        return Ok(None);
    };
    let mut raw = [E820Entry::default(); MAX_ENTRIES];
    let n = (f.size as usize / core::mem::size_of::<E820Entry>()).min(MAX_ENTRIES);
    cfg.read_item(f.key, raw[..n].as_mut_bytes())?;
    let mut map = MemoryMap::new();
    // RAM first, then everything else on top, so a reservation inside RAM wins.
    for pass_ram in [true, false] {
        for e in raw[..n]
            .iter()
            .filter(|e| (e.kind.get() == e820::RAM) == pass_ram)
        {
            map.set(e.addr.get(), e.size.get(), e.kind.get())?;
        }
    }
    Ok(Some(map))
}

/// The CMOS memory-size bytes QEMU and SeaBIOS use when there is no `etc/e820`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CmosSizes {
    /// 0x34/0x35: RAM above 16 MiB, in 64 KiB units.
    pub above_16m_64k: u16,
    /// 0x30/0x31: RAM above 1 MiB, in KiB (capped at 65535).
    pub above_1m_kib: u16,
    /// 0x5b-0x5d: RAM above 4 GiB, in 64 KiB units.
    pub above_4g_64k: u32,
}

/// Builds the RAM map from the CMOS sizes.
pub fn from_cmos(c: CmosSizes) -> Result<MemoryMap, MapError> {
    let mut map = MemoryMap::new();
    let low_end = if c.above_16m_64k > 0 {
        0x100_0000 + u64::from(c.above_16m_64k) * 0x1_0000
    } else {
        0x10_0000 + u64::from(c.above_1m_kib) * 1024
    };
    if low_end <= 0x10_0000 {
        return Err(MapError::NoRam);
    }
    map.set(0, crate::layout::BASE_MEMORY_END, e820::RAM)?;
    map.set(0x10_0000, low_end - 0x10_0000, e820::RAM)?;
    map.set(
        crate::layout::FOUR_GIB,
        u64::from(c.above_4g_64k) * 0x1_0000,
        e820::RAM,
    )?;
    Ok(map)
}

/// Carves the firmware's holes and reservations out of the RAM map: base memory ends at
/// 0x9E000 (MP table area reserved up to 640 KiB), 640 KiB-896 KiB is not RAM, and the
/// F-segment zone plus the ROM alias (0xE0000-1 MiB) are reserved.
/// The steps are minnow_bootproto's, which the VMM's direct boot follows too.
pub fn carve_legacy(map: &mut MemoryMap) -> Result<(), MapError> {
    for c in e820::legacy::CARVES {
        map.set(c.start, c.end - c.start, c.kind.unwrap_or(HOLE))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ranges: &[(u64, u64, u32)]) -> MemoryMap {
        let mut m = MemoryMap::new();
        ranges.iter().for_each(|&(s, n, k)| m.set(s, n, k).unwrap());
        m
    }

    fn list(m: &MemoryMap) -> Vec<(u64, u64, u32)> {
        m.regions().map(|r| (r.start, r.end, r.kind)).collect()
    }

    #[test]
    fn later_ranges_carve_earlier_ones_and_neighbours_merge() {
        let mut m = map(&[(0, 0x1000_0000, e820::RAM)]);
        m.set(0x9E000, 0x2000, e820::RESERVED).unwrap();
        m.remove(0xA0000, 0x40000).unwrap();
        m.set(0xE0000, 0x20000, e820::RESERVED).unwrap();
        assert_eq!(
            list(&m),
            vec![
                (0, 0x9E000, e820::RAM),
                (0x9E000, 0xA0000, e820::RESERVED),
                (0xE0000, 0x100000, e820::RESERVED),
                (0x100000, 0x1000_0000, e820::RAM)
            ]
        );
        m.set(0x9E000, 0x2000, e820::RAM).unwrap();
        assert_eq!(list(&m)[0], (0, 0xA0000, e820::RAM));
    }

    #[test]
    fn carving_the_legacy_area_matches_the_documented_layout() {
        let mut m = map(&[
            (0, 0x2000_0000, e820::RAM),
            (0x1_0000_0000, 0x4000_0000, e820::RAM),
        ]);
        carve_legacy(&mut m).unwrap();
        assert!(m.is_ram(0, 0x9E000));
        assert!(!m.is_ram(0x9E000, 1));
        assert!(!m.is_ram(0xA0000, 1));
        assert!(m.is_ram(0x100000, 0x1FF0_0000));
        assert!(!m.is_ram(0x100000, 0x2000_0000));
        assert_eq!(m.count(), 5);
        assert_eq!(m.ram_bytes(), 0x9E000 + 0x1FF0_0000 + 0x4000_0000);
    }

    #[test]
    fn highest_fit_respects_limit_alignment_and_holes() {
        let m = map(&[(0, 0x9E000, e820::RAM), (0x100000, 0x7F00000, e820::RAM)]);
        assert_eq!(m.highest_fit(0x1000, 0x1000, u64::MAX), Some(0x7FFF000));
        assert_eq!(m.highest_fit(0x1800, 0x1000, 0x4000_0000), Some(0x7FFE000));
        assert_eq!(m.highest_fit(0x1000, 0x1000, 0x100800), Some(0x9D000));
        assert_eq!(m.highest_fit(0x1_0000_0000, 1, u64::MAX), None);
    }

    /// The same operations on a byte-per-page model give the same map.
    #[test]
    fn set_agrees_with_a_simple_model() {
        let mut seed = 0x2545F491u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let (mut m, mut model) = (MemoryMap::new(), [HOLE; 64]);
            for _ in 0..8 {
                let (start, len, kind) = (next(64), 1 + next(16), next(4) as u32);
                if m.set(start * 0x1000, len * 0x1000, kind).is_err() {
                    break;
                }
                (start..(start + len).min(64)).for_each(|p| model[p as usize] = kind);
                let mut expect = Vec::new();
                for (p, &k) in model.iter().enumerate() {
                    let p = p as u64 * 0x1000;
                    match expect.last_mut() {
                        Some((_, e, kk)) if *e == p && *kk == k => *e += 0x1000,
                        _ if k != HOLE => expect.push((p, p + 0x1000, k)),
                        _ => {}
                    }
                }
                let got: Vec<_> = list(&m).into_iter().filter(|r| r.0 < 64 * 0x1000).collect();
                let got: Vec<_> = got
                    .into_iter()
                    .map(|(s, e, k)| (s, e.min(64 * 0x1000), k))
                    .collect();
                assert_eq!(got, expect);
            }
        }
    }

    #[test]
    fn highest_fit_steps_below_occupied_ranges() {
        let m = map(&[(0x100000, 0x7F00000, e820::RAM)]);
        let initrd = (0x7E00000, 0x1FFF00);
        assert_eq!(
            m.highest_fit_avoiding(0x1000, 0x1000, u64::MAX, &[initrd]),
            Some(0x7DFF000)
        );
        assert_eq!(
            m.highest_fit_avoiding(0x1000, 0x1000, u64::MAX, &[(0, 0), (0x7FFF000, 0)]),
            Some(0x7FFF000)
        );
        assert_eq!(
            m.highest_fit_avoiding(0x1000, 0x1000, u64::MAX, &[(0, u64::MAX)]),
            None
        );
    }

    #[test]
    fn a_full_map_is_an_error_not_a_panic() {
        let mut m = MemoryMap::new();
        let mut r = Ok(());
        for i in 0..(MAX_ENTRIES as u64 + 2) {
            r = r.and(m.set(i * 0x2000, 0x1000, e820::RAM));
        }
        assert_eq!(r, Err(MapError::Full));
        let mut fresh = MemoryMap::new();
        assert!(
            fresh.set(u64::MAX - 5, 100, e820::RAM).is_ok(),
            "saturates instead of overflowing"
        );
        assert!(fresh.is_ram(u64::MAX - 5, 5));
    }

    #[test]
    fn cmos_sizes_give_low_and_high_ram() {
        let m = from_cmos(CmosSizes {
            above_16m_64k: 0x0F00,
            above_1m_kib: 0xFFFF,
            above_4g_64k: 0x100,
        })
        .unwrap();
        assert!(m.is_ram(0x100000, 0x100_0000 + 0x0F00_0000 - 0x100000));
        assert!(m.is_ram(0x1_0000_0000, 0x100_0000));
        assert_eq!(from_cmos(CmosSizes::default()).unwrap_err(), MapError::NoRam);
    }
}
