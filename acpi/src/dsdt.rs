//! The DSDT: the microvm's devices in `\_SB` and the `\_S5` sleep package, as QEMU's
//! build_dsdt_microvm writes them (hw/i386/acpi-microvm.c and the AML builders it calls:
//! fw_cfg_add_acpi_dsdt, the ISA serial and RTC build_aml, build_ged_aml,
//! acpi_dsdt_add_power_button, acpi_dsdt_add_virtio).
//!
//! Devices appear in QEMU's order: FWCF, the ISA devices (COM1, RTC), GED, PWRB, then the
//! virtio-mmio transports from the highest index down (QEMU walks bus children newest first).
use crate::layout::*;
use crate::{AcpiError, Machine, TableId};
use acpi_tables::aml::{
    And, Device, EISAName, Equal, Field, FieldAccessType, FieldEntry, FieldLockRule, FieldUpdateRule, If,
    Interrupt, Local, Memory32Fixed, Method, Name, Notify, OpRegion, OpRegionSpace, Package, Path,
    ResourceTemplate, Scope, Store, IO, ZERO,
};
use acpi_tables::sdt::Sdt;
use acpi_tables::{Aml, AmlSink};

/// The DSDT's revision: 2, so AML integers are 64-bit.
const REVISION: u8 = 2;
const HEADER_LEN: u32 = 36;

/// AML that is already bytes: lets each device be built by its own function.
struct Raw(Vec<u8>);

impl Aml for Raw {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(&self.0);
    }
}

fn raw(aml: &dyn Aml) -> Raw {
    let mut bytes = Vec::new();
    aml.to_aml_bytes(&mut bytes);
    Raw(bytes)
}

/// `IRQNoFlags () {irq}`: the 2-byte-form IRQ descriptor QEMU's ISA devices use
/// (aml_irq_no_flags). acpi_tables 0.2 only has the Extended Interrupt descriptor, which is not
/// what QEMU emits for ISA devices, so these three bytes are written here.
struct IrqNoFlags(u8);

impl Aml for IrqNoFlags {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let mask = 1u16 << (self.0 & 0xF);
        sink.byte(0x22); // small resource item 0x04 (IRQ), length 2
        sink.word(mask);
    }
}

/// `FWCF`: fw_cfg's ports, so the guest's qemu_fw_cfg driver finds it.
fn fw_cfg(dma: bool) -> Raw {
    let len = if dma { FW_CFG_PORTS_DMA } else { FW_CFG_PORTS };
    let io = IO::new(FW_CFG_PORT, FW_CFG_PORT, 0x01, len);
    let crs = ResourceTemplate::new(vec![&io]);
    raw(&Device::new(
        "FWCF".into(),
        vec![
            &Name::new("_HID".into(), &"QEMU0002"),
            // Present, enabled, decoding; not shown in the UI.
            &Name::new("_STA".into(), &0x0Bu8),
            &Name::new("_CRS".into(), &crs),
        ],
    ))
}

/// `COM1`: the ISA serial port.
fn com1() -> Raw {
    let io = IO::new(COM1_PORT, COM1_PORT, 0x00, 0x08);
    let irq = IrqNoFlags(COM1_IRQ);
    let crs = ResourceTemplate::new(vec![&io, &irq]);
    raw(&Device::new(
        "COM1".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0501")),
            &Name::new("_UID".into(), &1u8),
            &Name::new("_STA".into(), &0x0Fu8),
            &Name::new("_CRS".into(), &crs),
        ],
    ))
}

/// `RTC`: the CMOS RTC, with the 8 ports real hardware decodes (QEMU's choice too).
fn rtc() -> Raw {
    let io = IO::new(RTC_PORT, RTC_PORT, 0x01, 0x08);
    let irq = IrqNoFlags(RTC_IRQ);
    let crs = ResourceTemplate::new(vec![&io, &irq]);
    raw(&Device::new(
        "RTC_".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0B00")),
            &Name::new("_CRS".into(), &crs),
        ],
    ))
}

/// `GED`: the Generic Event Device. Its interrupt makes the OS run `_EVT`, which reads (and so
/// clears) the event selector and notifies the power button for a power-down event, and the
/// VM generation ID device for a new generation (with `vmgenid`).
fn ged(vmgenid: bool) -> Raw {
    let irq = Interrupt::new(true, true, false, false, GED_GSI);
    let crs = ResourceTemplate::new(vec![&irq]);
    let region = OpRegion::new(
        "EREG".into(),
        OpRegionSpace::SystemMemory,
        &GED_EVENT,
        &GED_EVENT_LEN,
    );
    let field = Field::new(
        "EREG".into(),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        vec![FieldEntry::Named(*b"ESEL", usize::from(GED_EVENT_LEN) * 8)],
    );
    let selector = Local(0);
    let esel = Path::new("ESEL");
    let store = Store::new(&selector, &esel);
    let event = GED_EVENT_POWER_DOWN;
    // QEMU's aml_and(.., .., NULL): no target, the NullName, which is the byte ZeroOp is.
    let masked = And::new(&ZERO, &selector, &event);
    let is_power_down = Equal::new(&masked, &event);
    let button = Path::new("PWRB");
    let notify = Notify::new(&button, &0x80u8);
    let on_power_down = If::new(&is_power_down, vec![&notify]);
    let generation = GED_EVENT_VMGENID;
    let masked_generation = And::new(&ZERO, &selector, &generation);
    let is_generation = Equal::new(&masked_generation, &generation);
    let vgen = Path::new("\\_SB_.VGEN");
    let notify_vgen = Notify::new(&vgen, &0x80u8);
    let on_generation = If::new(&is_generation, vec![&notify_vgen]);
    let mut body: Vec<&dyn Aml> = vec![&store, &on_power_down];
    if vmgenid {
        body.push(&on_generation);
    }
    let evt = Method::new("_EVT".into(), 1, true, body);
    raw(&Device::new(
        "GED_".into(),
        vec![
            &Name::new("_HID".into(), &"ACPI0013"),
            &Name::new("_UID".into(), &"GED"),
            &Name::new("_CRS".into(), &crs),
            &region,
            &field,
            &evt,
        ],
    ))
}

/// `PWRB`: the power button the GED notifies.
fn power_button() -> Raw {
    raw(&Device::new(
        "PWRB".into(),
        vec![
            &Name::new("_HID".into(), &"PNP0C0C"),
            &Name::new("_UID".into(), &0u8),
        ],
    ))
}

/// `VGEN`: the VM generation ID, as Linux's vmgenid driver finds it (_HID VMGENCTR, the ID it
/// matches first; _CID as Microsoft's specification spells it): `ADDR` returns the 16 bytes'
/// physical address as a package of its low and high halves.
fn vmgenid() -> Raw {
    let low = VMGENID_ADDR as u32;
    let high = (VMGENID_ADDR >> 32) as u32;
    let addr = Package::new(vec![&low, &high]);
    let ret = acpi_tables::aml::Return::new(&addr);
    raw(&Device::new(
        "VGEN".into(),
        vec![
            &Name::new("_HID".into(), &"VMGENCTR"),
            &Name::new("_CID".into(), &"VM_Gen_Counter"),
            &Name::new("_DDN".into(), &"VM_Gen_Counter"),
            &Name::new("_STA".into(), &0x0Fu8),
            &Method::new("ADDR".into(), 0, false, vec![&ret]),
        ],
    ))
}

/// `VRnn`: virtio-mmio transport `index`.
fn virtio_mmio(index: u32, base: u32, gsi: u32) -> Raw {
    let mem = Memory32Fixed::new(true, base, VIRTIO_MMIO_SIZE);
    let irq = Interrupt::new(true, false, false, false, gsi);
    let crs = ResourceTemplate::new(vec![&mem, &irq]);
    let name = format!("VR{index:02}");
    raw(&Device::new(
        name.as_str().into(),
        vec![
            &Name::new("_HID".into(), &"LNRO0005"),
            &Name::new("_UID".into(), &index),
            // Cache-coherent DMA.
            &Name::new("_CCA".into(), &1u8),
            &Name::new("_CRS".into(), &crs),
        ],
    ))
}

/// The DSDT's AML body for `m`.
pub fn aml(m: &Machine) -> Result<Vec<u8>, AcpiError> {
    let mut devices = vec![fw_cfg(m.fw_cfg_dma)];
    if m.serial {
        devices.push(com1());
    }
    if m.rtc {
        devices.push(rtc());
    }
    devices.push(ged(m.vmgenid));
    devices.push(power_button());
    if m.vmgenid {
        devices.push(vmgenid());
    }
    let mut transports = m
        .virtio_mmio
        .iter()
        .map(|t| Ok((t.index()?, t)))
        .collect::<Result<Vec<_>, AcpiError>>()?;
    transports.sort_by_key(|&(index, _)| std::cmp::Reverse(index));
    for (index, t) in transports {
        // index() checked that the base is one of the transports' 32-bit addresses.
        let base = u32::try_from(t.base).map_err(|_| AcpiError::BadTransport(t.base))?;
        devices.push(virtio_mmio(index, base, t.gsi));
    }
    let children: Vec<&dyn Aml> = devices.iter().map(|d| d as &dyn Aml).collect();
    let sb = Scope::new("_SB_".into(), children);
    // QEMU writes `Scope (\) { Name (_S5, ...) }`; acpi_tables cannot name the root scope on its
    // own, and `Name (\_S5, ...)` declares the same object.
    let s5 = Package::new(vec![&SLP_TYP_S5, &0u8, &0u8, &0u8]);
    let s5 = Name::new("\\_S5_".into(), &s5);
    let mut bytes = Vec::new();
    sb.to_aml_bytes(&mut bytes);
    s5.to_aml_bytes(&mut bytes);
    Ok(bytes)
}

/// The whole table (its checksum is left for the table-loader).
pub fn table(m: &Machine, id: &TableId) -> Result<Vec<u8>, AcpiError> {
    let mut sdt = Sdt::new(
        *b"DSDT",
        HEADER_LEN,
        REVISION,
        id.oem_id,
        id.oem_table_id,
        id.oem_revision,
    );
    sdt.append_slice(&aml(m)?);
    Ok(sdt.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VirtioMmio;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn the_resources_are_qemus_bytes() {
        // IO (Decode16, 0x510, 0x510, 0x01, 0x0C), as QEMU encodes it.
        let fwcf = fw_cfg(true).0;
        assert!(contains(&fwcf, &[0x47, 0x01, 0x10, 0x05, 0x10, 0x05, 0x01, 0x0C]));
        assert!(contains(
            &fw_cfg(false).0,
            &[0x47, 0x01, 0x10, 0x05, 0x10, 0x05, 0x01, 0x02]
        ));
        // IRQNoFlags () {4} and {8}.
        assert!(contains(&com1().0, &[0x22, 0x10, 0x00]));
        assert!(contains(&rtc().0, &[0x22, 0x00, 0x01]));
        // Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {9}.
        assert!(contains(
            &ged(false).0,
            &[0x89, 0x06, 0x00, 0x03, 0x01, 9, 0, 0, 0]
        ));
        // OperationRegion (EREG, SystemMemory, 0xFEA00000, 0x04).
        assert!(contains(
            &ged(false).0,
            &[0x5B, 0x80, b'E', b'R', b'E', b'G', 0x00, 0x0C, 0x00, 0x00, 0xA0, 0xFE, 0x0A, 0x04]
        ));
        // Memory32Fixed (ReadWrite, base, 0x200) and Interrupt (.., Level, ActiveHigh, ..) {gsi}.
        let vr = virtio_mmio(3, 0xFEB0_0600, 19).0;
        assert!(contains(&vr, b"VR03"));
        assert!(contains(
            &vr,
            &[0x86, 0x09, 0x00, 0x01, 0x00, 0x06, 0xB0, 0xFE, 0x00, 0x02, 0, 0]
        ));
        assert!(contains(&vr, &[0x89, 0x06, 0x00, 0x01, 0x01, 19, 0, 0, 0]));
    }

    #[test]
    fn devices_follow_the_machine() {
        let base = Machine::default();
        let with = aml(&base).unwrap();
        assert!(contains(&with, b"RTC_") && contains(&with, b"COM1"));
        let without = aml(&Machine {
            rtc: false,
            serial: false,
            ..base.clone()
        })
        .unwrap();
        assert!(!contains(&without, b"RTC_") && !contains(&without, b"COM1"));
        assert!(!contains(&with, b"LNRO0005"));
        let virtio = aml(&Machine {
            virtio_mmio: vec![
                VirtioMmio {
                    base: VIRTIO_MMIO_BASE,
                    gsi: 16,
                },
                VirtioMmio {
                    base: VIRTIO_MMIO_BASE + 2 * 0x200,
                    gsi: 18,
                },
            ],
            ..base.clone()
        })
        .unwrap();
        let at = |name: &[u8]| virtio.windows(4).position(|w| w == name);
        assert!(at(b"VR02").unwrap() < at(b"VR00").unwrap(), "highest index first");
        assert_eq!(
            aml(&Machine {
                virtio_mmio: vec![VirtioMmio {
                    base: VIRTIO_MMIO_BASE + 0x100,
                    gsi: 16,
                }],
                ..base
            }),
            Err(AcpiError::BadTransport(VIRTIO_MMIO_BASE + 0x100))
        );
    }
}
