//! `cargo xtask bench vmm`: what starting a VM costs the host, Minnow against QEMU's microvm on
//! the same ROM, measured side by side in one run.
//!
//! The ROM's first instruction writes to isa-debug-exit, so each run is exec, VM creation, the
//! first guest instruction and the exit: the VMM's own cost. Runs alternate (minnow, QEMU,
//! minnow, ...) so drift on this shared machine hits both alike.
//!
//! Peak RSS is VmHWM from /proc while a second ROM sits halted, read once it stops growing (wait4's
//! ru_maxrss would count the parent's image from before exec). Guest RAM the guest never touches
//! is never resident, so this is the VMM's own memory.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 20;
/// `mov al, 0 ; out 0xf4, al ; hlt`: the exit status is (0 << 1) | 1 = 1.
const EXIT_AT_RESET: [u8; 5] = [0xB0, 0x00, 0xE6, 0xF4, 0xF4];
/// `cli ; hlt ; jmp $-1`: the guest stays, so the VMM's memory can be read.
const HALT_AT_RESET: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

pub fn run() -> Result<()> {
    let root = crate::workspace_root();
    let minnow = build_minnow()?;
    let exit_rom = write_rom(&root, "exit-at-reset.rom", &EXIT_AT_RESET)?;
    let halt_rom = write_rom(&root, "halt-at-reset.rom", &HALT_AT_RESET)?;
    let common = [
        "-m",
        "128M",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-serial",
        "none",
    ];
    let minnow_cmd = |rom: &Path| {
        let mut c = Command::new(&minnow);
        c.args(["-M", "microvm,acpi=off"])
            .arg("-bios")
            .arg(rom)
            .args(common);
        c
    };
    let qemu_cmd = |rom: &Path| {
        let mut c = Command::new("qemu-system-x86_64");
        c.args([
            "-M",
            "microvm,accel=kvm,acpi=off,x-option-roms=off",
            "-nodefaults",
            "-no-user-config",
        ])
        .args(["-display", "none"])
        .arg("-bios")
        .arg(rom)
        .args(common);
        c
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        eprint!("\r[bench] run {}/{RUNS}", i + 1);
        a.push(measure(minnow_cmd(&exit_rom)).context("running minnow")?);
        b.push(
            measure(qemu_cmd(&exit_rom))
                .context("running qemu-system-x86_64 (apt-get install qemu-system-x86)")?,
        );
    }
    eprintln!();
    let minnow_rss = peak_rss_kib(minnow_cmd(&halt_rom))?;
    let qemu_rss = peak_rss_kib(qemu_cmd(&halt_rom))?;
    println!(
        "VM start to exit, ROM exits at its first instruction, -m 128M, {RUNS} runs each, alternating:\n"
    );
    println!("| VMM | wall median (min-max), ms | peak RSS, MiB |");
    println!("|---|---:|---:|");
    let row = |name: &str, s: &[Duration], rss_kib: u64| {
        let (med, min, max) = stats(s.iter().map(|x| x.as_secs_f64() * 1e3).collect());
        let rss = rss_kib as f64 / 1024.0;
        println!("| {name} | {med:.1} ({min:.1}-{max:.1}) | {rss:.1} |");
        (med, rss)
    };
    let (mw, mr) = row("minnow", &a, minnow_rss);
    let (qw, qr) = row("QEMU microvm", &b, qemu_rss);
    println!("\nminnow vs QEMU: {:.1}x faster start-to-exit (target 10x), {:.1}x less memory (target: under 4 MiB besides guest RAM).", qw / mw, qr / mr);
    Ok(())
}

fn build_minnow() -> Result<PathBuf> {
    crate::firmware::build()?;
    crate::minnow_bin::build()
}

fn write_rom(root: &Path, name: &str, code: &[u8]) -> Result<PathBuf> {
    let mut rom = vec![0xF4u8; 64 * 1024];
    rom[0xFFF0..0xFFF0 + code.len()].copy_from_slice(code);
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, rom).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs `cmd` to its end; its wall time.
fn measure(mut cmd: Command) -> Result<Duration> {
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let wall = start.elapsed();
    if status.code() != Some(1) {
        bail!("expected the isa-debug-exit status 1, got {status}");
    }
    Ok(wall)
}

/// VmHWM of `cmd` once it has stopped growing for 200 ms (the guest halts at once), then stops it.
fn peak_rss_kib(mut cmd: Command) -> Result<u64> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let status = format!("/proc/{}/status", child.id());
    let read = || -> Option<u64> {
        let text = std::fs::read_to_string(&status).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()
            .ok()
    };
    let (mut last, mut stable_since) = (0, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(200) {
        let now = read().unwrap_or(0);
        if now != last {
            (last, stable_since) = (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signals our own child, which has not been waited for yet, so its pid is still ours.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    if last == 0 {
        bail!("could not read {status}");
    }
    Ok(last)
}

/// Median, min and max.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}
