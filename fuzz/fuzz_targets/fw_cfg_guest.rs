//! A guest's whole view of the fw_cfg device comes from the input: port accesses of any width at
//! any offset, selector writes, DMA transfers from descriptors anywhere in its memory (which the
//! input fills). The device must never panic, never change an item the guest may not write, and
//! never touch memory outside the guest's.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::bus::BusDevice;
use minnow_vmm::devices::fw_cfg::FwCfgBuilder;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM_LEN: usize = 0x1_0000;
const READ_ONLY: &[u8] = b"the guest may read this file but never change it";
/// Register offsets: selector, data, DMA address high and low halves.
const SELECTOR: u64 = 0;
const DMA_HIGH: u64 = 4;
const DMA_LOW: u64 = 8;
/// Bytes per operation: kind and width/offset, then four operand bytes.
const OP_LEN: usize = 6;

fuzz_target!(|data: &[u8]| {
    // The first byte says how many operations follow; the rest fills guest memory.
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let ops_len = (usize::from(count) * OP_LEN).min(rest.len());
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
    for op in ops.chunks_exact(OP_LEN) {
        let operand = [op[2], op[3], op[4], op[5]];
        // Offsets past the device's 12 ports too: the bus never sends them, but the device
        // must not trust that.
        let offset = u64::from(op[1] >> 4);
        let width = [1, 2, 4, 8][usize::from(op[1] & 3)];
        let value = [operand, operand].concat();
        match op[0] % 4 {
            0 => dev.read(offset, &mut [0u8; 8][..width]),
            1 => dev.write(offset, &value[..width]),
            2 => dev.write(SELECTOR, &operand[..2]),
            // A transfer from a descriptor inside guest memory, as a driver would start one.
            _ => {
                let at = u32::from(u16::from_le_bytes([op[2], op[3]])) % (MEM_LEN as u32 - 16);
                dev.write(DMA_HIGH, &[0; 4]);
                dev.write(DMA_LOW, &at.to_be_bytes());
            }
        }
    }
    assert_eq!(dev.file_contents("etc/read-only"), Some(READ_ONLY));
});
