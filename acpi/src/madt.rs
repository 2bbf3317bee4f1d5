//! The MADT ("APIC"): the local APICs, the IOAPIC(s), IRQ0's override and the LINT1 NMI, as
//! QEMU's acpi_build_madt writes them for the microvm (hw/i386/acpi-common.c).
//!
//! acpi_tables 0.2 has the local APIC and IOAPIC entries but neither the Interrupt Source
//! Override nor the Local APIC NMI entry, and no way to set the MADT's flags: those two entries
//! are defined here (ACPI 6.5, 5.2.12.5 and 5.2.12.7), and PCAT_COMPAT is set in the bytes.
use crate::layout::*;
use crate::{Machine, TableId};
use acpi_tables::madt::{EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT};
use acpi_tables::{Aml, AmlSink};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{Immutable, IntoBytes};

/// QEMU's MADT revision: 3 (ACPI 5.0) in current QEMU, which wrote 1 before with the same entries;
/// acpi_tables writes 1.
const REVISION: u8 = 3;
/// Byte offset of the MADT's flags, and its PCAT_COMPAT bit (dual 8259s are present).
pub const FLAGS: usize = 40;
pub const PCAT_COMPAT: u32 = 1;

/// Interrupt Source Override (type 2).
#[repr(C, packed)]
#[derive(Clone, Copy, IntoBytes, Immutable)]
struct InterruptSourceOverride {
    kind: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: U32,
    flags: U16,
}

impl Aml for InterruptSourceOverride {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

/// Local APIC NMI (type 4).
#[repr(C, packed)]
#[derive(Clone, Copy, IntoBytes, Immutable)]
struct LocalApicNmi {
    kind: u8,
    length: u8,
    processor_uid: u8,
    flags: U16,
    lint: u8,
}

impl Aml for LocalApicNmi {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

/// The MADT (its checksum is left for the table-loader).
pub fn table(m: &Machine, id: &TableId) -> Vec<u8> {
    let mut madt = MADT::new(
        id.oem_id,
        id.oem_table_id,
        id.oem_revision,
        LocalInterruptController::Address(LAPIC),
    );
    // Processor UID = APIC ID = CPU index, every CPU present and enabled.
    for cpu in 0..m.cpus {
        madt.add_structure(ProcessorLocalApic::new(cpu, cpu, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(0, IOAPIC, 0));
    if m.ioapic2 {
        madt.add_structure(IoApic::new(1, IOAPIC2, IOAPIC2_GSI_BASE));
    }
    // The PIT's IRQ0 is on the IOAPIC's pin 2; flags 0: conforms to the bus (ISA: edge, high).
    madt.add_structure(InterruptSourceOverride {
        kind: 2,
        length: 10,
        bus: 0,
        source: 0,
        gsi: 2.into(),
        flags: 0.into(),
    });
    // NMIs arrive on LINT1 of every processor (UID 0xFF).
    madt.add_structure(LocalApicNmi {
        kind: 4,
        length: 6,
        processor_uid: 0xFF,
        flags: 0.into(),
        lint: 1,
    });
    let mut bytes = Vec::new();
    madt.to_aml_bytes(&mut bytes);
    bytes[8] = REVISION;
    let flags = if m.pic { PCAT_COMPAT } else { 0 };
    bytes[FLAGS..FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
    bytes[9] = 0;
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (type, bytes) of each entry after the 44-byte header.
    fn entries(t: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 44;
        while at < t.len() {
            let len = usize::from(t[at + 1]);
            out.push((t[at], t[at..at + len].to_vec()));
            at += len;
        }
        assert_eq!(at, t.len(), "entries fill the table exactly");
        out
    }

    #[test]
    fn qemus_entries_for_two_cpus() {
        let t = table(
            &Machine {
                cpus: 2,
                ..Machine::default()
            },
            &TableId::MINNOW,
        );
        assert_eq!(&t[..4], b"APIC");
        assert_eq!(u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize, t.len());
        assert_eq!(t[8], 3);
        assert_eq!(
            &t[36..44],
            &[0, 0, 0xE0, 0xFE, 1, 0, 0, 0],
            "LAPIC address, PCAT_COMPAT"
        );
        let e = entries(&t);
        let want: Vec<(u8, Vec<u8>)> = vec![
            (0, vec![0, 8, 0, 0, 1, 0, 0, 0]),
            (0, vec![0, 8, 1, 1, 1, 0, 0, 0]),
            (1, vec![1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0]),
            (2, vec![2, 10, 0, 0, 2, 0, 0, 0, 0, 0]),
            (4, vec![4, 6, 0xFF, 0, 0, 1]),
        ];
        assert_eq!(e, want);
    }

    #[test]
    fn pcat_compat_says_whether_the_pics_exist() {
        let flags = |pic| {
            let t = table(
                &Machine {
                    pic,
                    ..Machine::default()
                },
                &TableId::MINNOW,
            );
            u32::from_le_bytes(t[FLAGS..FLAGS + 4].try_into().unwrap())
        };
        assert_eq!(flags(true), PCAT_COMPAT);
        assert_eq!(flags(false), 0);
    }

    #[test]
    fn the_second_ioapic_starts_at_gsi_24() {
        let t = table(
            &Machine {
                ioapic2: true,
                ..Machine::default()
            },
            &TableId::MINNOW,
        );
        let ioapics: Vec<_> = entries(&t).into_iter().filter(|(k, _)| *k == 1).collect();
        assert_eq!(ioapics[1].1, vec![1, 12, 1, 0, 0, 0, 0xC1, 0xFE, 24, 0, 0, 0]);
    }
}
