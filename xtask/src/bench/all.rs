//! `cargo xtask bench`: VM start-up, launches per second, the boot matrix and QMP round trips in
//! one run, written to bench/results/<date>-<host>.{json,md} (the QMP table in the .md only) with
//! two charts (-phases.svg, -launches.svg).
//! `cargo xtask bench firmware` (instruction counts) and `bench nested` (real Linux) are separate:
//! they need QEMU's exec log and the nested host.
use super::launches;
use super::matrix::{self, Vmm};
use super::svg::{self, Bar};
use super::vmm;
use anyhow::{Context, Result};
use serde_json::json;
use std::process::Command;

pub fn run() -> Result<()> {
    let root = crate::workspace_root();
    crate::firmware::build()?;
    let payloads = crate::payloads::build()?;
    let start_up = vmm::measure_all()?;
    let vmms = vmm::Vmms {
        minnow: vmm::build_minnow()?,
    };
    let launch_rows = launches::measure(&vmms)?;
    let work = root.join("target/bench");
    std::fs::create_dir_all(&work)?;
    let matrix_rows = matrix::measure(&matrix::Inputs {
        minnow: vmms.minnow.clone(),
        payloads,
        rom: root.join("target/firmware/minnow.rom"),
        work,
    })?;

    let monitor_table = super::monitor::measure()?;
    let sandbox_table = super::sandbox::measure_table()?;
    let tables = [
        vmm::table(&start_up),
        launches::table(&launch_rows),
        matrix::table(&matrix_rows),
        monitor_table,
        sandbox_table,
    ]
    .concat();
    print!("{tables}");

    let out = root.join("bench/results");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let stem = results_stem()?;
    let json_path = out.join(format!("{stem}.json"));
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&results_json(&start_up, &launch_rows, &matrix_rows))?,
    )?;
    std::fs::write(out.join(format!("{stem}.md")), &tables)?;
    let phases_svg = out.join(format!("{stem}-phases.svg"));
    std::fs::write(&phases_svg, phases_chart(&matrix_rows))?;
    let launches_svg = out.join(format!("{stem}-launches.svg"));
    std::fs::write(&launches_svg, launches_chart(&launch_rows))?;
    eprintln!(
        "[bench] wrote {}, {} and {}",
        json_path.display(),
        phases_svg.display(),
        launches_svg.display()
    );
    Ok(())
}

/// `<date>-<host>`, the name of a run's result files.
pub fn results_stem() -> Result<String> {
    Ok(format!("{}-{}", today()?, host()))
}

fn today() -> Result<String> {
    let out = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .context("running date")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

fn results_json(s: &vmm::Results, l: &[launches::Row], m: &[matrix::Row]) -> serde_json::Value {
    let ms = |runs: &[vmm::Run], f: fn(&vmm::Run) -> f64| {
        let (med, min, max) = vmm::stats(runs.iter().map(f).collect());
        json!({"median": med, "min": min, "max": max})
    };
    let first = |r: &vmm::Run| r.first_output.as_secs_f64() * 1e3;
    let exit = |r: &vmm::Run| r.exit.as_secs_f64() * 1e3;
    let down = |r: &vmm::Run| (r.exit - r.first_output).as_secs_f64() * 1e3;
    json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "note": "/dev/kvm on this project's machines is PVM (software-emulated): guest time \
                     grows with the guest's instruction count; host-side costs are real",
        },
        "start_up_ms": {
            "minnow": {"first_output": ms(&s.minnow, first), "shutdown_to_exit": ms(&s.minnow, down), "exit": ms(&s.minnow, exit), "peak_rss_kib": s.minnow_rss_kib},
            "minnow_pic_off": {"first_output": ms(&s.minnow_split, first), "shutdown_to_exit": ms(&s.minnow_split, down), "exit": ms(&s.minnow_split, exit)},
            "qemu_microvm": {"first_output": ms(&s.qemu, first), "shutdown_to_exit": ms(&s.qemu, down), "exit": ms(&s.qemu, exit), "peak_rss_kib": s.qemu_rss_kib},
        },
        "launches_per_second": l.iter().map(|r| json!({
            "vmm": r.vmm, "mode": r.mode.name(), "vms": r.vms, "per_second": r.per_second,
        })).collect::<Vec<_>>(),
        "boot_matrix_ms": m.iter().map(|r| json!({
            "vmm": r.config.vmm.name(),
            "loader": matrix::loader_name(r.config.loader),
            "payload": r.config.payload.file(),
            "first_output": r.first_output,
            "exit": r.exit,
            "phases_median": r.median_phases().into_iter().map(|(e, t)| json!({"event": e, "at_ms": t})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The PVH payload through every loader: minnow's phases stacked; QEMU's start and the rest.
fn phases_chart(rows: &[matrix::Row]) -> String {
    let bars: Vec<Bar> = rows
        .iter()
        .filter(|r| r.config.payload == minnow_tests::payload_check::Payload::Pvh)
        .map(|r| {
            let segments = match r.config.vmm {
                Vmm::Minnow => {
                    let phases = r.median_phases();
                    phases
                        .windows(2)
                        .map(|w| (format!("to {}", w[1].0), (w[1].1 - w[0].1).max(0.0)))
                        .collect()
                }
                Vmm::Qemu => {
                    let first = vmm::stats(r.first_output.clone()).0;
                    vec![
                        ("QEMU: to first serial byte".into(), first),
                        ("QEMU: first serial byte to exit".into(), r.median_exit() - first),
                    ]
                }
            };
            Bar {
                label: r.config.label(),
                segments,
            }
        })
        .collect();
    svg::stacked_phases("Boot phases, pvh.elf payload (median ms since exec)", &bars)
}

fn launches_chart(rows: &[launches::Row]) -> String {
    let xs: Vec<String> = launches::COUNTS.iter().map(|n| format!("{n} VMs")).collect();
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    for r in rows {
        let name = format!("{}, {}", r.vmm, r.mode.name());
        if !series.iter().any(|(n, _)| *n == name) {
            let values = launches::COUNTS
                .iter()
                .map(|n| {
                    rows.iter()
                        .find(|x| x.vmm == r.vmm && x.mode == r.mode && x.vms == *n)
                        .map_or(0.0, |x| x.per_second)
                })
                .collect();
            series.push((name, values));
        }
    }
    svg::grouped_bars(
        "VM launches per second (ROM exits at once)",
        "VMs per second",
        &xs,
        &series,
    )
}
