//! The little chipset setup pc (i440FX/PIIX) and q35 (MCH/ICH9) need, done before the ACPI tables
//! are read because QEMU builds them from this state when the firmware first selects them:
//! - the PM I/O base and its enable bit, or the FADT's PM1 blocks are zero and Linux waits seconds
//!   for "ACPI mode" and cannot power off;
//! - PAM: 0xE0000-0xEFFFF becomes RAM, for the table-loader's F-segment zone (the RSDP);
//! - PCI interrupt routing (PIRQ A-D to IRQ 10, 10, 11, 11, as qboot and SeaBIOS do);
//! - q35: MMCONFIG (PCIEXBAR) at 0xB0000000, 256 buses, so QEMU emits an MCFG table.
//!
//! - every machine: both 8259 PICs masked. After reset they are unprogrammed with vector base 0
//!   and the PIT's channel 0 running, so a kernel that enables interrupts in real mode (Xen's
//!   trampoline, around its BIOS calls) would take the timer tick as vector 0; a BIOS leaves them
//!   masked or handled, and kernels program them themselves.
//!
//! Not done (Linux does it itself): PCI BAR assignment, option ROMs, SMM.
//! microvm has no PCI host bridge: the probe reads all-ones and nothing else happens.
use crate::hw;

const PCI_CONFIG_ADDRESS: u16 = 0xCF8;
const PCI_CONFIG_DATA: u16 = 0xCFC;
const I440FX: u32 = 0x1237_8086;
const Q35_MCH: u32 = 0x29C0_8086;
/// PAM registers 5 and 6 cover 0xE0000-0xEFFFF; 0x33 makes both halves of each read/write RAM.
const PAM_ESEG: [u8; 2] = [5, 6];
const PAM_RW_RAM: u8 = 0x33;
/// The PM I/O base QEMU's firmwares use (bit 0: I/O space).
const PM_BASE: u32 = 0x600 | 1;
const PIRQ_IRQS: [u8; 4] = [10, 10, 11, 11];
const Q35_PCIEXBAR: u8 = 0x60;
const Q35_MMCONFIG: u32 = 0xB000_0000;
const PCIEXBAR_ENABLE: u32 = 1;

/// A PCI function on bus 0.
#[derive(Clone, Copy)]
struct Function(u8, u8);

impl Function {
    fn address(self, reg: u8) -> u32 {
        0x8000_0000 | (u32::from(self.0) << 11) | (u32::from(self.1) << 8) | u32::from(reg & 0xFC)
    }
    fn read32(self, reg: u8) -> u32 {
        hw::outl(PCI_CONFIG_ADDRESS, self.address(reg));
        hw::inl(PCI_CONFIG_DATA)
    }
    fn write32(self, reg: u8, value: u32) {
        hw::outl(PCI_CONFIG_ADDRESS, self.address(reg));
        hw::outl(PCI_CONFIG_DATA, value);
    }
    fn write8(self, reg: u8, value: u8) {
        hw::outl(PCI_CONFIG_ADDRESS, self.address(reg));
        hw::outb(PCI_CONFIG_DATA + u16::from(reg & 3), value);
    }
}

const HOST_BRIDGE: Function = Function(0, 0);
const PIIX3_ISA: Function = Function(1, 0);
const PIIX4_PM: Function = Function(1, 3);
const ICH9_LPC: Function = Function(0x1F, 0);

/// Which chipset the machine has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chipset {
    /// microvm: no PCI.
    None,
    I440fx,
    Q35,
}

pub fn detect() -> Chipset {
    match HOST_BRIDGE.read32(0) {
        I440FX => Chipset::I440fx,
        Q35_MCH => Chipset::Q35,
        _ => Chipset::None,
    }
}

const PIC_MASTER_DATA: u16 = 0x21;
const PIC_SLAVE_DATA: u16 = 0xA1;

/// Sets up what the boot needs on `chipset` (see the module comment).
pub fn init(chipset: Chipset) {
    // OCW1 (the interrupt mask) is accepted before any initialization sequence.
    hw::outb(PIC_MASTER_DATA, 0xFF);
    hw::outb(PIC_SLAVE_DATA, 0xFF);
    match chipset {
        Chipset::None => {}
        Chipset::I440fx => {
            PAM_ESEG
                .iter()
                .for_each(|&pam| HOST_BRIDGE.write8(0x59 + pam, PAM_RW_RAM));
            PIRQ_IRQS
                .iter()
                .zip(0x60..)
                .for_each(|(&irq, reg)| PIIX3_ISA.write8(reg, irq));
            PIIX4_PM.write32(0x40, PM_BASE);
            PIIX4_PM.write8(0x80, 1); // PMREGMISC: PM I/O space enable
        }
        Chipset::Q35 => {
            PAM_ESEG
                .iter()
                .for_each(|&pam| HOST_BRIDGE.write8(0x90 + pam, PAM_RW_RAM));
            HOST_BRIDGE.write32(Q35_PCIEXBAR + 4, 0);
            HOST_BRIDGE.write32(Q35_PCIEXBAR, Q35_MMCONFIG | PCIEXBAR_ENABLE);
            PIRQ_IRQS
                .iter()
                .zip(0x60..)
                .for_each(|(&irq, reg)| ICH9_LPC.write8(reg, irq));
            PIRQ_IRQS
                .iter()
                .zip(0x68..)
                .for_each(|(&irq, reg)| ICH9_LPC.write8(reg, irq));
            ICH9_LPC.write32(0x40, PM_BASE);
            ICH9_LPC.write8(0x44, 0x80); // ACPI_CNTL: ACPI enable
        }
    }
}

/// Reads the CMOS memory-size bytes (for machines without `etc/e820`).
pub fn cmos_sizes() -> crate::memory_map::CmosSizes {
    let read = |reg: u8| {
        hw::outb(0x70, reg);
        hw::inb(0x71)
    };
    let word = |lo: u8, hi: u8| u16::from(read(lo)) | (u16::from(read(hi)) << 8);
    crate::memory_map::CmosSizes {
        above_16m_64k: word(0x34, 0x35),
        above_1m_kib: word(0x30, 0x31),
        above_4g_64k: u32::from(read(0x5B)) | (u32::from(read(0x5C)) << 8) | (u32::from(read(0x5D)) << 16),
    }
}
