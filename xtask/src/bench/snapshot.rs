//! `cargo xtask bench snapshot`: saving a VM and starting clones from the state, minnow against
//! QEMU 7.2 in the same run, on this host's /dev/kvm with a payload guest (a real-mode loop that
//! writes a byte to COM1, pauses, and goes on, in 128 MiB of RAM).
//!
//! - save: QMP `migrate` to `file:` (minnow) and `exec:cat > FILE` (QEMU, which has no `file:`
//!   in 7.2) from a running VM; time to the reply and the file's size;
//! - restore: exec of the clone to its first guest instruction (minnow's `-boot-timeline`) and
//!   to the guest's next byte on COM1, [`RUNS`] runs, p50 and p90: minnow `-incoming file:`,
//!   minnow and QEMU `-incoming "exec:cat FILE"`;
//! - [`CLONES`] clones at once: time until every one has written its byte, and their total PSS.
use super::monitor::Client;
use super::vmm::{build_minnow, stats};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RUNS: usize = 20;
pub const CLONES: usize = 16;
const MEMORY: &str = "128M";

/// Real mode, from the ROM's start: forever, 'S' to COM1, then a few instructions' pause (the
/// next byte after a restore comes at once: what is measured is the VMM).
const LOOP: &[u8] = &[
    0xBA, 0xF8, 0x03, // mov dx, 0x3f8
    0xB0, b'S', // loop: mov al, 'S'
    0xEE, // out dx, al
    0xB9, 0x10, 0x00, // mov cx, 0x10
    0xE2, 0xFE, // loop $
    0xEB, 0xF6, // jmp loop
];

fn loop_rom(dir: &Path) -> Result<PathBuf> {
    let mut rom = vec![0xF4u8; 64 * 1024];
    rom[..LOOP.len()].copy_from_slice(LOOP);
    // jmp near 0x0000 from the reset vector.
    rom[0xFFF0..0xFFF3].copy_from_slice(&[0xE9, 0x0D, 0x00]);
    let path = dir.join("snapshot-loop.rom");
    std::fs::write(&path, rom).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[derive(Clone, Copy, PartialEq)]
enum Vmm {
    Minnow,
    Qemu,
}

struct Setup {
    minnow: PathBuf,
    rom: PathBuf,
    dir: PathBuf,
}

impl Setup {
    fn command(&self, vmm: Vmm, serial: &str) -> Command {
        let mut c = match vmm {
            Vmm::Minnow => {
                let mut c = Command::new(&self.minnow);
                c.args(["-M", "microvm,acpi=off"]);
                c
            }
            Vmm::Qemu => {
                let mut c = Command::new("qemu-system-x86_64");
                c.args(["-M", "microvm,accel=kvm,acpi=off,x-option-roms=off"]);
                c
            }
        };
        c.args(["-m", MEMORY, "-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-serial", serial, "-bios"])
            .arg(&self.rom);
        c
    }
}

/// Saves a running VM of `vmm` to `uri`; the time `migrate` took.
fn save(setup: &Setup, vmm: Vmm, uri: &str) -> Result<Duration> {
    let socket = setup.dir.join("snapshot-source.qmp");
    let _ = std::fs::remove_file(&socket);
    let mut child = setup
        .command(vmm, "none")
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the source VM")?;
    let mut qmp = Client::connect(&socket, &mut child)?;
    std::thread::sleep(Duration::from_millis(200));
    let took = qmp.call(&format!(
        r#"{{"execute": "migrate", "arguments": {{"uri": "{uri}"}}}}"#
    ));
    // QEMU answers at once and copies in the background: its save ends when it says completed.
    let took = match (vmm, took) {
        (Vmm::Qemu, Ok(replied)) => {
            let start = Instant::now();
            loop {
                if qmp
                    .reply(r#"{"execute": "query-migrate"}"#)?
                    .contains("\"completed\"")
                {
                    break Ok(replied + start.elapsed());
                }
                if start.elapsed() > Duration::from_secs(30) {
                    bail!("QEMU's migrate did not complete in 30 s");
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (_, took) => took,
    };
    let _ = qmp.call(r#"{"execute": "quit"}"#);
    let _ = child.wait();
    took
}

/// One clone: exec to its first COM1 byte, and (minnow) to its first guest instruction.
fn restore(setup: &Setup, vmm: Vmm, incoming: &str) -> Result<(f64, Option<f64>)> {
    let timeline = setup.dir.join("snapshot-timeline.json");
    let mut cmd = setup.command(vmm, "stdio");
    cmd.args(["-incoming", incoming]);
    if vmm == Vmm::Minnow {
        cmd.arg(format!("-boot-timeline=json:{}", timeline.display()));
    }
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut byte = [0u8; 1];
    let got = child.stdout.take().context("stdout")?.read(&mut byte)?;
    let first_byte = start.elapsed().as_secs_f64() * 1e3;
    stop(&mut child);
    if got != 1 || byte[0] != b'S' {
        bail!("{incoming}: the clone did not go on writing 'S'");
    }
    let first_instruction = match vmm {
        Vmm::Minnow => Some(first_instruction_ms(&timeline)?),
        Vmm::Qemu => None,
    };
    Ok((first_byte, first_instruction))
}

fn stop(child: &mut Child) {
    // SAFETY: signals our own child, not yet waited for, so its pid is still ours.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
}

/// The "first guest instruction" time in a `-boot-timeline=json:` file, ms from exec.
fn first_instruction_ms(path: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let line = text
        .lines()
        .find(|l| l.contains("\"first guest instruction\""))
        .context("no first guest instruction in the timeline")?;
    let at = line.split("\"at_ms\": ").nth(1).context("no at_ms")?;
    let number = at.split(',').next().unwrap_or(at);
    Ok(number.trim().parse()?)
}

/// `CLONES` clones at once: ms until all wrote their byte, and their summed PSS in KiB.
fn clones(setup: &Setup, vmm: Vmm, incoming: &str) -> Result<(f64, u64)> {
    let start = Instant::now();
    let mut children = Vec::new();
    for _ in 0..CLONES {
        let mut cmd = setup.command(vmm, "stdio");
        cmd.args(["-incoming", incoming]);
        children.push(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    for c in &mut children {
        let mut byte = [0u8; 1];
        c.stdout.as_mut().context("stdout")?.read_exact(&mut byte)?;
    }
    let all = start.elapsed().as_secs_f64() * 1e3;
    let pss: u64 = children.iter().map(|c| pss_kib(c.id())).sum();
    for c in &mut children {
        stop(c);
    }
    Ok((all, pss))
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn p50_p90(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[(v.len() * 9 / 10).min(v.len() - 1)])
}

pub fn run() -> Result<()> {
    print!("{}", measure()?);
    Ok(())
}

pub fn measure() -> Result<String> {
    let dir = crate::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let setup = Setup {
        minnow: build_minnow()?,
        rom: loop_rom(&dir)?,
        dir: dir.clone(),
    };
    let minnow_state = dir.join("minnow.state");
    let minnow_stream = dir.join("minnow-stream.state");
    let qemu_state = dir.join("qemu.state");
    let _ = std::fs::remove_file(&qemu_state);
    eprintln!("[bench] snapshot: saving");
    let mut saves = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..5 {
        let file = save(&setup, Vmm::Minnow, &format!("file:{}", minnow_state.display()))?;
        saves[0].push(file.as_secs_f64() * 1e3);
        let stream = save(
            &setup,
            Vmm::Minnow,
            &format!("exec:cat > {}", minnow_stream.display()),
        )?;
        saves[1].push(stream.as_secs_f64() * 1e3);
        let _ = std::fs::remove_file(&qemu_state);
        let t = save(&setup, Vmm::Qemu, &format!("exec:cat > {}", qemu_state.display()))?;
        saves[2].push(t.as_secs_f64() * 1e3);
    }
    // What the file takes on disk (a minnow file: state has holes where memory is zero).
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) as f64 * 512.0 / f64::from(1 << 20))
            .unwrap_or(0.0)
    };
    let variants: [(&str, Vmm, String, &Path); 3] = [
        (
            "minnow `file:`",
            Vmm::Minnow,
            format!("file:{}", minnow_state.display()),
            &minnow_state,
        ),
        (
            "minnow `exec:cat`",
            Vmm::Minnow,
            format!("exec:cat {}", minnow_stream.display()),
            &minnow_stream,
        ),
        (
            "QEMU 7.2 `exec:cat`",
            Vmm::Qemu,
            format!("exec:cat {}", qemu_state.display()),
            &qemu_state,
        ),
    ];
    let mut restores: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); variants.len()];
    for i in 0..RUNS {
        eprint!("\r[bench] snapshot: restore {}/{RUNS}", i + 1);
        for (v, (_, vmm, incoming, _)) in variants.iter().enumerate() {
            let (byte, first) = restore(&setup, *vmm, incoming)?;
            restores[v].0.push(byte);
            restores[v].1.extend(first);
        }
    }
    eprintln!();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nSnapshots on this host's /dev/kvm: a {MEMORY} payload guest (a loop writing to COM1), \
         saved while running; restore: {RUNS} runs each, alternating, ms from exec, p50 / p90:\n"
    );
    let _ = writeln!(out, "| | save (`migrate`), ms | state on disk, MiB | restore to first guest instruction | restore to the guest's next COM1 byte |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let mut byte_p50 = Vec::new();
    for (v, (name, _, _, path)) in variants.iter().enumerate() {
        let (save_ms, file) = (stats(saves[v].clone()).0, size(path));
        let (b50, b90) = p50_p90(restores[v].0.clone());
        byte_p50.push(b50);
        let first = match restores[v].1.is_empty() {
            true => "-".to_string(),
            false => {
                let (f50, f90) = p50_p90(restores[v].1.clone());
                format!("{f50:.2} / {f90:.2}")
            }
        };
        let _ = writeln!(
            out,
            "| {name} | {save_ms:.1} | {file:.1} | {first} | {b50:.2} / {b90:.2} |"
        );
    }
    let _ = writeln!(
        out,
        "\nminnow from `file:` restores {:.1}x faster than QEMU (to the guest's next byte).",
        byte_p50[2] / byte_p50[0]
    );
    eprintln!("[bench] snapshot: {CLONES} clones at once");
    let _ = writeln!(
        out,
        "\n{CLONES} clones at once:\n\n| | all answered, ms | total PSS, MiB |\n|---|---:|---:|"
    );
    for (name, vmm, incoming, _) in &variants {
        let (ms, pss) = clones(&setup, *vmm, incoming)?;
        let _ = writeln!(out, "| {name} | {ms:.1} | {:.1} |", pss as f64 / 1024.0);
    }
    Ok(out)
}
