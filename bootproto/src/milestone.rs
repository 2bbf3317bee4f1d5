//! Boot milestones: port writes a VMM can time and count exits against (qboot's BENCHMARK_HACK).
//!
//! The firmware writes [`FIRMWARE_START`] to [`FIRMWARE_PORT`] first thing in Rust, and one of the
//! `KERNEL_*` values to [`KERNEL_PORT`] just before it jumps to the kernel.
//! [`KERNEL_PORT`] is also where QEMU's `isa-debug-exit,iobase=0xf4` sits, so under QEMU with that
//! device the write ends the VM (this is how qboot's benchmark worked).

/// Port a guest writes (any value) when its boot is done: an init or a payload marks the end of
/// the boot for the VMM's timeline. Minnow's own; not qboot's.
pub const BOOT_DONE_PORT: u16 = 0xF6;
/// Port written once at firmware start.
pub const FIRMWARE_PORT: u16 = 0xF5;
/// Port written just before the jump to the kernel.
pub const KERNEL_PORT: u16 = 0xF4;
/// Value written to [`FIRMWARE_PORT`] at start.
pub const FIRMWARE_START: u8 = 1;
/// Values written to [`KERNEL_PORT`] at handoff, by boot protocol (qboot's numbering; 5 is ours).
pub const KERNEL_MULTIBOOT: u8 = 2;
pub const KERNEL_LINUX: u8 = 3;
pub const KERNEL_PVH: u8 = 4;
pub const KERNEL_MULTIBOOT2: u8 = 5;
