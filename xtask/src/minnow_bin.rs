//! Builds the release `minnow`, with the ROM `cargo xtask firmware` just built embedded.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Builds target/release/minnow and returns its path. The ROM must be built first.
pub fn build() -> Result<PathBuf> {
    let root = crate::workspace_root();
    eprintln!("[minnow] cargo build --release -p minnow-vmm");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "minnow-vmm",
            "--bin",
            "minnow",
        ])
        .env("MINNOW_ROM", root.join("target/firmware/minnow.rom"))
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building minnow failed");
    }
    Ok(root.join("target/release/minnow"))
}
