//! `cargo xtask bench vmm`: what starting a VM costs the host, Minnow against QEMU's microvm on
//! the same ROM, measured side by side in one run.
//!
//! The ROM's first instructions write one byte to COM1 and then to isa-debug-exit. The parent
//! reads the VMM's stdout, so each run gives exec to the first guest output (the VMM's start:
//! process, VM, vCPU, the first instructions and one port exit), and first output to the
//! process's exit (the guest's shutdown request to exit: teardown, which includes the kernel
//! destroying the VM). Runs alternate (minnow, QEMU, minnow, ...) so drift on this shared machine
//! hits both alike.
//!
//! Peak RSS is VmHWM from /proc while a second ROM sits halted, read once it stops growing (wait4's
//! ru_maxrss would count the parent's image from before exec). Guest RAM the guest never touches
//! is never resident, so this is the VMM's own memory.
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 20;
/// `mov dx, 0x3f8 ; mov al, 'M' ; out dx, al ; mov al, 0 ; out 0xf4, al ; hlt`: one byte on COM1,
/// then the exit status (0 << 1) | 1 = 1.
pub const OUTPUT_THEN_EXIT: [u8; 11] = [0xBA, 0xF8, 0x03, 0xB0, b'M', 0xEE, 0xB0, 0x00, 0xE6, 0xF4, 0xF4];
/// `mov al, 0 ; out 0xf4, al ; hlt`: exits at once (status 1).
pub const EXIT_AT_RESET: [u8; 5] = [0xB0, 0x00, 0xE6, 0xF4, 0xF4];
/// `cli ; hlt ; jmp $-1`: the guest stays, so the VMM's memory can be read.
const HALT_AT_RESET: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

/// The two VMMs on one ROM, with COM1 on stdout (or nowhere).
pub struct Vmms {
    pub minnow: PathBuf,
}

impl Vmms {
    /// minnow's default machine: KVM's PIC, IOAPIC and PIT.
    pub fn minnow(&self, rom: &Path, serial: &str) -> Command {
        self.minnow_machine("microvm,acpi=off", rom, serial)
    }

    /// minnow with the split irqchip (`pic=off`), as QEMU's microvm runs by default.
    pub fn minnow_split(&self, rom: &Path, serial: &str) -> Command {
        self.minnow_machine("microvm,pic=off", rom, serial)
    }

    fn minnow_machine(&self, machine: &str, rom: &Path, serial: &str) -> Command {
        let mut c = Command::new(&self.minnow);
        c.args(["-M", machine, "-m", "128M"])
            .args([
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=4",
                "-serial",
                serial,
            ])
            .arg("-bios")
            .arg(rom);
        c
    }

    pub fn qemu(&self, rom: &Path, serial: &str) -> Command {
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-M", "microvm,accel=kvm,acpi=off,x-option-roms=off", "-m", "128M"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args([
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=4",
                "-serial",
                serial,
            ])
            .arg("-bios")
            .arg(rom);
        c
    }
}

/// One run: exec to the first byte on stdout, and to the exit.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub first_output: Duration,
    pub exit: Duration,
}

pub struct Results {
    pub minnow: Vec<Run>,
    pub minnow_split: Vec<Run>,
    pub qemu: Vec<Run>,
    pub minnow_rss_kib: u64,
    pub qemu_rss_kib: u64,
}

pub fn run() -> Result<()> {
    let r = measure_all()?;
    print!("{}", table(&r));
    Ok(())
}

pub fn measure_all() -> Result<Results> {
    let root = crate::workspace_root();
    let vmms = Vmms {
        minnow: build_minnow()?,
    };
    let rom = write_rom(&root, "output-then-exit.rom", &OUTPUT_THEN_EXIT)?;
    let halt_rom = write_rom(&root, "halt-at-reset.rom", &HALT_AT_RESET)?;
    let (mut minnow, mut minnow_split, mut qemu) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        eprint!("\r[bench] start-up run {}/{RUNS}", i + 1);
        minnow.push(measure(vmms.minnow(&rom, "stdio")).context("running minnow")?);
        minnow_split.push(measure(vmms.minnow_split(&rom, "stdio")).context("running minnow")?);
        qemu.push(
            measure(vmms.qemu(&rom, "stdio"))
                .context("running qemu-system-x86_64 (apt-get install qemu-system-x86)")?,
        );
    }
    eprintln!();
    Ok(Results {
        minnow,
        minnow_split,
        qemu,
        minnow_rss_kib: peak_rss_kib(vmms.minnow(&halt_rom, "none"))?,
        qemu_rss_kib: peak_rss_kib(vmms.qemu(&halt_rom, "none"))?,
    })
}

fn ms(v: &[Run], f: impl Fn(&Run) -> Duration) -> (f64, f64, f64) {
    stats(v.iter().map(|r| f(r).as_secs_f64() * 1e3).collect())
}

pub fn table(r: &Results) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nVM start-up, ROM writes one COM1 byte then exits, -m 128M, {RUNS} runs each, alternating \
         (median (min-max), ms):\n"
    );
    let _ = writeln!(
        out,
        "| VMM | exec to first guest output | first output to exit | exec to exit | peak RSS, MiB |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let mut row = |name: &str, runs: &[Run], rss_kib: u64| {
        let first = ms(runs, |r| r.first_output);
        let down = ms(runs, |r| r.exit - r.first_output);
        let exit = ms(runs, |r| r.exit);
        let rss = rss_kib as f64 / 1024.0;
        let cell = |(m, lo, hi): (f64, f64, f64)| format!("{m:.1} ({lo:.1}-{hi:.1})");
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {rss:.1} |",
            cell(first),
            cell(down),
            cell(exit)
        );
        (first.0, exit.0, rss)
    };
    let (mf, me, mr) = row("minnow (KVM's PIC, IOAPIC, PIT)", &r.minnow, r.minnow_rss_kib);
    let (sf, se, _) = row(
        "minnow pic=off (split irqchip)",
        &r.minnow_split,
        r.minnow_rss_kib,
    );
    let (qf, qe, qr) = row("QEMU microvm (split irqchip)", &r.qemu, r.qemu_rss_kib);
    let _ = writeln!(
        out,
        "\nminnow vs QEMU: {:.1}x faster to the first guest output (target 10x; {:.1}x with pic=off), \
         {:.1}x faster start-to-exit ({:.1}x with pic=off), {:.1}x less memory ({mr:.1} MiB; target \
         under 4 MiB besides guest RAM).",
        qf / mf,
        qf / sf,
        qe / me,
        qe / se,
        qr / mr
    );
    out
}

pub fn build_minnow() -> Result<PathBuf> {
    crate::firmware::build()?;
    crate::minnow_bin::build()
}

pub fn write_rom(root: &Path, name: &str, code: &[u8]) -> Result<PathBuf> {
    let mut rom = vec![0xF4u8; 64 * 1024];
    rom[0xFFF0..0xFFF0 + code.len()].copy_from_slice(code);
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, rom).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs `cmd` to its end: when its first stdout byte came, and when it exited.
pub fn measure(mut cmd: Command) -> Result<Run> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut byte = [0u8; 1];
    let mut out = child.stdout.take().context("stdout")?;
    let got = out.read(&mut byte)?;
    let first_output = start.elapsed();
    let status = child.wait()?;
    let exit = start.elapsed();
    if got != 1 || byte[0] != b'M' {
        bail!("expected the guest's 'M' on stdout first");
    }
    if status.code() != Some(1) {
        bail!("expected the isa-debug-exit status 1, got {status}");
    }
    Ok(Run { first_output, exit })
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
pub fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}
