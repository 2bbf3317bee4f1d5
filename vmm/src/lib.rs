//! Minnow's VMM: a QEMU-microvm-like machine on KVM.
//!
//! A library first: [`run`] builds a VM from a [`config::Config`] and runs it to the end, returning
//! why it stopped. The VM lives and dies with the caller: no daemon, no global state. The `minnow`
//! binary is a thin command line over it.
pub mod bus;
pub mod config;
pub mod devices;
pub mod direct_boot;
pub mod exit;
pub mod fw_cfg_setup;
pub mod irq;
pub mod kernel_layout;
pub mod layout;
pub mod machine;
pub mod rom;
pub mod rtc_timer;
pub mod signals;
pub mod vstate;

pub use config::Config;
pub use exit::ExitReason;
pub use machine::MachineError;

/// Builds the VM `config` describes and runs it to the end. Returns why it stopped; never exits
/// the process.
pub fn run(config: &Config) -> Result<ExitReason, MachineError> {
    machine::build(config)?.run()
}
