//! Start-up (reset.S), the exception stubs, and the jumps to kernels (handoff.S).
use minnow_bootproto::{multiboot1, multiboot2};
use minnow_firmware::bios_data::FarPointer;
use minnow_firmware::boot::Handoff;

pub mod idt;

core::arch::global_asm!(include_str!("reset.S"), options(att_syntax));
core::arch::global_asm!(include_str!("handoff.S"), options(att_syntax));
core::arch::global_asm!(include_str!("exceptions.S"), options(att_syntax));

extern "C" {
    fn handoff_linux64(entry: u64, boot_params: u64) -> !;
    fn handoff_protected32(entry: u32, eax: u32, ebx: u32, esi: u32) -> !;
    /// reset.S's real-mode stub for BIOS calls; only its address is used.
    #[link_name = "unsupported_bios_call"]
    static BIOS_CALL_STUB: u8;
}

/// The real-mode address of reset.S's BIOS-call stub, for the IVT.
pub fn unsupported_bios_call() -> FarPointer {
    FarPointer::in_rom(core::ptr::addr_of!(BIOS_CALL_STUB) as u64)
}

/// Enters the kernel as its protocol asks.
pub fn jump(h: Handoff) -> ! {
    // SAFETY: the boot path loaded a kernel at `entry` and built its boot structures; from here on
    // the machine is the kernel's.
    unsafe {
        match h {
            Handoff::Linux64 { entry, boot_params } => handoff_linux64(entry, boot_params),
            Handoff::Linux32 { entry, boot_params } => handoff_protected32(entry, 0, 0, boot_params),
            Handoff::Pvh { entry, start_info } => handoff_protected32(entry, 0, start_info, 0),
            Handoff::Multiboot1 { entry, info } => {
                handoff_protected32(entry, multiboot1::BOOTLOADER_MAGIC, info, 0)
            }
            Handoff::Multiboot2 { entry, info } => {
                handoff_protected32(entry, multiboot2::BOOTLOADER_MAGIC, info, 0)
            }
        }
    }
}

/// Stops this CPU for good.
pub fn halt() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
