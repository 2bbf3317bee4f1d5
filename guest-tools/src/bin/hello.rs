//! `hello`: the seed workload's whole user space (`init=/usr/bin/hello` on an ext4 root that
//! xtask builds, as in the Ubuntu microvm guide). It greets, then powers the VM off: with ACPI
//! that ends the VMM; without ACPI a microvm has no power-off device, so the kernel halts there
//! (as it does under QEMU) and whoever started the VM stops it. Run by hand, it only greets.
use minnow_guest_tools::SEED_GREETING;
use std::io::Write;

fn main() {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{SEED_GREETING}");
    let _ = out.flush();
    // Only as a VM's init: run by hand (even as root) it must not power the machine off.
    if std::process::id() != 1 {
        return;
    }
    // SAFETY: sync(2) and reboot(2) take no pointers; as PID 1 this ends the machine.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    eprintln!("hello: reboot(RB_POWER_OFF): {}", std::io::Error::last_os_error());
}
