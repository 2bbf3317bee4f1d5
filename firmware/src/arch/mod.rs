//! The x86_64 pieces that are assembly or CPU state: start-up, exceptions, handoff.
pub use x86_64_arch::*;

#[path = "x86_64/mod.rs"]
mod x86_64_arch;
