//! A raw kernel in the fw_cfg file `opt/org.minnow/kernel` (with optional `opt/org.minnow/initrd`
//! and `opt/org.minnow/cmdline`). The format is detected here, in QEMU's order of precedence
//! (a bzImage's "HdrS", then multiboot 2, multiboot 1, then an ELF with a PVH note), and the
//! image is loaded straight from fw_cfg to its final place, one transfer per segment.
use super::{check_range, linux, load_checked, load_cmdline, multiboot1, multiboot2, pvh, Env, Handoff};
use crate::elf::{self, Header, Segment, PT_LOAD, PT_NOTE};
use crate::error::BootError;
use crate::fw_cfg::File;
use crate::layout;
use minnow_bootproto::fw_cfg::file;
use minnow_bootproto::linux::{self as proto, xloadflags};
use minnow_bootproto::multiboot1 as mb1;
use minnow_bootproto::multiboot2::{self as mb2, header_tag, HeaderTag};
use minnow_bootproto::pvh as pvh_proto;
use zerocopy::FromBytes;

/// Bytes of the image read up front: the multiboot 1 search window.
const HEAD: usize = mb1::SEARCH_LEN;

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

/// Loads `opt/org.minnow/cmdline` (or an empty line) to `layout::CMDLINE`.
fn cmdline(env: &mut Env, max: u64) -> Result<u64, BootError> {
    match env.cfg.file(file::MINNOW_CMDLINE) {
        // A trailing NUL in the file, if any, is part of the string; we add our own.
        Some(f) => load_cmdline(env, Some(f.key), f.size, max),
        None => load_cmdline(env, None, 0, max),
    }
}

/// Loads `opt/org.minnow/initrd`, if present, page-aligned as high as it fits below `limit`, clear
/// of the kernel at `kernel`.
fn initrd(env: &mut Env, limit: u64, kernel: (u64, u64)) -> Result<Option<(u64, u64)>, BootError> {
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
    // Relocatable kernels may sit at 1 MiB (they move themselves); others need pref_address.
    let kernel_addr = if header.relocatable_kernel != 0 {
        layout::HIGH_MEMORY
    } else {
        header.pref_address.get()
    };
    linux::check_kernel_room(env, &header, kernel_addr, u64::from(kernel_len))?;
    load_checked(env, "kernel", kernel.key, setup, kernel_addr, kernel_len)?;
    let cmdline_addr = cmdline(env, u64::from(header.cmdline_size.get()))?;
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
    segments: [Segment; elf::MAX_PHDRS],
    /// The lowest and highest (exclusive) addresses its segments occupy.
    span: (u64, u64),
}

/// Reads program headers and loads every PT_LOAD segment.
fn load_elf(env: &mut Env, kernel: File, head: &[u8]) -> Result<LoadedElf, BootError> {
    let h = elf::parse_header(head)?;
    let mut segments = [Segment::default(); elf::MAX_PHDRS];
    let mut raw = [0u8; 64];
    let entsize = usize::from(h.phentsize).min(raw.len());
    let (mut low, mut high) = (u64::MAX, 0);
    for (i, seg) in segments.iter_mut().enumerate().take(usize::from(h.phnum)) {
        let at = h.phoff + (i * usize::from(h.phentsize)) as u64;
        if at + entsize as u64 > u64::from(kernel.size) {
            return Err(elf::ElfError::Truncated.into());
        }
        env.cfg.read_at(kernel.key, at as u32, &mut raw[..entsize])?;
        *seg = elf::parse_segment(&h, &raw[..entsize])?;
        if seg.kind != PT_LOAD || seg.memsz == 0 {
            continue;
        }
        if seg.filesz > seg.memsz || seg.offset + seg.filesz > u64::from(kernel.size) {
            return Err(elf::ElfError::Truncated.into());
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
fn pvh_entry(env: &mut Env, kernel: File, segments: &[Segment]) -> Result<Option<u32>, BootError> {
    let mut notes = [0u8; 2048];
    for seg in segments.iter().filter(|s| s.kind == PT_NOTE) {
        let n = (seg.filesz as usize).min(notes.len());
        if seg.offset + n as u64 > u64::from(kernel.size) {
            continue;
        }
        env.cfg.read_at(kernel.key, seg.offset as u32, &mut notes[..n])?;
        if let Some(desc) = elf::find_note(
            &notes[..n],
            pvh_proto::NOTE_NAME,
            pvh_proto::XEN_ELFNOTE_PHYS32_ENTRY,
        ) {
            // Linux writes a pointer-sized value; the entry is its low 32 bits.
            let mut low = [0u8; 4];
            let k = desc.len().min(4);
            low[..k].copy_from_slice(&desc[..k]);
            return Ok(Some(u32::from_le_bytes(low)));
        }
    }
    Ok(None)
}

fn pvh_kernel(env: &mut Env, kernel: File, head: &[u8]) -> Result<Handoff, BootError> {
    let image = load_elf(env, kernel, head)?;
    let entry = pvh_entry(env, kernel, &image.segments)?.ok_or(BootError::NoPvhNote)?;
    let cmdline_addr = cmdline(env, u64::MAX)?;
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
    let cmdline_addr = cmdline(env, u64::MAX)?;
    let initrd = initrd(env, layout::FOUR_GIB, span)?;
    multiboot1::finish_raw(env, entry32(entry)?, cmdline_addr, initrd)
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
    let cmdline_addr = cmdline(env, u64::MAX)?;
    let initrd = initrd(env, layout::FOUR_GIB, span)?;
    multiboot2::finish(env, entry, cmdline_addr, initrd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeMemory;
    use crate::memory::read_obj;
    use minnow_bootproto::linux::BootParams;
    use minnow_bootproto::multiboot1::{header_flags, Info};

    fn boot(kernel: Vec<u8>, extra: &[(&str, &[u8])]) -> (Result<Handoff, BootError>, FakeMemory) {
        super::tests_support::boot_with_ram(0x800_0000, kernel, extra)
    }

    fn put(buf: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        if buf.len() < at + bytes.len() {
            buf.resize(at + bytes.len(), 0);
        }
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn bzimage() -> Vec<u8> {
        let mut img = vec![0u8; 1024 + 4096];
        img[0x1F1] = 1; // setup_sects: 1024 bytes of setup
        img[0x201] = 0x6A;
        put(&mut img, 0x202, &proto::HEADER_MAGIC.to_le_bytes());
        put(&mut img, 0x206, &0x020Fu16.to_le_bytes());
        put(&mut img, 0x22C, &0x7FFF_FFFFu32.to_le_bytes()); // initrd_addr_max
        img[0x234] = 1; // relocatable
        put(&mut img, 0x236, &xloadflags::KERNEL_64.to_le_bytes());
        put(&mut img, 0x238, &255u32.to_le_bytes()); // cmdline_size
        put(&mut img, 0x260, &0x10_0000u32.to_le_bytes()); // init_size
        img[1024..].iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        img
    }

    #[test]
    fn a_raw_bzimage_loads_at_1mib_with_cmdline_and_initrd() {
        let (h, mem) = boot(
            bzimage(),
            &[(file::MINNOW_CMDLINE, b"hello"), (file::MINNOW_INITRD, &[7; 100])],
        );
        assert_eq!(
            h.unwrap(),
            Handoff::Linux64 {
                entry: 0x100200,
                boot_params: layout::LINUX_BOOT_PARAMS
            }
        );
        assert_eq!(mem.bytes(0x100000, 4096), bzimage()[1024..]);
        let bp: BootParams = read_obj(&mem, layout::LINUX_BOOT_PARAMS);
        assert_eq!(bp.hdr.type_of_loader, 0xFF);
        assert_eq!(mem.bytes(u64::from(bp.hdr.cmd_line_ptr.get()), 6), b"hello\0");
        let initrd = u64::from(bp.hdr.ramdisk_image.get());
        assert_eq!((initrd % 4096, bp.hdr.ramdisk_size.get()), (0, 100));
        assert_eq!(initrd, 0x7FFF000, "as high as it fits");
        assert_eq!(mem.bytes(initrd, 100), vec![7; 100]);
    }

    #[test]
    fn a_raw_bzimage_with_a_long_cmdline_or_no_room_is_refused() {
        let long = vec![b'x'; 300];
        let (h, _) = boot(bzimage(), &[(file::MINNOW_CMDLINE, &long)]);
        assert_eq!(h.unwrap_err(), BootError::CmdlineTooLong { len: 300, max: 255 });
        let mut img = bzimage();
        put(&mut img, 0x260, &0x1000_0000u32.to_le_bytes()); // init_size 256 MiB > RAM
        assert!(matches!(
            boot(img, &[]).0.unwrap_err(),
            BootError::DoesNotFit { what: "kernel", .. }
        ));
        let mut img = bzimage();
        img[0x1F1] = 200; // setup larger than the image
        assert!(matches!(boot(img, &[]).0.unwrap_err(), BootError::LinuxHeader(_)));
    }

    fn multiboot1_aout(flags: u32) -> Vec<u8> {
        let mut img = vec![0x90u8; 0x1000];
        let fields = [
            mb1::HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(mb1::HEADER_MAGIC).wrapping_sub(flags),
            0x100040, // header_addr: the header sits at file offset 0x40
            0x100000, // load_addr
            0,        // load_end_addr: the whole file
            0x102000, // bss_end_addr
            0x100080, // entry
        ];
        fields
            .iter()
            .enumerate()
            .for_each(|(i, v)| put(&mut img, 0x40 + 4 * i, &v.to_le_bytes()));
        img
    }

    #[test]
    fn a_raw_multiboot1_aout_image_loads_and_gets_an_mbi() {
        let img = multiboot1_aout(header_flags::MEMORY_INFO | header_flags::AOUT_KLUDGE);
        let (h, mem) = boot(
            img.clone(),
            &[
                (file::MINNOW_CMDLINE, b"mb1 args"),
                (file::MINNOW_INITRD, b"module"),
            ],
        );
        assert_eq!(
            h.unwrap(),
            Handoff::Multiboot1 {
                entry: 0x100080,
                info: layout::MULTIBOOT_INFO as u32
            }
        );
        assert_eq!(mem.bytes(0x100000, img.len()), img);
        assert_eq!(mem.bytes(0x101000, 0x1000), vec![0; 0x1000], "bss is zeroed");
        let info: Info = read_obj(&mem, layout::MULTIBOOT_INFO);
        assert_eq!(mem.bytes(u64::from(info.cmdline.get()), 9), b"mb1 args\0");
        assert_eq!(info.mods_count.get(), 1);
    }

    #[test]
    fn a_multiboot1_header_whose_addresses_disagree_is_refused() {
        let mut img = multiboot1_aout(header_flags::AOUT_KLUDGE);
        put(&mut img, 0x40 + 12, &0x200000u32.to_le_bytes()); // header_addr far above load_addr
        let flags = header_flags::AOUT_KLUDGE;
        let sum = 0u32.wrapping_sub(mb1::HEADER_MAGIC).wrapping_sub(flags);
        put(&mut img, 0x48, &sum.to_le_bytes());
        assert!(matches!(boot(img, &[]).0.unwrap_err(), BootError::Multiboot(_)));
    }

    fn multiboot2(extra_tags: &[u8]) -> Vec<u8> {
        let mut tags = Vec::new();
        let addr: Vec<u8> = [0x100008u32, 0x100000, 0, 0x103000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        tags.extend(tag(header_tag::ADDRESS, 0, &addr));
        tags.extend(tag(header_tag::ENTRY_ADDRESS, 0, &0x100100u32.to_le_bytes()));
        tags.extend(extra_tags);
        tags.extend(tag(header_tag::END, 0, &[]));
        let len = 16 + tags.len() as u32;
        let mut img = vec![0u8; 8];
        let sum = 0u32.wrapping_sub(mb2::HEADER_MAGIC).wrapping_sub(len);
        for v in [mb2::HEADER_MAGIC, mb2::ARCH_I386, len, sum] {
            img.extend(v.to_le_bytes());
        }
        img.extend(tags);
        img.resize(0x2000, 0xCC);
        img
    }

    fn tag(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend(kind.to_le_bytes());
        t.extend(flags.to_le_bytes());
        t.extend(((8 + body.len()) as u32).to_le_bytes());
        t.extend(body);
        while t.len() % 8 != 0 {
            t.push(0);
        }
        t
    }

    #[test]
    fn a_raw_multiboot2_image_loads_from_its_address_tag() {
        let optional_request = tag(
            header_tag::INFORMATION_REQUEST,
            header_tag::OPTIONAL,
            &8u32.to_le_bytes(),
        );
        let img = multiboot2(&optional_request);
        let (h, mem) = boot(img.clone(), &[]);
        assert_eq!(
            h.unwrap(),
            Handoff::Multiboot2 {
                entry: 0x100100,
                info: layout::MULTIBOOT_INFO as u32
            }
        );
        assert_eq!(mem.bytes(0x100000, 0x2000), img);
    }

    #[test]
    fn multiboot2_requirements_we_cannot_meet_are_named() {
        let required = tag(
            header_tag::INFORMATION_REQUEST,
            0,
            &[6u32.to_le_bytes(), 8u32.to_le_bytes()].concat(),
        );
        assert_eq!(
            boot(multiboot2(&required), &[]).0.unwrap_err(),
            BootError::Multiboot2Request(8)
        );
        let fb = tag(header_tag::FRAMEBUFFER, 0, &[0; 12]);
        assert!(matches!(
            boot(multiboot2(&fb), &[]).0.unwrap_err(),
            BootError::Multiboot(_)
        ));
        let efi = tag(7, 0, &[]);
        assert!(matches!(
            boot(multiboot2(&efi), &[]).0.unwrap_err(),
            BootError::Multiboot(_)
        ));
        let mut truncated = multiboot2(&[]);
        truncated.truncate(0x20);
        assert!(boot(truncated, &[]).0.is_err());
    }

    /// An ELF64 with one PT_LOAD at `paddr` and, optionally, a PT_NOTE with the PVH entry.
    fn elf(paddr: u64, pvh_entry: Option<u32>) -> Vec<u8> {
        let mut img = vec![0u8; 0x1200];
        put(&mut img, 0, b"\x7fELF\x02\x01\x01");
        put(&mut img, 18, &62u16.to_le_bytes());
        put(&mut img, 24, &paddr.to_le_bytes());
        put(&mut img, 32, &64u64.to_le_bytes());
        put(&mut img, 54, &56u16.to_le_bytes());
        put(
            &mut img,
            56,
            &(if pvh_entry.is_some() { 2u16 } else { 1 }).to_le_bytes(),
        );
        let phdr = |kind: u32, offset: u64, paddr: u64, filesz: u64, memsz: u64| {
            let mut p = vec![0u8; 56];
            p[0..4].copy_from_slice(&kind.to_le_bytes());
            p[8..16].copy_from_slice(&offset.to_le_bytes());
            p[24..32].copy_from_slice(&paddr.to_le_bytes());
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            p
        };
        put(&mut img, 64, &phdr(PT_LOAD, 0x1000, paddr, 0x100, 0x2000));
        img[0x1000..0x1100].fill(0xAB);
        if let Some(entry) = pvh_entry {
            let mut note = Vec::new();
            note.extend(4u32.to_le_bytes());
            note.extend(4u32.to_le_bytes());
            note.extend(18u32.to_le_bytes());
            note.extend(b"Xen\0");
            note.extend(entry.to_le_bytes());
            put(&mut img, 0x1100, &note);
            put(
                &mut img,
                120,
                &phdr(PT_NOTE, 0x1100, 0, note.len() as u64, note.len() as u64),
            );
        }
        img
    }

    #[test]
    fn a_raw_pvh_elf_loads_its_segments_and_enters_at_the_note() {
        let (h, mem) = boot(elf(0x200000, Some(0x200010)), &[]);
        assert_eq!(
            h.unwrap(),
            Handoff::Pvh {
                entry: 0x200010,
                start_info: layout::PVH_START_INFO as u32
            }
        );
        assert_eq!(mem.bytes(0x200000, 0x100), vec![0xAB; 0x100]);
        assert_eq!(
            mem.bytes(0x200100, 0x1F00),
            vec![0; 0x1F00],
            "memsz beyond filesz is zeroed"
        );
    }

    #[test]
    fn bad_images_are_refused_with_the_reason_not_a_panic() {
        assert_eq!(
            boot(elf(0x200000, None), &[]).0.unwrap_err(),
            BootError::NoPvhNote
        );
        assert!(matches!(
            boot(elf(0x80000, Some(0x80000)), &[]).0.unwrap_err(),
            BootError::OverlapsFirmware { .. }
        ));
        assert!(matches!(
            boot(elf(0x9000_0000, Some(0)), &[]).0.unwrap_err(),
            BootError::DoesNotFit { .. }
        ));
        let mut short = elf(0x200000, Some(0x200010));
        short.truncate(100); // program headers cut off
        assert_eq!(
            boot(short, &[]).0.unwrap_err(),
            BootError::Elf(elf::ElfError::Truncated)
        );
        assert_eq!(
            boot(vec![0x55; 5000], &[]).0.unwrap_err(),
            BootError::UnknownFormat
        );
        assert_eq!(boot(vec![], &[]).0.unwrap_err(), BootError::UnknownFormat);
        let mut huge_segment = elf(0x200000, Some(0x200010));
        put(&mut huge_segment, 64 + 32, &u64::MAX.to_le_bytes()); // filesz
        assert!(boot(huge_segment, &[]).0.is_err());
    }
}

/// Random mutations of valid images must give an error or a boot, never a panic.
#[cfg(test)]
mod robustness {
    use super::tests_support::*;
    use crate::fakes::Rng;

    #[test]
    fn mutated_and_truncated_images_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let seeds = seed_images();
        for round in 0..3000 {
            let mut img = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.next(8) {
                let at = rng.next(img.len() as u64) as usize;
                img[at] = rng.next(256) as u8;
            }
            if rng.next(4) == 0 {
                img.truncate(rng.next(img.len() as u64 + 1) as usize);
            }
            let _ = boot(img, &[]);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::fakes::{FakeFwCfg, FakeMemory};
    use crate::fw_cfg::FwCfg;
    use crate::memory_map::MemoryMap;
    use minnow_bootproto::e820;

    /// Boots a raw image in a 16 MiB machine (small, so fakes stay fast).
    pub fn boot(kernel: Vec<u8>, extra: &[(&str, &[u8])]) -> Result<Handoff, BootError> {
        boot_with_ram(0x100_0000, kernel, extra).0
    }

    /// Boots a raw image in a machine whose RAM ends at `ram_end` (with the legacy hole carved).
    pub fn boot_with_ram(
        ram_end: u64,
        kernel: Vec<u8>,
        extra: &[(&str, &[u8])],
    ) -> (Result<Handoff, BootError>, FakeMemory) {
        let mut cfg = FakeFwCfg::new().add_file(file::MINNOW_KERNEL, kernel);
        for (name, data) in extra {
            cfg = cfg.add_file(name, data.to_vec());
        }
        let mut map = MemoryMap::new();
        map.set(0, 0x9E000, e820::RAM).unwrap();
        map.set(0x100000, ram_end - 0x100000, e820::RAM).unwrap();
        let mut mem = FakeMemory::default();
        let f = cfg.file(file::MINNOW_KERNEL).unwrap();
        let mut env = Env {
            cfg: &mut cfg,
            mem: &mut mem,
            map: &map,
            rsdp: None,
        };
        (load(&mut env, f), mem)
    }

    /// One valid image of each format, as the unit tests build them.
    pub fn seed_images() -> Vec<Vec<u8>> {
        let mut elf = vec![0u8; 0x1200];
        elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        elf[18] = 62;
        elf[32] = 64;
        elf[54] = 56;
        elf[56] = 2;
        let phdr = |kind: u32, offset: u64, paddr: u64, size: u64| {
            let mut p = vec![0u8; 56];
            p[0..4].copy_from_slice(&kind.to_le_bytes());
            p[8..16].copy_from_slice(&offset.to_le_bytes());
            p[24..32].copy_from_slice(&paddr.to_le_bytes());
            p[32..40].copy_from_slice(&size.to_le_bytes());
            p[40..48].copy_from_slice(&size.to_le_bytes());
            p
        };
        elf[64..120].copy_from_slice(&phdr(PT_LOAD, 0x1000, 0x200000, 0x100));
        elf[120..176].copy_from_slice(&phdr(PT_NOTE, 0x1100, 0, 20));
        let note: Vec<u8> = [4u32, 4, 18]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .chain(*b"Xen\0")
            .chain(0x200000u32.to_le_bytes())
            .collect();
        elf[0x1100..0x1100 + note.len()].copy_from_slice(&note);

        let mut bz = vec![0u8; 0x1400];
        bz[0x1F1] = 1;
        bz[0x201] = 0x6A;
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
        bz[0x234] = 1;
        bz[0x236] = 1;
        bz[0x238] = 255;
        bz[0x22C..0x230].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes()); // initrd_addr_max
        bz[0x260..0x264].copy_from_slice(&0x10_0000u32.to_le_bytes());

        let mut mb1 = vec![0u8; 0x1000];
        let flags = mb1::header_flags::AOUT_KLUDGE;
        let fields = [
            mb1::HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(mb1::HEADER_MAGIC).wrapping_sub(flags),
            0x100040,
            0x100000,
            0,
            0x102000,
            0x100080,
        ];
        for (i, v) in fields.iter().enumerate() {
            mb1[0x40 + 4 * i..0x44 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }

        let mut mb2 = vec![0u8; 0x1000];
        let tags: Vec<u8> = [2u16, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .chain(24u32.to_le_bytes())
            .chain(
                [0x100008u32, 0x100000, 0, 0x101000]
                    .iter()
                    .flat_map(|v| v.to_le_bytes()),
            )
            .chain([3u16, 0].iter().flat_map(|v| v.to_le_bytes()))
            .chain(12u32.to_le_bytes())
            .chain(0x100100u32.to_le_bytes())
            .chain([0u8; 4])
            .chain([0u8, 0, 0, 0, 8, 0, 0, 0])
            .collect();
        let len = 16 + tags.len() as u32;
        let head: Vec<u8> = [
            mb2::HEADER_MAGIC,
            0,
            len,
            0u32.wrapping_sub(mb2::HEADER_MAGIC).wrapping_sub(len),
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
        mb2[8..24].copy_from_slice(&head);
        mb2[24..24 + tags.len()].copy_from_slice(&tags);
        vec![elf, bz, mb1, mb2]
    }

    #[test]
    fn every_seed_image_boots() {
        for (i, img) in seed_images().into_iter().enumerate() {
            assert!(boot(img, &[(file::MINNOW_INITRD, b"initrd")]).is_ok(), "seed {i}");
        }
    }
}
