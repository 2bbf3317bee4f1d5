extern crate std;
use super::*;
use std::vec::Vec;

/// A note as QEMU reads one: name and descriptor each padded to `align` bytes.
fn note(name: &[u8], kind: u32, desc: &[u8], align: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(((name.len() + 1) as u32).to_le_bytes());
    v.extend((desc.len() as u32).to_le_bytes());
    v.extend(kind.to_le_bytes());
    let padded = |bytes: &[u8], v: &mut Vec<u8>| {
        v.extend(bytes);
        v.resize(v.len() + bytes.len().next_multiple_of(align) - bytes.len(), 0);
    };
    padded(&[name, &[0]].concat(), &mut v);
    padded(desc, &mut v);
    v
}

/// A minimal image of either class: header, then `phdrs` program headers right after it.
fn image(is_64: bool, machine: u16, phdrs: &[ProgramHeader]) -> Vec<u8> {
    let (ehsize, phentsize) = if is_64 { (64, 56) } else { (52, 32) };
    let mut b = std::vec![0u8; ehsize];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = if is_64 { 2 } else { 1 };
    b[5] = 1;
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    if is_64 {
        b[24..32].copy_from_slice(&0x10_1000u64.to_le_bytes());
        b[32..40].copy_from_slice(&(ehsize as u64).to_le_bytes());
        b[54..56].copy_from_slice(&(phentsize as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    } else {
        b[24..28].copy_from_slice(&0x10_1000u32.to_le_bytes());
        b[28..32].copy_from_slice(&(ehsize as u32).to_le_bytes());
        b[42..44].copy_from_slice(&(phentsize as u16).to_le_bytes());
        b[44..46].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    }
    for p in phdrs {
        if is_64 {
            for v in [p.kind, p.flags] {
                b.extend(v.to_le_bytes());
            }
            for v in [p.offset, p.vaddr, p.paddr, p.filesz, p.memsz, p.align] {
                b.extend(v.to_le_bytes());
            }
        } else {
            for v in [p.kind, p.offset as u32, p.vaddr as u32, p.paddr as u32] {
                b.extend(v.to_le_bytes());
            }
            for v in [p.filesz as u32, p.memsz as u32, p.flags, p.align as u32] {
                b.extend(v.to_le_bytes());
            }
        }
    }
    b
}

fn load(paddr: u64) -> ProgramHeader {
    ProgramHeader {
        kind: PT_LOAD,
        flags: PF_X,
        offset: 0,
        vaddr: paddr,
        paddr,
        filesz: 0x20,
        memsz: 0x1000,
        align: 0x1000,
    }
}

#[test]
fn reads_program_headers_of_both_classes_alike() {
    let phdrs = [load(0x10_0000), load(0x20_0000)];
    for is_64 in [false, true] {
        let machine = if is_64 { EM_X86_64 } else { EM_386 };
        let img = image(is_64, machine, &phdrs);
        let h = Header::parse(&img).unwrap();
        assert_eq!(
            (h.is_64, h.machine, h.entry, h.phnum),
            (is_64, machine, 0x10_1000, 2)
        );
        assert_eq!(h.phdr(&img, 0).unwrap(), phdrs[0]);
        assert_eq!(h.phdr(&img, 1).unwrap(), phdrs[1]);
        assert_eq!(h.phdr(&img, 2), Err(ElfError::ProgramHeaderOutside { index: 2 }));
        assert_eq!(h.phdr(&img, 0).unwrap().data(&img), Some(&img[..0x20]));
    }
}

#[test]
fn malformed_headers_are_errors() {
    let img = image(true, EM_X86_64, &[load(0x10_0000)]);
    assert_eq!(Header::parse(b"MZ\0\0"), Err(ElfError::NotElf));
    assert_eq!(Header::parse(&img[..20]), Err(ElfError::Truncated));
    let mut bad = img.clone();
    bad[4] = 3;
    assert_eq!(Header::parse(&bad), Err(ElfError::BadClass(3)));
    let mut bad = img.clone();
    bad[5] = 2;
    assert_eq!(Header::parse(&bad), Err(ElfError::NotLittleEndian));
    let mut bad = img.clone();
    bad[54] = 32;
    assert_eq!(Header::parse(&bad), Err(ElfError::ProgramHeaderSize(32)));
    let mut far = Header::parse(&img).unwrap();
    far.phoff = u64::MAX - 8;
    assert_eq!(
        far.phdr(&img, 1),
        Err(ElfError::ProgramHeaderOutside { index: 1 })
    );
}

#[test]
fn finds_the_pvh_note_among_others_at_either_alignment() {
    for align in [4usize, 8] {
        let mut notes = note(b"GNU", 3, &[1, 2, 3, 4, 5], align);
        notes.extend(note(b"Xen", 18, &0x100_0000u64.to_le_bytes(), align));
        let a = align as u64;
        assert_eq!(
            find_note(&notes, a, b"Xen", 18),
            Some(&0x100_0000u64.to_le_bytes()[..])
        );
        assert_eq!(find_note(&notes, a, b"Xen", 19), None);
        assert_eq!(
            find_note(&notes[..notes.len() - 4], a, b"Xen", 18),
            None,
            "truncated desc"
        );
    }
    let mut bad = note(b"Xen", 18, &[0; 4], 4);
    bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        find_note(&bad, 4, b"Xen", 18),
        None,
        "huge descsz does not overflow"
    );
}
