//! vCPU 0's state at a directly booted kernel's entry: long mode on the identity map for Linux's
//! 64-bit entry, flat 32-bit protected mode for PVH and Linux's 32-bit entry, with the segment
//! registers loaded from the GDT the VMM writes to guest memory.
use super::layout;
use kvm_bindings::{kvm_dtable, kvm_regs, kvm_segment, kvm_sregs};
use minnow_bootproto::linux::{BOOT_CS, BOOT_DS};

/// The CPU mode a kernel is entered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Long mode, paging on with the identity map at [`layout::PML4`]: Linux's 64-bit entry.
    Long64,
    /// Flat 32-bit protected mode, paging off: PVH, and Linux's 32-bit entry.
    Protected32,
}

/// vCPU 0's state at the kernel's entry. Everything not named here is 0 (RFLAGS: 0x2, interrupts
/// off); segments come from the GDT at [`layout::GDT`], so what the vCPU has loaded and what the
/// kernel reads from memory agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuEntry {
    pub mode: Mode,
    pub rip: u64,
    pub rsp: u64,
    /// Linux: boot_params.
    pub rsi: u64,
    /// PVH: hvm_start_info.
    pub rbx: u64,
}

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// The TSS selector: PVH wants TR to hold a 32-bit TSS, base 0, limit 0x67; VMX wants one anyway.
pub const SEL_TSS: u16 = 0x20;

/// A segment descriptor. `flags` holds the access byte in bits 0-7 and the G/D/L/AVL nibble in
/// bits 12-15 (0xA09B: 64-bit code); `limit` is 20 bits, in pages when G is set.
const fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (flags as u64, base as u64, limit as u64);
    ((base & 0xFF00_0000) << 32)
        | ((flags & 0xF0FF) << 40)
        | ((limit & 0xF_0000) << 32)
        | ((base & 0xFF_FFFF) << 16)
        | (limit & 0xFFFF)
}

const CODE64: u64 = descriptor(0xA09B, 0, 0xF_FFFF);
const CODE32: u64 = descriptor(0xC09B, 0, 0xF_FFFF);
const DATA: u64 = descriptor(0xC093, 0, 0xF_FFFF);
const TSS: u64 = descriptor(0x008B, 0, 0x67);

impl Mode {
    /// The GDT for this mode: `__BOOT_CS` (0x10) is 64-bit or 32-bit code, `__BOOT_DS` (0x18)
    /// flat data, then the TSS (whose upper half is the last slot in long mode).
    pub fn gdt(self) -> [u64; 6] {
        let code = match self {
            Mode::Long64 => CODE64,
            Mode::Protected32 => CODE32,
        };
        [0, 0, code, DATA, TSS, 0]
    }
}

/// The segment register contents a load of `selector` from `gdt` gives.
pub(super) fn segment(gdt: &[u64], selector: u16) -> kvm_segment {
    let d = gdt.get(usize::from(selector >> 3)).copied().unwrap_or(0);
    let access = (d >> 40) as u8;
    let flags = ((d >> 52) & 0xF) as u8;
    let raw_limit = (d & 0xFFFF) as u32 | (((d >> 48) & 0xF) as u32) << 16;
    let granular = flags & 0x8 != 0;
    kvm_segment {
        base: ((d >> 16) & 0xFF_FFFF) | ((d >> 32) & 0xFF00_0000),
        limit: if granular {
            (raw_limit << 12) | 0xFFF
        } else {
            raw_limit
        },
        selector,
        type_: access & 0xF,
        present: access >> 7,
        dpl: (access >> 5) & 3,
        db: (flags >> 2) & 1,
        s: (access >> 4) & 1,
        l: (flags >> 1) & 1,
        g: flags >> 3,
        avl: flags & 1,
        unusable: u8::from(access >> 7 == 0),
        padding: 0,
    }
}

impl CpuEntry {
    /// The general registers.
    pub fn regs(&self) -> kvm_regs {
        kvm_regs {
            rip: self.rip,
            rsp: self.rsp,
            rsi: self.rsi,
            rbx: self.rbx,
            rflags: 0x2,
            ..Default::default()
        }
    }

    /// Sets the mode, segments, descriptor tables and control registers in `s` (the vCPU's
    /// reset state, as KVM reports it: the rest, the APIC base among it, is left alone).
    pub fn apply(&self, s: &mut kvm_sregs) {
        let gdt = self.mode.gdt();
        s.gdt = kvm_dtable {
            base: layout::GDT,
            limit: (std::mem::size_of_val(&gdt) - 1) as u16,
            ..Default::default()
        };
        // No IDT: an exception before the kernel loads its own is a triple fault, not a jump
        // through garbage.
        s.idt = kvm_dtable::default();
        let data = segment(&gdt, BOOT_DS);
        s.cs = segment(&gdt, BOOT_CS);
        (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
        s.tr = segment(&gdt, SEL_TSS);
        (s.cr0, s.cr3, s.cr4, s.efer) = match self.mode {
            Mode::Long64 => (
                CR0_PE | CR0_ET | CR0_PG,
                layout::PML4,
                CR4_PAE,
                EFER_LME | EFER_LMA,
            ),
            Mode::Protected32 => (CR0_PE | CR0_ET, 0, 0, 0),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_flat_and_of_the_right_kind() {
        assert_eq!(CODE64, 0x00AF_9B00_0000_FFFF);
        assert_eq!(CODE32, 0x00CF_9B00_0000_FFFF);
        assert_eq!(DATA, 0x00CF_9300_0000_FFFF);
        assert_eq!(TSS, 0x0000_8B00_0000_0067);
        let gdt = [0, descriptor(0x4093, 0x1234_5678, 0xA_BCDE)];
        let s = segment(&gdt, 8);
        assert_eq!(
            (s.base, s.limit, s.g, s.db, s.type_),
            (0x1234_5678, 0xA_BCDE, 0, 1, 3)
        );
        assert_eq!(segment(&gdt, 0x30).unusable, 1, "past the GDT: unusable");
    }
}
