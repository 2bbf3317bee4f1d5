//! The only place the firmware touches hardware directly: port I/O, physical memory, CPUID.
//! Everything here is `unsafe` underneath; callers get safe functions.
use crate::memory::Memory;
use x86_64::instructions::port::Port;

pub fn outb(port: u16, value: u8) {
    // SAFETY: the firmware owns the machine; writes to the ports it uses (serial, fw_cfg, CMOS,
    // PCI config, milestones) have no memory-safety effect.
    unsafe { Port::new(port).write(value) }
}

pub fn outw(port: u16, value: u16) {
    // SAFETY: as in `outb`.
    unsafe { Port::new(port).write(value) }
}

pub fn outl(port: u16, value: u32) {
    // SAFETY: as in `outb`. fw_cfg DMA is the exception that writes memory: its callers pass
    // descriptors and destinations they own (see fw_cfg.rs).
    unsafe { Port::new(port).write(value) }
}

pub fn inb(port: u16) -> u8 {
    // SAFETY: port reads have no memory-safety effect.
    unsafe { Port::new(port).read() }
}

pub fn inl(port: u16) -> u32 {
    // SAFETY: port reads have no memory-safety effect.
    unsafe { Port::new(port).read() }
}

/// CPUID leaf 1: (EAX signature, EDX features), for the MP table.
pub fn cpu_signature() -> (u32, u32) {
    let r = core::arch::x86_64::__cpuid(1);
    (r.eax, r.edx)
}

/// Physical memory through the firmware's identity map (all of the low 4 GiB).
pub struct PhysMemory;

// Copies go through `rep movs`/`rep stos` rather than core::ptr: guest-physical address 0 is
// RAM the firmware must write (the real-mode IVT), and a Rust pointer to it is null, which the
// compiler may assume never happens. Eight bytes a step, then the rest one at a time.
impl Memory for PhysMemory {
    fn write(&mut self, addr: u64, data: &[u8]) {
        // SAFETY: the identity map covers the low 4 GiB and callers only write ranges the memory map
        // says are RAM and that no Rust object lives in (they are checked against layout.rs).
        unsafe { copy(data.as_ptr() as u64, addr, data.len()) }
    }

    fn read(&self, addr: u64, buf: &mut [u8]) {
        // SAFETY: as in `write`; reads of RAM or ROM have no side effects.
        unsafe { copy(addr, buf.as_mut_ptr() as u64, buf.len()) }
    }

    fn fill(&mut self, addr: u64, len: u64, byte: u8) {
        let pattern = u64::from(byte) * 0x0101_0101_0101_0101;
        // SAFETY: as in `write`.
        unsafe {
            core::arch::asm!(
                "rep stosq",
                "mov rcx, {rest}",
                "rep stosb",
                rest = in(reg) len % 8,
                inout("rdi") addr => _,
                inout("rcx") len / 8 => _,
                in("rax") pattern,
                options(nostack, preserves_flags)
            )
        }
    }

    fn byte_sum(&self, addr: u64, len: u64) -> u8 {
        // SAFETY: as in `read`: the range is RAM the firmware just filled (ACPI tables), read in
        // place rather than copied out.
        let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) };
        crate::memory::byte_sum(bytes)
    }
}

/// Copies `len` bytes between physical addresses.
///
/// # Safety
/// Both ranges must be mapped, and the destination writable memory no Rust object lives in.
unsafe fn copy(from: u64, to: u64, len: usize) {
    // SAFETY: the caller vouches for both ranges.
    unsafe {
        core::arch::asm!(
            "rep movsq",
            "mov rcx, {rest}",
            "rep movsb",
            rest = in(reg) len % 8,
            inout("rsi") from => _,
            inout("rdi") to => _,
            inout("rcx") len / 8 => _,
            options(nostack, preserves_flags)
        )
    }
}
