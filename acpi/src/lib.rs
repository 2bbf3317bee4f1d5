//! ACPI tables for Minnow's microvm machine, served to firmware the way QEMU's microvm serves
//! them (hw/i386/acpi-microvm.c): three fw_cfg files.
//!
//! - `etc/acpi/tables`: DSDT, FACP (FADT, revision 5, hardware-reduced), APIC (MADT) and XSDT,
//!   back to back, in that order, their pointers holding offsets into this blob;
//! - `etc/acpi/rsdp`: the RSDP, revision 2, pointing at the XSDT only;
//! - `etc/table-loader`: the script that has the firmware place both files (the RSDP in the
//!   F-segment), relocate every pointer and fill in every checksum.
//!
//! [`build`] takes a [`Machine`] description and returns [`AcpiFiles`]; nothing here touches KVM
//! or guest memory. [`AcpiFiles::link`] runs the script as firmware would, for a VMM that places
//! the tables itself (and for the tests).
#![forbid(unsafe_code)]

pub mod dsdt;
pub mod fadt;
pub mod layout;
pub mod loader;
pub mod madt;

#[cfg(test)]
mod iasl;

use acpi_tables::rsdp::Rsdp;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use loader::{Placed, TableLoader, TableLoaderError};
use minnow_bootproto::fw_cfg::file;
use minnow_bootproto::table_loader::{ZONE_FSEG, ZONE_HIGH};

/// What the tables describe: the parts of the microvm that vary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// vCPUs, APIC IDs 0..cpus (1 to 254).
    pub cpus: u8,
    /// The CMOS RTC at ports 0x70/0x71 exists.
    pub rtc: bool,
    /// COM1 exists (QEMU's isa-serial).
    pub serial: bool,
    /// A second IOAPIC at 0xFEC10000 for GSIs 24..47.
    pub ioapic2: bool,
    /// The dual 8259 PICs exist (the MADT's PCAT_COMPAT flag).
    pub pic: bool,
    /// The virtio-mmio transports that have a device.
    pub virtio_mmio: Vec<VirtioMmio>,
    /// fw_cfg offers DMA (its DMA registers are then part of its ports).
    pub fw_cfg_dma: bool,
    /// The VM generation ID device (`VGEN`) at [`layout::VMGENID_ADDR`], notified through the
    /// GED.
    pub vmgenid: bool,
}

impl Default for Machine {
    /// One CPU, the RTC and COM1, the PICs and one IOAPIC, no virtio devices, fw_cfg with DMA.
    fn default() -> Self {
        Self {
            cpus: 1,
            rtc: true,
            serial: true,
            ioapic2: false,
            pic: true,
            virtio_mmio: Vec::new(),
            fw_cfg_dma: true,
            vmgenid: false,
        }
    }
}

/// A virtio-mmio transport: its 512-byte register window and its interrupt line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmio {
    /// `layout::VIRTIO_MMIO_BASE + index * 0x200`.
    pub base: u64,
    pub gsi: u32,
}

impl VirtioMmio {
    /// The transport's index, from its address; an address off the transports' grid is an error.
    pub fn index(&self) -> Result<u32, AcpiError> {
        let size = u64::from(layout::VIRTIO_MMIO_SIZE);
        match self.base.checked_sub(layout::VIRTIO_MMIO_BASE) {
            Some(off) if off % size == 0 && off / size < layout::VIRTIO_MMIO_MAX => Ok((off / size) as u32),
            _ => Err(AcpiError::BadTransport(self.base)),
        }
    }
}

/// Who made the tables: the header fields every table carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableId {
    pub oem_id: [u8; 6],
    pub oem_table_id: [u8; 8],
    pub oem_revision: u32,
}

impl TableId {
    pub const MINNOW: TableId = TableId {
        oem_id: *b"MINNOW",
        oem_table_id: *b"MINNOWVM",
        oem_revision: 1,
    };
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcpiError {
    #[error("ACPI: {0} CPUs: the MADT describes 1 to 254")]
    BadCpuCount(u8),
    #[error(
        "ACPI: no virtio-mmio transport at {0:#x}: transports are at {base:#x} + n * {size:#x}, n < {max}",
        base = layout::VIRTIO_MMIO_BASE,
        size = layout::VIRTIO_MMIO_SIZE,
        max = layout::VIRTIO_MMIO_MAX
    )]
    BadTransport(u64),
    #[error("ACPI: the virtio-mmio transport at {0:#x} is listed twice")]
    DuplicateTransport(u64),
    #[error("ACPI: {0}")]
    Loader(#[from] TableLoaderError),
}

/// The three fw_cfg files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiFiles {
    /// `etc/acpi/tables`.
    pub tables: Vec<u8>,
    /// `etc/acpi/rsdp`.
    pub rsdp: Vec<u8>,
    /// `etc/table-loader`.
    pub table_loader: Vec<u8>,
}

/// The tables as the guest sees them once placed: pointers relocated, checksums filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linked {
    pub tables: Vec<u8>,
    pub rsdp: Vec<u8>,
}

impl AcpiFiles {
    /// Runs `etc/table-loader` as firmware does, with the tables blob at `tables_at` and the RSDP
    /// at `rsdp_at`: what a VMM that places the tables without firmware copies into the guest.
    pub fn link(&self, tables_at: u64, rsdp_at: u64) -> Result<Linked, AcpiError> {
        let mut files = [
            Placed {
                name: file::ACPI_TABLES.into(),
                addr: tables_at,
                bytes: self.tables.clone(),
            },
            Placed {
                name: file::ACPI_RSDP.into(),
                addr: rsdp_at,
                bytes: self.rsdp.clone(),
            },
        ];
        loader::run(&self.table_loader, &mut files)?;
        let [tables, rsdp] = files;
        Ok(Linked {
            tables: tables.bytes,
            rsdp: rsdp.bytes,
        })
    }
}

/// Offset of the checksum in every table header.
const CHECKSUM: usize = 9;
/// Offset of the XSDT's first entry.
const XSDT_ENTRIES: usize = 36;
/// RSDP: revision 1 checksum over the first 20 bytes; XSDT address; extended checksum over 36.
const RSDP_CHECKSUM: usize = 8;
const RSDP_V1_LEN: usize = 20;
const RSDP_XSDT: usize = 24;
const RSDP_EXTENDED_CHECKSUM: usize = 32;

fn check(m: &Machine) -> Result<(), AcpiError> {
    if m.cpus == 0 || m.cpus == u8::MAX {
        return Err(AcpiError::BadCpuCount(m.cpus));
    }
    let mut seen = Vec::new();
    for t in &m.virtio_mmio {
        let index = t.index()?;
        if seen.contains(&index) {
            return Err(AcpiError::DuplicateTransport(t.base));
        }
        seen.push(index);
    }
    Ok(())
}

/// Appends `table` to the blob, with ADD_POINTERs for its `(offset in the table, size, target
/// offset in the blob)` pointers, then its ADD_CHECKSUM: QEMU's order (acpi_table_end runs last).
fn add_table(
    blob: &mut Vec<u8>,
    script: &mut TableLoader,
    table: &[u8],
    pointers: &[(usize, u8, usize)],
) -> Result<usize, AcpiError> {
    let at = blob.len();
    blob.extend_from_slice(table);
    for &(offset, size, target) in pointers {
        script.add_pointer(
            file::ACPI_TABLES,
            blob,
            at + offset,
            size,
            file::ACPI_TABLES,
            target,
        )?;
    }
    script.add_checksum(file::ACPI_TABLES, blob, at, table.len(), at + CHECKSUM)?;
    Ok(at)
}

/// The tables, the RSDP and the script for `m`.
pub fn build(m: &Machine) -> Result<AcpiFiles, AcpiError> {
    check(m)?;
    let id = TableId::MINNOW;
    let mut script = TableLoader::new();
    // 64-byte alignment, as QEMU asks (for a FACS, which a hardware-reduced machine has not).
    script.allocate(file::ACPI_TABLES, 64, ZONE_HIGH)?;
    let mut blob = Vec::new();
    let dsdt = add_table(&mut blob, &mut script, &dsdt::table(m, &id)?, &[])?;
    let dsdt32 = u32::try_from(dsdt).map_err(|_| TableLoaderError::PointerTooSmall {
        value: dsdt as u64,
        size: 4,
    })?;
    let fadt = add_table(
        &mut blob,
        &mut script,
        &fadt::table(m, &id, dsdt32),
        &[(fadt::DSDT, 4, dsdt), (fadt::X_DSDT, 8, dsdt)],
    )?;
    let madt = add_table(&mut blob, &mut script, &madt::table(m, &id), &[])?;
    let mut xsdt = XSDT::new(id.oem_id, id.oem_table_id, id.oem_revision);
    let entries = [fadt, madt];
    for &entry in &entries {
        xsdt.add_entry(entry as u64);
    }
    let mut xsdt_bytes = Vec::new();
    xsdt.to_aml_bytes(&mut xsdt_bytes);
    let pointers: Vec<_> = entries
        .iter()
        .enumerate()
        .map(|(i, &target)| (XSDT_ENTRIES + 8 * i, 8, target))
        .collect();
    let xsdt = add_table(&mut blob, &mut script, &xsdt_bytes, &pointers)?;

    let mut rsdp = Vec::new();
    Rsdp::new(id.oem_id, xsdt as u64).to_aml_bytes(&mut rsdp);
    script.allocate(file::ACPI_RSDP, 16, ZONE_FSEG)?;
    script.add_checksum(file::ACPI_RSDP, &mut rsdp, 0, RSDP_V1_LEN, RSDP_CHECKSUM)?;
    script.add_pointer(file::ACPI_RSDP, &mut rsdp, RSDP_XSDT, 8, file::ACPI_TABLES, xsdt)?;
    let len = rsdp.len();
    script.add_checksum(file::ACPI_RSDP, &mut rsdp, 0, len, RSDP_EXTENDED_CHECKSUM)?;
    Ok(AcpiFiles {
        tables: blob,
        rsdp,
        table_loader: script.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use minnow_bootproto::table_loader::{self as tl, Command, COMMAND_SIZE};

    const TABLES_AT: u64 = 0x07FF_E000;
    const RSDP_AT: u64 = 0xF_0000;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
    }
    fn u32_at(t: &[u8], at: usize) -> u64 {
        u64::from(u32::from_le_bytes(t[at..at + 4].try_into().unwrap()))
    }
    fn u64_at(t: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(t[at..at + 8].try_into().unwrap())
    }

    fn machines() -> Vec<Machine> {
        vec![
            Machine::default(),
            Machine {
                cpus: 2,
                rtc: false,
                serial: false,
                vmgenid: true,
                ..Machine::default()
            },
            Machine {
                cpus: 254,
                ioapic2: true,
                fw_cfg_dma: false,
                virtio_mmio: (0..24)
                    .map(|i| VirtioMmio {
                        base: layout::VIRTIO_MMIO_BASE + i * 0x200,
                        gsi: 24 + i as u32,
                    })
                    .collect(),
                ..Machine::default()
            },
        ]
    }

    /// A placed table: its bytes (length from its header, checksum verified) and signature.
    fn table_at(linked: &Linked, addr: u64) -> (&[u8], [u8; 4]) {
        let off = (addr - TABLES_AT) as usize;
        let len = u32_at(&linked.tables, off + 4) as usize;
        let t = &linked.tables[off..off + len];
        let sig: [u8; 4] = t[..4].try_into().unwrap();
        assert_eq!(sum(t), 0, "{} checksum", String::from_utf8_lossy(&sig));
        (t, sig)
    }

    #[test]
    fn every_checksum_is_zero_once_the_script_has_run() {
        for m in machines() {
            let files = build(&m).unwrap();
            let linked = files.link(TABLES_AT, RSDP_AT).unwrap();
            let rsdp = &linked.rsdp;
            assert_eq!((&rsdp[..8], rsdp[15], rsdp.len()), (&b"RSD PTR "[..], 2, 36));
            assert_eq!(u32_at(rsdp, 16), 0, "no RSDT");
            assert_eq!(sum(&rsdp[..20]), 0);
            assert_eq!(sum(rsdp), 0);
            let (xsdt, sig) = table_at(&linked, u64_at(rsdp, RSDP_XSDT));
            assert_eq!(&sig, b"XSDT");
            let mut seen = vec![sig];
            let mut covered = xsdt.len();
            for entry in xsdt[36..].chunks_exact(8) {
                let (t, sig) = table_at(&linked, u64::from_le_bytes(entry.try_into().unwrap()));
                seen.push(sig);
                covered += t.len();
                if &sig == b"FACP" {
                    let (x_dsdt, dsdt32) = (u64_at(t, fadt::X_DSDT), u32_at(t, fadt::DSDT));
                    assert_eq!((x_dsdt, dsdt32), (TABLES_AT, TABLES_AT), "DSDT first in the blob");
                    let (d, sig) = table_at(&linked, x_dsdt);
                    seen.push(sig);
                    covered += d.len();
                }
            }
            assert_eq!(seen, [*b"XSDT", *b"FACP", *b"DSDT", *b"APIC"]);
            assert_eq!(covered, linked.tables.len(), "the blob is exactly these tables");
        }
    }

    #[test]
    fn the_served_files_are_qemus_shape() {
        let files = build(&Machine::default()).unwrap();
        // Checksums left 0, pointers holding blob offsets.
        assert_eq!(
            (files.rsdp[RSDP_CHECKSUM], files.rsdp[RSDP_EXTENDED_CHECKSUM]),
            (0, 0)
        );
        let xsdt = u64_at(&files.rsdp, RSDP_XSDT) as usize;
        assert_eq!(&files.tables[xsdt..xsdt + 4], b"XSDT");
        assert_eq!(&files.tables[..4], b"DSDT");
        let mut at = 0;
        while at < files.tables.len() {
            assert_eq!(files.tables[at + CHECKSUM], 0);
            at += u32_at(&files.tables, at + 4) as usize;
        }
        // The script, command by command.
        let name = |f: &[u8; 56]| String::from_utf8_lossy(tl::file_name(f)).into_owned();
        let got: Vec<String> = files
            .table_loader
            .chunks_exact(COMMAND_SIZE)
            .map(|raw| match tl::decode(raw).unwrap() {
                Command::Allocate(c) => format!("alloc {} {} {}", name(&c.file), c.align.get(), c.zone),
                Command::AddPointer(c) => format!(
                    "ptr {}+{:#x}/{} -> {}",
                    name(&c.dest_file),
                    c.offset.get(),
                    c.size,
                    name(&c.src_file)
                ),
                Command::AddChecksum(c) => format!(
                    "sum {}@{:#x} {:#x}+{:#x}",
                    name(&c.file),
                    c.offset.get(),
                    c.start.get(),
                    c.length.get()
                ),
                other => format!("{other:?}"),
            })
            .collect();
        let dsdt_len = u32_at(&files.tables, 4);
        let facp = dsdt_len;
        let apic = facp + fadt::LEN as u64;
        let apic_len = u32_at(&files.tables, apic as usize + 4);
        let xsdt = apic + apic_len;
        let t = "etc/acpi/tables";
        let want = vec![
            "alloc etc/acpi/rsdp 16 2".to_string(),
            format!("alloc {t} 64 1"),
            format!("sum {t}@0x9 0x0+{dsdt_len:#x}"),
            format!("ptr {t}+{:#x}/4 -> {t}", facp + 40),
            format!("ptr {t}+{:#x}/8 -> {t}", facp + 140),
            format!("sum {t}@{:#x} {facp:#x}+0x10c", facp + 9),
            format!("sum {t}@{:#x} {apic:#x}+{apic_len:#x}", apic + 9),
            format!("ptr {t}+{:#x}/8 -> {t}", xsdt + 36),
            format!("ptr {t}+{:#x}/8 -> {t}", xsdt + 44),
            format!("sum {t}@{:#x} {xsdt:#x}+0x34", xsdt + 9),
            "sum etc/acpi/rsdp@0x8 0x0+0x14".to_string(),
            format!("ptr etc/acpi/rsdp+0x18/8 -> {t}"),
            "sum etc/acpi/rsdp@0x20 0x0+0x24".to_string(),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn impossible_machines_are_refused() {
        let bad = |m: Machine| build(&m).unwrap_err();
        assert_eq!(
            bad(Machine {
                cpus: 0,
                ..Machine::default()
            }),
            AcpiError::BadCpuCount(0)
        );
        let t = VirtioMmio {
            base: layout::VIRTIO_MMIO_BASE,
            gsi: 16,
        };
        assert_eq!(
            bad(Machine {
                virtio_mmio: vec![t, t],
                ..Machine::default()
            }),
            AcpiError::DuplicateTransport(t.base)
        );
        let far = layout::VIRTIO_MMIO_BASE + 24 * 0x200;
        let e = bad(Machine {
            virtio_mmio: vec![VirtioMmio { base: far, gsi: 16 }],
            ..Machine::default()
        });
        assert_eq!(e, AcpiError::BadTransport(far));
        assert!(e.to_string().contains("0xfeb00000 + n * 0x200"), "{e}");
    }

    /// Every table disassembles with ACPICA's iasl, and says what it should. (Not the RSDP, which
    /// has no table header: iasl -d refuses a binary RSDP, "does not contain a valid ACPI table";
    /// the test above checks it.)
    #[test]
    fn iasl_disassembles_every_table() {
        for (i, m) in machines().into_iter().enumerate() {
            let linked = build(&m).unwrap().link(TABLES_AT, RSDP_AT).unwrap();
            let mut tables = Vec::new();
            let mut at = 0;
            while at < linked.tables.len() {
                let len = u32_at(&linked.tables, at + 4) as usize;
                let sig = String::from_utf8_lossy(&linked.tables[at..at + 4]).to_lowercase();
                tables.push((sig, linked.tables[at..at + len].to_vec()));
                at += len;
            }
            let dsl = iasl::disassemble(&format!("machine{i}"), &tables);
            let text = |sig: &str| {
                dsl.iter()
                    .find(|(s, _)| s == sig)
                    .map(|(_, t)| t.as_str())
                    .unwrap()
            };
            let dsdt = text("dsdt");
            for name in ["QEMU0002", "ACPI0013", "PNP0C0C", "_S5_", "PWRB", "_EVT", "ESEL"] {
                assert!(dsdt.contains(name), "machine {i}: the DSDT lacks {name}\n{dsdt}");
            }
            for (name, present) in [
                ("PNP0501", m.serial),
                ("PNP0B00", m.rtc),
                ("VMGENCTR", m.vmgenid),
                ("Notify (\\_SB.VGEN, 0x80)", m.vmgenid),
                ("Method (ADDR", m.vmgenid),
                ("LNRO0005", !m.virtio_mmio.is_empty()),
            ] {
                assert_eq!(dsdt.contains(name), present, "machine {i}: {name}\n{dsdt}");
            }
            assert_eq!(dsdt.matches("LNRO0005").count(), m.virtio_mmio.len());
            let facp = text("facp");
            let field = |name: &str| {
                let line = facp.lines().find(|l| l.contains(name));
                line.and_then(|l| l.rsplit(" : ").next())
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            assert_eq!(field("Hardware Reduced (V5)"), "1", "{facp}");
            assert_eq!(field("CMOS RTC Not Present (V5)"), if m.rtc { "0" } else { "1" });
            assert_eq!(field("RTC Century Index"), if m.rtc { "32" } else { "00" });
            let apic = text("apic");
            assert_eq!(
                apic.matches("Subtable Type : 00 [Processor Local APIC]").count(),
                usize::from(m.cpus),
                "{apic}"
            );
            assert_eq!(
                apic.matches("Subtable Type : 01 [I/O APIC]").count(),
                1 + usize::from(m.ioapic2)
            );
            assert!(text("xsdt").contains("ACPI Table Address   1 : "));
        }
    }
}
