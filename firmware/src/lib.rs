//! Minnow's firmware: a no_std x86_64 ROM that boots what QEMU-style fw_cfg hands it.
//!
//! The boot sequence is [`boot_sequence::run`]. Everything that touches hardware goes through two
//! traits, [`memory::Memory`] and [`fw_cfg::FwCfg`], so the logic here is unit-tested on the host
//! against fakes; the real implementations are in [`hw`] and [`fw_cfg::PortFwCfg`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod acpi_loader;
pub mod bios_data;
pub mod boot;
pub mod boot_sequence;
pub mod chipset;
pub mod console;
pub mod error;
#[cfg(test)]
pub mod fakes;
pub mod fw_cfg;
pub mod hw;
pub mod layout;
pub mod memory;
pub mod memory_map;
pub mod milestones;
pub mod mptable;
pub mod paging;
