//! `cargo xtask bench sandbox` (and part of `cargo xtask bench`): what the seccomp filters cost
//! at start-up, minnow with its filters against minnow with `-sandbox off`, on the same ROM,
//! alternating run by run: start-to-exit and launches per second. The goal is no measurable
//! change: the filters are compiled once and installed by each thread before its first guest
//! instruction, and a call's check is a few BPF instructions. Disk throughput with and without
//! is in `cargo xtask bench disk` (it needs the nested host).
use super::launches::{launch, Mode};
use super::vmm::{build_minnow, measure, stats, write_rom, Run, Vmms, EXIT_AT_RESET, OUTPUT_THEN_EXIT};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

const RUNS: usize = 30;
const LAUNCHES: usize = 10;
const LAUNCH_REPEATS: usize = 5;

/// The two ways minnow runs here: with its filters (the default), and without.
const VARIANTS: [(&str, &[&str]); 2] = [
    ("minnow (filters on)", &[]),
    ("minnow -sandbox off", &["-sandbox", "off"]),
];

fn command(vmms: &Vmms, rom: &Path, serial: &str, extra: &[&str]) -> Command {
    let mut c = vmms.minnow(rom, serial);
    c.args(extra);
    c
}

pub fn run() -> Result<()> {
    print!("{}", measure_table()?);
    Ok(())
}

pub fn measure_table() -> Result<String> {
    let root = crate::workspace_root();
    let vmms = Vmms {
        minnow: build_minnow()?,
    };
    let output_rom = write_rom(&root, "output-then-exit.rom", &OUTPUT_THEN_EXIT)?;
    let exit_rom = write_rom(&root, "exit-at-reset.rom", &EXIT_AT_RESET)?;
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); VARIANTS.len()];
    for i in 0..RUNS {
        eprint!("\r[bench] sandbox: start-up run {}/{RUNS}", i + 1);
        for (v, (_, extra)) in VARIANTS.iter().enumerate() {
            runs[v].push(measure(command(&vmms, &output_rom, "stdio", extra)).context("running minnow")?);
        }
    }
    let mut rates = vec![[Vec::new(), Vec::new()]; VARIANTS.len()];
    for i in 0..LAUNCH_REPEATS {
        eprint!("\r[bench] sandbox: launches {}/{LAUNCH_REPEATS}   ", i + 1);
        for (v, (_, extra)) in VARIANTS.iter().enumerate() {
            for (m, mode) in [Mode::Sequential, Mode::Concurrent].into_iter().enumerate() {
                rates[v][m].push(launch(
                    || command(&vmms, &exit_rom, "none", extra),
                    LAUNCHES,
                    mode,
                )?);
            }
        }
    }
    eprintln!();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nThe seccomp filters' cost: the same ROM (one COM1 byte, then exit), minnow with and without \
         its filters, alternating; start-up {RUNS} runs each, median (min-max), ms; launches of \
         {LAUNCHES} VMs, median of {LAUNCH_REPEATS}, VMs/s:\n"
    );
    let _ = writeln!(
        out,
        "| VMM | exec to first guest output | exec to exit | launches/s, one after another | launches/s, all at once |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let mut exits = Vec::new();
    for (v, (name, _)) in VARIANTS.iter().enumerate() {
        let cell = |f: &dyn Fn(&Run) -> f64| {
            let (m, lo, hi) = stats(runs[v].iter().map(f).collect());
            (m, format!("{m:.2} ({lo:.2}-{hi:.2})"))
        };
        let (_, first) = cell(&|r| r.first_output.as_secs_f64() * 1e3);
        let (exit_median, exit) = cell(&|r| r.exit.as_secs_f64() * 1e3);
        exits.push(exit_median);
        let seq = stats(rates[v][0].clone()).0;
        let con = stats(rates[v][1].clone()).0;
        let _ = writeln!(out, "| {name} | {first} | {exit} | {seq:.1} | {con:.1} |");
    }
    let _ = writeln!(
        out,
        "\nWith the filters, start-to-exit is {:+.1}% of without (goal: no measurable change).",
        (exits[0] / exits[1] - 1.0) * 100.0
    );
    Ok(out)
}
