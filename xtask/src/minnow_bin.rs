//! Builds the release `minnow`, with the ROM `cargo xtask firmware` just built embedded.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The target of the static build that runs inside a nested KVM host's initramfs.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds target/release/minnow and returns its path. The ROM must be built first.
pub fn build() -> Result<PathBuf> {
    build_for(None)
}

/// Builds a static (musl) minnow, which runs on any Linux with no libraries around it.
pub fn build_static() -> Result<PathBuf> {
    build_for(Some(STATIC_TARGET))
}

fn build_for(target: Option<&str>) -> Result<PathBuf> {
    let root = crate::workspace_root();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "minnow-vmm",
        "--bin",
        "minnow",
    ]);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    eprintln!(
        "[minnow] cargo build --release -p minnow-vmm{}",
        target.map(|t| format!(" --target {t}")).unwrap_or_default()
    );
    let status = cmd
        .env("MINNOW_ROM", root.join("target/firmware/minnow.rom"))
        .status()
        .context("running cargo")?;
    if !status.success() {
        match target {
            Some(t) => {
                bail!("building minnow for {t} failed (is the target installed? `rustup target add {t}`)")
            }
            None => bail!("building minnow failed"),
        }
    }
    let dir = match target {
        Some(t) => root.join("target").join(t).join("release"),
        None => root.join("target/release"),
    };
    Ok(dir.join("minnow"))
}
