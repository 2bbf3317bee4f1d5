//! Multiboot 2: the boot information a kernel gets in EBX, as a list of 8-byte-aligned tags.
use super::raw::modules::Module;
use super::{multiboot1::mem_info, Env, Handoff};
use crate::error::BootError;
use crate::layout;
use crate::memory::write_obj;
use minnow_bootproto::multiboot2::{info_tag, InfoHeader, InfoTag, MmapEntry};
use zerocopy::IntoBytes;

/// Information tags this loader provides; a kernel may require only these.
pub const PROVIDED: [u32; 7] = [
    info_tag::CMDLINE,
    info_tag::LOADER_NAME,
    info_tag::MODULE,
    info_tag::BASIC_MEMINFO,
    info_tag::MMAP,
    info_tag::ACPI_OLD,
    info_tag::ACPI_NEW,
];

/// Appends tags at `layout::MULTIBOOT_INFO`.
struct Tags<'e, 'a> {
    env: &'e mut Env<'a>,
    at: u64,
}

impl Tags<'_, '_> {
    fn tag(&mut self, kind: u32, parts: &[&[u8]]) -> Result<(), BootError> {
        let body: usize = parts.iter().map(|p| p.len()).sum();
        let size = 8 + body as u64;
        if self.at + size > layout::MULTIBOOT_INFO_END {
            return Err(BootError::Multiboot("boot information does not fit in 64 KiB"));
        }
        write_obj(
            self.env.mem,
            self.at,
            &InfoTag {
                kind: kind.into(),
                size: (size as u32).into(),
            },
        );
        let mut p = self.at + 8;
        for part in parts {
            self.env.mem.write(p, part);
            p += part.len() as u64;
        }
        self.at = (self.at + size).next_multiple_of(8);
        Ok(())
    }
}

/// Longest string (with its NUL) copied into a tag; raw.rs and modules.rs refuse longer ones.
pub const STRING_MAX: usize = 4096;

/// Reads the NUL-terminated string at `addr` (at most `STRING_MAX` bytes) into `buf`.
fn read_cstr<'b>(env: &Env, addr: u64, buf: &'b mut [u8; STRING_MAX]) -> &'b [u8] {
    env.mem.read(addr, buf);
    let end = buf.iter().position(|&b| b == 0).unwrap_or(STRING_MAX - 1);
    buf[end] = 0;
    &buf[..=end]
}

pub fn finish(env: &mut Env, entry: u32, cmdline: u64, modules: &[Module]) -> Result<Handoff, BootError> {
    let start = layout::MULTIBOOT_INFO;
    let (lower, upper) = mem_info(env.map);
    let rsdp = env.rsdp;
    let mut tags = Tags { env, at: start + 8 };
    let mut buf = [0u8; STRING_MAX];
    let line = read_cstr(tags.env, cmdline, &mut buf);
    tags.tag(info_tag::CMDLINE, &[line])?;
    tags.tag(info_tag::LOADER_NAME, &[b"minnow\0"])?;
    for m in modules {
        let string = read_cstr(tags.env, m.string, &mut buf);
        tags.tag(
            info_tag::MODULE,
            &[
                &(m.start as u32).to_le_bytes(),
                &(m.end as u32).to_le_bytes(),
                string,
            ],
        )?;
    }
    tags.tag(
        info_tag::BASIC_MEMINFO,
        &[&lower.to_le_bytes(), &upper.to_le_bytes()],
    )?;
    let mut mmap = [MmapEntry::default(); crate::memory_map::MAX_ENTRIES];
    let mut n = 0;
    for (slot, e) in mmap.iter_mut().zip(tags.env.map.entries()) {
        *slot = MmapEntry {
            base_addr: e.addr,
            length: e.size,
            kind: e.kind,
            reserved: 0.into(),
        };
        n += 1;
    }
    tags.tag(
        info_tag::MMAP,
        &[&24u32.to_le_bytes(), &0u32.to_le_bytes(), mmap[..n].as_bytes()],
    )?;
    if let Some(rsdp) = rsdp {
        let mut table = [0u8; 36];
        tags.env.mem.read(rsdp, &mut table);
        // Revision 2+ RSDPs are 36 bytes and go in the "new" tag; ACPI 1.0 ones are 20 bytes.
        if table[15] >= 2 {
            tags.tag(info_tag::ACPI_NEW, &[&table])?;
        } else {
            tags.tag(info_tag::ACPI_OLD, &[&table[..20]])?;
        }
    }
    tags.tag(info_tag::END, &[])?;
    let total = (tags.at - start) as u32;
    write_obj(
        tags.env.mem,
        start,
        &InfoHeader {
            total_size: total.into(),
            reserved: 0.into(),
        },
    );
    Ok(Handoff::Multiboot2 {
        entry,
        info: start as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeFwCfg, FakeMemory};
    use crate::memory::{read_obj, Memory};
    use crate::memory_map::MemoryMap;
    use minnow_bootproto::e820;

    #[test]
    fn tags_are_aligned_complete_and_end_with_an_end_tag() {
        let mut map = MemoryMap::new();
        map.set(0, 0x9E000, e820::RAM).unwrap();
        map.set(0x100000, 0x7F0_0000, e820::RAM).unwrap();
        let (mut cfg, mut mem) = (FakeFwCfg::new(), FakeMemory::default());
        mem.write(layout::CMDLINE, b"console=ttyS0 x\0");
        mem.write(layout::MODULE_STRINGS, b"m0 a=1\0m1\0");
        let mut rsdp = [0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 2;
        mem.write(0xE0000, &rsdp);
        let mut env = Env {
            cfg: &mut cfg,
            mem: &mut mem,
            map: &map,
            rsdp: Some(0xE0000),
        };
        let modules = [
            Module {
                start: 0x300_0000,
                end: 0x300_0010,
                string: layout::MODULE_STRINGS,
            },
            Module {
                start: 0x400_0000,
                end: 0x400_2000,
                string: layout::MODULE_STRINGS + 7,
            },
        ];
        finish(&mut env, 0x100000, layout::CMDLINE, &modules).unwrap();
        let hdr: InfoHeader = read_obj(&mem, layout::MULTIBOOT_INFO);
        let mut at = layout::MULTIBOOT_INFO + 8;
        let mut seen = Vec::new();
        let mut modules_seen = Vec::new();
        loop {
            assert_eq!(at % 8, 0);
            let tag: InfoTag = read_obj(&mem, at);
            seen.push(tag.kind.get());
            if tag.kind.get() == info_tag::CMDLINE {
                assert_eq!(mem.bytes(at + 8, 16), b"console=ttyS0 x\0");
            }
            if tag.kind.get() == info_tag::MODULE {
                let body = mem.bytes(at + 8, tag.size.get() as usize - 8);
                modules_seen.push(body);
            }
            if tag.kind.get() == info_tag::END {
                assert_eq!(tag.size.get(), 8);
                break;
            }
            at = (at + u64::from(tag.size.get())).next_multiple_of(8);
        }
        assert_eq!(seen, vec![1, 2, 3, 3, 4, 6, 15, 0]);
        let le = |v: u32| v.to_le_bytes();
        assert_eq!(
            modules_seen,
            [
                [&le(0x300_0000)[..], &le(0x300_0010), b"m0 a=1\0"].concat(),
                [&le(0x400_0000)[..], &le(0x400_2000), b"m1\0"].concat(),
            ]
        );
        assert_eq!(u64::from(hdr.total_size.get()), at + 8 - layout::MULTIBOOT_INFO);
    }
}
