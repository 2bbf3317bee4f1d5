//! `cargo xtask bench [what]`: measurements, never timed tests. Each compares side by side in
//! one run, because this machine's timing drifts.
pub mod all;
pub mod firmware;
pub mod launches;
pub mod matrix;
pub mod monitor;
pub mod sandbox;
pub mod snapshot;
pub mod svg;
pub mod vmm;
