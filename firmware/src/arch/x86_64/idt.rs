//! The exception IDT, assembled into the ROM by exceptions.S: a fault in the firmware prints a
//! line instead of triple-faulting.
use core::fmt::Write;
use minnow_firmware::console::Console;

extern "C" {
    /// The 10-byte IDT pointer (limit, base) in exceptions.S.
    static idt_descriptor: u8;
}

pub fn install() {
    // SAFETY: `idt_descriptor` describes a complete, read-only IDT in the ROM whose gates point at
    // the exception stubs; it stays valid for the firmware's whole run.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) core::ptr::addr_of!(idt_descriptor), options(readonly, nostack))
    };
}

const NAMES: [&str; 21] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 error",
    "alignment check",
    "machine check",
    "SIMD error",
    "virtualization",
];

#[no_mangle]
extern "C" fn exception_report(vector: u64, error: u64, rip: u64) -> ! {
    let name = NAMES.get(vector as usize).copied().unwrap_or("reserved");
    let _ = writeln!(
        Console::new(),
        "minnow: CPU exception {vector} ({name}) at rip {rip:#x}, error code {error:#x}"
    );
    super::halt()
}
