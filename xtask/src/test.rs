//! `cargo xtask test`: build the ROM and guest images, then run every test: the workspace's
//! `cargo test`, the sandbox's test (a build with its test-only feature), the `/dev/kvm` row
//! again as the user `MINNOW_TEST_USER` names (see unprivileged.rs), then the nested real-KVM
//! suite (`cargo xtask nested-test`), then a CI-sized fuzzing run (`cargo xtask fuzz`).
use anyhow::{bail, Context, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let rom = crate::firmware::build()?;
    let guest = crate::guest::prepare()?;
    let payloads = crate::payloads::build()?;
    let third_party = crate::third_party::prepare()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!(
        "[test] MINNOW_ROM={} MINNOW_GUEST_DIR={} MINNOW_PAYLOAD_DIR={} MINNOW_THIRD_PARTY_DIR={}",
        rom.display(),
        guest.display(),
        payloads.display(),
        third_party.display()
    );
    eprintln!("[test] {cargo} test --workspace {}", args.join(" "));
    // The boot tests read these instead of guessing the paths.
    let status = Command::new(&cargo)
        .current_dir(crate::workspace_root())
        .args(["test", "--workspace"])
        .args(args)
        .env("MINNOW_ROM", &rom)
        .env("MINNOW_GUEST_DIR", &guest)
        .env("MINNOW_PAYLOAD_DIR", &payloads)
        .env("MINNOW_THIRD_PARTY_DIR", &third_party)
        .status()
        .with_context(|| format!("running `{cargo} test`"))?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    // The sandbox's own test needs a build with the test-only feature that makes a thread call
    // what its filter forbids: in a target directory of its own, so no `minnow` built with it
    // sits where the usual one does.
    let sandbox = [
        "test",
        "-p",
        "minnow-vmm",
        "--features",
        "sandbox-test",
        "--target-dir",
        "target/sandbox-test",
        "--test",
        "sandbox",
    ];
    eprintln!("[test] {cargo} {}", sandbox.join(" "));
    let status = Command::new(&cargo)
        .current_dir(crate::workspace_root())
        .args(sandbox)
        .status()
        .with_context(|| format!("running `{cargo} test` for the sandbox"))?;
    if !status.success() {
        bail!("the sandbox tests failed ({status})");
    }
    if let Some(user) = crate::unprivileged::user() {
        crate::unprivileged::run(&cargo, &user)?;
    }
    // Extra arguments select `cargo test` filters; the nested suite runs on a whole run only.
    if args.is_empty() {
        crate::nested::run(None, crate::nested::Options::default())?;
        crate::fuzz::run(&[], crate::fuzz::CI_SECONDS)?;
    }
    Ok(())
}
