//! A guest's whole view of the fw_cfg device comes from the input: port accesses of any width at
//! any offset, and guest memory holding the DMA descriptors they point at. The device must never
//! panic, never change an item the guest may not write, and never touch memory outside the guest's.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::bus::BusDevice;
use minnow_vmm::devices::fw_cfg::FwCfgBuilder;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM_LEN: usize = 0x1_0000;
const READ_ONLY: &[u8] = b"the guest may read this file but never change it";

fuzz_target!(|data: &[u8]| {
    // The first byte says how many 4-byte port accesses follow; the rest fills guest memory.
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let ops_len = (usize::from(count) * 4).min(rest.len());
    let (ops, fill) = rest.split_at(ops_len);
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_LEN)]).unwrap();
    let fill: Vec<u8> = fill.iter().copied().cycle().take(MEM_LEN).collect();
    if !fill.is_empty() {
        mem.write_slice(&fill, GuestAddress(0)).unwrap();
    }
    let mut dev = FwCfgBuilder::new()
        .ram_size(MEM_LEN as u64)
        .file("etc/read-only", READ_ONLY.to_vec())
        .unwrap()
        .writable_file("etc/writable", vec![0; 8])
        .unwrap()
        .build(mem)
        .unwrap();
    for op in ops.chunks_exact(4) {
        // Offsets past the device's 12 ports too: the bus never sends them, but the device
        // must not trust that.
        let offset = u64::from(op[0] % 16);
        let width = [1, 2, 4][usize::from(op[1] % 3)];
        if op[1] & 0x80 != 0 {
            let mut buf = [0u8; 4];
            dev.read(offset, &mut buf[..width]);
        } else {
            let value = [op[2], op[3], op[2] ^ op[3], op[3].wrapping_add(op[2])];
            dev.write(offset, &value[..width]);
        }
    }
    assert_eq!(dev.file_contents("etc/read-only"), Some(READ_ONLY));
    assert_eq!(dev.file_contents("etc/writable").map(<[u8]>::len), Some(8));
});
