//! The snapshot benchmark's measurements, the same on this host (`cargo xtask bench snapshot`,
//! a payload guest) and inside the nested KVM host (`snapshot-bench`, a Linux guest): minnow
//! against QEMU in one run.
//!
//! - save: QMP `migrate` from a running VM, to `file:` (minnow) and `exec:cat > FILE` (both;
//!   QEMU 7.2 has no `file:`): the time to the end of the copy, the state's size on disk, and
//!   the source's resident memory when it was saved;
//! - restore: exec of a clone to its first guest instruction (minnow's `-boot-timeline`) and to
//!   the guest answering on its console, `runs` times, the variants alternating;
//! - `clones` clones at once: the time until every one answered, and their summed PSS.
//!
//! Each result is handed to the caller as it comes: (variant, metric, value).
mod process;

pub use process::{pss_kib, rss_kib, Running};

use crate::qmp::Qmp;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Minnow,
    Qemu,
}

/// A VMM and the command line of the VM, without `-serial`, `-qmp` and `-incoming`.
pub struct Vm {
    pub kind: Kind,
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// A line typed into the guest's console (none when empty) and the text that answers it.
#[derive(Clone)]
pub struct Step {
    pub ask: String,
    pub answer: String,
    pub within: Duration,
}

pub struct Setup {
    pub minnow: Vm,
    pub qemu: Vm,
    /// What the source's console must go through before it is saved (its boot, filling memory).
    pub prepare: Vec<Step>,
    /// What shows a clone's guest runs.
    pub probe: Step,
    pub saves: usize,
    pub runs: usize,
    pub clones: usize,
    /// Sockets, states, timelines and the clones' stderr.
    pub dir: PathBuf,
    /// After each VM ends, wait (untimed) until the host's CPUs are idle again, at most this
    /// long: a VM's teardown goes on in the kernel after its process has gone (seconds in the
    /// nested host), and a restore that overlaps it measures the teardown too.
    pub settle: Duration,
}

/// How often a clone is asked again until it answers.
pub const ASK_AGAIN: Duration = Duration::from_millis(10);

/// One way to save and restore.
pub struct Variant {
    pub id: &'static str,
    pub kind: Kind,
    pub save_uri: String,
    pub incoming: String,
    pub state: PathBuf,
}

/// minnow to `file:`, minnow through `exec:cat`, QEMU through `exec:cat`.
pub fn variants(dir: &Path) -> Vec<Variant> {
    let file = dir.join("minnow.state");
    let stream = dir.join("minnow-stream.state");
    let qemu = dir.join("qemu.state");
    vec![
        Variant {
            id: "minnow-file",
            kind: Kind::Minnow,
            save_uri: format!("file:{}", file.display()),
            incoming: format!("file:{}", file.display()),
            state: file,
        },
        Variant {
            id: "minnow-exec",
            kind: Kind::Minnow,
            save_uri: format!("exec:cat > {}", stream.display()),
            incoming: format!("exec:cat {}", stream.display()),
            state: stream,
        },
        Variant {
            id: "qemu-exec",
            kind: Kind::Qemu,
            save_uri: format!("exec:cat > {}", qemu.display()),
            incoming: format!("exec:cat {}", qemu.display()),
            state: qemu,
        },
    ]
}

impl Setup {
    fn vm(&self, kind: Kind) -> &Vm {
        match kind {
            Kind::Minnow => &self.minnow,
            Kind::Qemu => &self.qemu,
        }
    }

    fn command(&self, kind: Kind) -> Command {
        let vm = self.vm(kind);
        let mut c = Command::new(&vm.program);
        c.args(&vm.args).args(["-serial", "stdio"]);
        c
    }

    /// Boots a source, prepares it, saves it to `v`; reports save_ms and source_rss_kib.
    fn save(&self, v: &Variant, report: &mut impl FnMut(&str, &str, f64)) -> Result<(), String> {
        let socket = self.dir.join("source.qmp");
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(&v.state);
        let mut cmd = self.command(v.kind);
        cmd.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()));
        let mut source = Running::spawn(cmd, Stdio::inherit())?;
        for step in &self.prepare {
            source
                .wait_for(&step.ask, &step.answer, step.within, step.within)
                .map_err(|e| format!("{} source: {e}", v.id))?;
        }
        let pid = source.pid();
        let mut qmp = Qmp::connect(
            &socket,
            Duration::from_secs(10),
            Duration::from_secs(600),
            || source.alive(),
            |_| {},
        )?;
        report(v.id, "source_rss_kib", rss_kib(pid) as f64);
        let start = Instant::now();
        qmp.reply(&format!(
            r#"{{"execute": "migrate", "arguments": {{"uri": "{}"}}}}"#,
            v.save_uri
        ))?;
        // QEMU answers at once and copies in the background: its save ends when it says so.
        while v.kind == Kind::Qemu && !qmp.reply("query-migrate")?.contains("\"completed\"") {
            if start.elapsed() > Duration::from_secs(600) {
                return Err("QEMU's migrate did not complete in 600 s".into());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        report(v.id, "save_ms", ms(start.elapsed()));
        let _ = qmp.reply("quit");
        source.stop();
        settle(self.settle);
        report(v.id, "state_mib", size_on_disk_mib(&v.state));
        Ok(())
    }

    fn clone_command(&self, v: &Variant, n: usize) -> Result<(Command, Stdio), String> {
        let mut cmd = self.command(v.kind);
        cmd.args(["-incoming", &v.incoming]);
        let log = self.dir.join(format!("clone-{n}.stderr"));
        let stderr = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        Ok((cmd, stderr.into()))
    }

    /// One clone: reports answer_ms and (minnow) first_instruction_ms, from exec.
    fn restore(&self, v: &Variant, report: &mut impl FnMut(&str, &str, f64)) -> Result<(), String> {
        let (mut cmd, stderr) = self.clone_command(v, 0)?;
        let timeline = self.dir.join("timeline.json");
        let _ = std::fs::remove_file(&timeline);
        if v.kind == Kind::Minnow {
            cmd.arg(format!("-boot-timeline=json:{}", timeline.display()));
        }
        let start = Instant::now();
        let mut clone = Running::spawn(cmd, stderr)?;
        let p = &self.probe;
        clone
            .wait_for(&p.ask, &p.answer, p.within, ASK_AGAIN)
            .map_err(|e| self.clone_failed(v, 0, &e))?;
        let answered = start.elapsed();
        clone.stop();
        settle(self.settle);
        report(v.id, "answer_ms", ms(answered));
        if v.kind == Kind::Minnow {
            report(v.id, "first_instruction_ms", first_instruction_ms(&timeline)?);
        }
        Ok(())
    }

    /// `self.clones` clones at once: reports clones_all_ms and clones_pss_kib.
    fn clones(&self, v: &Variant, report: &mut impl FnMut(&str, &str, f64)) -> Result<(), String> {
        let start = Instant::now();
        let mut clones = Vec::new();
        for n in 0..self.clones {
            let (cmd, stderr) = self.clone_command(v, n)?;
            clones.push(Running::spawn(cmd, stderr)?);
        }
        let p = &self.probe;
        for (n, clone) in clones.iter_mut().enumerate() {
            clone
                .wait_for(&p.ask, &p.answer, p.within, ASK_AGAIN)
                .map_err(|e| self.clone_failed(v, n, &e))?;
        }
        report(v.id, "clones_all_ms", ms(start.elapsed()));
        let pss: u64 = clones.iter().map(|c| pss_kib(c.pid())).sum();
        report(v.id, "clones_pss_kib", pss as f64);
        clones.into_iter().for_each(Running::stop);
        settle(self.settle);
        Ok(())
    }

    fn clone_failed(&self, v: &Variant, n: usize, e: &str) -> String {
        let log = self.dir.join(format!("clone-{n}.stderr"));
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        format!("{} clone {n}: {e}; its stderr ends: {}", v.id, tail.join(" | "))
    }
}

/// Runs the benchmark for the variants named `only` (all when empty), handing each result to
/// `report` as it comes.
pub fn measure(setup: &Setup, only: &[&str], mut report: impl FnMut(&str, &str, f64)) -> Result<(), String> {
    let variants: Vec<Variant> = variants(&setup.dir)
        .into_iter()
        .filter(|v| only.is_empty() || only.contains(&v.id))
        .collect();
    if variants.is_empty() {
        return Err(format!("no variant is called {}", only.join(" or ")));
    }
    for _ in 0..setup.saves {
        for v in &variants {
            setup.save(v, &mut report)?;
        }
    }
    for _ in 0..setup.runs {
        for v in &variants {
            setup.restore(v, &mut report)?;
        }
    }
    for v in variants.iter().filter(|_| setup.clones > 0) {
        setup.clones(v, &mut report)?;
    }
    Ok(())
}

/// The idle share of every CPU's time, as a restore may begin (see `Setup::settle`).
const IDLE_ENOUGH: f64 = 0.9;

/// Waits until the CPUs were at least [`IDLE_ENOUGH`] idle over a quarter second, or `longest`
/// has passed.
fn settle(longest: Duration) {
    let deadline = Instant::now() + longest;
    let mut before = cpu_times();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = cpu_times();
        if let (Some((idle0, all0)), Some((idle1, all1))) = (before, now) {
            let all = all1.saturating_sub(all0);
            if all > 0 && (idle1.saturating_sub(idle0)) as f64 / all as f64 >= IDLE_ENOUGH {
                return;
            }
        }
        before = now;
    }
}

/// (idle + iowait, all) jiffies of every CPU together, from /proc/stat's first line.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_times(stat.lines().next()?)
}

fn parse_cpu_times(line: &str) -> Option<(u64, u64)> {
    let fields: Vec<u64> = line
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    Some((idle, fields.iter().sum()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What a file takes on disk (a minnow `file:` state has holes where memory is zero).
fn size_on_disk_mib(path: &Path) -> f64 {
    std::fs::metadata(path)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) as f64 * 512.0 / f64::from(1 << 20))
        .unwrap_or(0.0)
}

/// The "first guest instruction" time in a `-boot-timeline=json:` file, ms from exec.
pub fn first_instruction_ms(path: &Path) -> Result<f64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.lines()
        .find(|l| l.contains("\"first guest instruction\""))
        .and_then(|l| l.split("\"at_ms\": ").nth(1))
        .and_then(|at| at.split([',', '}']).next())
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no first guest instruction in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_is_read_from_proc_stat() {
        assert_eq!(parse_cpu_times("cpu  10 0 5 80 5 0 0 0 0 0"), Some((85, 100)));
        assert_eq!(parse_cpu_times("cpu0 1 2 3 4"), None);
        assert_eq!(parse_cpu_times("cpu  1 x 3"), None);
        assert!(cpu_times().is_some(), "this host's /proc/stat");
        let started = Instant::now();
        settle(Duration::from_millis(600));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn the_first_instruction_is_read_from_the_timeline() {
        let dir = std::env::temp_dir().join(format!("snapbench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.json");
        std::fs::write(
            &path,
            "{\"events\": [\n{\"event\": \"exec\", \"at_ms\": 0.0},\n{\"event\": \"first guest instruction\", \"at_ms\": 2.75}\n]}\n",
        )
        .unwrap();
        assert_eq!(first_instruction_ms(&path), Ok(2.75));
        std::fs::write(&path, "{}").unwrap();
        assert!(first_instruction_ms(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_variant_restores_from_where_it_saved() {
        for v in variants(Path::new("/s")) {
            let state = v.state.display().to_string();
            assert!(
                v.save_uri.ends_with(&state) && v.incoming.ends_with(&state),
                "{}",
                v.id
            );
        }
    }
}
