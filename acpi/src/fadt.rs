//! The FADT ("FACP"): hardware-reduced ACPI, with the GED's sleep and reset registers, as QEMU's
//! microvm writes it (acpi_build_microvm's AcpiFadtData and build_fadt), plus the RTC fixups.
//!
//! Revision 5.0, 268 bytes, as QEMU's: acpi_tables' builder lays out the ACPI 6.x table
//! (276 bytes, ending with the hypervisor vendor identity); revision 5.0 is that table without
//! its last 8 bytes, so the builder's bytes are cut there and the header made to say so.
use crate::layout::*;
use crate::{Machine, TableId};
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::Aml;

/// ACPI 5.0's FADT length: up to and including SLEEP_STATUS_REG.
pub const LEN: usize = 268;
pub const REVISION: u8 = 5;

/// Byte offsets of the fields the table-loader patches and the tests read.
pub const DSDT: usize = 40;
pub const CENTURY: usize = 108;
pub const IAPC_BOOT_ARCH: usize = 109;
pub const FLAGS: usize = 112;
pub const X_DSDT: usize = 140;

/// IAPC_BOOT_ARCH bit 5: "CMOS RTC Not Present" (ACPI 5.0+).
pub const BOOT_ARCH_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

/// An 8-bit register in memory, as QEMU describes the GED's (access size left undefined).
fn byte_register(address: u64) -> GAS {
    GAS::new(AddressSpace::SystemMemory, 8, 0, AccessSize::Undefined, address)
}

/// The FADT, its DSDT pointers holding `dsdt` (the DSDT's offset in the tables blob) for the
/// table-loader to relocate; its checksum is left for the table-loader.
pub fn table(m: &Machine, id: &TableId, dsdt: u32) -> Vec<u8> {
    let mut f = FADTBuilder::new(id.oem_id, id.oem_table_id, id.oem_revision)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup);
    f.major_version = REVISION;
    f.fadt_minor_version = 0;
    f.dsdt = dsdt.into();
    f.x_dsdt = u64::from(dsdt).into();
    f.reset_reg = byte_register(GED_RESET);
    f.reset_value = GED_RESET_VALUE;
    f.sleep_control_reg = byte_register(GED_SLEEP_CONTROL);
    f.sleep_status_reg = byte_register(GED_SLEEP_STATUS);
    // The RTC fixups (QEMU's microvm sets neither): say where the century is when the RTC exists,
    // and that there is no RTC when it does not, so the guest does not probe for one.
    if m.rtc {
        f.century = RTC_CENTURY_INDEX;
    } else {
        f.iapc_boot_arch = BOOT_ARCH_CMOS_RTC_NOT_PRESENT.into();
    }
    let mut bytes = Vec::new();
    f.finalize().to_aml_bytes(&mut bytes);
    bytes.truncate(LEN);
    bytes[4..8].copy_from_slice(&(LEN as u32).to_le_bytes());
    bytes[9] = 0;
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(t: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([t[at], t[at + 1]])
    }
    fn u32_at(t: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(t[at..at + 4].try_into().unwrap())
    }
    fn u64_at(t: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(t[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn revision_5_hardware_reduced_with_the_geds_registers() {
        let t = table(&Machine::default(), &TableId::MINNOW, 0x24);
        assert_eq!(&t[..4], b"FACP");
        assert_eq!((t.len(), u32_at(&t, 4) as usize, t[8]), (LEN, LEN, 5));
        assert_eq!(t[131], 0, "FADT minor version: reserved in 5.0");
        assert_eq!(u32_at(&t, FLAGS), (1 << 20) | (1 << 10));
        assert_eq!((u32_at(&t, DSDT), u64_at(&t, X_DSDT)), (0x24, 0x24));
        assert_eq!(u32_at(&t, 36), 0, "no FACS: hardware-reduced");
        // RESET_REG and RESET_VALUE; SLEEP_CONTROL_REG and SLEEP_STATUS_REG.
        assert_eq!(&t[116..120], &[0, 8, 0, 0]);
        assert_eq!((u64_at(&t, 120), t[128]), (0xFEA0_0202, 0x42));
        assert_eq!(&t[244..248], &[0, 8, 0, 0]);
        assert_eq!((u64_at(&t, 248), u64_at(&t, 260)), (0xFEA0_0200, 0xFEA0_0201));
    }

    #[test]
    fn the_rtc_fixups() {
        let with = table(&Machine::default(), &TableId::MINNOW, 0);
        assert_eq!((with[CENTURY], u16_at(&with, IAPC_BOOT_ARCH)), (0x32, 0));
        let without = table(
            &Machine {
                rtc: false,
                ..Machine::default()
            },
            &TableId::MINNOW,
            0,
        );
        assert_eq!((without[CENTURY], u16_at(&without, IAPC_BOOT_ARCH)), (0, 1 << 5));
    }
}
