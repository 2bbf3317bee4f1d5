//! One file per device, each a register model behind [`crate::bus::BusDevice`].
pub mod cmos;
pub mod debug_exit;
pub mod fw_cfg;
pub mod ged;
pub mod i8042;
pub mod ioapic;
pub mod milestones;
pub mod pc_testdev;
pub mod serial;
pub mod virtio;
pub mod vmgenid;
