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
pub mod option_roms;
pub mod rom;
pub mod rtc_timer;
pub mod signals;
pub mod vstate;

pub use config::Config;
pub use exit::ExitReason;
pub use machine::MachineError;

/// Builds the VM `config` describes and runs it to the end. Returns why it stopped; never exits
/// the process.
///
/// A guest reset reboots: the machine is built again from `config` (files are read again), as
/// QEMU reboots, unless `config.no_reboot`, when the reset ends the VM. A triple fault always
/// ends it (QEMU would reboot; a guest that faults at boot would then loop silently).
pub fn run(config: &Config) -> Result<ExitReason, MachineError> {
    // One serial log for the VM's whole life, reboots included, as QEMU keeps its chardev.
    if let config::Serial::File(path) = &config.serial {
        std::fs::File::create(path).map_err(|source| MachineError::Io {
            what: format!("creating the serial log {}", path.display()),
            source,
        })?;
    }
    loop {
        match machine::build(config)?.run()? {
            ExitReason::Reset if !config.no_reboot => {
                // A SIGTERM during the reset must not be lost to the next boot.
                if let Some(sig) = signals::take_termination() {
                    return Ok(ExitReason::Signal(sig));
                }
            }
            reason => return Ok(reason),
        }
    }
}
