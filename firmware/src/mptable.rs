//! Intel MultiProcessor Specification 1.4 tables, for machines without ACPI: they tell the kernel
//! how many CPUs there are and where the IOAPIC is, as qboot does.
use crate::layout;
use crate::memory::Memory;
use minnow_bootproto::mptable;
pub use minnow_bootproto::mptable::{Machine, MAX_CPUS};

/// Writes the configuration table at `layout::MPTABLE` and the floating pointer at
/// `layout::MP_FLOATING_POINTER` (the builder is minnow_bootproto's, shared with the VMM's direct
/// boot). Returns the table's length. More than [`MAX_CPUS`] CPUs are described as [`MAX_CPUS`]:
/// the format cannot say more.
pub fn write(mem: &mut dyn Memory, m: &Machine) -> u16 {
    let t = mptable::build(m, layout::MPTABLE as u32);
    mem.write(layout::MPTABLE, t.table());
    mem.write(layout::MP_FLOATING_POINTER, &t.floating_pointer);
    t.table().len() as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeMemory;
    use minnow_bootproto::mptable::{ENTRY_BUS, ENTRY_IO_INTERRUPT, ENTRY_PROCESSOR};

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
