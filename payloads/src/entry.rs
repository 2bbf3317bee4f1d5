//! What start.S records at entry, and the checks of the CPU mode the protocols promise.
use crate::mem::{read, Phys};
use crate::{bad, Check};

/// The machine state at the payload's entry, exactly as the loader left it. start.S fills it (its
/// `ES_*` offsets must match; checked below); 32-bit entries leave the upper halves zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryState {
    /// 32 or 64: which entry ran.
    pub bits: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub cr0: u64,
    pub cr4: u64,
    pub rflags: u64,
    pub efer: u64,
    pub cs: u64,
    pub ds: u64,
    pub es: u64,
    pub ss: u64,
    /// SGDT's result: the 16-bit limit, then the base (32 bits from the 32-bit entry, 64 from the
    /// 64-bit one).
    pub gdtr: [u8; 16],
    /// .bss held a non-zero byte at entry (a multiboot or PVH loader must zero it).
    pub bss_dirty: u64,
    /// 1 when start.S mapped memory with 1 GiB pages (else 2 MiB pages).
    pub gib_pages: u64,
}
const _: () = assert!(core::mem::offset_of!(EntryState, rax) == 8);
const _: () = assert!(core::mem::offset_of!(EntryState, rsp) == 64);
const _: () = assert!(core::mem::offset_of!(EntryState, cr0) == 72);
const _: () = assert!(core::mem::offset_of!(EntryState, efer) == 96);
const _: () = assert!(core::mem::offset_of!(EntryState, cs) == 104);
const _: () = assert!(core::mem::offset_of!(EntryState, ss) == 128);
const _: () = assert!(core::mem::offset_of!(EntryState, gdtr) == 136);
const _: () = assert!(core::mem::offset_of!(EntryState, bss_dirty) == 152);
const _: () = assert!(core::mem::offset_of!(EntryState, gib_pages) == 160);
const _: () = assert!(core::mem::size_of::<EntryState>() == 168);

impl EntryState {
    pub fn gdt_limit(&self) -> u64 {
        u64::from(u16::from_le_bytes([self.gdtr[0], self.gdtr[1]]))
    }
    pub fn gdt_base(&self) -> u64 {
        let mut b = [0u8; 8];
        let n = if self.bits == 64 { 8 } else { 4 };
        b[..n].copy_from_slice(&self.gdtr[2..2 + n]);
        u64::from_le_bytes(b)
    }
}

pub const CR0_PE: u64 = 1 << 0;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_PAE: u64 = 1 << 5;
pub const EFER_LMA: u64 = 1 << 10;
pub const RFLAGS_TF: u64 = 1 << 8;
pub const RFLAGS_IF: u64 = 1 << 9;
pub const RFLAGS_VM: u64 = 1 << 17;

/// A segment descriptor, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub base: u32,
    /// In bytes, granularity applied: 0xFFFF_FFFF for a flat segment.
    pub limit: u32,
    /// The access byte: P, DPL, S, type.
    pub access: u8,
    /// The flags nibble: G, D/B, L, AVL.
    pub flags: u8,
}

const ACCESS_PRESENT: u8 = 1 << 7;
const ACCESS_NOT_SYSTEM: u8 = 1 << 4;
const ACCESS_CODE: u8 = 1 << 3;
/// Readable for code, writable for data.
const ACCESS_RW: u8 = 1 << 1;
const FLAG_DEFAULT_32: u8 = 1 << 2;
const FLAG_LONG: u8 = 1 << 1;

impl Descriptor {
    pub fn decode(d: u64) -> Self {
        let raw_limit = (d & 0xFFFF) as u32 | (((d >> 48) & 0xF) as u32) << 16;
        let flags = ((d >> 52) & 0xF) as u8;
        let limit = if flags & 0x8 != 0 {
            (raw_limit << 12) | 0xFFF
        } else {
            raw_limit
        };
        Self {
            base: ((d >> 16) & 0xFF_FFFF) as u32 | (((d >> 56) as u32) << 24),
            limit,
            access: (d >> 40) as u8,
            flags,
        }
    }
    fn flat(&self) -> bool {
        self.base == 0 && self.limit == u32::MAX
    }
    fn is(&self, code: bool) -> bool {
        let want = ACCESS_PRESENT | ACCESS_NOT_SYSTEM | ACCESS_RW | if code { ACCESS_CODE } else { 0 };
        self.access & (ACCESS_PRESENT | ACCESS_NOT_SYSTEM | ACCESS_RW | ACCESS_CODE) == want
    }
}

/// Reads the descriptor `selector` names from the loader's GDT.
pub fn descriptor(m: &dyn Phys, s: &EntryState, selector: u64) -> Result<Descriptor, crate::Reason> {
    let index = selector & !7;
    if selector & 4 != 0 {
        return Err(crate::Reason::new("segment-in-ldt"));
    }
    if index == 0 || index + 7 > s.gdt_limit() {
        return Err(crate::Reason::new("selector-outside-gdt"));
    }
    read::<u64>(m, s.gdt_base() + index)
        .map(Descriptor::decode)
        .ok_or(crate::Reason::new("gdt-unreadable"))
}

fn common(m: &dyn Phys, s: &EntryState) -> Check {
    if s.rflags & RFLAGS_IF != 0 {
        return bad("interrupts-enabled");
    }
    if s.rflags & (RFLAGS_VM | RFLAGS_TF) != 0 {
        return bad("eflags-vm-or-tf");
    }
    for sel in [s.ds, s.es, s.ss] {
        let d = descriptor(m, s, sel)?;
        if !d.is(false) {
            return bad("ds-es-ss-not-writable-data");
        }
        if !d.flat() {
            return bad("ds-es-ss-not-flat-4g");
        }
    }
    Ok(())
}

/// Flat 32-bit protected mode, paging off, interrupts off: what multiboot 1 and 2, PVH and
/// Linux's 32-bit entry all promise. Segments are checked as the loader's GDT describes them.
pub fn check_protected32(m: &dyn Phys, s: &EntryState) -> Check {
    if s.bits != 32 {
        return bad("not-the-32-bit-entry");
    }
    if s.cr0 & CR0_PE == 0 {
        return bad("protection-off");
    }
    if s.cr0 & CR0_PG != 0 || s.efer & EFER_LMA != 0 {
        return bad("paging-on");
    }
    let cs = descriptor(m, s, s.cs)?;
    if !cs.is(true) || cs.flags & (FLAG_DEFAULT_32 | FLAG_LONG) != FLAG_DEFAULT_32 {
        return bad("cs-not-32-bit-code");
    }
    if !cs.flat() {
        return bad("cs-not-flat-4g");
    }
    common(m, s)
}

/// 64-bit long mode with paging, interrupts off: Linux's 64-bit entry.
pub fn check_long64(m: &dyn Phys, s: &EntryState) -> Check {
    if s.bits != 64 {
        return bad("not-the-64-bit-entry");
    }
    if s.efer & EFER_LMA == 0 || s.cr0 & (CR0_PG | CR0_PE) != CR0_PG | CR0_PE || s.cr4 & CR4_PAE == 0 {
        return bad("not-long-mode");
    }
    let cs = descriptor(m, s, s.cs)?;
    if !cs.is(true) || cs.flags & FLAG_LONG == 0 {
        return bad("cs-not-64-bit-code");
    }
    common(m, s)
}

/// Linux's entries also fix the selectors: CS = __BOOT_CS (0x10), DS = ES = SS = __BOOT_DS (0x18).
pub fn check_linux_selectors(s: &EntryState) -> Check {
    use minnow_bootproto::linux::{BOOT_CS, BOOT_DS};
    if s.cs != u64::from(BOOT_CS) {
        return bad("cs-not-0x10");
    }
    let ds = u64::from(BOOT_DS);
    if s.ds != ds || s.es != ds || s.ss != ds {
        return bad("ds-es-ss-not-0x18");
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::mem::FakeMem;
    use crate::Reason;

    /// Where the test GDTs live. GDT: minnow.rom's layout (0x08 64-bit code, 0x10 32-bit code,
    /// 0x18 data), plus 0x20 16-bit code and 0x28 a data segment with base 0x1000.
    /// GDT64: what minnow.rom loads for Linux's 64-bit entry (0x10 64-bit code, 0x18 data).
    pub const GDT: u64 = 0xF_FF00;
    pub const GDT64: u64 = 0xF_FF80;

    /// Fake memory holding both test GDTs.
    pub fn gdt() -> FakeMem {
        let mut m = FakeMem::default();
        for (i, d) in [0u64, 0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF]
            .iter()
            .enumerate()
        {
            m.put(GDT64 + 8 * i as u64, &d.to_le_bytes());
        }
        for (i, d) in [
            0u64,
            0x00AF_9B00_0000_FFFF,
            0x00CF_9B00_0000_FFFF,
            0x00CF_9300_0000_FFFF,
            0x008F_9B00_0000_FFFF,
            0x00CF_9300_1000_FFFF,
        ]
        .iter()
        .enumerate()
        {
            m.put(GDT + 8 * i as u64, &d.to_le_bytes());
        }
        m
    }

    fn gdtr(base: u64, limit: u16, bits: u64) -> [u8; 16] {
        let mut g = [0u8; 16];
        g[..2].copy_from_slice(&limit.to_le_bytes());
        let n = if bits == 64 { 8 } else { 4 };
        g[2..2 + n].copy_from_slice(&base.to_le_bytes()[..n]);
        g
    }

    /// What minnow.rom's handoff_protected32 leaves.
    pub fn protected32() -> EntryState {
        EntryState {
            bits: 32,
            cr0: 0x11,
            rflags: 0x2,
            cs: 0x10,
            ds: 0x18,
            es: 0x18,
            ss: 0x18,
            gdtr: gdtr(GDT, 47, 32),
            ..Default::default()
        }
    }

    pub fn long64() -> EntryState {
        EntryState {
            bits: 64,
            cr0: 0x8000_0011,
            cr4: 0x20,
            efer: 0x500,
            gdtr: gdtr(GDT64, 31, 64),
            ..protected32()
        }
    }

    #[test]
    fn decodes_descriptors() {
        let d = Descriptor::decode(0x00CF_9B00_0000_FFFF);
        assert_eq!((d.base, d.limit, d.access, d.flags), (0, u32::MAX, 0x9B, 0xC));
        let d = Descriptor::decode(0x0040_9312_3456_0FFF);
        assert_eq!((d.base, d.limit), (0x12_3456, 0xFFF));
    }

    #[test]
    fn accepts_what_the_protocols_promise() {
        let m = gdt();
        assert_eq!(check_protected32(&m, &protected32()), Ok(()));
        assert_eq!(check_long64(&m, &long64()), Ok(()));
        assert_eq!(check_linux_selectors(&protected32()), Ok(()));
    }

    #[test]
    fn names_what_is_wrong() {
        let m = gdt();
        let check = |s: EntryState| check_protected32(&m, &s);
        assert_eq!(
            check(EntryState {
                cr0: 0x8000_0011,
                ..protected32()
            }),
            bad("paging-on")
        );
        assert_eq!(
            check(EntryState {
                rflags: 0x202,
                ..protected32()
            }),
            bad("interrupts-enabled")
        );
        assert_eq!(
            check(EntryState {
                cs: 0x20,
                ..protected32()
            }),
            bad("cs-not-32-bit-code")
        );
        assert_eq!(
            check(EntryState {
                cs: 0x08,
                ..protected32()
            }),
            bad("cs-not-32-bit-code")
        );
        assert_eq!(
            check(EntryState {
                ss: 0x28,
                ..protected32()
            }),
            bad("ds-es-ss-not-flat-4g")
        );
        assert_eq!(
            check(EntryState {
                ds: 0x30,
                ..protected32()
            }),
            Err(Reason::new("selector-outside-gdt"))
        );
        assert_eq!(check(long64()), bad("not-the-32-bit-entry"));
        assert_eq!(
            check_long64(
                &m,
                &EntryState {
                    efer: 0x100,
                    ..long64()
                }
            ),
            bad("not-long-mode")
        );
        assert_eq!(
            check_linux_selectors(&EntryState {
                ss: 0x20,
                ..protected32()
            }),
            bad("ds-es-ss-not-0x18")
        );
    }
}
