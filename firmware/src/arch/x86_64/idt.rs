//! An IDT for the 32 CPU exceptions, so a fault in the firmware prints a line instead of
//! triple-faulting. The stubs are in exceptions.S, 16 bytes apart.
use core::cell::UnsafeCell;
use core::fmt::Write;
use minnow_firmware::console::Console;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

const VECTORS: usize = 32;
const STUB_STRIDE: u64 = 16;
const CODE64_SELECTOR: u64 = 0x08;
/// Present, DPL 0, 64-bit interrupt gate.
const GATE_TYPE: u64 = 0x8E;

#[repr(C, align(16))]
struct Idt(UnsafeCell<[[u64; 2]; VECTORS]>);

// SAFETY: the firmware runs on one CPU with interrupts off; the table is written once, before lidt.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([[0; 2]; VECTORS]));

extern "C" {
    static exception_stubs: u8;
}

fn gate(handler: u64) -> [u64; 2] {
    let low =
        (handler & 0xFFFF) | (CODE64_SELECTOR << 16) | (GATE_TYPE << 40) | (((handler >> 16) & 0xFFFF) << 48);
    [low, handler >> 32]
}

pub fn install() {
    let base = core::ptr::addr_of!(exception_stubs) as u64;
    // SAFETY: single-threaded, and the IDT is not loaded yet, so nothing else reads it.
    let table = unsafe { &mut *IDT.0.get() };
    for (vector, entry) in table.iter_mut().enumerate() {
        *entry = gate(base + vector as u64 * STUB_STRIDE);
    }
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<[[u64; 2]; VECTORS]>() - 1) as u16,
        base: VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: the table is complete and lives for the firmware's whole run (a static).
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
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
