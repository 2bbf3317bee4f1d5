//! pvh.elf: an ELF with a Xen PVH note, loaded at 2 MiB by its program headers, entered at
//! start32 with EBX = hvm_start_info.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod payload {
    use minnow_payloads::entry::EntryState;
    use minnow_payloads::hw;
    use minnow_payloads::proto::pvh;

    core::arch::global_asm!(include_str!("../arch/pvh.S"), options(att_syntax));

    /// Called by start.S in long mode, with the state it recorded at entry.
    #[no_mangle]
    extern "C" fn payload_main(state: &EntryState) -> ! {
        hw::finish(&pvh::gather(&hw::Identity, state), state)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the payloads run on bare metal: build them with `cargo xtask payloads`");
    std::process::exit(2);
}
