//! `cargo xtask demo`: the built-in defaults, end to end.
//!
//! 1. Minnow's VMM (`minnow`, with its built-in ROM) boots the PVH conformance payload on
//!    /dev/kvm; the payload prints what minnow.rom handed it and exits.
//! 2. minnow.rom boots Debian's cloud kernel to a busybox init on QEMU's microvm (TCG): a stock
//!    Linux does not boot on a software-emulated /dev/kvm like this machine's, and on a host with
//!    hardware virtualisation `minnow -kernel vmlinux` boots it the same way.
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Instant;

pub fn run() -> Result<()> {
    let rom = crate::firmware::build()?;
    let payloads = crate::payloads::build()?;
    let guest = crate::guest::prepare()?;
    run_minnow(&payloads)?;
    run_linux_on_qemu(&rom, &guest)
}

/// Builds `minnow` (which embeds the ROM just built) and boots the PVH payload with it.
fn run_minnow(payloads: &std::path::Path) -> Result<()> {
    let minnow = crate::minnow_bin::build()?;
    let kernel = payloads.join("pvh.elf");
    let args = [
        "-M",
        "microvm,acpi=off",
        "-m",
        "128M",
        "-device",
        "isa-debug-exit,iobase=0x501,iosize=2",
    ];
    eprintln!(
        "[demo] {} {} -kernel {} -append 'hello from minnow'",
        minnow.display(),
        args.join(" "),
        kernel.display()
    );
    let start = Instant::now();
    let status = Command::new(&minnow)
        .args(args)
        .arg("-kernel")
        .arg(&kernel)
        .args(["-append", "hello from minnow"])
        .status()
        .with_context(|| format!("running {}", minnow.display()))?;
    // The payload reports "pass" through isa-debug-exit value 0x10: status (0x10 << 1) | 1.
    match status.code() {
        Some(33) => eprintln!(
            "[demo] the payload passed; minnow exited after {:.2} s\n",
            start.elapsed().as_secs_f64()
        ),
        _ => bail!("minnow exited with {status} (expected 33: the payload's pass)"),
    }
    Ok(())
}

fn run_linux_on_qemu(rom: &std::path::Path, guest: &std::path::Path) -> Result<()> {
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
