//! `cargo xtask demo`: build the ROM, fetch the guest, and boot it through minnow.rom on QEMU's
//! microvm, the reference machine, with the serial console on this terminal.
//!
//! Minnow's own VMM is not written yet (issue: the microvm machine on KVM); until it is, the demo
//! runs the firmware under QEMU TCG, which boots a stock kernel here in about two seconds.
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Instant;

pub fn run() -> Result<()> {
    let rom = crate::firmware::build()?;
    let guest = crate::guest::prepare()?;
    let khz = tsc_khz()?;
    // Under TCG, microvm's quick PIT calibration fails about one boot in three; telling Linux the
    // TSC rate avoids that (see docs/firmware.md).
    let cmdline = format!("console=ttyS0 panic=-1 quiet tsc_early_khz={khz} tsc=reliable");
    let args: Vec<String> = [
        "-M",
        "microvm,x-option-roms=off,accel=tcg",
        "-m",
        "512M",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "-bios".into(),
        rom.display().to_string(),
        "-kernel".into(),
        guest.join("vmlinuz").display().to_string(),
        "-initrd".into(),
        guest.join("initramfs.cpio").display().to_string(),
        "-append".into(),
        cmdline,
    ])
    .collect();
    eprintln!("[demo] qemu-system-x86_64 {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new("qemu-system-x86_64")
        .args(&args)
        .status()
        .context("running qemu-system-x86_64 (apt-get install qemu-system-x86, or bash scripts/setup.sh)")?;
    eprintln!(
        "[demo] the guest powered off after {:.2} s",
        start.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("qemu-system-x86_64 exited with {status}");
    }
    Ok(())
}

fn tsc_khz() -> Result<u64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
    let mhz = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("cpu MHz")?
                .split(':')
                .nth(1)?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .context("no \"cpu MHz\" line in /proc/cpuinfo")?;
    Ok((mhz * 1000.0) as u64)
}
