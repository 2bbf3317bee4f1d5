//! multiboot1.elf: a multiboot 1 kernel (a.out-kludge header in an x86_64 ELF), entered at
//! start32 with EAX = 0x2BADB002 and EBX = the MBI.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod payload {
    use minnow_payloads::entry::EntryState;
    use minnow_payloads::hw;
    use minnow_payloads::proto::multiboot1;

    core::arch::global_asm!(include_str!("../arch/multiboot1.S"), options(att_syntax));

    /// Called by start.S in long mode, with the state it recorded at entry.
    #[no_mangle]
    extern "C" fn payload_main(state: &EntryState) -> ! {
        hw::finish(&multiboot1::gather(&hw::Identity, state), state)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the payloads run on bare metal: build them with `cargo xtask payloads`");
    std::process::exit(2);
}
