//! The guest-physical and I/O map of Minnow's machine: QEMU's microvm (hw/i386/microvm.c), so
//! firmware and guests written for microvm work unchanged. Keep in address order.

/// RAM below 4 GiB ends here at most; the rest is relocated above 4 GiB.
pub const LOW_RAM_MAX: u64 = 0xC000_0000;
/// Start of the RAM above 4 GiB.
pub const HIGH_RAM_START: u64 = 0x1_0000_0000;

/// GED event selector register (ACPI).
pub const GED_EVENT: u64 = 0xFEA0_0000;
/// GED sleep control / status / reset registers.
pub const GED_REGS: u64 = 0xFEA0_0200;
/// virtio-mmio transport `i` is at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_STRIDE`.
pub const VIRTIO_MMIO_BASE: u64 = 0xFEB0_0000;
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
pub const IOAPIC: u64 = 0xFEC0_0000;
pub const IOAPIC2: u64 = 0xFEC1_0000;
pub const LAPIC: u64 = 0xFEE0_0000;

/// I/O ports.
pub mod port {
    pub const PIC_MASTER: u16 = 0x20;
    pub const PIT: u16 = 0x40;
    pub const I8042_DATA: u16 = 0x60;
    pub const I8042_COMMAND: u16 = 0x64;
    pub const RTC: u16 = 0x70;
    pub const PIC_SLAVE: u16 = 0xA0;
    /// Boot milestones: the guest's "boot done" (Firecracker's 0x3f0 <- 123) and, when asked,
    /// the firmware's start and handoff. See minnow_bootproto::milestone.
    pub const MILESTONES: u16 = minnow_bootproto::milestone::PORT;
    pub const COM1: u16 = 0x3F8;
    pub const FW_CFG: u16 = minnow_bootproto::fw_cfg::PORT_SELECTOR;
}

/// Interrupt lines (GSIs).
pub mod gsi {
    pub const COM1: u32 = 4;
    pub const RTC: u32 = 8;
    pub const GED: u32 = 9;
}
