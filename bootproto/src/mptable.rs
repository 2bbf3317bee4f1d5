//! Intel MultiProcessor Specification 1.4 tables, for machines without ACPI: they tell the kernel
//! how many CPUs there are and where the IOAPIC is, as qboot does. One builder for both sides:
//! minnow.rom writes the result through its `Memory`, the VMM's direct boot into guest RAM, so the
//! two paths hand a kernel the same bytes.
//!
//! [`build`] fills byte buffers; where they go is the caller's choice (both put the table at
//! [`crate::e820::legacy::MPTABLE`] and the floating pointer at
//! [`crate::e820::legacy::MP_FLOATING_POINTER`], a range the e820 map reserves).

/// Where the local APICs and the IOAPIC are (the x86 defaults, microvm's too).
pub const LAPIC_ADDR: u32 = 0xFEE0_0000;
pub const IOAPIC_ADDR: u32 = 0xFEC0_0000;
const LAPIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const SPEC_REV: u8 = 4;
const ISA_BUS: u8 = 0;
/// APIC ids are 8-bit and 0xFF is broadcast; one id more goes to the IOAPIC.
pub const MAX_CPUS: u16 = 254;
/// ISA interrupts described: IRQ 0-15.
const ISA_IRQS: u16 = 16;

pub const ENTRY_PROCESSOR: u8 = 0;
pub const ENTRY_BUS: u8 = 1;
pub const ENTRY_IOAPIC: u8 = 2;
pub const ENTRY_IO_INTERRUPT: u8 = 3;
pub const ENTRY_LOCAL_INTERRUPT: u8 = 4;
const INT_NORMAL: u8 = 0;
const INT_NMI: u8 = 1;
const INT_EXTINT: u8 = 3;

const HEADER_LEN: usize = 44;
const PROCESSOR_LEN: usize = 20;
const OTHER_LEN: usize = 8;
/// The longest table: [`MAX_CPUS`] processors, the bus, the IOAPIC, 16 IRQs, 2 local interrupts.
pub const MAX_TABLE_LEN: usize =
    HEADER_LEN + PROCESSOR_LEN * MAX_CPUS as usize + OTHER_LEN * (2 + ISA_IRQS as usize + 2);
/// The floating pointer structure: 16 bytes.
pub const FLOATING_POINTER_LEN: usize = 16;

/// What the table describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u16,
    /// IRQ0 reaches IOAPIC pin 2 (fw_cfg IRQ0_OVERRIDE).
    pub irq0_override: bool,
    /// CPUID(1).EAX and .EDX, copied into each processor entry.
    pub cpu_signature: u32,
    pub cpu_features: u32,
}

/// A built configuration table and the floating pointer that points to it.
#[derive(Clone, Debug)]
pub struct Tables {
    table: [u8; MAX_TABLE_LEN],
    len: usize,
    /// The floating pointer, to be placed where the kernel scans (the last KiB of base memory).
    pub floating_pointer: [u8; FLOATING_POINTER_LEN],
}

impl Tables {
    /// The configuration table's bytes, to be placed at the address given to [`build`].
    pub fn table(&self) -> &[u8] {
        &self.table[..self.len]
    }
}

/// Appends bytes, keeping the running checksum.
struct Writer<'a> {
    buf: &'a mut [u8; MAX_TABLE_LEN],
    at: usize,
    sum: u8,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.sum = bytes.iter().fold(self.sum, |s, &b| s.wrapping_add(b));
        self.at += bytes.len();
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)))
}

/// Builds the configuration table for `m`, to live at `table_addr`, and the floating pointer to
/// it. More than [`MAX_CPUS`] CPUs are described as [`MAX_CPUS`] (the format cannot say more),
/// zero as one.
pub fn build(m: &Machine, table_addr: u32) -> Tables {
    let cpus = m.cpus.clamp(1, MAX_CPUS);
    let ioapic_id = cpus as u8;
    let irqs = (0u8..ISA_IRQS as u8).filter(|&irq| !(m.irq0_override && irq == 2));
    let entries = cpus + 1 + 1 + irqs.clone().count() as u16 + 2;
    let length = HEADER_LEN as u16 + PROCESSOR_LEN as u16 * cpus + OTHER_LEN as u16 * (entries - cpus);

    let mut t = Tables {
        table: [0; MAX_TABLE_LEN],
        len: usize::from(length),
        floating_pointer: [0; FLOATING_POINTER_LEN],
    };
    let mut w = Writer {
        buf: &mut t.table,
        at: 0,
        sum: 0,
    };
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(b"PCMP");
    header[4..6].copy_from_slice(&length.to_le_bytes());
    header[6] = SPEC_REV;
    header[8..16].copy_from_slice(b"MINNOW  ");
    header[16..28].copy_from_slice(b"MICROVM     ");
    header[34..36].copy_from_slice(&entries.to_le_bytes());
    header[36..40].copy_from_slice(&LAPIC_ADDR.to_le_bytes());
    w.put(&header);
    for id in 0..cpus {
        let mut e = [0u8; PROCESSOR_LEN];
        e[0] = ENTRY_PROCESSOR;
        e[1] = id as u8;
        e[2] = LAPIC_VERSION;
        e[3] = 1 | if id == 0 { 2 } else { 0 }; // enabled, bootstrap processor
        e[4..8].copy_from_slice(&m.cpu_signature.to_le_bytes());
        e[8..12].copy_from_slice(&m.cpu_features.to_le_bytes());
        w.put(&e);
    }
    w.put(&[ENTRY_BUS, ISA_BUS, b'I', b'S', b'A', b' ', b' ', b' ']);
    let ioapic = IOAPIC_ADDR.to_le_bytes();
    w.put(&[
        ENTRY_IOAPIC,
        ioapic_id,
        IOAPIC_VERSION,
        1,
        ioapic[0],
        ioapic[1],
        ioapic[2],
        ioapic[3],
    ]);
    for irq in irqs {
        let pin = if m.irq0_override && irq == 0 { 2 } else { irq };
        w.put(&[ENTRY_IO_INTERRUPT, INT_NORMAL, 0, 0, ISA_BUS, irq, ioapic_id, pin]);
    }
    w.put(&[ENTRY_LOCAL_INTERRUPT, INT_EXTINT, 0, 0, ISA_BUS, 0, 0xFF, 0]);
    w.put(&[ENTRY_LOCAL_INTERRUPT, INT_NMI, 0, 0, ISA_BUS, 0, 0xFF, 1]);
    debug_assert_eq!(w.at, t.len);
    t.table[7] = 0u8.wrapping_sub(w.sum);

    let fp = &mut t.floating_pointer;
    fp[0..4].copy_from_slice(b"_MP_");
    fp[4..8].copy_from_slice(&table_addr.to_le_bytes());
    fp[8] = 1; // length in 16-byte units
    fp[9] = SPEC_REV;
    fp[10] = checksum(fp);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
    }

    fn machine(cpus: u16, irq0_override: bool) -> Machine {
        Machine {
            cpus,
            irq0_override,
            cpu_signature: 0x600,
            cpu_features: 0x200,
        }
    }

    #[test]
    fn floating_pointer_and_table_have_valid_checksums_and_count_cpus() {
        let t = build(&machine(2, true), 0x9E000);
        let fp = t.floating_pointer;
        assert_eq!(&fp[..4], b"_MP_");
        assert_eq!(sum(&fp), 0);
        assert_eq!(u32::from_le_bytes([fp[4], fp[5], fp[6], fp[7]]), 0x9E000);
        let table = t.table();
        assert_eq!(&table[..4], b"PCMP");
        assert_eq!(sum(table), 0);
        assert_eq!(usize::from(u16::from_le_bytes([table[4], table[5]])), table.len());
        let cpus = table[44..]
            .chunks(20)
            .take_while(|e| e[0] == ENTRY_PROCESSOR)
            .count();
        assert_eq!(cpus, 2);
        assert_eq!(table[44 + 3], 3, "CPU 0 is the enabled bootstrap processor");
        assert_eq!(table[44 + 20 + 3], 1);
        // IRQ0 goes to pin 2 and IRQ2 is not listed.
        let io: [&[u8]; 15] = core::array::from_fn(|i| &table[44 + 40 + 16 + 8 * i..][..8]);
        assert!(io.iter().all(|e| e[0] == ENTRY_IO_INTERRUPT && e[5] != 2));
        assert_eq!((io[0][5], io[0][7]), (0, 2));
        assert_eq!(u16::from_le_bytes([table[34], table[35]]), 2 + 1 + 1 + 15 + 2);
    }

    #[test]
    fn without_the_override_all_16_irqs_are_identity_mapped() {
        let t = build(&machine(1, false), 0x9E000);
        let table = t.table();
        assert_eq!(table.len(), 44 + 20 + 8 * (2 + 16 + 2));
        let io = &table[44 + 20 + 16..][..8 * 16];
        for (irq, e) in io.chunks(8).enumerate() {
            assert_eq!((e[0], e[5], e[7]), (ENTRY_IO_INTERRUPT, irq as u8, irq as u8));
        }
    }

    #[test]
    fn cpu_counts_are_clamped_to_what_the_format_can_say() {
        let big = build(&machine(1000, false), 0x9E000);
        assert_eq!(big.table().len(), MAX_TABLE_LEN);
        assert_eq!(sum(big.table()), 0);
        let zero = build(&machine(0, false), 0x9E000);
        assert_eq!(zero.table()[44], ENTRY_PROCESSOR);
        assert_eq!(zero.table()[44 + 20], ENTRY_BUS, "zero CPUs is described as one");
    }
}
