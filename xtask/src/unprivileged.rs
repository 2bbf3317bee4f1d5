//! The `/dev/kvm` row again, as a user who is not root: `cargo xtask test`, run as root with
//! `MINNOW_TEST_USER` naming a member of the `kvm` group (CI's `.ci/run` makes one, and gives
//! `/dev/kvm` to that group as Debian's udev rule does), runs minnow-vmm's integration tests a
//! second time as that user, so every feature that does not need root is shown to work without
//! it. Run by that user directly, the workspace tests are that row already.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The variable that names the user.
pub const USER_VARIABLE: &str = "MINNOW_TEST_USER";

/// The user to run as, when this process is root and one is named.
pub fn user() -> Option<String> {
    // SAFETY: geteuid has no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    std::env::var(USER_VARIABLE)
        .ok()
        .filter(|u| root && !u.is_empty())
}

/// The integration test executables of minnow-vmm, built if needed.
fn test_binaries(cargo: &str) -> Result<Vec<PathBuf>> {
    let out = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args([
            "test",
            "-p",
            "minnow-vmm",
            "--tests",
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .with_context(|| format!("running `{cargo} test --no-run`"))?;
    if !out.status.success() {
        bail!(
            "building the tests failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let kinds = &message["target"]["kind"];
        let is_integration = kinds.as_array().is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(path)) = (is_integration, message["executable"].as_str()) {
            binaries.push(PathBuf::from(path));
        }
    }
    if binaries.is_empty() {
        bail!("`{cargo} test --no-run` named no integration test of minnow-vmm");
    }
    Ok(binaries)
}

/// Runs every integration test executable as `user` (with `runuser`, which sets HOME to the
/// user's: its own cache, with the virtualenv `scripts/unprivileged-user.sh` made there).
pub fn run(cargo: &str, user: &str) -> Result<()> {
    for binary in test_binaries(cargo)? {
        eprintln!("[test] as {user}: {}", binary.display());
        let status = Command::new("runuser")
            .args(["-u", user, "--"])
            .arg(&binary)
            .env_remove("MINNOW_CACHE")
            .env_remove("XDG_CACHE_HOME")
            .current_dir(crate::workspace_root().join("vmm"))
            .status()
            .context("running runuser (util-linux)")?;
        if !status.success() {
            bail!("{} failed as {user} ({status})", binary.display());
        }
    }
    Ok(())
}
