//! The wire formats Minnow's firmware and VMM both speak, defined once so the two sides cannot drift.
//!
//! Every structure here is `#[repr(C)]` with the exact size its spec gives (checked by const asserts),
//! and derives `zerocopy` traits so either side can turn it into bytes without `unsafe`.
//! Multi-byte fields are little-endian unless the type says otherwise (fw_cfg DMA and directory
//! entries are big-endian, as QEMU defines them).
#![no_std]

pub mod e820;
pub mod elf;
pub mod fw_cfg;
pub mod linux;
pub mod milestone;
pub mod mptable;
pub mod multiboot1;
pub mod multiboot2;
pub mod pvh;
pub mod rom;
pub mod table_loader;
