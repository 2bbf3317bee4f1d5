use super::elf::Phdr;
use super::*;
use std::path::Path;

const MIB: u64 = 1 << 20;

fn put16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(d: &mut [u8], at: usize, v: u64) {
    d[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn input(kernel: Vec<u8>, initrds: Vec<Blob>, cmdline: &str, ram: u64) -> KernelInput {
    KernelInput {
        kernel: Blob::new("/boot/kernel", kernel),
        initrds,
        cmdline: cmdline.into(),
        below_4g_mem_size: ram,
        acpi_data_size: 0,
    }
}

fn initrd(len: usize) -> Vec<Blob> {
    vec![Blob::new(
        "/boot/initrd",
        (0..len).map(|i| (i * 7) as u8).collect(),
    )]
}

/// A bzImage: `setup_sects`, protocol `version`, loadflags and xloadflags, `len` bytes whose
/// contents are a pattern (so the split can be checked).
fn bzimage(setup_sects: u8, version: u16, loadflags: u8, xloadflags: u16, len: usize) -> Vec<u8> {
    let mut d: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    d[0x1F1] = setup_sects;
    put32(&mut d, 0x202, HEADER_MAGIC);
    put16(&mut d, 0x206, version);
    d[0x210] = 0;
    d[0x211] = loadflags;
    put32(&mut d, 0x218, 0);
    put32(&mut d, 0x21C, 0);
    put16(&mut d, 0x224, 0);
    put32(&mut d, 0x228, 0);
    put32(&mut d, 0x22C, 0x37FF_FFFF);
    put16(&mut d, 0x236, xloadflags);
    d
}

#[test]
fn bzimage_items_and_header_patches() {
    let image = bzimage(
        4,
        0x020F,
        loadflags::LOADED_HIGH,
        xloadflags::KERNEL_64 | xloadflags::CAN_BE_LOADED_ABOVE_4G,
        0x3000,
    );
    let l = layout(input(image.clone(), initrd(0x1234), "console=ttyS0", 512 * MIB)).unwrap();
    assert_eq!(l.format, KernelFormat::BzImage { protocol: 0x020F });
    assert!(l.segments.is_empty());
    let setup_size = 5 * 512;
    assert_eq!(l.item_u32(key::SETUP_ADDR), Some(0x10000));
    assert_eq!(l.item_u32(key::SETUP_SIZE), Some(setup_size as u32));
    assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
    assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x3000 - setup_size as u32));
    assert_eq!(l.item(key::KERNEL_DATA), Some(&image[setup_size..]));
    assert_eq!(l.item_u32(key::CMDLINE_ADDR), Some(0x20000));
    assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(14));
    assert_eq!(l.item(key::CMDLINE_DATA), Some(&b"console=ttyS0\0"[..]));
    // Above-4G-capable: initrd_max is the top of RAM - 1, the initrd page-aligned below it.
    let initrd_addr = (0x1FFF_FFFF - 0x1234) & !0xFFF;
    assert_eq!(l.item_u32(key::INITRD_ADDR), Some(initrd_addr));
    assert_eq!(l.item_u32(key::INITRD_SIZE), Some(0x1234));
    assert_eq!(l.item(key::INITRD_DATA).map(<[u8]>::len), Some(0x1234));
    assert_eq!(l.item(key::KERNEL_ENTRY), None);

    let setup = l.item(key::SETUP_DATA).unwrap();
    assert_eq!(setup.len(), setup_size);
    let mut want = image[..setup_size].to_vec();
    want[0x210] = 0xB0;
    want[0x211] = loadflags::LOADED_HIGH | loadflags::CAN_USE_HEAP;
    put32(&mut want, 0x218, initrd_addr);
    put32(&mut want, 0x21C, 0x1234);
    put16(&mut want, 0x224, 0xFE00);
    put32(&mut want, 0x228, 0x20000);
    assert_eq!(setup, &want[..]);
}

#[test]
fn bzimage_initrd_max_follows_the_protocol() {
    // 2.0b: initrd_addr_max from the header, within 2 GiB of RAM.
    let image = bzimage(1, 0x020B, loadflags::LOADED_HIGH, 0, 0x2000);
    let l = layout(input(image.clone(), initrd(0x1000), "", 2048 * MIB)).unwrap();
    assert_eq!(l.item_u32(key::SETUP_SIZE), Some(1024));
    assert_eq!(
        l.item_u32(key::INITRD_ADDR),
        Some((0x37FF_FFFF - 0x1000) & !0xFFF)
    );
    assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(1));
    assert_eq!(l.item(key::CMDLINE_DATA), Some(&b"\0"[..]));
    // The same kernel with XLF_CAN_BE_LOADED_ABOVE_4G but protocol 2.0b: still the header's.
    let mut above = image.clone();
    put16(&mut above, 0x236, xloadflags::CAN_BE_LOADED_ABOVE_4G);
    let l = layout(input(above, initrd(0x1000), "", 2048 * MIB)).unwrap();
    assert_eq!(
        l.item_u32(key::INITRD_ADDR),
        Some((0x37FF_FFFF - 0x1000) & !0xFFF)
    );
    // Small RAM and ACPI data clip it.
    let mut i = input(image.clone(), initrd(0x1000), "", 256 * MIB);
    i.acpi_data_size = 0x2_0000;
    let l = layout(i).unwrap();
    assert_eq!(
        l.item_u32(key::INITRD_ADDR),
        Some((0x0FFE_0000 - 1 - 0x1000) & !0xFFF)
    );
    // 2.02: 0x37ffffff.
    let mut old = image;
    put16(&mut old, 0x206, 0x0202);
    let l = layout(input(old, initrd(0x1000), "", 2048 * MIB)).unwrap();
    assert_eq!(
        l.item_u32(key::INITRD_ADDR),
        Some((0x37FF_FFFF - 0x1000) & !0xFFF)
    );
}

#[test]
fn bzimage_initrd_too_large() {
    let image = bzimage(
        4,
        0x020F,
        loadflags::LOADED_HIGH,
        xloadflags::CAN_BE_LOADED_ABOVE_4G,
        0x3000,
    );
    let err = layout(input(image, initrd(2 * MIB as usize), "", 2 * MIB)).unwrap_err();
    assert_eq!(
        err,
        KernelLayoutError::InitrdTooLarge {
            path: "/boot/initrd".into(),
            size: 2 * MIB,
            max: 2 * MIB - 1
        }
    );
    assert_eq!(
        err.to_string(),
        "/boot/initrd: initrd of 2097152 bytes does not fit below 0x1fffff"
    );
}

#[test]
fn old_protocols_and_zimage() {
    // 2.01, loaded high: old real-mode area, the command line below 0x9a000, 0x20 magic.
    let image = bzimage(4, 0x0201, loadflags::LOADED_HIGH, 0, 0x3000);
    let l = layout(input(image, vec![], "root=/dev/vda", 512 * MIB)).unwrap();
    let cmdline_addr = 0x9A000 - 0x10; // (13 + 16) & !15
    assert_eq!(l.item_u32(key::SETUP_ADDR), Some(0x90000));
    assert_eq!(l.item_u32(key::CMDLINE_ADDR), Some(cmdline_addr));
    assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
    let setup = l.item(key::SETUP_DATA).unwrap();
    assert_eq!(&setup[0x20..0x24], &[0x3F, 0xA3, 0xF0, 0x9F]);
    assert_eq!(&setup[0x228..0x22C], &[0; 4], "no cmd_line_ptr before 2.02");
    assert_eq!(&setup[0x224..0x226], &(cmdline_addr as u16 - 0x200).to_le_bytes());
    assert_eq!(setup[0x211], loadflags::LOADED_HIGH | loadflags::CAN_USE_HEAP);
    // 2.00 zImage: protected-mode part at 0x10000, no heap.
    let image = bzimage(4, 0x0200, 0, 0, 0x3000);
    let l = layout(input(image, vec![], "", 512 * MIB)).unwrap();
    assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x10000));
    let setup = l.item(key::SETUP_DATA).unwrap();
    assert_eq!((setup[0x210], setup[0x211]), (0xB0, 0));
    // Before 2.00: refused.
    let image = bzimage(4, 0x01FF, 0, 0, 0x3000);
    let err = layout(input(image, vec![], "", 512 * MIB)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/boot/kernel: Linux boot protocol 1.255 is older than 2.00, which this loader needs"
    );
}

#[test]
fn vga_parameter() {
    let image = bzimage(4, 0x020F, loadflags::LOADED_HIGH, 0, 0x3000);
    let mode = |cmdline: &str| {
        layout(input(image.clone(), vec![], cmdline, 512 * MIB))
            .map(|l| u16::from_le_bytes(l.item(key::SETUP_DATA).unwrap()[0x1FA..0x1FC].try_into().unwrap()))
    };
    let untouched = u16::from_le_bytes([image[0x1FA], image[0x1FB]]);
    assert_eq!(mode("quiet"), Ok(untouched));
    assert_eq!(mode("vga=0x317 quiet"), Ok(0x317));
    assert_eq!(mode("vga=791"), Ok(791));
    assert_eq!(mode("vga=010"), Ok(8));
    assert_eq!(mode("vga=ask"), Ok(0xFFFD));
    assert_eq!(mode("a vga=normal"), Ok(0xFFFF));
    assert_eq!(mode("vga=ext"), Ok(0xFFFE));
    assert_eq!(mode("vga=foo"), Err(KernelLayoutError::InvalidVga("foo".into())));
    assert_eq!(mode("vga=12x"), Err(KernelLayoutError::InvalidVga("12x".into())));
    assert!(mode("vga=0x").is_err());
    assert!(mode("vga=99999999999").is_err());
}

#[test]
fn bzimage_errors() {
    // setup_sects past the end of the file.
    let image = bzimage(20, 0x020F, loadflags::LOADED_HIGH, 0, 0x1000);
    assert_eq!(
        layout(input(image, vec![], "", 512 * MIB)).unwrap_err(),
        KernelLayoutError::SetupBeyondImage {
            path: "/boot/kernel".into(),
            setup_size: 21 * 512,
            len: 0x1000
        }
    );
    let image = bzimage(4, 0x020F, loadflags::LOADED_HIGH, 0, 0x3000);
    assert_eq!(
        layout(input(
            image.clone(),
            [initrd(1), initrd(1)].concat(),
            "",
            512 * MIB
        ))
        .unwrap_err(),
        KernelLayoutError::TooManyInitrds {
            path: "/boot/kernel".into(),
            count: 2
        }
    );
    assert_eq!(
        layout(input(image.clone(), vec![], "a\0b", 512 * MIB))
            .unwrap_err()
            .to_string(),
        "the kernel command line contains a NUL byte at offset 1"
    );
    assert!(matches!(
        layout(input(image, vec![], "", 5 << 30)),
        Err(KernelLayoutError::BadRamSize { .. })
    ));
}

#[test]
fn unrecognised_kernels() {
    for image in [
        vec![],
        vec![0u8; 100],
        vec![0xAB; 0x10000],
        b"#!/bin/sh\necho hi\n".to_vec(),
    ] {
        let err = layout(input(image, vec![], "", 512 * MIB)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/boot/kernel: neither a bzImage, an ELF (PVH) nor a multiboot kernel"
        );
    }
}

// --- ELF ---------------------------------------------------------------------------------

/// The parser's own program-header type describes the headers the tests write.
type Ph = Phdr;

fn elf(is64: bool, machine: u16, e_flags: u32, entry: u64, phs: &[Ph], len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len];
    d[..4].copy_from_slice(b"\x7fELF");
    d[4] = if is64 { 2 } else { 1 };
    d[5] = 1;
    d[6] = 1;
    put16(&mut d, 16, 2);
    put16(&mut d, 18, machine);
    put32(&mut d, 20, 1);
    let (phoff, entsize) = if is64 { (64, 56) } else { (52, 32) };
    if is64 {
        put64(&mut d, 24, entry);
        put64(&mut d, 32, phoff as u64);
        put32(&mut d, 48, e_flags);
        put16(&mut d, 52, 64);
        put16(&mut d, 54, entsize as u16);
        put16(&mut d, 56, phs.len() as u16);
    } else {
        put32(&mut d, 24, entry as u32);
        put32(&mut d, 28, phoff as u32);
        put32(&mut d, 36, e_flags);
        put16(&mut d, 40, 52);
        put16(&mut d, 42, entsize as u16);
        put16(&mut d, 44, phs.len() as u16);
    }
    for (i, p) in phs.iter().enumerate() {
        let at = phoff + i * entsize;
        put32(&mut d, at, p.kind);
        if is64 {
            put32(&mut d, at + 4, p.flags);
            put64(&mut d, at + 8, p.offset);
            put64(&mut d, at + 16, p.vaddr);
            put64(&mut d, at + 24, p.paddr);
            put64(&mut d, at + 32, p.filesz);
            put64(&mut d, at + 40, p.memsz);
            put64(&mut d, at + 48, p.align);
        } else {
            put32(&mut d, at + 4, p.offset as u32);
            put32(&mut d, at + 8, p.vaddr as u32);
            put32(&mut d, at + 12, p.paddr as u32);
            put32(&mut d, at + 16, p.filesz as u32);
            put32(&mut d, at + 20, p.memsz as u32);
            put32(&mut d, at + 24, p.flags);
            put32(&mut d, at + 28, p.align as u32);
        }
    }
    d
}

fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&(name.len() as u32).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&kind.to_le_bytes());
    n.extend_from_slice(name);
    n.resize(n.len().next_multiple_of(4), 0);
    n.extend_from_slice(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

const LOAD: u32 = PT_LOAD;
const TEXT: u64 = 0x1000;
const NOTES: u64 = 0x1200;
const DATA: u64 = 0x1400;
const PVH_LEN: usize = 0x1600;

/// An ELF with a PVH note and two PT_LOADs: text at 0x100000 (0x180 bytes, 0x200 in memory)
/// and data at 0x200000 (0x10 bytes, 0x1000 in memory); a GNU note before the Xen ones.
fn pvh_elf(is64: bool, entry_note: u64) -> Vec<u8> {
    let mut notes = note(b"GNU\0", 3, &[0x11; 20]);
    notes.extend(note(b"Xen\0", 6, b"linux\0"));
    if is64 {
        notes.extend(note(b"Xen\0", 18, &entry_note.to_le_bytes()));
    } else {
        notes.extend(note(b"Xen\0", 18, &(entry_note as u32).to_le_bytes()));
    }
    let kbase = if is64 { 0xFFFF_FFFF_8000_0000 } else { 0xC000_0000 };
    let phs = [
        Ph {
            kind: LOAD,
            flags: PF_X | 4,
            offset: TEXT,
            vaddr: kbase + 0x100000,
            paddr: 0x100000,
            filesz: 0x180,
            memsz: 0x200,
            align: 0x1000,
        },
        Ph {
            kind: LOAD,
            flags: 6,
            offset: DATA,
            vaddr: kbase + 0x200000,
            paddr: 0x200000,
            filesz: 0x10,
            memsz: 0x1000,
            align: 0x1000,
        },
        Ph {
            kind: PT_NOTE,
            flags: 4,
            offset: NOTES,
            vaddr: 0,
            paddr: 0,
            filesz: notes.len() as u64,
            memsz: notes.len() as u64,
            align: 4,
        },
    ];
    let machine = if is64 { EM_X86_64 } else { EM_386 };
    let mut d = elf(is64, machine, 0, kbase + 0x100000, &phs, PVH_LEN);
    for i in 0..0x180 {
        d[TEXT as usize + i] = 0x90 ^ i as u8;
    }
    d[DATA as usize..DATA as usize + 0x10].fill(0xDA);
    d[NOTES as usize..NOTES as usize + notes.len()].copy_from_slice(&notes);
    d
}

#[test]
fn pvh_items_and_segments() {
    for is64 in [true, false] {
        let image = pvh_elf(is64, 0x1_0010_0040);
        let mut i = input(image.clone(), initrd(0x2345), "console=hvc0", 512 * MIB);
        i.acpi_data_size = 0x10000;
        let l = layout(i).unwrap();
        assert_eq!(l.format, KernelFormat::Pvh);
        let want_entry = 0x0010_0040;
        assert_eq!(
            l.item_u32(key::KERNEL_ENTRY),
            Some(want_entry),
            "low 32 bits of the note"
        );
        assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x101000));
        assert_eq!(l.item(key::KERNEL_DATA), None);
        assert_eq!(l.item(key::CMDLINE_ADDR), None);
        assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(13));
        assert_eq!(l.item(key::CMDLINE_DATA), Some(&b"console=hvc0\0"[..]));
        assert_eq!(l.item_u32(key::SETUP_SIZE), Some(8192));
        let setup = l.item(key::SETUP_DATA).unwrap();
        assert_eq!(setup.len(), 8192);
        assert_eq!(&setup[..PVH_LEN], &image[..]);
        assert!(setup[PVH_LEN..].iter().all(|&b| b == 0));
        assert_eq!(l.item(key::SETUP_ADDR), None);
        assert_eq!(
            l.item_u32(key::INITRD_ADDR),
            Some((0x2000_0000 - 0x10000 - 1 - 0x2345) & !0xFFF)
        );
        assert_eq!(l.item_u32(key::INITRD_SIZE), Some(0x2345));
        assert_eq!(l.segments.len(), 2);
        assert_eq!(l.segments[0].addr, 0x100000);
        assert_eq!(
            &l.segments[0].bytes[..0x180],
            &image[TEXT as usize..TEXT as usize + 0x180]
        );
        assert_eq!(&l.segments[0].bytes[0x180..], &[0; 0x80]);
        assert_eq!(l.segments[1].addr, 0x200000);
        assert_eq!(l.segments[1].bytes.len(), 0x1000);
        assert_eq!(
            &l.segments[1].bytes[..0x11],
            &[[0xDA; 0x10].as_slice(), &[0]].concat()[..]
        );
    }
}

#[test]
fn pvh_errors() {
    let err = |image: Vec<u8>| layout(input(image, vec![], "", 512 * MIB)).unwrap_err();
    // No note (the entry's value 0 counts as none, as in QEMU).
    assert_eq!(
        err(pvh_elf(true, 0)),
        KernelLayoutError::NoPvhNote {
            path: "/boot/kernel".into()
        }
    );
    let mut no_note = pvh_elf(true, 0x100000);
    no_note[NOTES as usize..DATA as usize].fill(0);
    assert_eq!(
        err(no_note).to_string(),
        "/boot/kernel: ELF kernel without a PVH entry note (Xen note type 18): cannot boot it"
    );
    // e_flags QEMU refuses.
    let mut flagged = pvh_elf(true, 0x100000);
    put32(&mut flagged, 48, 4);
    assert_eq!(
        err(flagged),
        KernelLayoutError::ElfFlags {
            path: "/boot/kernel".into(),
            flags: 4
        }
    );
    // Big-endian.
    let mut be = pvh_elf(true, 0x100000);
    be[5] = 2;
    assert!(matches!(err(be), KernelLayoutError::BadElf { reason, .. } if reason == "not little-endian"));
    // A segment outside RAM.
    let image = pvh_elf(true, 0x100000);
    assert_eq!(
        layout(input(image, vec![], "", 0x180000))
            .unwrap_err()
            .to_string(),
        "/boot/kernel: segment 1 at 0x200000..0x201000 is outside the 0x180000 bytes of RAM below 4 GiB"
    );
    // Segment data past the end of the file.
    let mut short = pvh_elf(true, 0x100000);
    short.truncate(DATA as usize + 8);
    assert!(
        matches!(err(short), KernelLayoutError::BadElf { reason, .. } if reason.contains("past the end"))
    );
    // filesz > memsz.
    let mut fat = pvh_elf(true, 0x100000);
    put64(&mut fat, 64 + 40, 0x10);
    assert!(matches!(err(fat), KernelLayoutError::BadElf { reason, .. } if reason.contains("file size")));
}

// --- multiboot ---------------------------------------------------------------------------

fn mb_header(flags: u32, addrs: [u32; 5]) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [
        multiboot1::HEADER_MAGIC,
        flags,
        0u32.wrapping_sub(multiboot1::HEADER_MAGIC).wrapping_sub(flags),
    ]
    .into_iter()
    .chain(addrs)
    {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h
}

/// An a.out-kludge kernel: loaded at 0x100000 from file offset 0, header at 0x20, 0x1000
/// bytes of file, bss to 0x102000, entry 0x100040.
fn aout(load_end: u32, bss_end: u32) -> Vec<u8> {
    let mut d: Vec<u8> = (0..0x1000).map(|i| (i % 253) as u8).collect();
    let h = mb_header(
        header_flags::AOUT_KLUDGE | header_flags::MEMORY_INFO,
        [0x100020, 0x100000, load_end, bss_end, 0x100040],
    );
    d[0x20..0x40].copy_from_slice(&h);
    d
}

#[test]
fn multiboot_aout_layout() {
    let image = aout(0, 0x102000);
    let modules = vec![
        Blob::new("mod1 arg=1", vec![0x11; 100]),
        Blob::new("m,2", vec![0x22; 5000]),
    ];
    let l = layout(KernelInput {
        kernel: Blob::new("kernel.elf", image.clone()),
        initrds: modules,
        cmdline: "console=ttyS0".into(),
        below_4g_mem_size: 512 * MIB,
        acpi_data_size: 0,
    })
    .unwrap();
    assert_eq!(l.format, KernelFormat::Multiboot);
    assert!(l.segments.is_empty());
    assert_eq!(l.item_u32(key::KERNEL_ENTRY), Some(0x100040));
    assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
    assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x6000));
    assert_eq!(l.item_u32(key::INITRD_ADDR), Some(0x9500));
    assert_eq!(l.item_u32(key::INITRD_SIZE), Some(88));
    let buf = l.item(key::KERNEL_DATA).unwrap();
    assert_eq!(buf.len(), 0x6000);
    assert_eq!(&buf[..0x1000], &image[..]);
    assert!(buf[0x1000..0x2000].iter().all(|&b| b == 0), "bss");
    // Module list at the page after the kernel, then the strings: modules', kernel's, name.
    let module = |i: usize| Module::read_from_bytes(&buf[0x2000 + 16 * i..0x2010 + 16 * i]).unwrap();
    let (m0, m1) = (module(0), module(1));
    assert_eq!(
        (m0.mod_start.get(), m0.mod_end.get(), m0.string.get()),
        (0x103000, 0x103000 + 100, 0x102020)
    );
    assert_eq!(
        (m1.mod_start.get(), m1.mod_end.get(), m1.string.get()),
        (0x104000, 0x104000 + 5000, 0x10202B)
    );
    assert_eq!(
        &buf[0x2020..0x2049],
        b"mod1 arg=1\0m,2\0kernel.elf console=ttyS0\0\0"
    );
    assert_eq!(&buf[0x2049..0x2050], b"minnow\0");
    assert_eq!(&buf[0x3000..0x3064], &[0x11; 100]);
    assert_eq!(&buf[0x4000..0x4000 + 5000], &[0x22; 5000]);
    assert!(buf[0x4000 + 5000..].iter().all(|&b| b == 0));

    let mbi = l.item(key::INITRD_DATA).unwrap();
    assert_eq!(mbi.len(), 88);
    let info = Info::read_from_bytes(&mbi[..68]).unwrap();
    assert_eq!(info.flags.get(), 0x24F);
    assert_eq!(
        (info.mem_lower.get(), info.mem_upper.get()),
        (0, 0),
        "the firmware fills them"
    );
    assert_eq!(info.boot_device.get(), 0x8000_FFFF);
    assert_eq!(info.cmdline.get(), 0x10202F);
    assert_eq!((info.mods_count.get(), info.mods_addr.get()), (2, 0x102000));
    assert_eq!((info.mmap_length.get(), info.mmap_addr.get()), (0, 0x9000));
    assert_eq!(info.boot_loader_name.get(), 0x102049);
    assert!(mbi[68..].iter().all(|&b| b == 0));
}

#[test]
fn multiboot_aout_sizes_and_no_modules() {
    // load_end_addr set, no bss: the image is exactly load_end - load_addr.
    let l = layout(input(aout(0x100800, 0), vec![], "", 512 * MIB)).unwrap();
    let buf = l.item(key::KERNEL_DATA).unwrap();
    assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x2000));
    assert!(buf[..0x800] == aout(0x100800, 0)[..0x800]);
    assert!(buf[0x800..0x1000].iter().all(|&b| b == 0));
    let info = Info::read_from_bytes(&l.item(key::INITRD_DATA).unwrap()[..68]).unwrap();
    assert_eq!((info.mods_count.get(), info.mods_addr.get()), (0, 0x101000));
    assert_eq!(info.cmdline.get(), 0x101000);
    assert_eq!(&buf[0x1000..0x101E], b"/boot/kernel \0minnow\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(info.boot_loader_name.get(), 0x101000 + 14);
}

#[test]
fn multiboot_aout_errors() {
    let err = |image: Vec<u8>| {
        layout(input(image, vec![], "", 512 * MIB))
            .unwrap_err()
            .to_string()
    };
    assert!(err(aout(0x0F_0000, 0)).contains("load_end_addr 0xf0000 is below load_addr"));
    assert!(err(aout(0, 0x100800)).contains("bss_end_addr"));
    assert!(err(aout(0x102000, 0)).contains("run past the end of the file"));
    let mut h = aout(0, 0);
    h[0x20..0x40].copy_from_slice(&mb_header(
        header_flags::AOUT_KLUDGE,
        [0x100020, 0x100040, 0, 0, 0],
    ));
    assert!(err(h).contains("load_addr 0x100040 is above header_addr 0x100020"));
    let mut h = aout(0, 0);
    h[0x20..0x40].copy_from_slice(&mb_header(
        header_flags::AOUT_KLUDGE,
        [0x100100, 0x100000, 0, 0, 0],
    ));
    assert!(err(h).contains("more than the header's offset"));
    // A kernel ending past RAM.
    let e = layout(input(aout(0, 0x4000_0000), vec![], "", 512 * MIB)).unwrap_err();
    assert!(matches!(e, KernelLayoutError::OutsideRam { .. }), "{e}");
    // No kludge flag and not an ELF.
    let mut h = aout(0, 0);
    h[0x20..0x40].copy_from_slice(&mb_header(0, [0; 5]));
    assert!(err(h).contains("must be an ELF"));
}

/// A multiboot ELF: one executable segment linked at 0xC0100000, loaded at 0x100000, with
/// the header in it, and a bss segment.
fn multiboot_elf(is64: bool, machine: u16) -> Vec<u8> {
    let phs = [
        Ph {
            kind: LOAD,
            flags: PF_X | 4,
            offset: 0x1000,
            vaddr: 0xC010_0000,
            paddr: 0x100000,
            filesz: 0x100,
            memsz: 0x100,
            align: 0x1000,
        },
        Ph {
            kind: LOAD,
            flags: 6,
            offset: 0x1100,
            vaddr: 0xC010_2000,
            paddr: 0x102000,
            filesz: 0,
            memsz: 0x800,
            align: 0x1000,
        },
    ];
    let mut d = elf(is64, machine, 0, 0xC010_0010, &phs, 0x1100);
    d[0x1000..0x100C].copy_from_slice(&mb_header(0, [0; 5])[..12]);
    d[0x1010..0x1020].fill(0xCC);
    d
}

#[test]
fn multiboot_elf_layout() {
    let image = multiboot_elf(false, EM_386);
    let l = layout(input(image.clone(), vec![], "x", 512 * MIB)).unwrap();
    assert_eq!(l.format, KernelFormat::Multiboot);
    assert_eq!(
        l.item_u32(key::KERNEL_ENTRY),
        Some(0x100010),
        "entry moved to the physical address"
    );
    assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
    // [0x100000, 0x102800) page-aligned, then one page of strings.
    assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x4000));
    let buf = l.item(key::KERNEL_DATA).unwrap();
    assert_eq!(&buf[..0x100], &image[0x1000..0x1100]);
    assert!(buf[0x100..0x3000].iter().all(|&b| b == 0));
    assert_eq!(&buf[0x3000..0x3010], b"/boot/kernel x\0m");
    // A 64-bit ELF without the kludge is refused, as by QEMU; other machines too.
    let e = layout(input(multiboot_elf(true, EM_X86_64), vec![], "", 512 * MIB)).unwrap_err();
    assert_eq!(
        e,
        KernelLayoutError::Multiboot64 {
            path: "/boot/kernel".into()
        }
    );
    let e = layout(input(multiboot_elf(false, 40), vec![], "", 512 * MIB)).unwrap_err();
    assert_eq!(
        e,
        KernelLayoutError::MultibootMachine {
            path: "/boot/kernel".into(),
            machine: 40
        }
    );
    // QEMU 7.2 with `-kernel mbelf -initrd mod1 -append x` (a 100-byte module): 0x5000.
    let one = |image: Vec<u8>| KernelInput {
        kernel: Blob::new("mbelf", image),
        initrds: vec![Blob::new("mod1", vec![0x11; 100])],
        cmdline: "x".into(),
        below_4g_mem_size: 512 * MIB,
        acpi_data_size: 0,
    };
    let l = layout(one(image)).unwrap();
    assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x5000));
    // The multiboot header wins over a PVH note (QEMU tries multiboot first); QEMU 7.2 gives
    // entry 0x100000 and size 0x103000 for this one.
    let mut both = pvh_elf(false, 0x100000);
    both[0x1000..0x100C].copy_from_slice(&mb_header(0, [0; 5])[..12]);
    let l = layout(one(both)).unwrap();
    assert_eq!(l.format, KernelFormat::Multiboot);
    assert_eq!(l.item_u32(key::KERNEL_ENTRY), Some(0x100000));
    assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x103000));
}

#[test]
fn multiboot_module_argument_splitting() {
    assert_eq!(multiboot_modules("a b,c"), ["a b", "c"]);
    assert_eq!(multiboot_modules("a,,b,c d=1"), ["a,b", "c d=1"]);
    assert_eq!(multiboot_modules(""), Vec::<String>::new());
}

/// Tiny deterministic generator for the corruption test.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn truncated_and_corrupted_images_never_panic() {
    let images = [
        bzimage(
            4,
            0x020F,
            loadflags::LOADED_HIGH,
            xloadflags::CAN_BE_LOADED_ABOVE_4G,
            0x3000,
        ),
        pvh_elf(true, 0x100000),
        pvh_elf(false, 0x100000),
        aout(0, 0x102000),
        multiboot_elf(false, EM_386),
    ];
    let mut rng = Lcg(1);
    for image in &images {
        for len in (0..image.len()).step_by(7).chain([image.len()]) {
            let _ = layout(input(image[..len].to_vec(), initrd(10), "vga=1", 64 * MIB));
        }
        for _ in 0..2000 {
            let mut bad = image.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = rng.next() as usize % bad.len();
                // Mostly header bytes, where it matters.
                let at = if rng.next().is_multiple_of(2) {
                    at % 0x280
                } else {
                    at
                };
                bad[at] = rng.next() as u8;
                if rng.next().is_multiple_of(8) {
                    let v = [0u8, 0xFF, 0x7F, 0x80][rng.next() as usize % 4];
                    let end = (at + 8).min(bad.len());
                    bad[at..end].fill(v);
                }
            }
            let _ = layout(input(bad, initrd(10), "", 64 * MIB));
        }
    }
}

// --- the real kernel, against QEMU 7.2 ------------------------------------------------------

const CACHE: &str = "/root/.cache/minnow";
const CACHED_PACKAGE: &str = "linux-image-6.1.0-56-cloud-amd64=6.1.192-2";
/// The initramfs `cargo xtask guest` built when the QEMU values were taken; a stand-in of the
/// same size keeps the check independent of later rebuilds.
const QEMU_INITRD_SIZE: usize = 0x1E_4474;

fn cached(file: &str) -> Option<Vec<u8>> {
    let path = Path::new(CACHE).join(file);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            println!("not run: {} missing (cargo xtask guest)", path.display());
            None
        }
    }
}

fn same_kernel() -> bool {
    let package = std::fs::read_to_string(Path::new(CACHE).join("vmlinuz.package")).unwrap_or_default();
    if package.trim() != CACHED_PACKAGE {
        println!(
            "not run: the cached kernel is {:?}, the QEMU values are for {CACHED_PACKAGE}",
            package.trim()
        );
        return false;
    }
    true
}

fn debian(file: &str, bytes: Vec<u8>) -> KernelInput {
    KernelInput {
        kernel: Blob::new(format!("{CACHE}/{file}"), bytes),
        initrds: vec![Blob::new("initramfs.cpio", vec![0; QEMU_INITRD_SIZE])],
        cmdline: "console=ttyS0".into(),
        below_4g_mem_size: 512 * MIB,
        acpi_data_size: 0,
    }
}

/// `qemu-system-x86_64 -M microvm -m 512 -kernel vmlinuz -initrd ... -append console=ttyS0
/// -trace 'fw_cfg_add_i32'` with QEMU 7.2.
#[test]
fn debian_bzimage_matches_qemu() {
    let Some(vmlinuz) = cached("vmlinuz") else { return };
    if !same_kernel() {
        return;
    }
    let len = vmlinuz.len();
    let l = layout(debian("vmlinuz", vmlinuz.clone())).unwrap();
    assert_eq!(l.format, KernelFormat::BzImage { protocol: 0x020F });
    assert_eq!(l.item_u32(key::SETUP_ADDR), Some(0x10000));
    assert_eq!(l.item_u32(key::SETUP_SIZE), Some(0x5000));
    assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
    assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0xD8_27C0));
    assert_eq!(l.item(key::KERNEL_DATA), Some(&vmlinuz[0x5000..]));
    assert_eq!(l.item_u32(key::CMDLINE_ADDR), Some(0x20000));
    assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(0xE));
    assert_eq!(l.item_u32(key::INITRD_ADDR), Some(0x1FE1_B000));
    assert_eq!(l.item_u32(key::INITRD_SIZE), Some(0x1E_4474));
    let setup = l.item(key::SETUP_DATA).unwrap();
    assert_eq!(setup.len(), 0x5000);
    assert_eq!(&setup[0x228..0x22C], &0x20000u32.to_le_bytes());
    assert_eq!(
        &setup[0x218..0x220],
        &[0x00, 0xB0, 0xE1, 0x1F, 0x74, 0x44, 0x1E, 0x00]
    );
    assert_eq!(setup[0x210], 0xB0);
    assert_eq!(&setup[0x224..0x226], &0xFE00u16.to_le_bytes());
    assert_eq!(len, 0x5000 + 0xD8_27C0);
}

#[test]
fn debian_pvh_matches_qemu() {
    let Some(vmlinux) = cached("vmlinux") else { return };
    if !same_kernel() {
        return;
    }
    let l = layout(debian("vmlinux", vmlinux.clone())).unwrap();
    assert_eq!(l.format, KernelFormat::Pvh);
    assert_eq!(l.item_u32(key::KERNEL_ENTRY), Some(0x100_0850));
    assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100_0000));
    assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x2E0_0000));
    assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(0xE));
    assert_eq!(l.item_u32(key::SETUP_SIZE), Some(0x2000));
    assert_eq!(l.item(key::SETUP_DATA), Some(&vmlinux[..0x2000]));
    assert_eq!(l.item_u32(key::INITRD_ADDR), Some(0x1FE1_B000));
    let spans: Vec<(u64, usize)> = l.segments.iter().map(|s| (s.addr, s.bytes.len())).collect();
    assert_eq!(
        spans,
        [
            (0x100_0000, 0x182_6634),
            (0x2A0_0000, 0x61_A000),
            (0x301_A000, 0x3_4000),
            (0x304_E000, 0xDB_2000)
        ]
    );
    assert_eq!(&l.segments[0].bytes[..16], &vmlinux[0x20_0000..0x20_0010]);
}
