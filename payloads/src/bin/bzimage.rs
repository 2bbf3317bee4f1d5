//! bzImage: a Linux boot protocol 2.15 image, entered at its 64-bit entry (RSI = boot_params),
//! its 32-bit entry (ESI = boot_params), or, by BIOS-style loaders, its own real-mode setup code,
//! which builds boot_params and takes the 32-bit entry (reported as entry=16).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod payload {
    use minnow_payloads::entry::EntryState;
    use minnow_payloads::hw;
    use minnow_payloads::proto::linux;

    core::arch::global_asm!(include_str!("../arch/bzimage.S"), options(att_syntax));

    /// Called by start.S in long mode, with the state it recorded at entry.
    #[no_mangle]
    extern "C" fn payload_main(state: &EntryState) -> ! {
        hw::finish(&linux::gather(&hw::Identity, state), state)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the payloads run on bare metal: build them with `cargo xtask payloads`");
    std::process::exit(2);
}
