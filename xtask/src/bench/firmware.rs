//! `cargo xtask bench firmware`: what each firmware costs from reset to the first kernel
//! instruction, on the same QEMU command line.
//!
//! QEMU runs under TCG one instruction per translation block (`-singlestep -d exec,nochain`), so
//! its log has a line per executed instruction; `-trace memory_region_ops_*` adds a line per
//! device register access, which is what becomes a VM exit under KVM. gdb stops the guest with
//! a hardware breakpoint at the kernel's entry. The log streams through a FIFO: SeaBIOS runs
//! millions of instructions.
//!
//! This machine's timing is not hardware timing (TCG, and /dev/kvm is emulated), but these counts
//! do not depend on the host's speed.
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One firmware under test.
struct Firmware {
    name: &'static str,
    rom: PathBuf,
    /// Extra -M options (SeaBIOS boots -kernel through QEMU's option ROMs).
    machine_options: &'static str,
}

/// What one boot cost.
pub struct Cost {
    pub instructions: u64,
    /// The same, counting each REP string instruction once rather than once per iteration.
    pub instructions_rep_once: u64,
    pub device_accesses: u64,
}

pub fn run() -> Result<()> {
    for tool in ["qemu-system-x86_64", "gdb"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("{tool} not found: run `bash scripts/setup.sh`");
        }
    }
    let rom = crate::firmware::build()?;
    let guest = crate::guest::prepare()?;
    let vmlinux = std::fs::read(guest.join("vmlinux")).context("reading the cached vmlinux")?;
    let pvh_entry = crate::guest::bzimage::pvh_entry(&vmlinux)?;
    let firmwares = [
        Firmware {
            name: "minnow.rom",
            rom,
            machine_options: ",x-option-roms=off",
        },
        Firmware {
            name: "qboot.rom",
            rom: "/usr/share/qemu/qboot.rom".into(),
            machine_options: ",x-option-roms=off",
        },
        Firmware {
            name: "SeaBIOS (bios-microvm.bin)",
            rom: "/usr/share/seabios/bios-microvm.bin".into(),
            machine_options: "",
        },
    ];
    println!(
        "Reset to the PVH kernel's first instruction (0x{pvh_entry:x}), QEMU {} -M microvm -cpu max -m 512M,",
        qemu_version()?
    );
    println!("kernel {}:\n", guest.join("vmlinux").display());
    println!("| firmware | instructions | instructions, REP once | device accesses (VM exits under KVM) |");
    println!("|---|---:|---:|---:|");
    let mut costs = Vec::new();
    for fw in &firmwares {
        eprintln!("[bench] {} ...", fw.name);
        let cost = measure(fw, &guest, pvh_entry)?;
        println!(
            "| {} | {} | {} | {} |",
            fw.name, cost.instructions, cost.instructions_rep_once, cost.device_accesses
        );
        costs.push(cost);
    }
    let (minnow, qboot) = (&costs[0], &costs[1]);
    println!(
        "\nminnow.rom vs qboot.rom: {:.2}x fewer instructions ({:.2}x counting REP once), {:.2}x fewer device accesses (target: 3x).",
        qboot.instructions as f64 / minnow.instructions as f64,
        qboot.instructions_rep_once as f64 / minnow.instructions_rep_once as f64,
        qboot.device_accesses as f64 / minnow.device_accesses as f64
    );
    Ok(())
}

fn qemu_version() -> Result<String> {
    let out = Command::new("qemu-system-x86_64").arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().nth(3).unwrap_or("?").to_string())
}

fn measure(fw: &Firmware, guest: &Path, entry: u64) -> Result<Cost> {
    let dir = std::env::temp_dir().join(format!("minnow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let fifo = dir.join("exec.log");
    let _ = std::fs::remove_file(&fifo);
    let status = Command::new("mkfifo").arg(&fifo).status().context("mkfifo")?;
    if !status.success() {
        bail!("mkfifo {} failed", fifo.display());
    }
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-M",
            &format!("microvm{},accel=tcg", fw.machine_options),
            "-cpu",
            "max",
            "-m",
            "512M",
        ])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "null",
        ])
        .arg("-bios")
        .arg(&fw.rom)
        .arg("-kernel")
        .arg(guest.join("vmlinux"))
        .arg("-initrd")
        .arg(guest.join("initramfs.cpio"))
        .args([
            "-append",
            "console=ttyS0",
            "-singlestep",
            "-d",
            "exec,nochain",
            "-trace",
            "memory_region_ops_*",
        ])
        .arg("-D")
        .arg(&fifo)
        .args(["-gdb", &format!("tcp:127.0.0.1:{port}"), "-S"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    // Opening the FIFO blocks until QEMU opens its end, so count in a thread.
    let counter = {
        let fifo = fifo.clone();
        std::thread::spawn(move || count(&fifo))
    };
    std::thread::sleep(Duration::from_millis(500));
    let gdb = Command::new("gdb")
        .args(["-q", "-batch", "-ex", &format!("target remote 127.0.0.1:{port}")])
        .args([
            "-ex",
            &format!("hbreak *0x{entry:x}"),
            "-ex",
            "continue",
            "-ex",
            "kill",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = qemu.kill();
    let _ = qemu.wait();
    let cost = counter
        .join()
        .map_err(|_| anyhow::anyhow!("log counter panicked"))??;
    let _ = std::fs::remove_dir_all(&dir);
    if !gdb.context("running gdb")?.success() || cost.instructions == 0 {
        bail!(
            "{}: the guest never reached the kernel entry 0x{entry:x}",
            fw.name
        );
    }
    Ok(cost)
}

/// Counts executed instructions and device accesses in QEMU's log.
fn count(path: &Path) -> Result<Cost> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut cost = Cost {
        instructions: 0,
        instructions_rep_once: 0,
        device_accesses: 0,
    };
    let mut previous_pc = String::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.starts_with("Trace ") {
            // "Trace 0: 0x7f.. [cs_base/pc/flags/cflags] ..."
            let pc = line
                .split('[')
                .nth(1)
                .and_then(|s| s.split('/').nth(1))
                .unwrap_or("");
            cost.instructions += 1;
            // A REP string instruction re-executes at the same PC, once per iteration.
            if pc != previous_pc {
                cost.instructions_rep_once += 1;
                previous_pc = pc.to_string();
            }
        } else if line.starts_with("memory_region_ops_") {
            cost.device_accesses += 1;
            previous_pc.clear();
        }
    }
    Ok(cost)
}
