//! Boot milestones: writes to one I/O port that a VMM times and counts exits against.
//!
//! **Boot done** follows Firecracker's boot-complete convention: the guest writes [`BOOT_DONE`]
//! (123) to [`PORT`] (0x3f0), so an init built for Firecracker's boot timer reports to Minnow as
//! it is. Minnow's payloads and test `/init` do the same.
//!
//! **Firmware milestones** are written only when the VMM asks, by serving the fw_cfg file
//! [`crate::fw_cfg::file::MINNOW_MILESTONES`] with the port as a little-endian u16: then the
//! firmware writes [`FIRMWARE_START`] once fw_cfg is up and one of the `KERNEL_*` values just
//! before it jumps to the kernel. Without that file the firmware writes to no port at all, so a
//! device the user placed anywhere (`isa-debug-exit,iobase=0xf4`, the test-exit convention of
//! kvm-unit-tests and Rust OS test runners) sees only the guest's own writes. qboot likewise
//! writes its milestones (to 0xf4/0xf5) only in its benchmark build.

/// The port Minnow's VMM listens on, and serves in the milestones file.
pub const PORT: u16 = 0x3F0;
/// The guest's "boot done" value (Firecracker's `MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE`).
pub const BOOT_DONE: u8 = 123;
/// Written once the firmware can talk to fw_cfg.
pub const FIRMWARE_START: u8 = 1;
/// Written just before the jump to the kernel, by boot protocol (qboot's numbering; 5 is ours).
pub const KERNEL_MULTIBOOT: u8 = 2;
pub const KERNEL_LINUX: u8 = 3;
pub const KERNEL_PVH: u8 = 4;
pub const KERNEL_MULTIBOOT2: u8 = 5;
