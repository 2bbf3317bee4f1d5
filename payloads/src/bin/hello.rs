//! hello.elf: the demo's guest. The PVH payload's entry and checks, but it greets first: what
//! booted it, with what, and whether every check passed; then it marks "boot done" and exits
//! through isa-debug-exit like the others.
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
        hw::greet(&pvh::gather(&hw::Identity, state), state)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the payloads run on bare metal: build them with `cargo xtask payloads`");
    std::process::exit(2);
}
