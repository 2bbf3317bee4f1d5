//! `boot-done`: writes 123 to port 0x3f0 (Firecracker's boot-complete convention, Minnow's "boot
//! done") from a guest's user space, so an init can mark the end of its boot in the VMM's
//! `-boot-timeline`. Linux without /dev/port (Debian's kernels) still allows it to root through
//! ioperm(2). Built static (musl) by xtask into the test initramfs.
use minnow_bootproto::milestone::{BOOT_DONE, PORT};

fn main() -> std::process::ExitCode {
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    if unsafe { libc::ioperm(libc::c_ulong::from(PORT), 1, 1) } != 0 {
        eprintln!(
            "boot-done: ioperm({PORT:#x}): {}",
            std::io::Error::last_os_error()
        );
        return std::process::ExitCode::FAILURE;
    }
    // SAFETY: the port is ours to write (granted above); a write has no effect on memory.
    unsafe { core::arch::asm!("out dx, al", in("dx") PORT, in("al") BOOT_DONE, options(nomem, nostack)) };
    std::process::ExitCode::SUCCESS
}
