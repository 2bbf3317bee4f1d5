//! `cargo xtask bench nested`: real Linux boot times on real KVM, inside the nested host, for
//! every way Minnow boots it and for QEMU's microvm on the same L2, interleaved.
//!
//! Each run is one VMM process in L2, from its start to its exit after the guest's `/init`
//! powers off (L2's clock, 10 ms resolution). The guest's own uptime at `/init` splits that into
//! the kernel's boot and everything else (VMM start, firmware, power-off).
use super::cases::{linux_case, qemu_linux_case, Case, Expect, LinuxImage, RTC_STALL};
use super::console::CaseOutput;
use anyhow::{bail, Result};

use minnow_tests::payload_check::Loader;

const ROUNDS: usize = 3;

/// One configuration: a label for the table and the case that runs it.
struct Config {
    label: &'static str,
    case: Case,
}

fn minnow(label: &'static str, image: LinuxImage, loader: Loader) -> Config {
    let mut case = linux_case(image, loader, true, true, 1);
    case.args.push("-boot-timeline".into());
    case.expect = Expect::Timing;
    Config { label, case }
}

/// QEMU's microvm with the same kernel, initramfs and command line.
fn qemu(label: &'static str, machine: &str) -> Config {
    Config {
        label,
        case: qemu_linux_case(machine, "console=ttyS0 loglevel=5 panic=-1"),
    }
}

fn configs() -> Vec<Config> {
    use LinuxImage::{BzImage, Pvh};
    use Loader::{Direct, MinnowRom, Qboot, SeaBios};
    vec![
        minnow("minnow + minnow.rom, bzImage", BzImage, MinnowRom),
        minnow("minnow + qboot.rom, bzImage", BzImage, Qboot),
        minnow("minnow + SeaBIOS bios-microvm.bin, bzImage", BzImage, SeaBios),
        minnow("minnow direct (-bios none), bzImage", BzImage, Direct),
        minnow("minnow + minnow.rom, PVH vmlinux", Pvh, MinnowRom),
        minnow("minnow direct (-bios none), PVH vmlinux", Pvh, Direct),
        qemu("QEMU microvm (defaults: qboot, rtc=auto)", "microvm,accel=kvm"),
        qemu("QEMU microvm, rtc=on", "microvm,accel=kvm,rtc=on"),
    ]
}

struct Row {
    label: &'static str,
    wall: Vec<f64>,
    uptime: Vec<f64>,
    /// minnow's `-boot-timeline` of each run, relayed on its stderr: (event, ms since exec).
    phases: Vec<Vec<(String, f64)>>,
    stalls: usize,
    failures: usize,
}

/// Parses the timeline table minnow prints: "  first guest instruction   380.859  +366.592 ...".
fn timeline(stderr: &[String]) -> Vec<(String, f64)> {
    stderr
        .iter()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| w.parse::<f64>().is_ok())?;
            let event = words[..at].join(" ");
            (!event.is_empty() && words.get(at + 1)?.starts_with('+'))
                .then(|| (event, words[at].parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

/// The median of `v` (NaN when empty); sorts `v`.
pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn uptime(out: &CaseOutput) -> Option<f64> {
    out.serial
        .iter()
        .find_map(|l| l.strip_prefix("MINNOW-INIT uptime="))
        .and_then(|v| v.trim().parse().ok())
}

pub fn run() -> Result<()> {
    let configs = configs();
    // Interleaved: every configuration once per round, so drift hits all alike.
    let mut cases = Vec::new();
    for round in 0..ROUNDS {
        for (i, c) in configs.iter().enumerate() {
            cases.push(Case::new(
                format!("bench-{i}-round{round}"),
                c.case.program,
                c.case.args.clone(),
                Expect::Timing,
            ));
        }
    }
    let inputs = super::prepare(true)?;
    let outcome = super::boot(&inputs, &cases, "bench")?;
    if outcome.timed_out {
        bail!(
            "the L2 host did not finish within {} s",
            outcome.timeout.as_secs()
        );
    }
    let mut rows: Vec<Row> = configs
        .iter()
        .map(|c| Row {
            label: c.label,
            wall: vec![],
            uptime: vec![],
            phases: vec![],
            stalls: 0,
            failures: 0,
        })
        .collect();
    for (i, row) in rows.iter_mut().enumerate() {
        for round in 0..ROUNDS {
            let out = outcome.results.get(&format!("bench-{i}-round{round}"));
            match out.and_then(|o| uptime(o).map(|u| (o, u))) {
                Some((o, u)) => {
                    row.wall.push(o.seconds);
                    row.uptime.push(u);
                    let t = timeline(&o.stderr);
                    if !t.is_empty() {
                        row.phases.push(t);
                    }
                    row.stalls += usize::from(o.serial.iter().any(|l| l.contains(RTC_STALL)));
                }
                None => row.failures += 1,
            }
        }
    }
    let table = table(&mut rows);
    print!("{table}");
    write_results(&rows, &table)?;
    if rows.iter().any(|r| r.failures > 0) {
        bail!(
            "some runs did not reach the guest's init (see {})",
            outcome.log.display()
        );
    }
    Ok(())
}

fn table(rows: &mut [Row]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nLinux ({} runs each, interleaved) from VMM start to exit after /init powers off, inside the \
         nested KVM host; -m 256M -smp 1, console=ttyS0 loglevel=5:\n",
        ROUNDS
    );
    let _ = writeln!(out, "| configuration | wall median (min-max), s | kernel to /init, s | rest, s | vs minnow.rom | rtc_cmos stall |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    let reference = median(&mut rows[0].wall.clone());
    for r in rows.iter_mut() {
        let (min, max) = min_max(&r.wall);
        let wall = median(&mut r.wall);
        let up = median(&mut r.uptime);
        let stall = if r.stalls > 0 {
            format!("{}/{}", r.stalls, r.wall.len())
        } else {
            "no".into()
        };
        let failed = if r.failures > 0 {
            format!(" ({} failed)", r.failures)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {}{failed} | {wall:.2} ({min:.2}-{max:.2}) | {up:.2} | {:.2} | {:.2}x | {stall} |",
            r.label,
            wall - up,
            wall / reference
        );
    }
    out
}

/// The median time of each timeline event over the runs, in the first run's order.
fn median_phases(r: &Row) -> Vec<(String, f64)> {
    let Some(first) = r.phases.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|(event, _)| {
            let mut times: Vec<f64> = r
                .phases
                .iter()
                .filter_map(|p| p.iter().find(|(e, _)| e == event).map(|(_, t)| *t))
                .collect();
            (event.clone(), median(&mut times))
        })
        .collect()
}

/// bench/results/<date>-<host>-nested.{json,md,svg}: the table, the raw runs, and real Linux's
/// boot phases stacked per configuration (minnow's timeline; for QEMU, the guest kernel's own
/// time to /init and the rest).
fn write_results(rows: &[Row], table: &str) -> Result<()> {
    use crate::bench::svg::{stacked_phases, Bar};
    let out = crate::workspace_root().join("bench/results");
    std::fs::create_dir_all(&out)?;
    let stem = format!("{}-nested", crate::bench::all::results_stem()?);
    std::fs::write(out.join(format!("{stem}.md")), table)?;
    let json = serde_json::json!({
        "note": "inside the nested KVM host of cargo xtask nested-test (QEMU TCG -cpu max); seconds in L2's clock",
        "configurations": rows.iter().map(|r| serde_json::json!({
            "label": r.label,
            "wall_s": r.wall,
            "kernel_to_init_s": r.uptime,
            "timeline_median_ms": median_phases(r).into_iter().map(|(e, t)| serde_json::json!({"event": e, "at_ms": t})).collect::<Vec<_>>(),
            "rtc_stalls": r.stalls,
            "failures": r.failures,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&json)?,
    )?;
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| {
            let phases = median_phases(r);
            let segments = if phases.len() > 1 {
                phases
                    .windows(2)
                    .map(|w| (format!("to {}", w[1].0), (w[1].1 - w[0].1).max(0.0)))
                    .collect()
            } else {
                let (mut wall, mut up) = (r.wall.clone(), r.uptime.clone());
                let (wall, up) = (median(&mut wall) * 1e3, median(&mut up) * 1e3);
                vec![
                    (
                        "QEMU: start, firmware, kernel decompression".into(),
                        (wall - up).max(0.0),
                    ),
                    ("QEMU: guest kernel to /init".into(), up),
                ]
            };
            Bar {
                label: r.label.to_string(),
                segments,
            }
        })
        .collect();
    let svg = stacked_phases(
        "Real Linux boot on the nested KVM host (median ms since exec)",
        &bars,
    );
    std::fs::write(out.join(format!("{stem}.svg")), svg)?;
    eprintln!("[nested] wrote bench/results/{stem}.{{md,json,svg}}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_relayed_timeline_parses() {
        let lines: Vec<String> = [
            "minnow boot timeline (ms since exec; VM exits during each phase):",
            "  exec                         0.000    +0.000  ",
            "  first guest instruction    380.859  +366.592  pio_other=2",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            super::timeline(&lines),
            [
                ("exec".to_string(), 0.0),
                ("first guest instruction".to_string(), 380.859)
            ]
        );
    }
}
