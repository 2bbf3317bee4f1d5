//! [`QemuRun`]: one QEMU process with the serial console on stdio, watched for a marker line,
//! limited in how many run at once, and always reaped.
use crate::QEMU;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How many QEMU processes may run at once: $MINNOW_QEMU_JOBS, default 2 (the machine's cores).
/// The test harness runs tests on parallel threads; each boot takes a slot first.
fn max_jobs() -> usize {
    std::env::var("MINNOW_QEMU_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

static RUNNING: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();

struct Slot;

impl Slot {
    fn take() -> Slot {
        let limit = max_jobs();
        // A test that panicked while holding the lock leaves a valid count: ignore the poison.
        let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= limit {
            n = SLOT_FREED.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        SLOT_FREED.notify_one();
    }
}

/// Kills and reaps the child however the run ends, panics included.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A QEMU invocation. Always adds `-nodefaults -no-user-config -display none -serial stdio -no-reboot`.
#[derive(Clone, Debug)]
pub struct QemuRun {
    machine: String,
    bios: Option<PathBuf>,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<String>,
    memory: String,
    smp: u32,
    extra: Vec<String>,
    marker: Option<String>,
    timeout: Duration,
    grace: Duration,
    /// The console paints a screen with ANSI escapes (see [`crate::ansi_screen`]).
    screen: bool,
}

impl QemuRun {
    /// `machine` is the full -M value, e.g. "microvm,x-option-roms=off,accel=tcg".
    pub fn new(machine: &str) -> Self {
        QemuRun {
            machine: machine.into(),
            bios: None,
            kernel: None,
            initrd: None,
            append: None,
            memory: "512M".into(),
            smp: 1,
            extra: Vec::new(),
            marker: None,
            timeout: Duration::from_secs(60),
            grace: Duration::ZERO,
            screen: false,
        }
    }
    /// Read the console as a full-screen program's (memtest86+): lines come from cursor moves,
    /// escapes are dropped, spaces collapsed. A marker then matches anywhere in a line when it
    /// starts with `*`.
    pub fn screen(mut self) -> Self {
        self.screen = true;
        self
    }
    pub fn bios(mut self, path: impl Into<PathBuf>) -> Self {
        self.bios = Some(path.into());
        self
    }
    pub fn kernel(mut self, path: impl Into<PathBuf>) -> Self {
        self.kernel = Some(path.into());
        self
    }
    pub fn initrd(mut self, path: impl Into<PathBuf>) -> Self {
        self.initrd = Some(path.into());
        self
    }
    pub fn append(mut self, cmdline: &str) -> Self {
        self.append = Some(cmdline.into());
        self
    }
    /// The -m value, e.g. "512M".
    pub fn memory(mut self, m: &str) -> Self {
        self.memory = m.into();
        self
    }
    pub fn smp(mut self, n: u32) -> Self {
        self.smp = n;
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.into());
        self
    }
    /// Stop once a serial line equal to `line` (trailing whitespace ignored) arrives.
    /// Stop at this serial line (a trailing `*` matches any line starting with the rest).
    pub fn marker(mut self, line: &str) -> Self {
        self.marker = Some(line.into());
        self
    }
    /// Give up after this long (counted from QEMU's start, not from waiting for a slot).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// After the marker, wait up to this long for QEMU to exit by itself (e.g. the guest's power-off)
    /// before killing it.
    pub fn grace(mut self, t: Duration) -> Self {
        self.grace = t;
        self
    }

    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
        ]
        .into_iter()
        .chain(["-no-reboot", "-M", &self.machine, "-m", &self.memory])
        .map(String::from)
        .collect();
        a.extend(["-smp".into(), self.smp.to_string()]);
        let mut path = |flag: &str, p: &Option<PathBuf>| {
            if let Some(p) = p {
                a.extend([flag.to_string(), p.display().to_string()]);
            }
        };
        path("-bios", &self.bios);
        path("-kernel", &self.kernel);
        path("-initrd", &self.initrd);
        if let Some(cmdline) = &self.append {
            a.extend(["-append".into(), cmdline.clone()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The command line, quoted well enough to paste into a shell.
    pub fn command_line(&self) -> String {
        let quote = |s: &str| {
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=,./:".contains(c))
            {
                s.to_string()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        };
        std::iter::once(QEMU.to_string())
            .chain(self.args().iter().map(|a| quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs QEMU until the marker, its exit or the timeout. Errors only if it cannot be started.
    pub fn run(&self) -> Result<RunOutput, String> {
        let _slot = Slot::take();
        let start = Instant::now();
        let child = Command::new(QEMU)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {QEMU} ({e}): apt-get install qemu-system-x86"))?;
        let mut child = Reaper(child);
        let (stdout, mut stderr) = match (child.0.stdout.take(), child.0.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => return Err("QEMU's stdout/stderr pipes are missing".into()),
        };

        // One thread turns the serial output into lines; the channel gives the deadline.
        let (tx, rx) = mpsc::channel::<(String, Instant)>();
        let screen = self.screen;
        let reader = thread::spawn(move || {
            if screen {
                read_screen(stdout, &tx)
            } else {
                read_lines(stdout, &tx)
            }
        });
        let err_reader = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });

        let mut out = RunOutput {
            command: self.command_line(),
            ..RunOutput::default()
        };
        let mut deadline = start + self.timeout;
        let mut stdout_open = true;
        loop {
            let now = Instant::now();
            if now >= deadline {
                out.timed_out = out.marker_at.is_none();
                break;
            }
            if !stdout_open {
                // Serial closed: QEMU is exiting. Reap it, but never wait past the deadline.
                match child.0.try_wait() {
                    Ok(Some(status)) => {
                        out.status = Some(status);
                        out.exit_at = Some(now - start);
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(10)),
                    Err(_) => break,
                }
                continue;
            }
            match rx.recv_timeout(deadline - now) {
                Ok((line, at)) => {
                    let hit = out.marker_at.is_none()
                        && self.marker.as_deref().is_some_and(|m| marker_matches(m, &line));
                    out.lines.push(line);
                    if hit {
                        out.marker_at = Some(at - start);
                        deadline = deadline.min(Instant::now() + self.grace);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => stdout_open = false,
            }
        }
        out.elapsed = start.elapsed();
        drop(child); // kill and reap (a no-op if it has exited)
                     // The pipes close with the process; collect what arrived after the loop stopped.
        let _ = reader.join();
        out.lines.extend(rx.try_iter().map(|(l, _)| l));
        out.stderr = err_reader.join().unwrap_or_default();
        Ok(out)
    }
}

/// `marker` against one line: `*text` anywhere in it, `prefix*` at its start, else all of it.
fn marker_matches(marker: &str, line: &str) -> bool {
    if let Some(text) = marker.strip_prefix('*') {
        line.contains(text)
    } else if let Some(prefix) = marker.strip_suffix('*') {
        line.starts_with(prefix)
    } else {
        line.trim_end() == marker
    }
}

fn read_lines(stdout: impl Read, tx: &mpsc::Sender<(String, Instant)>) {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        if tx.send((line, Instant::now())).is_err() {
            break;
        }
        buf.clear();
    }
}

fn read_screen(mut stdout: impl Read, tx: &mpsc::Sender<(String, Instant)>) {
    let mut screen = crate::ansi_screen::AnsiScreen::default();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stdout.read(&mut buf) {
        for line in screen.feed(&buf[..n]) {
            if tx.send((line, Instant::now())).is_err() {
                return;
            }
        }
    }
    if let Some(line) = screen.finish() {
        let _ = tx.send((line, Instant::now()));
    }
}

/// What a QEMU run produced.
#[derive(Debug, Default)]
pub struct RunOutput {
    pub command: String,
    /// Serial output, one entry per line, without line endings.
    pub lines: Vec<String>,
    pub stderr: String,
    /// QEMU's exit status if it exited by itself; None if the harness killed it.
    pub status: Option<ExitStatus>,
    /// The deadline passed before the marker appeared and before QEMU exited.
    pub timed_out: bool,
    /// When the marker line arrived, counted from QEMU's start.
    pub marker_at: Option<Duration>,
    /// When QEMU exited by itself.
    pub exit_at: Option<Duration>,
    pub elapsed: Duration,
}

impl RunOutput {
    pub fn marker_seen(&self) -> bool {
        self.marker_at.is_some()
    }

    /// QEMU's exit code, if it exited by itself (with `isa-debug-exit`, the guest's value v
    /// becomes (v << 1) | 1).
    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The rest of the first line starting with `prefix`.
    pub fn value(&self, prefix: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| l.strip_prefix(prefix))
    }

    /// The last `n` serial lines, QEMU's stderr and the command, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let mut t: VecDeque<&str> = VecDeque::new();
        for l in &self.lines {
            if t.len() == n {
                t.pop_front();
            }
            t.push_back(l);
        }
        let mut s = format!("--- command\n{}\n", self.command);
        s += &format!("--- last {} of {} serial lines\n", t.len(), self.lines.len());
        for l in t {
            s += l;
            s.push('\n');
        }
        let how = match (&self.status, self.timed_out) {
            (_, true) => format!("timed out after {:.1} s", self.elapsed.as_secs_f64()),
            (Some(st), _) => format!("QEMU exited by itself: {st}"),
            (None, false) => "QEMU was killed by the harness".into(),
        };
        if !self.stderr.trim().is_empty() {
            s += &format!("--- QEMU stderr\n{}\n", self.stderr.trim_end());
        }
        s + "--- " + &how
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let q = QemuRun::new("pc,accel=tcg")
            .bios("/r.rom")
            .kernel("/k")
            .initrd("/i")
            .append("console=ttyS0 a=b")
            .memory("3584M")
            .smp(2)
            .arg("-cpu")
            .arg("max");
        let a = q.args();
        let joined = a.join(" ");
        for want in [
            "-nodefaults -no-user-config -display none -serial stdio -no-reboot",
            "-M pc,accel=tcg -m 3584M -smp 2",
            "-bios /r.rom -kernel /k -initrd /i",
        ] {
            assert!(joined.contains(want), "{want:?} in {joined:?}");
        }
        assert!(
            a.contains(&"console=ttyS0 a=b".to_string()),
            "the command line is one argument"
        );
        assert!(joined.ends_with("-cpu max"));
        assert!(q.command_line().contains("-append 'console=ttyS0 a=b'"));
    }

    #[test]
    fn tail_and_values() {
        let out = RunOutput {
            lines: (0..50)
                .map(|i| format!("line {i}"))
                .chain(["K v=1".into()])
                .collect(),
            ..RunOutput::default()
        };
        assert_eq!(out.value("K v="), Some("1"));
        assert_eq!(out.value("nope"), None);
        let t = out.tail(3);
        assert!(t.contains("line 48\nline 49\nK v=1\n"));
        assert!(!t.contains("line 47"));
    }

    #[test]
    fn exit_codes_come_from_a_self_exited_qemu_only() {
        use std::os::unix::process::ExitStatusExt;
        let out = RunOutput {
            status: Some(ExitStatus::from_raw(33 << 8)),
            ..RunOutput::default()
        };
        assert_eq!(out.exit_code(), Some(33));
        assert_eq!(RunOutput::default().exit_code(), None);
    }
}
