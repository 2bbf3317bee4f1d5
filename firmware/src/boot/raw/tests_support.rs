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
    bz[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
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
