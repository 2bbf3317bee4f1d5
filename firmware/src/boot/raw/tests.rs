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

pub(super) fn bzimage() -> Vec<u8> {
    let mut img = vec![0u8; 1024 + 4096];
    img[0x1F1] = 1; // setup_sects: 1024 bytes of setup
    img[0x201] = 0x6A;
    put(&mut img, 0x202, &proto::HEADER_MAGIC.to_le_bytes());
    put(&mut img, 0x206, &0x020Fu16.to_le_bytes());
    put(&mut img, 0x214, &0x10_0000u32.to_le_bytes()); // code32_start
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

pub(super) fn multiboot1_aout(flags: u32) -> Vec<u8> {
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
    // The image's name first, as QEMU's -kernel and GRUB legacy give it.
    assert_eq!(
        mem.bytes(u64::from(info.cmdline.get()), 31),
        b"opt/org.minnow/kernel mb1 args\0"
    );
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

pub(super) fn multiboot2(extra_tags: &[u8]) -> Vec<u8> {
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
        BootError::Elf(minnow_bootproto::elf::ElfError::ProgramHeaderOutside { index: 0 })
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
