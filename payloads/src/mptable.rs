//! Finds the Intel MultiProcessor Specification 1.4 floating pointer, verifies its checksum and the
//! configuration table's, and counts the enabled processors.
use crate::mem::{paragraphs_starting_with, sum8, Phys};
use crate::memmap::MemMap;
use crate::{Reason, Status};

/// Where the floating pointer may be (MP spec 1.4, 4.0): the last KiB of base memory and the BIOS
/// ROM, on 16-byte boundaries.
pub const SCAN: [(u64, u64); 2] = [(0x9_FC00, 0xA_0000), (0xF_0000, 0x10_0000)];

/// What the search found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mp {
    /// `None`: no floating pointer.
    pub status: Status,
    /// Enabled processor entries, counted as Linux does (walking the base table by its length),
    /// whenever the table could be walked, even if a check failed.
    pub cpus: Option<u32>,
}

/// Scans for "_MP_" with a valid checksum over its `length` 16-byte units.
pub fn find_pointer(m: &dyn Phys) -> Option<u64> {
    SCAN.iter().find_map(|&(start, end)| {
        let area = m.bytes(start, (end - start) as usize)?;
        paragraphs_starting_with(area, b"_MP_")
            .find(|&off| {
                area.get(off + 8)
                    .and_then(|&units| area.get(off..off + 16 * usize::from(units.max(1))))
                    .is_some_and(|b| sum8(b) == 0)
            })
            .map(|off| start + off as u64)
    })
}

/// Finds and checks the MP table; `map`, when given, must not call its memory RAM.
pub fn find(m: &dyn Phys, map: Option<&MemMap>) -> Mp {
    let mut mp = Mp {
        status: Status::None,
        cpus: None,
    };
    if let Some(fp) = find_pointer(m) {
        mp.status = match check(m, fp, map, &mut mp.cpus) {
            Ok(()) => Status::Ok,
            Err(r) => Status::Bad(r),
        };
    }
    mp
}

fn check(m: &dyn Phys, fp: u64, map: Option<&MemMap>, cpus: &mut Option<u32>) -> Result<(), Reason> {
    const FP: [u8; 4] = *b"_MP_";
    const PCMP: [u8; 4] = *b"PCMP";
    let p = m.bytes(fp, 16).ok_or(Reason::with_sig("unreadable", FP))?;
    if map.is_some_and(|map| map.touches_ram(fp, 16)) {
        return Err(Reason::with_sig("table-in-ram", FP));
    }
    let table = u64::from(u32::from_le_bytes([p[4], p[5], p[6], p[7]]));
    if table == 0 {
        // Feature byte 1 names one of the spec's default configurations: no table to read.
        return Err(Reason::new("default-configuration"));
    }
    let head = m.bytes(table, 44).ok_or(Reason::with_sig("unreadable", PCMP))?;
    if head[..4] != PCMP {
        return Err(Reason::with_sig("wrong-signature", PCMP));
    }
    let len = usize::from(u16::from_le_bytes([head[4], head[5]]));
    let count = u16::from_le_bytes([head[34], head[35]]);
    let t = m
        .bytes(table, len.max(44))
        .ok_or(Reason::with_sig("unreadable", PCMP))?;
    if sum8(t) != 0 {
        return Err(Reason::with_sig("checksum", PCMP));
    }
    if map.is_some_and(|map| map.touches_ram(table, len as u64)) {
        return Err(Reason::with_sig("table-in-ram", PCMP));
    }
    // Walk the entries by the table's length, as Linux does, then hold the count field to it.
    let (mut n, mut entries, mut at) = (0, 0u16, 44);
    while at < len {
        let size = match t[at] {
            0 => {
                // Processor: flags bit 0 = enabled.
                if t.get(at + 3).is_some_and(|f| f & 1 != 0) {
                    n += 1;
                }
                20
            }
            1..=4 => 8,
            _ => return Err(Reason::with_sig("unknown-entry", PCMP)),
        };
        at += size;
        entries = entries.wrapping_add(1);
    }
    *cpus = Some(n);
    if at != len {
        return Err(Reason::with_sig("entries-past-length", PCMP));
    }
    if entries != count {
        return Err(Reason::with_sig("entry-count", PCMP));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeMem;
    use minnow_bootproto::e820;

    /// An MP table as minnow.rom writes it: `cpus` processors, a bus, an IOAPIC, 16 interrupts,
    /// 2 local interrupts; floating pointer at 0x9FC00, table at 0x9E000.
    fn minnow_like(cpus: u8) -> FakeMem {
        let mut m = FakeMem::default();
        m.zeroed(0x9E000, 0x2000);
        m.zeroed(0xF0000, 0x10000);
        let mut t = vec![0u8; 44];
        t[..4].copy_from_slice(b"PCMP");
        t[6] = 4;
        let mut entries = 0u16;
        for id in 0..cpus {
            let mut e = [0u8; 20];
            e[1] = id;
            e[3] = 1 | if id == 0 { 2 } else { 0 };
            t.extend_from_slice(&e);
            entries += 1;
        }
        t.extend_from_slice(&[1, 0, b'I', b'S', b'A', b' ', b' ', b' ']);
        t.extend_from_slice(&[2, cpus, 0x11, 1, 0, 0, 0xC0, 0xFE]);
        entries += 2;
        for irq in 0..16u8 {
            t.extend_from_slice(&[3, 0, 0, 0, 0, irq, cpus, irq]);
            entries += 1;
        }
        let len = t.len() as u16;
        t[4..6].copy_from_slice(&len.to_le_bytes());
        t[34..36].copy_from_slice(&entries.to_le_bytes());
        t[7] = 0u8.wrapping_sub(sum8(&t));
        m.put(0x9E000, &t);
        let mut fp = [0u8; 16];
        fp[..4].copy_from_slice(b"_MP_");
        fp[4..8].copy_from_slice(&0x9E000u32.to_le_bytes());
        fp[8] = 1;
        fp[9] = 4;
        fp[10] = 0u8.wrapping_sub(sum8(&fp));
        m.put(0x9FC00, &fp);
        m
    }

    #[test]
    fn counts_the_processors_of_a_valid_table() {
        let m = minnow_like(2);
        assert_eq!(find_pointer(&m), Some(0x9FC00));
        let mut map = MemMap::default();
        map.push(0, 0x9E000, e820::RAM);
        map.push(0x9E000, 0x2000, e820::RESERVED);
        assert_eq!(
            find(&m, Some(&map)),
            Mp {
                status: Status::Ok,
                cpus: Some(2)
            }
        );
    }

    #[test]
    fn reports_absence_bad_checksums_and_ram() {
        let mut m = FakeMem::default();
        m.zeroed(0x9FC00, 0x400);
        m.zeroed(0xF0000, 0x10000);
        assert_eq!(find(&m, None).status, Status::None);

        let mut m = minnow_like(1);
        m.put(0x9E000 + 50, &[0x77]);
        assert_eq!(
            find(&m, None).status,
            Status::Bad(Reason::with_sig("checksum", *b"PCMP"))
        );

        let m = minnow_like(1);
        let mut map = MemMap::default();
        map.push(0, 0xA0000, e820::RAM);
        assert_eq!(
            find(&m, Some(&map)).status,
            Status::Bad(Reason::with_sig("table-in-ram", *b"_MP_"))
        );
    }

    #[test]
    fn a_wrong_entry_count_is_reported_but_the_cpus_still_counted() {
        // qboot (QEMU 7.2's build) leaves the entry count 0.
        let mut m = minnow_like(2);
        let t = m.bytes(0x9E000, 44).unwrap().to_vec();
        let mut patched = t.clone();
        let count = u16::from_le_bytes([t[34], t[35]]);
        patched[34..36].copy_from_slice(&[0, 0]);
        patched[7] = t[7].wrapping_add(count as u8).wrapping_add((count >> 8) as u8);
        m.put(0x9E000, &patched);
        assert_eq!(
            find(&m, None),
            Mp {
                status: Status::Bad(Reason::with_sig("entry-count", *b"PCMP")),
                cpus: Some(2)
            }
        );
    }
}
