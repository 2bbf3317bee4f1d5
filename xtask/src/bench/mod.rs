//! `cargo xtask bench [what]`: measurements, never timed tests. Each compares side by side in
//! one run, because this machine's timing drifts.
pub mod firmware;
pub mod vmm;
