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
pub mod host_fd;
pub mod irq;
pub mod kernel_layout;
pub mod layout;
pub mod machine;
pub mod option_roms;
pub mod rom;
pub mod rtc_timer;
pub mod signals;
pub mod timeline;
pub mod vstate;

pub use config::Config;
pub use exit::ExitReason;
pub use machine::MachineError;
use std::sync::Arc;
pub use timeline::Timeline;

/// Builds the VM `config` describes and runs it to the end. Returns why it stopped; never exits
/// the process.
///
/// A guest reset reboots: the machine is built again from `config` (files are read again), as
/// QEMU reboots, unless `config.no_reboot`, when the reset ends the VM. A triple fault always
/// ends it (QEMU would reboot; a guest that faults at boot would then loop silently).
pub fn run(config: &Config) -> Result<ExitReason, MachineError> {
    run_with_timeline(config, &Arc::new(Timeline::new(std::time::Instant::now())))
}

/// [`run`], recording the boot's phases in `timeline` (read them with [`Timeline::phases`]).
/// Create it as early as the process starts, so its "exec" is the process's start.
pub fn run_with_timeline(config: &Config, timeline: &Arc<Timeline>) -> Result<ExitReason, MachineError> {
    // One serial log for the VM's whole life, reboots included, as QEMU keeps its chardev.
    if let config::Serial::File(path) = &config.serial {
        std::fs::File::create(path).map_err(|source| MachineError::Io {
            what: format!("creating the serial log {}", path.display()),
            source,
        })?;
    }
    loop {
        match machine::build(config, timeline.clone())?.run()? {
            ExitReason::Reset if !config.no_reboot => {
                // A SIGTERM during the reset must not be lost to the next boot.
                if let Some(sig) = signals::take_termination() {
                    return Ok(ExitReason::Signal(sig));
                }
            }
            reason => {
                timeline.mark(timeline::Event::Exit);
                return Ok(reason);
            }
        }
    }
}
