use super::*;
use crate::fakes::{FakeFwCfg, FakeMemory};
use minnow_bootproto::fw_cfg::encode_name;
use minnow_bootproto::table_loader::{
    encode, AddChecksum, AddPointer, Allocate, WritePointer, ZONE_FSEG, ZONE_HIGH,
};

fn n(s: &str) -> [u8; FILE_LEN] {
    encode_name(s).unwrap()
}
fn alloc(f: &str, align: u32, zone: u8) -> [u8; 128] {
    encode(&Command::Allocate(&Allocate {
        file: n(f),
        align: align.into(),
        zone,
    }))
}
fn ptr(d: &str, s: &str, offset: u32, size: u8) -> [u8; 128] {
    encode(&Command::AddPointer(&AddPointer {
        dest_file: n(d),
        src_file: n(s),
        offset: offset.into(),
        size,
    }))
}
fn csum(f: &str, offset: u32, start: u32, length: u32) -> [u8; 128] {
    encode(&Command::AddChecksum(&AddChecksum {
        file: n(f),
        offset: offset.into(),
        start: start.into(),
        length: length.into(),
    }))
}
fn script(cmds: &[[u8; 128]]) -> Vec<u8> {
    cmds.concat()
}
fn ram_map() -> MemoryMap {
    let mut m = MemoryMap::new();
    m.set(0, 0x9E000, e820::RAM).unwrap();
    m.set(0x100000, 0x7F00000, e820::RAM).unwrap();
    m
}

/// A QEMU-shaped script: tables blob (HIGH), RSDP (FSEG) pointing at the XSDT inside it.
fn qemu_like() -> FakeFwCfg {
    let mut rsdp = vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[15] = 2;
    rsdp[24..32].copy_from_slice(&0x40u64.to_le_bytes()); // XSDT at tables + 0x40
    let mut tables = vec![0u8; 0x80];
    tables[0x40..0x44].copy_from_slice(b"XSDT");
    tables[0x40 + 9] = 0; // checksum byte, left 0 by QEMU
    FakeFwCfg::new()
        .add_file("etc/acpi/tables", tables)
        .add_file("etc/acpi/rsdp", rsdp)
        .add_file(
            "etc/table-loader",
            script(&[
                alloc("etc/acpi/tables", 64, ZONE_HIGH),
                alloc("etc/acpi/rsdp", 16, ZONE_FSEG),
                ptr("etc/acpi/rsdp", "etc/acpi/tables", 24, 8),
                csum("etc/acpi/rsdp", 8, 0, 20),
                csum("etc/acpi/tables", 0x40 + 9, 0x40, 0x40),
            ]),
        )
}

#[test]
fn a_qemu_shaped_script_places_patches_and_checksums_the_tables() {
    let (mut cfg, mut mem, mut map) = (qemu_like(), FakeMemory::default(), ram_map());
    let rsdp = install(&mut cfg, &mut mem, &mut map, &[]).unwrap().unwrap();
    assert_eq!(rsdp, layout::FSEG_ZONE);
    let xsdt = u64::from_le_bytes(mem.bytes(rsdp + 24, 8).try_into().unwrap());
    assert_eq!(mem.bytes(xsdt, 4), b"XSDT");
    let tables = xsdt - 0x40;
    assert_eq!(tables % 64, 0);
    assert!(tables + 0x80 <= 0x8000000, "HIGH zone is at the top of RAM");
    assert!(!map.is_ram(tables, 0x80), "tables are reserved in e820");
    assert_eq!(tables % 4096, 0, "HIGH allocations take whole pages");
    assert_eq!(
        map.ram_end_from(0x100000),
        Some(tables),
        "no RAM sliver above the tables"
    );
    let sum = |a, n| mem.bytes(a, n).iter().fold(0u8, |s, &b| s.wrapping_add(b));
    assert_eq!(sum(rsdp, 20), 0);
    assert_eq!(sum(xsdt, 0x40), 0);
}

#[test]
fn byte_sum_matches_a_byte_loop() {
    use crate::memory::byte_sum;
    let data: Vec<u8> = (0..256u32)
        .map(|i| (i * 151 + 7) as u8)
        .chain([255u8; 8192])
        .collect();
    for len in [0, 1, 7, 8, 9, 255, 256, 300, 512, 1024, 4096, 8448] {
        let want = data[..len].iter().fold(0u8, |s, &b| s.wrapping_add(b));
        assert_eq!(byte_sum(&data[..len]), want, "len {len}");
    }
}

#[test]
fn tables_avoid_what_the_vmm_already_placed() {
    // QEMU's microvm puts the initrd flush against the top of RAM (no ACPI gap).
    let (mut cfg, mut mem, mut map) = (qemu_like(), FakeMemory::default(), ram_map());
    let initrd = (0x8000000 - 0x1e4474 - 0xb8c, 0x1e4474);
    let rsdp = install(&mut cfg, &mut mem, &mut map, &[initrd]).unwrap().unwrap();
    let xsdt = u64::from_le_bytes(mem.bytes(rsdp + 24, 8).try_into().unwrap());
    assert!(xsdt + 0x40 <= initrd.0, "tables at {xsdt:#x} overlap the initrd");
    assert!(map.is_ram(initrd.0, initrd.1), "the initrd's range stays RAM");
}

#[test]
fn write_pointer_writes_the_address_back_into_fw_cfg() {
    let mut cfg = qemu_like().add_file("etc/vmgenid_addr", vec![0u8; 8]);
    let mut cmds = cfg.file_data("etc/table-loader").to_vec();
    cmds.extend(encode(&Command::WritePointer(&WritePointer {
        dest_file: n("etc/vmgenid_addr"),
        src_file: n("etc/acpi/tables"),
        dst_offset: 0.into(),
        src_offset: 0x40.into(),
        size: 8,
    })));
    let mut cfg2 = FakeFwCfg::new()
        .add_file("etc/acpi/tables", cfg.file_data("etc/acpi/tables").to_vec())
        .add_file("etc/acpi/rsdp", cfg.file_data("etc/acpi/rsdp").to_vec())
        .add_file("etc/vmgenid_addr", vec![0u8; 8])
        .add_file("etc/table-loader", cmds);
    let (mut mem, mut map) = (FakeMemory::default(), ram_map());
    let rsdp = install(&mut cfg2, &mut mem, &mut map, &[]).unwrap().unwrap();
    let xsdt = u64::from_le_bytes(mem.bytes(rsdp + 24, 8).try_into().unwrap());
    assert_eq!(cfg2.file_data("etc/vmgenid_addr"), xsdt.to_le_bytes());
    cfg.dma = false;
}

#[test]
fn malformed_scripts_fail_with_the_reason() {
    type Case = (Vec<[u8; 128]>, fn(&AcpiError) -> bool);
    let cases: Vec<Case> = vec![
        (vec![alloc("etc/nope", 64, ZONE_HIGH)], |e| {
            matches!(e, AcpiError::NoSuchFile(_))
        }),
        (vec![ptr("etc/acpi/rsdp", "etc/acpi/tables", 0, 8)], |e| {
            matches!(e, AcpiError::NotAllocated(_))
        }),
        (vec![alloc("etc/acpi/tables", 3, ZONE_HIGH)], |e| {
            matches!(e, AcpiError::BadAlignment(_, 3))
        }),
        (vec![alloc("etc/acpi/tables", 64, 9)], |e| {
            matches!(e, AcpiError::BadZone(_, 9))
        }),
        (
            vec![
                alloc("etc/acpi/tables", 64, ZONE_HIGH),
                alloc("etc/acpi/tables", 64, ZONE_HIGH),
            ],
            |e| matches!(e, AcpiError::AlreadyAllocated(_)),
        ),
        (
            vec![
                alloc("etc/acpi/tables", 64, ZONE_HIGH),
                ptr("etc/acpi/tables", "etc/acpi/tables", 0x7C, 8),
            ],
            |e| matches!(e, AcpiError::OutOfBounds(_)),
        ),
        (
            vec![
                alloc("etc/acpi/tables", 64, ZONE_HIGH),
                ptr("etc/acpi/tables", "etc/acpi/tables", 0, 3),
            ],
            |e| matches!(e, AcpiError::BadPointerSize(3)),
        ),
        (
            vec![
                alloc("etc/acpi/tables", 64, ZONE_HIGH),
                csum("etc/acpi/tables", 0, 0x40, 0x41),
            ],
            |e| matches!(e, AcpiError::OutOfBounds(_)),
        ),
    ];
    for (cmds, expected) in cases {
        let base = qemu_like();
        let mut cfg = FakeFwCfg::new()
            .add_file("etc/acpi/tables", base.file_data("etc/acpi/tables").to_vec())
            .add_file("etc/acpi/rsdp", base.file_data("etc/acpi/rsdp").to_vec())
            .add_file("etc/table-loader", script(&cmds));
        let (mut mem, mut map) = (FakeMemory::default(), ram_map());
        let err = install(&mut cfg, &mut mem, &mut map, &[]).unwrap_err();
        assert!(expected(&err), "unexpected error {err}");
        assert!(!format!("{err}").is_empty());
    }
    let mut cfg = FakeFwCfg::new().add_file("etc/table-loader", vec![0u8; 100]);
    let (mut mem, mut map) = (FakeMemory::default(), ram_map());
    assert_eq!(
        install(&mut cfg, &mut mem, &mut map, &[]).unwrap_err(),
        AcpiError::TruncatedScript(100)
    );
}

/// Random mutations of a QEMU-shaped script must give an error or tables, never a panic.
#[test]
fn mutated_scripts_never_panic() {
    let base = qemu_like();
    let script = base.file_data("etc/table-loader").to_vec();
    let mut rng = crate::fakes::Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..3000 {
        let mut s = script.clone();
        for _ in 0..1 + rng.next(6) {
            let at = rng.next(s.len() as u64) as usize;
            s[at] = match rng.next(3) {
                0 => 0xFF,
                1 => rng.next(5) as u8, // command numbers, small sizes
                _ => rng.next(256) as u8,
            };
        }
        let mut cfg = FakeFwCfg::new()
            .add_file("etc/acpi/tables", base.file_data("etc/acpi/tables").to_vec())
            .add_file("etc/acpi/rsdp", base.file_data("etc/acpi/rsdp").to_vec())
            .add_file("etc/table-loader", s);
        let (mut mem, mut map) = (FakeMemory::default(), ram_map());
        let _ = install(&mut cfg, &mut mem, &mut map, &[]);
    }
}

#[test]
fn no_script_means_no_acpi_and_unknown_commands_are_skipped() {
    let (mut mem, mut map) = (FakeMemory::default(), ram_map());
    assert_eq!(
        install(&mut FakeFwCfg::new(), &mut mem, &mut map, &[]).unwrap(),
        None
    );
    let mut cfg = FakeFwCfg::new().add_file("etc/table-loader", vec![0x55u8; 128]);
    assert_eq!(install(&mut cfg, &mut mem, &mut map, &[]).unwrap(), None);
}
