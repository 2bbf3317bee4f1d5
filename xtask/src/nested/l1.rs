//! Runs the L2 KVM host under QEMU TCG (`-cpu max` emulates AMD SVM with nested paging), keeps
//! its console in a log file, and reports each case as it finishes.
use super::console::{parse_end, L2};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// L2's RAM: the initramfs (about 80 MiB, unpacked into RAM) plus one 256 MiB L3 guest.
const L2_MEMORY: &str = "2048";
/// One vCPU: single-threaded TCG. With two, L2 sometimes locked up for good in the middle of a
/// guest's boot (seen once in four suites).
const L2_CPUS: &str = "1";
/// L2 prints at least a line per case, and the L2 script kills a case after
/// CASE_TIMEOUT_SECS: this much silence means L2 itself is stuck.
const SILENCE: Duration = Duration::from_secs(super::script::CASE_TIMEOUT_SECS as u64 + 60);

pub struct L1Run {
    pub console: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Boots `kernel` with `initramfs` as L2 and returns its whole console.
pub fn run(kernel: &Path, initramfs: &Path, cases: usize, log: &Path, timeout: Duration) -> Result<L1Run> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-M",
        "pc,accel=tcg",
        "-cpu",
        "max",
        "-smp",
        L2_CPUS,
        "-m",
        L2_MEMORY,
    ])
    .args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
    ])
    .arg("-no-reboot")
    .arg("-kernel")
    .arg(kernel)
    .arg("-initrd")
    .arg(initramfs)
    .args(["-append", "console=ttyS0 loglevel=5 panic=-1"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    eprintln!(
        "[nested] booting the L2 KVM host: qemu-system-x86_64 -M pc,accel=tcg -cpu max -kernel {} -initrd {}",
        kernel.display(),
        initramfs.display()
    );
    let mut child = cmd
        .spawn()
        .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let stdout = child.stdout.take().context("QEMU's stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            if tx.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                break;
            }
        }
    });
    let mut log_file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let start = Instant::now();
    let mut console = String::new();
    let mut finished = 0;
    let mut timed_out = false;
    let mut last_line = Instant::now();
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                last_line = Instant::now();
                writeln!(log_file, "[{:8.3}] {line}", start.elapsed().as_secs_f64())?;
                progress(&line, &mut finished, cases, start.elapsed());
                console.push_str(&line);
                console.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => {
                timed_out = true;
                eprintln!(
                    "[nested] L2 still running after {} s: killing it",
                    timeout.as_secs()
                );
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) if last_line.elapsed() > SILENCE => {
                timed_out = true;
                eprintln!(
                    "[nested] L2 printed nothing for {} s: it is stuck; killing it",
                    SILENCE.as_secs()
                );
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let _ = child.wait();
    let _ = reader.join();
    Ok(L1Run {
        console,
        timed_out,
        elapsed: start.elapsed(),
    })
}

fn progress(line: &str, finished: &mut usize, cases: usize, at: Duration) {
    let line = line.trim_end_matches('\r');
    let Some(i) = line.find("NESTED-") else {
        return;
    };
    let line = &line[i..];
    if let Some(msg) = line.strip_prefix(L2) {
        eprintln!("[nested] {:6.1} s  L2: {msg}", at.as_secs_f64());
    } else if let Some((name, rc, secs)) = parse_end(line) {
        *finished += 1;
        eprintln!(
            "[nested] {:6.1} s  ({}/{cases}) {name}: exit {rc} after {secs:.2} s",
            at.as_secs_f64(),
            *finished
        );
    }
}
