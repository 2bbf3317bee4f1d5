//! Fixtures for the integration tests: run QEMU with a serial console on stdio, watch the output
//! for a marker line, and always clean up the QEMU process.
//!
//! Missing prerequisites (QEMU, the ROM, the guest files) are errors, never skips: a suite that
//! quietly tests nothing is worse than a red one.
pub mod ansi_screen;
pub mod payload_check;
pub mod payload_report;
mod prerequisites;
mod qemu_run;

pub use prerequisites::*;
pub use qemu_run::{QemuRun, RunOutput};
use std::io::Write;

pub const QEMU: &str = "qemu-system-x86_64";
/// QEMU's own build of qboot (Debian package qemu-system-data): the reference firmware.
pub const QBOOT_ROM: &str = "/usr/share/qemu/qboot.rom";
/// SeaBIOS's microvm build (Debian package seabios): the other reference firmware.
pub const SEABIOS_MICROVM_ROM: &str = "/usr/share/seabios/bios-microvm.bin";

/// Prints a line that shows even when libtest captures output (print macros are captured; a direct
/// write to stderr is not). For results people need to see: timings, "not supported: ...".
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
