//! VM launches per second: 1, 10 and 20 VMs whose ROM exits at its first instruction, started one
//! after another and all at once, for each VMM (as the paper comparing Firecracker with QEMU did).
use super::vmm::{stats, write_rom, Vmms, EXIT_AT_RESET};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

pub const COUNTS: [usize; 3] = [1, 10, 20];
const REPEATS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Sequential,
    Concurrent,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sequential => "sequential",
            Mode::Concurrent => "concurrent",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub vmm: &'static str,
    pub mode: Mode,
    pub vms: usize,
    /// Median of the repeats.
    pub per_second: f64,
}

/// The VMMs, by label, as a command for the exit-at-once ROM.
type Launcher<'a> = (&'static str, Box<dyn Fn(&Path) -> Command + 'a>);

pub fn measure(vmms: &Vmms) -> Result<Vec<Row>> {
    let rom = write_rom(&crate::workspace_root(), "exit-at-reset.rom", &EXIT_AT_RESET)?;
    let launchers: Vec<Launcher> = vec![
        ("minnow", Box::new(|r: &Path| vmms.minnow(r, "none"))),
        (
            "minnow pic=off",
            Box::new(|r: &Path| vmms.minnow_split(r, "none")),
        ),
        ("QEMU microvm", Box::new(|r: &Path| vmms.qemu(r, "none"))),
    ];
    let mut rows = Vec::new();
    for mode in [Mode::Sequential, Mode::Concurrent] {
        for n in COUNTS {
            eprint!("\r[bench] launches: {} {n:>2}   ", mode.name());
            // Interleaved: each VMM once per repeat.
            let mut rates = vec![Vec::new(); launchers.len()];
            for _ in 0..REPEATS {
                for (i, (_, cmd)) in launchers.iter().enumerate() {
                    rates[i].push(launch(|| cmd(&rom), n, mode)?);
                }
            }
            for ((vmm, _), r) in launchers.iter().zip(rates) {
                rows.push(Row {
                    vmm,
                    mode,
                    vms: n,
                    per_second: stats(r).0,
                });
            }
        }
    }
    eprintln!();
    Ok(rows)
}

/// Starts `n` VMs (one after another, or all at once) and returns VMs per second.
pub fn launch(cmd: impl Fn() -> Command, n: usize, mode: Mode) -> Result<f64> {
    let start = Instant::now();
    match mode {
        Mode::Sequential => {
            for _ in 0..n {
                check(quiet(cmd()).status()?.code())?;
            }
        }
        Mode::Concurrent => {
            let children = (0..n)
                .map(|_| quiet(cmd()).spawn())
                .collect::<Result<Vec<_>, _>>()
                .context("starting VMs")?;
            for mut c in children {
                check(c.wait()?.code())?;
            }
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn quiet(mut c: Command) -> Command {
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn check(code: Option<i32>) -> Result<()> {
    match code {
        Some(1) => Ok(()),
        other => bail!("a VM exited with {other:?}, expected the isa-debug-exit status 1"),
    }
}

pub fn table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nVM launches per second (ROM exits at its first instruction; median of {REPEATS}):\n"
    );
    let mut header = String::from("| VMM | mode |");
    for n in COUNTS {
        header.push_str(&format!(" {n} VM{} |", if n > 1 { "s" } else { "" }));
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "|---|---|{}", "---:|".repeat(COUNTS.len()));
    let mut keys: Vec<(&str, Mode)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.vmm, r.mode)) {
            keys.push((r.vmm, r.mode));
        }
    }
    for (vmm, mode) in keys {
        let mut line = format!("| {vmm} | {} |", mode.name());
        for n in COUNTS {
            let v = rows
                .iter()
                .find(|r| r.vmm == vmm && r.mode == mode && r.vms == n)
                .map_or("-".into(), |r| format!("{:.0}", r.per_second));
            line.push_str(&format!(" {v} |"));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}
