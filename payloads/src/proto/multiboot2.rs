//! Multiboot 2: EAX = 0x36D76289, EBX = the boot information, a list of 8-aligned tags.
use super::{le32, le64, Handed};
use crate::acpi::RsdpSource;
use crate::entry::{check_protected32, EntryState};
use crate::mem::{read_u32, Phys};
use crate::memmap::MemMap;
use crate::Reason;
use minnow_bootproto::multiboot2::{info_tag, BOOTLOADER_MAGIC};

/// Boot information larger than this is taken as corrupt.
const MAX_INFO: u32 = 1 << 20;

pub fn gather<'m>(m: &'m dyn Phys, s: &EntryState) -> Handed<'m> {
    let mut h = Handed::new("multiboot2", s);
    h.mode = check_protected32(m, s);
    if s.rax != u64::from(BOOTLOADER_MAGIC) {
        h.fail("eax-not-0x36d76289");
        return h;
    }
    let at = s.rbx;
    if !at.is_multiple_of(8) {
        h.fail("info-not-8-aligned");
        return h;
    }
    let total = read_u32(m, at).unwrap_or(0);
    if !(16..=MAX_INFO).contains(&total) {
        h.fail("info-total-size");
        return h;
    }
    let Some(info) = m.bytes(at, total as usize) else {
        h.fail("info-unreadable");
        return h;
    };
    h.region(at, u64::from(total));
    let mut off = 8;
    let mut ended = false;
    while off + 8 <= info.len() {
        let (kind, size) = (le32(info, off), le32(info, off + 4) as usize);
        if size < 8 || off + size > info.len() {
            h.fail("tag-size");
            break;
        }
        let body = &info[off + 8..off + size];
        match kind {
            info_tag::END => {
                if size != 8 {
                    h.fail("end-tag-size");
                }
                ended = true;
                break;
            }
            info_tag::CMDLINE => h.cmdline = Some(at + off as u64 + 8),
            info_tag::MODULE if h.initrd.is_none() => {
                let (start, end) = (le32(body, 0), le32(body, 4));
                if body.len() < 9 || end < start {
                    h.fail("module-tag");
                } else {
                    h.initrd = Some((u64::from(start), u64::from(end - start)));
                }
            }
            info_tag::BASIC_MEMINFO => h.meminfo = Some((le32(body, 0), le32(body, 4))),
            info_tag::MMAP => {
                let entry_size = le32(body, 0) as usize;
                if entry_size < 24 || !entry_size.is_multiple_of(8) || le32(body, 4) != 0 {
                    h.map_error = Some(Reason::new("mmap-entry-size-or-version"));
                } else {
                    let mut map = MemMap::default();
                    let entries = body.get(8..).unwrap_or(&[]);
                    if entries.len() % entry_size != 0 {
                        h.map_error = Some(Reason::new("mmap-tag-size"));
                    }
                    for e in entries.chunks_exact(entry_size) {
                        map.push(le64(e, 0), le64(e, 8), le32(e, 16));
                    }
                    h.map = Some(map);
                }
            }
            // Prefer the ACPI 2.0+ RSDP when both tags are there.
            info_tag::ACPI_NEW => h.rsdp = RsdpSource::Copy(body),
            info_tag::ACPI_OLD if matches!(h.rsdp, RsdpSource::Scan) => h.rsdp = RsdpSource::Copy(body),
            _ => {}
        }
        off = (off + size).next_multiple_of(8);
    }
    if !ended {
        h.fail("no-end-tag");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::build;
    use crate::entry::tests::protected32;

    fn tag(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut t = kind.to_le_bytes().to_vec();
        t.extend_from_slice(&((8 + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(body);
        while !t.len().is_multiple_of(8) {
            t.push(0);
        }
        t
    }

    /// Boot information like minnow.rom's: cmdline, loader name, module, meminfo, mmap, ACPI, end.
    fn info(end: bool) -> Vec<u8> {
        let mut tags = tag(info_tag::CMDLINE, b"a=b c\0");
        tags.extend(tag(info_tag::LOADER_NAME, b"minnow\0"));
        tags.extend(tag(info_tag::MODULE, &[0, 0, 0x30, 0, 0, 0x80, 0x31, 0, 0]));
        tags.extend(tag(info_tag::BASIC_MEMINFO, &[0x7F, 2, 0, 0, 0, 0xFC, 7, 0]));
        let mut mmap = 24u32.to_le_bytes().to_vec();
        mmap.extend_from_slice(&0u32.to_le_bytes());
        for (addr, len) in [(0u64, 0x9FC00u64), (0x10_0000, 0x1FF0_0000)] {
            mmap.extend_from_slice(&addr.to_le_bytes());
            mmap.extend_from_slice(&len.to_le_bytes());
            mmap.extend_from_slice(&1u32.to_le_bytes());
            mmap.extend_from_slice(&0u32.to_le_bytes());
        }
        tags.extend(tag(info_tag::MMAP, &mmap));
        tags.extend(tag(info_tag::ACPI_NEW, &build::rsdp(2, 0, 0x1FFF_3000)));
        if end {
            tags.extend(tag(info_tag::END, &[]));
        }
        let mut info = ((8 + tags.len()) as u32).to_le_bytes().to_vec();
        info.extend_from_slice(&[0; 4]);
        info.extend(tags);
        info
    }

    #[test]
    fn reads_every_tag_we_use() {
        let mut m = crate::entry::tests::gdt();
        m.put(0x10000, &info(true));
        let s = EntryState {
            rax: u64::from(BOOTLOADER_MAGIC),
            rbx: 0x10000,
            ..protected32()
        };
        let h = gather(&m, &s);
        assert_eq!((h.mode, h.magic), (Ok(()), Ok(())));
        assert_eq!(h.cmdline, Some(0x10010));
        assert_eq!(h.initrd, Some((0x30_0000, 0x1_8000)));
        assert_eq!(h.meminfo, Some((639, 0x7FC00)));
        assert_eq!(h.map.as_ref().map(MemMap::len), Some(2));
        assert!(matches!(h.rsdp, RsdpSource::Copy(b) if b.len() == 36));
        assert_eq!(crate::mem::cstr(&m, 0x10010, 100), Some(&b"a=b c"[..]));
    }

    #[test]
    fn a_missing_end_tag_or_misalignment_fails() {
        let mut m = crate::entry::tests::gdt();
        m.put(0x10000, &info(false));
        let s = EntryState {
            rax: u64::from(BOOTLOADER_MAGIC),
            rbx: 0x10000,
            ..protected32()
        };
        assert_eq!(gather(&m, &s).magic, Err(Reason::new("no-end-tag")));
        let s = EntryState { rbx: 0x10004, ..s };
        assert_eq!(gather(&m, &s).magic, Err(Reason::new("info-not-8-aligned")));
    }
}
