//! multiboot2.elf: a multiboot 2 kernel (address and entry-address tags), entered at start32
//! with EAX = 0x36D76289 and EBX = the boot information.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod payload {
    use minnow_payloads::entry::EntryState;
    use minnow_payloads::hw;
    use minnow_payloads::proto::multiboot2;

    core::arch::global_asm!(include_str!("../arch/multiboot2.S"), options(att_syntax));

    /// Called by start.S in long mode, with the state it recorded at entry.
    #[no_mangle]
    extern "C" fn payload_main(state: &EntryState) -> ! {
        hw::finish(&multiboot2::gather(&hw::Identity, state), state)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the payloads run on bare metal: build them with `cargo xtask payloads`");
    std::process::exit(2);
}
