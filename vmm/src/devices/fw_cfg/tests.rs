use super::*;
use minnow_bootproto::fw_cfg::{DmaAccess, FileEntry};
use zerocopy::{FromBytes, IntoBytes};

const RAM: usize = 4 << 20;
const DESC: u64 = 0x1000;
const BUF: u64 = 0x2000;

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).unwrap()
}

fn device() -> (FwCfg, GuestMemoryMmap) {
    let mem = memory();
    let dev = FwCfgBuilder::new()
        .ram_size(RAM as u64)
        .cpus(2, 4)
        .item(key::KERNEL_DATA, (0u8..=255).cycle().take(1000).collect())
        .file("etc/e820", vec![1, 2, 3])
        .unwrap()
        .file("bootorder", b"/rom@genroms/linuxboot_dma.bin\n".to_vec())
        .unwrap()
        .writable_file("etc/vmgenid_addr", vec![0; 8])
        .unwrap()
        .file("etc/acpi/tables", vec![0xAA; 100])
        .unwrap()
        .build(mem.clone())
        .unwrap();
    (dev, mem)
}

fn pio_select(dev: &mut FwCfg, key: u16) {
    dev.write(0, &key.to_le_bytes());
}

fn pio_read(dev: &mut FwCfg, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            let mut b = [0u8];
            dev.read(1, &mut b);
            b[0]
        })
        .collect()
}

/// Writes `desc` at DESC and starts the transfer the way the firmware does (low half only).
fn run(dev: &mut FwCfg, mem: &GuestMemoryMmap, desc: DmaAccess) -> u32 {
    mem.write_slice(desc.as_bytes(), GuestAddress(DESC)).unwrap();
    dev.write(DMA_LOW, &(DESC as u32).to_be_bytes());
    let mut control = [0u8; 4];
    mem.read_slice(&mut control, GuestAddress(DESC)).unwrap();
    u32::from_be_bytes(control)
}

fn guest(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
    v
}

#[test]
fn pio_signature_and_id() {
    let (mut dev, _) = device();
    pio_select(&mut dev, key::SIGNATURE);
    assert_eq!(pio_read(&mut dev, 4), b"QEMU");
    pio_select(&mut dev, key::ID);
    assert_eq!(pio_read(&mut dev, 4), 3u32.to_le_bytes());
    pio_select(&mut dev, key::IRQ0_OVERRIDE);
    assert_eq!(pio_read(&mut dev, 4), 1u32.to_le_bytes());
    pio_select(&mut dev, key::NB_CPUS);
    assert_eq!(pio_read(&mut dev, 2), 2u16.to_le_bytes());
    pio_select(&mut dev, key::MAX_CPUS);
    assert_eq!(pio_read(&mut dev, 2), 4u16.to_le_bytes());
    pio_select(&mut dev, key::RAM_SIZE);
    assert_eq!(pio_read(&mut dev, 8), (RAM as u64).to_le_bytes());
    // Past the end: zeros. A key nobody set (NUMA) reads as zeros too, as in QEMU.
    pio_select(&mut dev, key::SIGNATURE);
    assert_eq!(pio_read(&mut dev, 6), b"QEMU\0\0");
    pio_select(&mut dev, key::NUMA);
    assert_eq!(pio_read(&mut dev, 8), [0; 8]);
}

#[test]
fn dma_register_reads_the_signature() {
    let (mut dev, _) = device();
    let mut four = [0u8; 4];
    dev.read(DMA_HIGH, &mut four);
    assert_eq!(&four, b"QEMU");
    assert_eq!(u32::from_le_bytes(four), wire::DMA_SIGNATURE_HIGH_PORT);
    dev.read(DMA_LOW, &mut four);
    assert_eq!(&four, b" CFG");
    let sig: Vec<u8> = (DMA_HIGH..DMA_HIGH + 8)
        .map(|o| {
            let mut b = [0u8];
            dev.read(o, &mut b);
            b[0]
        })
        .collect();
    assert_eq!(sig, b"QEMU CFG");
}

#[test]
fn selecting_rewinds_the_offset() {
    let (mut dev, mem) = device();
    pio_select(&mut dev, key::SIGNATURE);
    assert_eq!(pio_read(&mut dev, 2), b"QE");
    pio_select(&mut dev, key::SIGNATURE);
    assert_eq!(pio_read(&mut dev, 4), b"QEMU");
    // A DMA select rewinds too, and PIO continues where DMA left off.
    let c = run(
        &mut dev,
        &mem,
        DmaAccess::select_then(key::SIGNATURE, dma::READ, 1, BUF),
    );
    assert_eq!((c, guest(&mem, BUF, 1)), (0, b"Q".to_vec()));
    assert_eq!(pio_read(&mut dev, 3), b"EMU");
}

#[test]
fn directory_is_sorted_and_encoded() {
    let (mut dev, mem) = device();
    // The firmware's read: count and 32 entries in one transfer.
    let len = 4 + 32 * 64;
    let c = run(
        &mut dev,
        &mem,
        DmaAccess::select_then(key::FILE_DIR, dma::READ, len as u32, BUF),
    );
    assert_eq!(c, 0);
    let dir = guest(&mem, BUF, len);
    assert_eq!(u32::from_be_bytes(dir[..4].try_into().unwrap()), 4);
    let entries: Vec<FileEntry> = dir[4..]
        .chunks(64)
        .map(|e| FileEntry::read_from_bytes(e).unwrap())
        .collect();
    let listed: Vec<(&[u8], u16, u32)> = entries[..4]
        .iter()
        .map(|e| (e.name_bytes(), e.select.get(), e.size.get()))
        .collect();
    assert_eq!(
        listed,
        [
            (&b"bootorder"[..], 0x20, 31),
            (b"etc/acpi/tables", 0x21, 100),
            (b"etc/e820", 0x22, 3),
            (b"etc/vmgenid_addr", 0x23, 8),
        ]
    );
    assert!(entries[4..].iter().all(|e| e.as_bytes().iter().all(|&b| b == 0)));
    assert_eq!(entries[0].reserved.get(), 0);
    // As QEMU, the item spans every slot.
    pio_select(&mut dev, key::FILE_DIR);
    assert_eq!(pio_read(&mut dev, 4 + 64 * 64 + 1).len(), 4 + 64 * 64 + 1);
    assert_eq!(dev.file_selector("etc/e820"), Some(0x22));
    // And the files read back through their selectors.
    pio_select(&mut dev, 0x22);
    assert_eq!(pio_read(&mut dev, 4), [1, 2, 3, 0]);
}

#[test]
fn dma_select_read_skip_and_past_the_end() {
    let (mut dev, mem) = device();
    let expected: Vec<u8> = (0u8..=255).cycle().take(1000).collect();
    let c = run(
        &mut dev,
        &mem,
        DmaAccess::select_then(key::KERNEL_DATA, dma::READ, 10, BUF),
    );
    assert_eq!((c, guest(&mem, BUF, 10)), (0, expected[..10].to_vec()));
    // Continue without SELECT: from offset 10.
    let c = run(&mut dev, &mem, DmaAccess::op(dma::READ, 6, BUF));
    assert_eq!((c, guest(&mem, BUF, 6)), (0, expected[10..16].to_vec()));
    // Skip 984 to offset 1000 - 0... then read across the end: data then zeros.
    let c = run(&mut dev, &mem, DmaAccess::op(dma::SKIP, 980, 0));
    assert_eq!(c, 0);
    mem.write_slice(&[0xEE; 32], GuestAddress(BUF)).unwrap();
    let c = run(&mut dev, &mem, DmaAccess::op(dma::READ, 32, BUF));
    let mut want = expected[996..].to_vec();
    want.resize(32, 0);
    assert_eq!((c, guest(&mem, BUF, 32)), (0, want));
    // Skip past the end is fine and reads stay zeros.
    assert_eq!(
        run(
            &mut dev,
            &mem,
            DmaAccess::select_then(key::SIGNATURE, dma::SKIP, 100, 0)
        ),
        0
    );
    mem.write_slice(&[0xEE; 4], GuestAddress(BUF)).unwrap();
    assert_eq!(run(&mut dev, &mem, DmaAccess::op(dma::READ, 4, BUF)), 0);
    assert_eq!(guest(&mem, BUF, 4), [0; 4]);
    // A large read past the end zero-fills all of it.
    mem.write_slice(&vec![0xEE; 20_000], GuestAddress(BUF)).unwrap();
    assert_eq!(
        run(
            &mut dev,
            &mem,
            DmaAccess::select_then(key::ID, dma::READ, 20_000, BUF)
        ),
        0
    );
    let got = guest(&mem, BUF, 20_000);
    assert_eq!(&got[..4], &3u32.to_le_bytes());
    assert!(got[4..].iter().all(|&b| b == 0));
    // SELECT alone only selects.
    assert_eq!(
        run(&mut dev, &mem, DmaAccess::select_then(key::SIGNATURE, 0, 4, BUF)),
        0
    );
    assert_eq!(pio_read(&mut dev, 4), b"QEMU");
}

#[test]
fn dma_out_of_memory_sets_error_and_touches_nothing() {
    let (mut dev, mem) = device();
    // Straddling the end of RAM: nothing written, offset unchanged.
    let near_end = RAM as u64 - 2;
    mem.write_slice(&[0x55, 0x55], GuestAddress(near_end)).unwrap();
    let c = run(
        &mut dev,
        &mem,
        DmaAccess::select_then(key::SIGNATURE, dma::READ, 4, near_end),
    );
    assert_eq!(c, dma::ERROR);
    assert_eq!(guest(&mem, near_end, 2), [0x55, 0x55]);
    assert_eq!(pio_read(&mut dev, 4), b"QEMU", "the failed read did not advance");
    // Entirely outside RAM, and an address + length that overflows.
    assert_eq!(
        run(&mut dev, &mem, DmaAccess::op(dma::READ, 4, 1 << 40)),
        dma::ERROR
    );
    assert_eq!(
        run(&mut dev, &mem, DmaAccess::op(dma::READ, 0x10, u64::MAX - 4)),
        dma::ERROR
    );
    // A selector outside the key space.
    assert_eq!(
        run(&mut dev, &mem, DmaAccess::select_then(0x3FFF, dma::READ, 4, BUF)),
        dma::ERROR
    );
    assert_eq!(run(&mut dev, &mem, DmaAccess::op(dma::SKIP, 4, 0)), dma::ERROR);
    // After a good select, all is well again.
    assert_eq!(
        run(
            &mut dev,
            &mem,
            DmaAccess::select_then(key::SIGNATURE, dma::READ, 4, BUF)
        ),
        0
    );
}

#[test]
fn descriptor_outside_memory_is_ignored() {
    let (mut dev, mem) = device();
    for addr in [RAM as u64, RAM as u64 + 0x1000, u64::MAX - 3, u64::MAX] {
        dev.write(DMA_HIGH, &((addr >> 32) as u32).to_be_bytes());
        dev.write(DMA_LOW, &(addr as u32).to_be_bytes());
    }
    // Half in RAM: the control word gets ERROR (QEMU writes it back), nothing else.
    let straddle = RAM as u64 - 8;
    mem.write_slice(
        DmaAccess::select_then(key::SIGNATURE, dma::READ, 4, BUF).as_bytes()[..8].as_ref(),
        GuestAddress(straddle),
    )
    .unwrap();
    dev.write(DMA_LOW, &(straddle as u32).to_be_bytes());
    assert_eq!(guest(&mem, straddle, 4), dma::ERROR.to_be_bytes());
    // The address register was cleared by each transfer: a low-half write alone works.
    assert_eq!(
        run(
            &mut dev,
            &mem,
            DmaAccess::select_then(key::SIGNATURE, dma::READ, 4, BUF)
        ),
        0
    );
    assert_eq!(guest(&mem, BUF, 4), b"QEMU");
}

#[test]
fn high_half_of_the_address_register() {
    let mem =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM), (GuestAddress(1 << 32), 0x10000)]).unwrap();
    let mut dev = FwCfgBuilder::new().build(mem.clone()).unwrap();
    let desc = (1u64 << 32) + 0x100;
    let d = DmaAccess::select_then(key::SIGNATURE, dma::READ, 4, (1 << 32) + 0x800);
    mem.write_slice(d.as_bytes(), GuestAddress(desc)).unwrap();
    dev.write(DMA_HIGH, &1u32.to_be_bytes());
    dev.write(DMA_LOW, &0x100u32.to_be_bytes());
    assert_eq!(guest(&mem, desc, 4), [0; 4]);
    assert_eq!(guest(&mem, (1 << 32) + 0x800, 4), b"QEMU");
    // One 8-byte write works too.
    mem.write_slice(d.as_bytes(), GuestAddress(desc)).unwrap();
    dev.write(DMA_HIGH, &desc.to_be_bytes());
    assert_eq!(guest(&mem, desc, 4), [0; 4]);
}

#[test]
fn dma_write_to_writable_and_read_only_files() {
    let (mut dev, mem) = device();
    let sel = dev.file_selector("etc/vmgenid_addr").unwrap();
    mem.write_slice(&0x1234_5678_9abc_u64.to_le_bytes(), GuestAddress(BUF))
        .unwrap();
    // As WRITE_POINTER does: skip to dst_offset, then write `size` bytes.
    assert_eq!(
        run(&mut dev, &mem, DmaAccess::select_then(sel, dma::SKIP, 2, 0)),
        0
    );
    assert_eq!(run(&mut dev, &mem, DmaAccess::op(dma::WRITE, 4, BUF)), 0);
    assert_eq!(
        dev.file_contents("etc/vmgenid_addr").unwrap(),
        [0, 0, 0xbc, 0x9a, 0x78, 0x56, 0, 0]
    );
    // Past the item's end: refused, unchanged.
    assert_eq!(run(&mut dev, &mem, DmaAccess::op(dma::WRITE, 4, BUF)), dma::ERROR);
    assert_eq!(
        dev.file_contents("etc/vmgenid_addr").unwrap(),
        [0, 0, 0xbc, 0x9a, 0x78, 0x56, 0, 0]
    );
    // From outside RAM: refused.
    assert_eq!(
        run(
            &mut dev,
            &mem,
            DmaAccess::select_then(sel, dma::WRITE, 4, 1 << 40)
        ),
        dma::ERROR
    );
    // Read-only files and keyed items: refused.
    let e820 = dev.file_selector("etc/e820").unwrap();
    assert_eq!(
        run(&mut dev, &mem, DmaAccess::select_then(e820, dma::WRITE, 2, BUF)),
        dma::ERROR
    );
    assert_eq!(dev.file_contents("etc/e820").unwrap(), [1, 2, 3]);
    assert_eq!(
        run(
            &mut dev,
            &mem,
            DmaAccess::select_then(key::SIGNATURE, dma::WRITE, 4, BUF)
        ),
        dma::ERROR
    );
    pio_select(&mut dev, key::SIGNATURE);
    assert_eq!(pio_read(&mut dev, 4), b"QEMU");
    // Data-port writes are ignored.
    dev.write(DATA, &[0x41]);
    assert_eq!(dev.file_contents("etc/e820").unwrap(), [1, 2, 3]);
    assert_eq!(dev.file_contents("etc/nope"), None);
}

#[test]
fn builder_refuses_bad_files_and_keys() {
    let long = "x".repeat(56);
    assert_eq!(
        FwCfgBuilder::new().file(&long, vec![]).unwrap_err(),
        FwCfgError::NameTooLong { name: long, len: 56 }
    );
    assert!(FwCfgBuilder::new().file(&"x".repeat(55), vec![]).is_ok());
    assert_eq!(
        FwCfgBuilder::new().file("", vec![]).unwrap_err(),
        FwCfgError::InvalidName("".into())
    );
    assert_eq!(
        FwCfgBuilder::new().file("a\0b", vec![]).unwrap_err(),
        FwCfgError::InvalidName("a\0b".into())
    );
    let dup = FwCfgBuilder::new()
        .file("etc/e820", vec![])
        .unwrap()
        .file("etc/e820", vec![1]);
    assert_eq!(dup.unwrap_err(), FwCfgError::DuplicateName("etc/e820".into()));
    let mut b = FwCfgBuilder::new().file_slots(2);
    for name in ["a", "b", "c"] {
        b.add_file(name, vec![], false).unwrap();
    }
    assert_eq!(
        b.build(memory()).err(),
        Some(FwCfgError::TooManyFiles { count: 3, slots: 2 })
    );
    for k in [key::FILE_DIR, 0x20, 0x4001, 0x8000 + 0x20 + 64] {
        let e = FwCfgBuilder::new().item(k, vec![]).build(memory()).err();
        assert_eq!(e, Some(FwCfgError::ReservedKey(k)));
    }
    assert_eq!(
        FwCfgBuilder::new().file_slots(0).build(memory()).err(),
        Some(FwCfgError::BadSlotCount(0))
    );
    assert!(FwCfgBuilder::new()
        .item(key::E820_TABLE, vec![0; 4])
        .build(memory())
        .is_ok());
}

#[test]
fn firmware_cache_limit_is_reported() {
    let mut b = FwCfgBuilder::new();
    for i in 0..33 {
        b.add_file(&format!("opt/f{i:02}"), vec![i], false).unwrap();
    }
    let dev = b.build(memory()).unwrap();
    assert_eq!(dev.file_count(), 33);
    assert!(dev.exceeds_firmware_cache());
    assert_eq!(dev.file_contents("opt/f32"), Some(&[32u8][..]));
}
