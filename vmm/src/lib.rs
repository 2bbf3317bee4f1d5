//! Minnow's VMM: a QEMU-microvm-like machine on KVM.
//!
//! A library first: [`run`] builds a VM from a [`config::Config`] and runs it to the end, returning
//! why it stopped. The VM lives and dies with the caller: no daemon, and no global state but the
//! style of minnow's stderr lines ([`messages`], QEMU's `-msg`). The `minnow` binary is a thin
//! command line over it.
pub mod bus;
pub mod config;
pub mod daemon;
pub mod devices;
pub mod direct_boot;
pub mod exit;
pub mod fw_cfg_setup;
pub mod host_fd;
pub mod irq;
pub mod kernel_layout;
pub mod layout;
pub mod machine;
pub mod messages;
pub mod monitor;
pub mod option_roms;
pub mod output_file;
pub mod pidfile;
pub mod privileges;
pub mod rom;
pub mod runtime;
pub mod sandbox;
pub mod snapshot;
pub mod timeline;
pub mod vstate;

pub use config::Config;
pub use exit::ExitReason;
pub use machine::MachineError;
pub use runtime::lifecycle::{LifecycleError, RunState};
pub use runtime::vm::{StartOptions, Vm, VmError, VmHandle};
pub use timeline::Timeline;

/// Builds the VM `config` describes and runs it to the end. Returns why it stopped; never exits
/// the process.
///
/// A guest reset reboots in place, as QEMU's does: devices and vCPUs back to power-on, nothing
/// reopened; unless `config.no_reboot`, when the reset ends the VM. A triple fault always ends it
/// (QEMU would reboot; a guest that faults at boot would then loop silently).
pub fn run(config: &Config) -> Result<ExitReason, VmError> {
    Ok(Vm::start(config)?.wait())
}

/// [`run`], recording the boot's phases in `timeline` (read them with [`Timeline::phases`]).
/// Create it as early as the process starts, so its "exec" is the process's start.
pub fn run_with_timeline(
    config: &Config,
    timeline: &std::sync::Arc<Timeline>,
) -> Result<ExitReason, VmError> {
    let options = StartOptions {
        timeline: timeline.clone(),
        termination: None,
    };
    Ok(Vm::start_with(config, options)?.wait())
}
