//! `cargo xtask fuzz [--seconds N]`: runs each cargo-fuzz target (fuzz/) for N seconds (default
//! 20, the CI-sized run `cargo xtask test` makes). Needs a nightly toolchain and cargo-fuzz, which
//! scripts/setup.sh installs. A crash fails the run, leaving its input in fuzz/artifacts/.
use anyhow::{bail, Context, Result};
use std::process::Command;

/// The targets, as fuzz/Cargo.toml names them.
const TARGETS: [&str; 4] = ["virtio_blk", "fw_cfg_guest", "kernel_layout", "config_parse"];
pub const CI_SECONDS: u64 = 20;

pub fn run(seconds: u64) -> Result<()> {
    let dir = crate::workspace_root().join("fuzz");
    let probe = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        bail!(
            "cargo fuzz needs a nightly toolchain and cargo-fuzz: `rustup toolchain install nightly \
             --profile minimal && cargo install cargo-fuzz` (scripts/setup.sh does both)"
        );
    }
    for target in TARGETS {
        eprintln!("[fuzz] {target}: {seconds} s");
        let status = Command::new("cargo")
            .current_dir(&dir)
            .args(["+nightly", "fuzz", "run", "-O", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .status()
            .context("running cargo fuzz")?;
        if !status.success() {
            bail!(
                "fuzz target {target} found a failure ({status}); its input is in fuzz/artifacts/{target}/"
            );
        }
    }
    Ok(())
}
