//! Multiboot 1: EAX = 0x2BADB002, EBX = the multiboot information structure (MBI).
use super::Handed;
use crate::entry::{check_protected32, EntryState};
use crate::mem::{read, read_u32, Phys};
use crate::memmap::MemMap;
use crate::Reason;
use minnow_bootproto::multiboot1::{info_flags, Info, MmapEntry, Module, BOOTLOADER_MAGIC};

/// MBI flag bits 4 (a.out symbols) and 5 (ELF sections) exclude each other.
const SYMS_AOUT: u32 = 1 << 4;
const SYMS_ELF: u32 = 1 << 5;
/// A memory map longer than this (in bytes) is garbage, not walked.
const MAX_MMAP_LEN: u64 = 64 * 1024;

pub fn gather<'m>(m: &'m dyn Phys, s: &EntryState) -> Handed<'m> {
    let mut h = Handed::new("multiboot1", s);
    h.mode = check_protected32(m, s);
    if s.rax != u64::from(BOOTLOADER_MAGIC) {
        h.fail("eax-not-0x2badb002");
        return h;
    }
    let mbi = s.rbx;
    let Some(info) = read::<Info>(m, mbi) else {
        h.fail("mbi-unreadable");
        return h;
    };
    h.region(mbi, core::mem::size_of::<Info>() as u64);
    let flags = info.flags.get();
    if flags & SYMS_AOUT != 0 && flags & SYMS_ELF != 0 {
        h.fail("mbi-flags-4-and-5-both-set");
    }
    // Our header sets flag 1, so mem_lower/mem_upper are mandatory.
    if flags & info_flags::MEMORY != 0 {
        h.meminfo = Some((info.mem_lower.get(), info.mem_upper.get()));
    } else {
        h.fail("no-mem-info-though-requested");
    }
    if flags & info_flags::CMDLINE != 0 {
        h.cmdline = Some(u64::from(info.cmdline.get()));
    }
    let count = info.mods_count.get();
    if flags & info_flags::MODS != 0 && count > 0 {
        let at = u64::from(info.mods_addr.get());
        h.region(at, 16 * u64::from(count));
        match read::<Module>(m, at) {
            Some(module) if module.mod_end.get() >= module.mod_start.get() => {
                let start = u64::from(module.mod_start.get());
                h.initrd = Some((start, u64::from(module.mod_end.get()) - start));
            }
            Some(_) => h.fail("module-ends-before-it-starts"),
            None => h.fail("module-list-unreadable"),
        }
    }
    if flags & info_flags::MMAP != 0 {
        let (at, len) = (u64::from(info.mmap_addr.get()), u64::from(info.mmap_length.get()));
        h.region(at, len);
        let mut map = MemMap::default();
        let mut off = 0;
        if len > MAX_MMAP_LEN {
            h.map_error = Some(Reason::new("mmap-length"));
            off = len; // garbage: do not walk gigabytes of it
        }
        // Each entry is its `size` field then `size` bytes (at least base, length, type).
        while off < len {
            let Some(size) = read_u32(m, at + off) else {
                h.map_error = Some(Reason::new("mmap-unreadable"));
                break;
            };
            let Some(e) = read::<MmapEntry>(m, at + off).filter(|_| size >= 20) else {
                h.map_error = Some(Reason::new("mmap-entry-size"));
                break;
            };
            map.push(e.base_addr.get(), e.length.get(), e.kind.get());
            off += u64::from(size) + 4;
        }
        if h.map_error.is_none() && off != len {
            h.map_error = Some(Reason::new("mmap-length"));
        }
        h.map = Some(map);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::protected32;
    use crate::mem::FakeMem;
    use minnow_bootproto::e820;
    use zerocopy::IntoBytes;

    /// QEMU's layout: MBI at 0x9500, map at 0x9000, the module list and strings after the kernel.
    fn qemu_mbi(m: &mut FakeMem) -> EntryState {
        let info = Info {
            flags: (info_flags::MEMORY | info_flags::CMDLINE | info_flags::MODS | info_flags::MMAP).into(),
            mem_lower: 639.into(),
            mem_upper: (511 * 1024).into(),
            cmdline: 0x20_0000.into(),
            mods_count: 1.into(),
            mods_addr: 0x20_1000.into(),
            mmap_length: 48.into(),
            mmap_addr: 0x9000.into(),
            ..Default::default()
        };
        m.put(0x9500, info.as_bytes());
        m.put(0x20_0000, b"/k/multiboot1.elf a b\0");
        let module = Module {
            mod_start: 0x30_0000.into(),
            mod_end: 0x31_0000.into(),
            ..Default::default()
        };
        m.put(0x20_1000, module.as_bytes());
        let e = |base: u64, len: u64, kind: u32| MmapEntry {
            size: 20.into(),
            base_addr: base.into(),
            length: len.into(),
            kind: kind.into(),
        };
        let mut map = e(0, 0x9FC00, e820::RAM).as_bytes().to_vec();
        map.extend_from_slice(e(0x10_0000, 0x1FF0_0000, e820::RAM).as_bytes());
        m.put(0x9000, &map);
        EntryState {
            rax: u64::from(BOOTLOADER_MAGIC),
            rbx: 0x9500,
            ..protected32()
        }
    }

    #[test]
    fn reads_qemus_mbi() {
        let mut m = crate::entry::tests::gdt();
        let s = qemu_mbi(&mut m);
        let h = gather(&m, &s);
        assert_eq!((h.mode, h.magic), (Ok(()), Ok(())));
        assert_eq!(h.cmdline, Some(0x20_0000));
        assert_eq!(h.initrd, Some((0x30_0000, 0x1_0000)));
        assert_eq!(h.meminfo, Some((639, 511 * 1024)));
        let map = h.map.unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map.entries()[1].addr, 0x10_0000);
        assert!(h.map_error.is_none());
    }

    #[test]
    fn wrong_magic_and_bad_maps_are_named() {
        let mut m = crate::entry::tests::gdt();
        let s = qemu_mbi(&mut m);
        let h = gather(
            &m,
            &EntryState {
                rax: 0x2BAD_B001,
                ..s
            },
        );
        assert_eq!(h.magic, Err(Reason::new("eax-not-0x2badb002")));
        m.put(0x9500 + 44, &40u32.to_le_bytes()); // mmap_length not a whole number of entries
        let h = gather(&m, &s);
        assert_eq!(h.map_error, Some(Reason::new("mmap-length")));
    }
}
