//! Where the devices the tables describe are: QEMU's microvm (hw/i386/microvm.h,
//! include/hw/acpi/generic_event_device.h). The VMM's `layout.rs` has the same values; a test
//! there checks that the two agree.

/// fw_cfg's I/O ports: selector 0x510, data 0x511, DMA 0x514..0x51C.
pub const FW_CFG_PORT: u16 = minnow_bootproto::fw_cfg::PORT_SELECTOR;
/// The ports the DSDT reserves for fw_cfg: the 2 of the selector and data registers, rounded up to
/// 4 and followed by the 8-byte DMA address when DMA is offered (QEMU's fw_cfg_add_acpi_dsdt).
pub const FW_CFG_PORTS_DMA: u8 = 0x0C;
pub const FW_CFG_PORTS: u8 = 0x02;

pub const COM1_PORT: u16 = 0x3F8;
pub const COM1_IRQ: u8 = 4;
pub const RTC_PORT: u16 = 0x70;
pub const RTC_IRQ: u8 = 8;
/// Where the FADT's CENTURY field points: the CMOS byte holding the century, as on QEMU's pc.
pub const RTC_CENTURY_INDEX: u8 = 0x32;

/// The GED's event selector register (4 bytes): reading it returns the pending events and clears
/// them.
pub const GED_EVENT: u64 = 0xFEA0_0000;
pub const GED_EVENT_LEN: u8 = 4;
/// The GED's sleep control (+0), sleep status (+1) and reset (+2) registers, one byte each.
pub const GED_REGS: u64 = 0xFEA0_0200;
pub const GED_SLEEP_CONTROL: u64 = GED_REGS;
pub const GED_SLEEP_STATUS: u64 = GED_REGS + 1;
pub const GED_RESET: u64 = GED_REGS + 2;
/// What the guest writes to the reset register to reset the machine.
pub const GED_RESET_VALUE: u8 = 0x42;
/// The sleep type of S5 (soft off), in the sleep control register's SLP_TYP field (bits 2-4)
/// and in `\_S5`.
pub const SLP_TYP_S5: u8 = 5;
/// Sleep control: SLP_TYP's position, and SLP_EN.
pub const SLP_TYP_SHIFT: u8 = 2;
pub const SLP_EN: u8 = 1 << 5;
/// GED event bits (ACPI_GED_*_EVT): QEMU's microvm's GED signals only the power button;
/// Minnow's also a new VM generation ID (a bit QEMU's GED leaves unused).
pub const GED_EVENT_POWER_DOWN: u32 = 1 << 1;
pub const GED_EVENT_VMGENID: u32 = 1 << 4;
/// The VM generation ID: 16 bytes the VMM serves read-only at this MMIO address, changed (and
/// the GED event raised) whenever the VM is restored from a snapshot. QEMU's vmgenid keeps it in
/// RAM the firmware allocates and reports through a table-loader WRITE_POINTER, which qboot
/// cannot run; a fixed MMIO page works with every firmware and with direct boot.
pub const VMGENID_ADDR: u64 = 0xFEA0_1000;
pub const VMGENID_LEN: u64 = 16;
pub const GED_GSI: u32 = 9;

/// virtio-mmio transport `i` is at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_BASE: u64 = 0xFEB0_0000;
pub const VIRTIO_MMIO_SIZE: u32 = 0x200;
/// The most transports the microvm has (one per pin of its second IOAPIC).
pub const VIRTIO_MMIO_MAX: u64 = 24;

pub const IOAPIC: u32 = 0xFEC0_0000;
pub const IOAPIC2: u32 = 0xFEC1_0000;
/// The second IOAPIC's first GSI.
pub const IOAPIC2_GSI_BASE: u32 = 24;
pub const LAPIC: u32 = 0xFEE0_0000;
