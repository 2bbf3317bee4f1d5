//! A guest reset reboots the VM, as in QEMU; with -no-reboot it ends minnow with status 0.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A 64 KiB ROM that writes 'R' to COM1 and then pulses the reset line through the i8042.
fn reset_rom(dir: &std::path::Path, test: &str) -> std::path::PathBuf {
    // mov dx, 0x3f8 ; mov al, 'R' ; out dx, al ; mov al, 0xfe ; out 0x64, al ; hlt
    let code = [0xBA, 0xF8, 0x03, 0xB0, b'R', 0xEE, 0xB0, 0xFE, 0xE6, 0x64, 0xF4];
    let rom = common::reset_vector_rom(&code);
    let path = dir.join(format!("minnow-reset-{}-{test}.rom", std::process::id()));
    std::fs::write(&path, rom).expect("temp file");
    path
}

fn minnow(rom: &std::path::Path, log: &std::path::Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_minnow"));
    c.args(["-M", "microvm,acpi=off", "-m", "16M"])
        .arg("-bios")
        .arg(rom)
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    c
}

#[test]
fn with_no_reboot_a_reset_ends_minnow_with_status_0() {
    let dir = std::env::temp_dir();
    let (rom, log) = (
        reset_rom(&dir, "a"),
        dir.join(format!("minnow-reset-{}-a.log", std::process::id())),
    );
    let out = minnow(&rom, &log, &["-no-reboot"]).output().expect("minnow runs");
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = (std::fs::remove_file(&rom), std::fs::remove_file(&log));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(printed, "R");
}

#[test]
fn without_no_reboot_a_reset_boots_the_guest_again() {
    let dir = std::env::temp_dir();
    let (rom, log) = (
        reset_rom(&dir, "b"),
        dir.join(format!("minnow-reset-{}-b.log", std::process::id())),
    );
    let mut child = minnow(&rom, &log, &[]).spawn().expect("minnow runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut boots = 0;
    while Instant::now() < deadline && boots < 3 && matches!(child.try_wait(), Ok(None)) {
        boots = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches('R')
            .count();
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals our own, not yet reaped, child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().expect("minnow exits");
    let _ = (std::fs::remove_file(&rom), std::fs::remove_file(&log));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        boots >= 3,
        "the guest booted {boots} times in 30 s; minnow: {:?} {stderr}",
        out.status
    );
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGTERM),
        "SIGTERM stops a rebooting VM: {stderr}"
    );
}
