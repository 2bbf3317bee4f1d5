//! PVH: EBX = hvm_start_info (magic 0x336EC578); version 1 adds the memory map.
use super::Handed;
use crate::acpi::RsdpSource;
use crate::bad;
use crate::entry::{check_protected32, EntryState};
use crate::mem::{read, Phys};
use crate::memmap::MemMap;
use minnow_bootproto::pvh::{MemmapEntry, ModlistEntry, StartInfo, START_MAGIC};

/// More memory map entries than this is garbage, not read.
const MAX_MEMMAP_ENTRIES: u32 = 1024;

pub fn gather<'m>(m: &'m dyn Phys, s: &EntryState) -> Handed<'m> {
    let mut h = Handed::new("pvh", s);
    // PVH alone also fixes CR4: "all bits are cleared" (docs/misc/pvh.pandoc).
    h.mode = check_protected32(m, s).and(if s.cr4 == 0 { Ok(()) } else { bad("cr4-not-zero") });
    let at = s.rbx;
    let Some(si) = read::<StartInfo>(m, at) else {
        h.fail("start-info-unreadable");
        return h;
    };
    if si.magic.get() != START_MAGIC {
        h.fail("start-info-magic");
        return h;
    }
    h.region(at, core::mem::size_of::<StartInfo>() as u64);
    if si.cmdline_paddr.get() != 0 {
        h.cmdline = Some(si.cmdline_paddr.get());
    }
    let modules = si.nr_modules.get();
    if modules > 0 {
        let list = si.modlist_paddr.get();
        h.region(list, 32 * u64::from(modules));
        match read::<ModlistEntry>(m, list) {
            Some(e) => h.initrd = Some((e.paddr.get(), e.size.get())),
            None => h.fail("module-list-unreadable"),
        }
    }
    let entries = si.memmap_entries.get();
    if entries > MAX_MEMMAP_ENTRIES {
        h.fail("memmap-entries");
    } else if si.version.get() >= 1 && entries > 0 {
        let list = si.memmap_paddr.get();
        h.region(list, 24 * u64::from(entries));
        let mut map = MemMap::default();
        for i in 0..u64::from(entries) {
            match read::<MemmapEntry>(m, list + 24 * i) {
                Some(e) => map.push(e.addr.get(), e.size.get(), e.kind.get()),
                None => {
                    h.fail("memmap-unreadable");
                    break;
                }
            }
        }
        h.map = Some(map);
    }
    if si.rsdp_paddr.get() != 0 {
        h.rsdp = RsdpSource::Given(si.rsdp_paddr.get());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::protected32;
    use crate::Reason;
    use zerocopy::IntoBytes;

    #[test]
    fn reads_a_version_1_start_info() {
        let mut m = crate::entry::tests::gdt();
        let si = StartInfo {
            magic: START_MAGIC.into(),
            version: 1.into(),
            nr_modules: 1.into(),
            modlist_paddr: 0x6040.into(),
            cmdline_paddr: 0x20000.into(),
            rsdp_paddr: 0xE0000.into(),
            memmap_paddr: 0x6100.into(),
            memmap_entries: 2.into(),
            ..Default::default()
        };
        m.put(0x6000, si.as_bytes());
        let module = ModlistEntry {
            paddr: 0x1F00_0000.into(),
            size: 1234.into(),
            ..Default::default()
        };
        m.put(0x6040, module.as_bytes());
        let e = |addr: u64, size: u64| MemmapEntry {
            addr: addr.into(),
            size: size.into(),
            kind: 1.into(),
            reserved: 0.into(),
        };
        m.put(0x6100, e(0, 0x9FC00).as_bytes());
        m.put(0x6118, e(0x10_0000, 0x1000_0000).as_bytes());
        let s = EntryState {
            rbx: 0x6000,
            ..protected32()
        };
        let h = gather(&m, &s);
        assert_eq!((h.mode, h.magic), (Ok(()), Ok(())));
        assert_eq!((h.cmdline, h.initrd), (Some(0x20000), Some((0x1F00_0000, 1234))));
        assert_eq!(h.map.as_ref().map(MemMap::len), Some(2));
        assert!(matches!(h.rsdp, RsdpSource::Given(0xE0000)));
        assert_eq!(h.regions().len(), 3);
    }

    #[test]
    fn pvh_wants_cr4_clear() {
        let m = crate::entry::tests::gdt();
        let s = EntryState {
            rbx: 0x6000,
            cr4: 0x20,
            ..protected32()
        };
        assert_eq!(gather(&m, &s).mode, Err(Reason::new("cr4-not-zero")));
    }

    #[test]
    fn a_bad_magic_is_named() {
        let mut m = crate::entry::tests::gdt();
        m.put(0x6000, &[0u8; 56]);
        let s = EntryState {
            rbx: 0x6000,
            ..protected32()
        };
        assert_eq!(gather(&m, &s).magic, Err(Reason::new("start-info-magic")));
    }
}
