//! Intel MultiProcessor Specification 1.4 tables, for machines without ACPI: they tell the kernel
//! how many CPUs there are and where the IOAPIC is, as qboot does.
use crate::layout;
use crate::memory::Memory;

const LAPIC_ADDR: u32 = 0xFEE0_0000;
const IOAPIC_ADDR: u32 = 0xFEC0_0000;
const LAPIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const SPEC_REV: u8 = 4;
const ISA_BUS: u8 = 0;
/// APIC ids are 8-bit and 0xFF is broadcast; one id more goes to the IOAPIC.
pub const MAX_CPUS: u16 = 254;

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;
const INT_NORMAL: u8 = 0;
const INT_NMI: u8 = 1;
const INT_EXTINT: u8 = 3;

/// What the table describes.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    pub cpus: u16,
    /// IRQ0 reaches IOAPIC pin 2 (fw_cfg IRQ0_OVERRIDE).
    pub irq0_override: bool,
    /// CPUID(1).EAX and .EDX, copied into each processor entry.
    pub cpu_signature: u32,
    pub cpu_features: u32,
}

/// Appends bytes at an address, keeping the running checksum.
struct Writer<'a> {
    mem: &'a mut dyn Memory,
    at: u64,
    sum: u8,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.mem.write(self.at, bytes);
        self.sum = bytes.iter().fold(self.sum, |s, &b| s.wrapping_add(b));
        self.at += bytes.len() as u64;
    }
}

/// Writes the configuration table at `layout::MPTABLE` and the floating pointer at
/// `layout::MP_FLOATING_POINTER`. Returns the table's length. More than [`MAX_CPUS`] CPUs are
/// described as [`MAX_CPUS`]: the format cannot say more.
pub fn write(mem: &mut dyn Memory, m: &Machine) -> u16 {
    let cpus = m.cpus.clamp(1, MAX_CPUS);
    let ioapic_id = cpus as u8;
    let irqs = (0u8..16).filter(|&irq| !(m.irq0_override && irq == 2));
    let entries = cpus + 1 + 1 + irqs.clone().count() as u16 + 2;
    let length = 44 + 20 * cpus + 8 * (entries - cpus);

    let mut w = Writer {
        mem,
        at: layout::MPTABLE,
        sum: 0,
    };
    let mut header = [0u8; 44];
    header[0..4].copy_from_slice(b"PCMP");
    header[4..6].copy_from_slice(&length.to_le_bytes());
    header[6] = SPEC_REV;
    header[8..16].copy_from_slice(b"MINNOW  ");
    header[16..28].copy_from_slice(b"MICROVM     ");
    header[34..36].copy_from_slice(&entries.to_le_bytes());
    header[36..40].copy_from_slice(&LAPIC_ADDR.to_le_bytes());
    w.put(&header);
    for id in 0..cpus {
        let mut e = [0u8; 20];
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
    let checksum = 0u8.wrapping_sub(w.sum);
    w.mem.write(layout::MPTABLE + 7, &[checksum]);

    let mut fp = [0u8; 16];
    fp[0..4].copy_from_slice(b"_MP_");
    fp[4..8].copy_from_slice(&(layout::MPTABLE as u32).to_le_bytes());
    fp[8] = 1; // length in 16-byte units
    fp[9] = SPEC_REV;
    fp[10] = 0u8.wrapping_sub(fp.iter().fold(0u8, |s, &b| s.wrapping_add(b)));
    w.mem.write(layout::MP_FLOATING_POINTER, &fp);
    length
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeMemory;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
    }

    fn build(cpus: u16, irq0_override: bool) -> (FakeMemory, u16) {
        let mut mem = FakeMemory::default();
        let m = Machine {
            cpus,
            irq0_override,
            cpu_signature: 0x600,
            cpu_features: 0x200,
        };
        let len = write(&mut mem, &m);
        (mem, len)
    }

    #[test]
    fn floating_pointer_and_table_have_valid_checksums_and_count_cpus() {
        let (mem, len) = build(2, true);
        let fp = mem.bytes(layout::MP_FLOATING_POINTER, 16);
        assert_eq!(&fp[..4], b"_MP_");
        assert_eq!(sum(&fp), 0);
        assert_eq!(
            u32::from_le_bytes(fp[4..8].try_into().unwrap()),
            layout::MPTABLE as u32
        );
        let table = mem.bytes(layout::MPTABLE, usize::from(len));
        assert_eq!(&table[..4], b"PCMP");
        assert_eq!(sum(&table), 0);
        assert_eq!(u16::from_le_bytes([table[4], table[5]]), len);
        let cpus = table[44..]
            .chunks(20)
            .take_while(|e| e[0] == ENTRY_PROCESSOR)
            .count();
        assert_eq!(cpus, 2);
        // IRQ0 goes to pin 2 and IRQ2 is not listed.
        let io: Vec<_> = table[44 + 40 + 16..]
            .chunks(8)
            .filter(|e| e[0] == ENTRY_IO_INTERRUPT)
            .collect();
        assert_eq!(io.len(), 15);
        assert_eq!((io[0][5], io[0][7]), (0, 2));
        assert!(io.iter().all(|e| e[5] != 2));
    }

    #[test]
    fn the_largest_table_fits_its_reserved_area() {
        let (_, len) = build(1000, false);
        assert!(layout::MPTABLE + u64::from(len) <= layout::MP_FLOATING_POINTER);
        let (mem, len) = build(0, false);
        let table = mem.bytes(layout::MPTABLE, usize::from(len));
        assert_eq!(table[44], ENTRY_PROCESSOR);
        assert_eq!(table[44 + 20], ENTRY_BUS, "zero CPUs is described as one");
    }
}
