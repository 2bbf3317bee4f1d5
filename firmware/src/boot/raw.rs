//! A raw kernel in the fw_cfg file `opt/org.minnow/kernel` (with optional `opt/org.minnow/initrd`
//! and `opt/org.minnow/cmdline`). The format is detected here, in QEMU's order of precedence
//! (a bzImage's "HdrS", then multiboot 2, multiboot 1, then an ELF with a PVH note), and the
//! image is loaded straight from fw_cfg to its final place, one transfer per segment.
use super::{check_range, linux, load_checked, load_cmdline, multiboot1, multiboot2, pvh, Env, Handoff};
use crate::error::BootError;
use crate::fw_cfg::File;
use crate::layout;
use minnow_bootproto::elf::{self, ElfError, Header, ProgramHeader, PT_LOAD, PT_NOTE};
use minnow_bootproto::fw_cfg::file;
use minnow_bootproto::linux::{self as proto, xloadflags};
use minnow_bootproto::multiboot1 as mb1;
use minnow_bootproto::multiboot2::{self as mb2, header_tag, HeaderTag};
use minnow_bootproto::pvh as pvh_proto;
use zerocopy::FromBytes;

/// Bytes of the image read up front: the multiboot 1 search window.
const HEAD: usize = mb1::SEARCH_LEN;
/// Most program headers an ELF kernel may have (Linux has 5, Xen 2).
pub const MAX_PHDRS: usize = 32;
/// Most bytes of a PT_NOTE segment searched for the PVH note.
const NOTES_MAX: usize = 2048;

pub fn load(env: &mut Env, kernel: File) -> Result<Handoff, BootError> {
    let mut head = [0u8; HEAD];
    let n = (kernel.size as usize).min(HEAD);
    env.cfg.read_at(kernel.key, 0, &mut head[..n])?;
    let head = &head[..n];
    if head.get(0x202..0x206) == Some(&proto::HEADER_MAGIC.to_le_bytes()[..]) {
        return bzimage(env, kernel, head);
    }
    if let Some((offset, header)) = find_multiboot2(env, kernel, head)? {
        return multiboot2_kernel(env, kernel, head, offset, header);
    }
    if let Some((offset, header)) = mb1::find_header(head) {
        return multiboot1_kernel(env, kernel, head, offset, &header);
    }
    if elf::is_elf(head) {
        return pvh_kernel(env, kernel, head);
    }
    Err(BootError::UnknownFormat)
}

/// Loads `opt/org.minnow/cmdline` (or an empty line) to `layout::CMDLINE`, after `name`
/// (multiboot kernels get the image's name first, see modules.rs).
fn cmdline(env: &mut Env, name: &[u8], max: u64) -> Result<u64, BootError> {
    match env.cfg.file(file::MINNOW_CMDLINE) {
        // A trailing NUL in the file, if any, is part of the string; we add our own.
        Some(f) => load_cmdline(env, name, Some(f.key), f.size, max),
        None => load_cmdline(env, name, None, 0, max),
    }
}

/// A multiboot kernel's command line, its name first (no longer than multiboot 2 tags take).
fn multiboot_cmdline(env: &mut Env) -> Result<u64, BootError> {
    cmdline(
        env,
        file::MINNOW_KERNEL.as_bytes(),
        multiboot2::STRING_MAX as u64 - 1,
    )
}

/// Loads `opt/org.minnow/initrd`, if present, page-aligned as high as it fits below `limit`, clear
/// of the kernel at `kernel`.
fn initrd(env: &mut Env, limit: u64, kernel: (u64, u64)) -> Result<Option<(u64, u64)>, BootError> {
    if modules::any(env) {
        return Err(BootError::ModulesNeedMultiboot);
    }
    let Some(f) = env.cfg.file(file::MINNOW_INITRD) else {
        return Ok(None);
    };
    let size = u64::from(f.size);
    let addr = env
        .map
        .highest_fit(size, 4096, limit)
        .ok_or(BootError::DoesNotFit {
            what: "initrd",
            start: 0,
            end: size,
        })?;
    if addr < kernel.1 && kernel.0 < addr + size {
        return Err(BootError::DoesNotFit {
            what: "initrd",
            start: addr,
            end: addr + size,
        });
    }
    load_checked(env, "initrd", f.key, 0, addr, f.size)?;
    Ok(Some((addr, size)))
}

fn bzimage(env: &mut Env, kernel: File, head: &[u8]) -> Result<Handoff, BootError> {
    let header = proto::parse_header(head, kernel.size as usize)?;
    let setup = header.setup_size() as u32;
    let kernel_len = kernel.size - setup;
    // Relocatable kernels may sit at 1 MiB (they move themselves); others need pref_address
    // (1 MiB before protocol 2.10).
    let kernel_addr = if header.relocatable_kernel != 0 {
        layout::HIGH_MEMORY
    } else {
        header.load_address()
    };
    linux::check_kernel_room(env, &header, kernel_addr, u64::from(kernel_len))?;
    load_checked(env, "kernel", kernel.key, setup, kernel_addr, kernel_len)?;
    let cmdline_addr = cmdline(env, b"", u64::from(header.cmdline_size.get()))?;
    let limit = if header.xloadflags.get() & xloadflags::CAN_BE_LOADED_ABOVE_4G != 0 {
        layout::FOUR_GIB
    } else {
        u64::from(header.initrd_addr_max.get()) + 1
    };
    let reserved = (
        kernel_addr,
        kernel_addr + u64::from(header.init_size.get()).max(u64::from(kernel_len)),
    );
    let initrd = initrd(env, limit, reserved)?;
    let mut header = header;
    header.type_of_loader = 0xFF; // "undefined": Minnow has no assigned loader id
    let loaded = linux::Loaded {
        header,
        header_len: header.header_len(),
        kernel_addr,
        cmdline_addr,
        initrd,
    };
    linux::finish(env, &loaded)
}

/// An ELF image loaded into memory.
struct LoadedElf {
    header: Header,
    segments: [ProgramHeader; MAX_PHDRS],
    /// The lowest and highest (exclusive) addresses its segments occupy.
    span: (u64, u64),
}

/// The file header, with what this loader accepts checked: x86, at most [`MAX_PHDRS`] segments.
fn elf_header(head: &[u8]) -> Result<Header, BootError> {
    let h = Header::parse(head)?;
    if h.machine != elf::EM_386 && h.machine != elf::EM_X86_64 {
        return Err(BootError::ElfMachine(h.machine));
    }
    if usize::from(h.phnum) > MAX_PHDRS {
        return Err(BootError::ElfSegments(h.phnum));
    }
    Ok(h)
}

/// Reads program header `index` from fw_cfg.
fn read_phdr(env: &mut Env, kernel: File, h: &Header, index: u16) -> Result<ProgramHeader, BootError> {
    let mut raw = [0u8; elf::PHDR_MAX];
    let raw = &mut raw[..h.phdr_size()];
    let outside = ElfError::ProgramHeaderOutside { index };
    let at = h
        .phdr_offset(index)
        .filter(|&a| a.saturating_add(raw.len() as u64) <= u64::from(kernel.size))
        .ok_or(outside)?;
    env.cfg.read_at(kernel.key, at as u32, raw)?;
    Ok(h.parse_phdr(raw)?)
}

/// Reads program headers and loads every PT_LOAD segment.
fn load_elf(env: &mut Env, kernel: File, head: &[u8]) -> Result<LoadedElf, BootError> {
    let h = elf_header(head)?;
    let mut segments = [ProgramHeader::default(); MAX_PHDRS];
    let (mut low, mut high) = (u64::MAX, 0);
    for (index, seg) in (0..h.phnum).zip(segments.iter_mut()) {
        *seg = read_phdr(env, kernel, &h, index)?;
        if seg.kind != PT_LOAD || seg.memsz == 0 {
            continue;
        }
        let end = seg.offset.checked_add(seg.filesz);
        if seg.filesz > seg.memsz || end.is_none_or(|e| e > u64::from(kernel.size)) {
            return Err(ElfError::SegmentOutside { index }.into());
        }
        check_range(env.map, "kernel segment", seg.paddr, seg.memsz)?;
        load_checked(
            env,
            "kernel segment",
            kernel.key,
            seg.offset as u32,
            seg.paddr,
            seg.filesz as u32,
        )?;
        env.mem.fill(seg.paddr + seg.filesz, seg.memsz - seg.filesz, 0);
        low = low.min(seg.paddr);
        high = high.max(seg.paddr + seg.memsz);
    }
    if high == 0 {
        return Err(BootError::Multiboot("ELF image has no loadable segment"));
    }
    Ok(LoadedElf {
        header: h,
        segments,
        span: (low, high),
    })
}

/// Finds the PVH entry in the image's PT_NOTE segments.
fn pvh_entry(env: &mut Env, kernel: File, segments: &[ProgramHeader]) -> Result<Option<u32>, BootError> {
    let mut notes = [0u8; NOTES_MAX];
    for seg in segments.iter().filter(|s| s.kind == PT_NOTE) {
        let n = (seg.filesz as usize).min(notes.len());
        if seg.offset.saturating_add(n as u64) > u64::from(kernel.size) {
            continue;
        }
        env.cfg.read_at(kernel.key, seg.offset as u32, &mut notes[..n])?;
        if let Some(desc) = elf::find_note(
            &notes[..n],
            seg.note_align(),
            pvh_proto::NOTE_NAME,
            pvh_proto::XEN_ELFNOTE_PHYS32_ENTRY,
        ) {
            return pvh_proto::entry_from_note(desc)
                .map(Some)
                .ok_or(BootError::PvhNoteTruncated);
        }
    }
    Ok(None)
}

fn pvh_kernel(env: &mut Env, kernel: File, head: &[u8]) -> Result<Handoff, BootError> {
    let image = load_elf(env, kernel, head)?;
    let entry = pvh_entry(env, kernel, &image.segments)?.ok_or(BootError::NoPvhNote)?;
    let cmdline_addr = cmdline(env, b"", u64::MAX)?;
    let initrd = initrd(env, layout::FOUR_GIB, image.span)?;
    pvh::finish(
        env,
        &pvh::Loaded {
            entry,
            cmdline_addr,
            initrd,
        },
    )
}

/// An a.out-kludge image: the file from `file_offset` loads at `load_addr`.
struct AoutLayout {
    file_offset: u64,
    load_addr: u64,
    load_end: u64,
    bss_end: u64,
}

fn load_aout(env: &mut Env, kernel: File, l: &AoutLayout) -> Result<(u64, u64), BootError> {
    if l.file_offset > u64::from(kernel.size) || l.load_end < l.load_addr {
        return Err(BootError::Multiboot("address fields point outside the image"));
    }
    let len = (l.load_end - l.load_addr).min(u64::from(kernel.size) - l.file_offset);
    let end = l.bss_end.max(l.load_addr + len);
    check_range(env.map, "kernel", l.load_addr, end - l.load_addr)?;
    load_checked(
        env,
        "kernel",
        kernel.key,
        l.file_offset as u32,
        l.load_addr,
        len as u32,
    )?;
    env.mem.fill(l.load_addr + len, end - (l.load_addr + len), 0);
    Ok((l.load_addr, end))
}

fn entry32(entry: u64) -> Result<u32, BootError> {
    u32::try_from(entry).map_err(|_| BootError::Multiboot("entry point is above 4 GiB"))
}

fn multiboot1_kernel(
    env: &mut Env,
    kernel: File,
    head: &[u8],
    offset: usize,
    h: &mb1::Header,
) -> Result<Handoff, BootError> {
    let (entry, span) = if h.flags.get() & mb1::header_flags::AOUT_KLUDGE != 0 {
        let (header_addr, load_addr) = (u64::from(h.header_addr.get()), u64::from(h.load_addr.get()));
        let file_offset = (offset as u64)
            .checked_sub(header_addr.wrapping_sub(load_addr))
            .ok_or(BootError::Multiboot(
                "header_addr and load_addr disagree with the header's offset",
            ))?;
        let load_end = match h.load_end_addr.get() {
            0 => load_addr + u64::from(kernel.size) - file_offset,
            end => u64::from(end),
        };
        let l = AoutLayout {
            file_offset,
            load_addr,
            load_end,
            bss_end: u64::from(h.bss_end_addr.get()),
        };
        (u64::from(h.entry_addr.get()), load_aout(env, kernel, &l)?)
    } else {
        let image = load_elf(env, kernel, head)?;
        (image.header.entry, image.span)
    };
    let cmdline_addr = multiboot_cmdline(env)?;
    let modules = modules::load(env, layout::FOUR_GIB, span)?;
    multiboot1::finish_raw(env, entry32(entry)?, cmdline_addr, modules.as_slice())
}

/// Searches the first 32 KiB for a multiboot 2 header (beyond the 8 KiB already read, in pieces).
fn find_multiboot2(
    env: &mut Env,
    kernel: File,
    head: &[u8],
) -> Result<Option<(usize, mb2::Header)>, BootError> {
    if let Some(found) = mb2::find_header(head) {
        return Ok(Some(found));
    }
    let limit = (kernel.size as usize).min(mb2::SEARCH_LEN);
    let mut buf = [0u8; HEAD];
    // Overlap windows by 16 bytes so a header straddling two windows is still seen whole.
    let mut start = HEAD - 16;
    while start + 16 <= limit {
        let n = (limit - start).min(HEAD);
        env.cfg.read_at(kernel.key, start as u32, &mut buf[..n])?;
        if let Some((off, h)) = mb2::find_header(&buf[..n]) {
            return Ok(Some((start + off, h)));
        }
        start += HEAD - 16;
    }
    Ok(None)
}

/// What a multiboot 2 header's tags ask for.
#[derive(Default)]
struct Mb2Request {
    address: Option<mb2::AddressTag>,
    entry: Option<u32>,
}

fn parse_mb2_tags(tags: &[u8]) -> Result<Mb2Request, BootError> {
    let mut req = Mb2Request::default();
    let mut at = 0;
    while at + 8 <= tags.len() {
        let (tag, _) =
            HeaderTag::read_from_prefix(&tags[at..]).map_err(|_| BootError::Multiboot("truncated tag"))?;
        let (kind, size) = (tag.kind.get(), tag.size.get() as usize);
        let optional = tag.flags.get() & header_tag::OPTIONAL != 0;
        let body = tags
            .get(at + 8..at + size.max(8))
            .ok_or(BootError::Multiboot("tag runs past the header"))?;
        match kind {
            header_tag::END => break,
            header_tag::INFORMATION_REQUEST if !optional => {
                for wanted in body
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                {
                    if !multiboot2::PROVIDED.contains(&wanted) {
                        return Err(BootError::Multiboot2Request(wanted));
                    }
                }
            }
            header_tag::ADDRESS => {
                req.address = Some(
                    mb2::AddressTag::read_from_prefix(body)
                        .map_err(|_| BootError::Multiboot("short address tag"))?
                        .0,
                );
            }
            header_tag::ENTRY_ADDRESS => {
                let b = body.get(..4).ok_or(BootError::Multiboot("short entry tag"))?;
                req.entry = Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            }
            header_tag::FRAMEBUFFER if !optional => {
                return Err(BootError::Multiboot(
                    "kernel requires a framebuffer, which Minnow does not provide",
                ))
            }
            header_tag::INFORMATION_REQUEST
            | header_tag::CONSOLE_FLAGS
            | header_tag::FRAMEBUFFER
            | header_tag::MODULE_ALIGN
            | header_tag::RELOCATABLE => {}
            _ if optional => {}
            _ => {
                return Err(BootError::Multiboot(
                    "kernel requires a header tag Minnow does not support",
                ))
            }
        }
        at += size.max(8).next_multiple_of(8);
    }
    Ok(req)
}

fn multiboot2_kernel(
    env: &mut Env,
    kernel: File,
    head: &[u8],
    offset: usize,
    h: mb2::Header,
) -> Result<Handoff, BootError> {
    if h.architecture.get() != mb2::ARCH_I386 {
        return Err(BootError::Multiboot("multiboot2 architecture is not i386"));
    }
    let len = (h.header_length.get() as usize).saturating_sub(16).min(4096);
    let mut tags = [0u8; 4096];
    env.cfg
        .read_at(kernel.key, (offset + 16) as u32, &mut tags[..len])?;
    let req = parse_mb2_tags(&tags[..len])?;
    let (elf_entry, span) = match req.address {
        Some(a) => {
            let (header_addr, load_addr) = (u64::from(a.header_addr.get()), u64::from(a.load_addr.get()));
            let file_offset = (offset as u64)
                .checked_sub(header_addr.wrapping_sub(load_addr))
                .ok_or(BootError::Multiboot(
                    "header_addr and load_addr disagree with the header's offset",
                ))?;
            let load_end = match a.load_end_addr.get() {
                0 => load_addr + u64::from(kernel.size) - file_offset,
                end => u64::from(end),
            };
            let l = AoutLayout {
                file_offset,
                load_addr,
                load_end,
                bss_end: u64::from(a.bss_end_addr.get()),
            };
            (None, load_aout(env, kernel, &l)?)
        }
        None => {
            let image = load_elf(env, kernel, head)?;
            (Some(image.header.entry), image.span)
        }
    };
    let entry = match (req.entry, elf_entry) {
        (Some(e), _) => e,
        (None, Some(e)) => entry32(e)?,
        (None, None) => return Err(BootError::Multiboot("no entry address tag and no ELF entry")),
    };
    let cmdline_addr = multiboot_cmdline(env)?;
    let modules = modules::load(env, layout::FOUR_GIB, span)?;
    multiboot2::finish(env, entry, cmdline_addr, modules.as_slice())
}

pub mod modules;

#[cfg(test)]
mod tests;

/// Random mutations of valid images must give an error or a boot, never a panic.
#[cfg(test)]
mod robustness;

#[cfg(test)]
pub(crate) mod tests_support;
