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

/// L2's RAM, MiB, unless a case needs more: the initramfs (about 80 MiB, unpacked into RAM)
/// plus one 256 MiB L3 guest.
const L2_MEMORY_MIB: u32 = 2048;
/// One vCPU: single-threaded TCG. With two, L2 sometimes locked up for good in the middle of a
/// guest's boot (seen once in four suites).
const L2_CPUS: &str = "1";
/// L2 prints at least a line per case, and the L2 script ends a case after its limit: this much
/// silence past the longest limit means L2 itself is stuck (before its heartbeat starts).
const SILENCE_PAST_THE_LIMIT: Duration = Duration::from_secs(60);
/// Once L2's heartbeat has started (its uptime every `HEARTBEAT_SECS` on its second serial
/// port), this long without one means L2 is stuck, whatever the case's limit: a dozen beats
/// missed, far more than a busy L2 with one emulated vCPU ever delays a shell loop.
const HEARTBEAT_SILENCE: Duration = Duration::from_secs(12 * super::script::HEARTBEAT_SECS as u64);

pub struct L1Run {
    pub console: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Boots `kernel` with `initramfs` as L2 (with `memory_mib` of RAM, if more than the default)
/// and returns its whole console.
/// `longest_case` is the longest any case may run: L2 is stuck after that much silence and a minute.
pub fn run(
    kernel: &Path,
    initramfs: &Path,
    memory_mib: u32,
    cases: usize,
    log: &Path,
    timeout: Duration,
    longest_case: Duration,
) -> Result<L1Run> {
    let silence = longest_case + SILENCE_PAST_THE_LIMIT;
    // QEMU's monitor, to see where L2's CPU is if L2 goes silent.
    // In /tmp: a socket's path must fit in 108 bytes, the work tree's may not.
    let monitor = std::env::temp_dir().join(format!(
        "minnow-l1-{}-{}.sock",
        std::process::id(),
        log.file_stem().map_or("l2".into(), |s| s.to_string_lossy())
    ));
    let _ = std::fs::remove_file(&monitor);
    let heartbeat = log.with_extension("heartbeat");
    let _ = std::fs::remove_file(&heartbeat);
    let mut cmd = Command::new(l1_qemu());
    cmd.args(["-M", "pc,accel=tcg", "-cpu", "max", "-smp", L2_CPUS])
        .arg("-m")
        .arg(memory_mib.max(L2_MEMORY_MIB).to_string())
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
        ])
        .arg("-serial")
        .arg(format!("file:{}", heartbeat.display()))
        .arg("-no-reboot")
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 loglevel=5 panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!(
        "[nested] booting the L2 KVM host: {} -M pc,accel=tcg -cpu max -kernel {} -initrd {}",
        l1_qemu().to_string_lossy(),
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
    let mut beats = Heartbeat::new(heartbeat.clone());
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
            Err(mpsc::RecvTimeoutError::Timeout)
                if last_line.elapsed() > silence || beats.stopped(HEARTBEAT_SILENCE) =>
            {
                timed_out = true;
                eprintln!(
                    "[nested] L2 printed nothing for {} s, {}: it is stuck; where its CPU is, then killing it:",
                    last_line.elapsed().as_secs(),
                    beats.since().map_or("no heartbeat yet".into(), |d| format!(
                        "its heartbeat nothing for {} s",
                        d.as_secs()
                    ))
                );
                for line in cpu_state(&monitor) {
                    eprintln!("    L1 monitor| {line}");
                }
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let _ = child.wait();
    let _ = std::fs::remove_file(&monitor);
    let _ = std::fs::remove_file(&heartbeat);
    let _ = reader.join();
    Ok(L1Run {
        console,
        timed_out,
        elapsed: start.elapsed(),
    })
}

/// The QEMU that runs L2: `MINNOW_L1_QEMU` if set, else the system's.
fn l1_qemu() -> std::ffi::OsString {
    std::env::var_os("MINNOW_L1_QEMU").unwrap_or_else(|| "qemu-system-x86_64".into())
}

/// L2's heartbeat file, as L1 writes it: it grows while L2 lives.
struct Heartbeat {
    path: std::path::PathBuf,
    len: u64,
    /// When the file last grew; None before the first beat.
    last: Option<Instant>,
}

impl Heartbeat {
    fn new(path: std::path::PathBuf) -> Self {
        Heartbeat {
            path,
            len: 0,
            last: None,
        }
    }

    fn look(&mut self) {
        let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if len > self.len {
            self.len = len;
            self.last = Some(Instant::now());
        }
    }

    /// Whether L2 has beaten at least once and not for `silence` since.
    fn stopped(&mut self, silence: Duration) -> bool {
        self.look();
        self.last.is_some_and(|at| at.elapsed() > silence)
    }

    /// Time since the last beat; None before the first.
    fn since(&self) -> Option<Duration> {
        self.last.map(|at| at.elapsed())
    }
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

/// L2's CPU registers, the instructions at its RIP and its LAPIC, asked twice a second apart
/// through QEMU's monitor (a CPU that is spinning shows a moving RIP, a halted one HLT=1; a
/// vector in IRR that stays there was never taken); only the lines that say where it is.
fn cpu_state(monitor: &Path) -> Vec<String> {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let ask = || -> std::io::Result<String> {
        let mut s = UnixStream::connect(monitor)?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        s.write_all(b"info registers\nx/2i $pc\ninfo lapic\n")?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    let mut lines = Vec::new();
    for _ in 0..2 {
        match ask() {
            Ok(text) => lines.extend(
                text.lines()
                    // "RIP=... EFL=... CPL=0 II=0 A20=1 SMM=0 HLT=0" (EIP= outside long mode).
                    // and the instruction there ("0x...: mnemonic", from x/2i).
                    .filter(|l| {
                        (l.contains("IP=") && l.contains("HLT="))
                            || l.starts_with("CS ")
                            // The LAPIC: its timer, what is pending and in service, priorities.
                            || ["LVTT\t", "Timer", "ISR", "IRR", "APR"].iter().any(|p| l.starts_with(p))
                            || (l.starts_with("0x") && l.contains(':'))
                    })
                    .map(|l| l.trim().to_string()),
            ),
            Err(e) => lines.push(format!("monitor {}: {e}", monitor.display())),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_is_stuck_only_after_a_beat_then_silence() {
        let path = std::env::temp_dir().join(format!("minnow-heartbeat-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut beats = Heartbeat::new(path.clone());
        assert!(!beats.stopped(Duration::ZERO), "no beat yet: not stuck");
        std::fs::write(&path, "12.5\n").unwrap();
        assert!(!beats.stopped(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(beats.stopped(Duration::from_millis(10)));
        std::fs::write(&path, "12.5\n22.5\n").unwrap();
        assert!(!beats.stopped(Duration::from_millis(10)), "a new beat");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_silent_l2s_cpu_state_comes_from_qemus_monitor() {
        let dir = std::env::temp_dir().join(format!("minnow-l1-monitor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let monitor = dir.join("m.sock");
        // A machine that never prints: QEMU's SeaBIOS with nothing to boot, stopped at reset.
        let mut qemu = Command::new("qemu-system-x86_64")
            .args([
                "-M",
                "pc,accel=tcg",
                "-nodefaults",
                "-display",
                "none",
                "-S",
                "-monitor",
            ])
            .arg(format!("unix:{},server=on,wait=off", monitor.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 (apt-get install qemu-system-x86)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !monitor.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let lines = cpu_state(&monitor);
        let _ = qemu.kill();
        let _ = qemu.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("IP=0000fff0") && l.contains("HLT=0")),
            "{lines:?}"
        );
    }
}
