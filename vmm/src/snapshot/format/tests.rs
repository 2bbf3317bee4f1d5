use super::*;

fn spec() -> MachineSpec {
    MachineSpec {
        memory: 64 << 20,
        cpus: 2,
        irqchip: "InKernel { pit: true }".into(),
        cpuid: 0x1234,
        rom_size: 0,
        devices: vec![
            DeviceSlot {
                bus: Bus::Pio,
                base: 0x3f8,
                len: 8,
                kind: "serial".into(),
            },
            DeviceSlot {
                bus: Bus::Mmio,
                base: 0xfeb0_0000,
                len: 0x200,
                kind: "virtio-net".into(),
            },
        ],
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        spec: spec(),
        paused: true,
        vcpus: vec![vec![1, 2, 3], vec![4]],
        irqchip: Some(vec![9; 10]),
        clock_ns: 5,
        saved_at_utc_ns: 6,
        devices: vec![SavedDevice {
            bus: Bus::Pio,
            base: 0x3f8,
            state: vec![7; 3],
        }],
        rom: None,
        memory: vec![MemoryRange {
            guest_addr: 0,
            len: 64 << 20,
        }],
    }
}

fn written() -> Vec<u8> {
    let mut file = Vec::new();
    let offset = write_state(&mut file, &snapshot(), 0).unwrap();
    assert_eq!(offset as usize, file.len());
    assert_eq!(offset % PAGE, 0);
    file
}

#[test]
fn the_state_reads_back_and_leaves_the_reader_at_memory() {
    let mut file = written();
    file.extend_from_slice(b"RAM");
    let mut reader = file.as_slice();
    let read = read_state(&mut reader).unwrap();
    assert_eq!((read.memory_offset, read.sparse), (PAGE, false));
    assert_eq!(reader, b"RAM");
    let s = read.snapshot;
    assert_eq!(
        (s.spec, s.vcpus, s.paused),
        (spec(), vec![vec![1, 2, 3], vec![4]], true)
    );
}

#[test]
fn bad_files_are_refused_with_what_is_wrong() {
    let file = written();
    let read = |bytes: &[u8]| read_state(&mut &bytes[..]).map(|_| ()).unwrap_err().to_string();
    assert!(read(&file[..10]).contains("the header needs 32 bytes, got 10"));
    assert!(read(&file[..40]).contains("the state needs"));
    let mut bad = file.clone();
    bad[0] = b'X';
    assert!(read(&bad).starts_with("not a minnow snapshot"));
    let mut bad = file.clone();
    bad[8] = 9;
    assert!(read(&bad).contains("version 9"));
    let mut bad = file.clone();
    bad[40] ^= 0xFF;
    assert!(read(&bad).contains("corrupted"));
    let mut bad = file.clone();
    bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(read(&bad).contains("more than"));
}

#[test]
fn a_different_machine_is_named() {
    let here = spec();
    assert_eq!(spec().difference(&here), None);
    let mut other = spec();
    other.memory = 128 << 20;
    assert_eq!(
        other.difference(&here).unwrap(),
        "-m: the snapshot is of a 128 MiB guest, this one has 64 MiB"
    );
    let mut other = spec();
    other.devices[1].kind = "virtio-blk".into();
    assert!(other.difference(&here).unwrap().contains("virtio-blk"));
    let mut other = spec();
    other.devices.pop();
    assert!(other
        .difference(&here)
        .unwrap()
        .contains("this machine has virtio-net at Mmio 0xfeb00000, the snapshot does not"));
}

#[test]
fn memory_must_be_whole_pages_within_the_guest() {
    let mut s = snapshot();
    s.memory = vec![MemoryRange {
        guest_addr: 0,
        len: 100,
    }];
    assert!(check_memory(&s).is_err());
    s.memory = vec![MemoryRange {
        guest_addr: 0,
        len: 128 << 20,
    }];
    assert!(check_memory(&s).is_err());
    s.memory = vec![
        MemoryRange {
            guest_addr: PAGE,
            len: PAGE,
        },
        MemoryRange {
            guest_addr: 0,
            len: PAGE,
        },
    ];
    assert!(check_memory(&s).is_err());
}
