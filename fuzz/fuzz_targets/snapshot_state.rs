//! A state file given to `-incoming` or `migrate-incoming`: any bytes. Reading it must give a
//! snapshot whose memory layout was checked, or an error; never a panic, a hang or an
//! allocation larger than the input warrants. Whatever decodes is also decoded as the vCPUs'
//! and KVM's chips' state, as a restore would.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::snapshot::{codec, format};
use minnow_vmm::vstate::irqchip_state::IrqchipState;
use minnow_vmm::vstate::vcpu_state::VcpuState;

fuzz_target!(|data: &[u8]| {
    // Half the time a valid header, so the fuzzer reaches the state's decoding.
    let mut input = data.to_vec();
    if data.first().is_some_and(|b| b & 1 == 1) {
        let state = &data[1..];
        let mut file = format::MAGIC.to_vec();
        file.extend_from_slice(&format::VERSION.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&(state.len() as u64).to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(state).to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(state);
        input = file;
    }
    let Ok(read) = format::read_state(&mut input.as_slice()) else {
        return;
    };
    assert_eq!(read.memory_offset % format::PAGE, 0);
    let snapshot = read.snapshot;
    let ram: u64 = snapshot.memory.iter().map(|r| r.len).sum();
    assert!(ram <= snapshot.spec.memory);
    for v in &snapshot.vcpus {
        let _ = codec::decode::<VcpuState>("vCPU", v);
    }
    if let Some(chips) = &snapshot.irqchip {
        let _ = codec::decode::<IrqchipState>("irqchip", chips);
    }
});
