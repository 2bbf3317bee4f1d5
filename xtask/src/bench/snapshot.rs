//! `cargo xtask bench snapshot`: saving a VM and starting clones from the state, minnow against
//! QEMU 7.2 in the same run, twice: on this host's /dev/kvm with a payload guest, then inside
//! the nested KVM host with Debian's kernel (nested/bench_snapshot.rs). Both run the same
//! measurements (`minnow_guest_tools::snapshot_bench`); this file renders them.
//!
//! The payload guest is a real-mode loop that writes a byte to COM1, pauses, and goes on, in
//! 128 MiB of RAM: it answers without being asked, so what is measured is the VMM.
use super::svg;
use super::vmm::build_minnow;
use anyhow::{Context, Result};
use minnow_guest_tools::snapshot_bench::{self, variants, Kind, Setup, Step, Vm};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const RUNS: usize = 20;
pub const CLONES: usize = 16;
const SAVES: usize = 5;
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

/// Every result of one run: (variant, metric) to its values, in order.
#[derive(Default)]
pub struct Results(BTreeMap<(String, String), Vec<f64>>);

impl Results {
    pub fn add(&mut self, variant: &str, metric: &str, value: f64) {
        self.0
            .entry((variant.to_string(), metric.to_string()))
            .or_default()
            .push(value);
    }

    /// The results in `MINNOW-SNAPBENCH VARIANT METRIC VALUE` lines (what `snapshot-bench`
    /// prints); other lines are skipped.
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Results {
        let mut r = Results::default();
        for line in lines {
            let Some(rest) = line.trim().strip_prefix("MINNOW-SNAPBENCH ") else {
                continue;
            };
            if let [variant, metric, value] = rest.split_whitespace().collect::<Vec<_>>()[..] {
                if let Ok(v) = value.parse() {
                    r.add(variant, metric, v);
                }
            }
        }
        r
    }

    fn values(&self, variant: &str, metric: &str) -> Vec<f64> {
        self.0
            .get(&(variant.to_string(), metric.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    pub fn is_complete(&self) -> bool {
        variants(Path::new("")).iter().all(|v| {
            !self.values(v.id, "answer_ms").is_empty() && !self.values(v.id, "clones_pss_kib").is_empty()
        })
    }

    pub fn json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for ((variant, metric), values) in &self.0 {
            let entry = out
                .entry(variant.clone())
                .or_insert_with(|| serde_json::json!({}));
            entry[metric] = serde_json::json!(values);
        }
        serde_json::Value::Object(out)
    }
}

fn label(id: &str) -> &'static str {
    match id {
        "minnow-file" => "minnow `file:`",
        "minnow-exec" => "minnow `exec:cat`",
        _ => "QEMU 7.2 `exec:cat`",
    }
}

/// (p50, p90) of `v`; NaN when empty.
fn p50_p90(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: usize| v.get((v.len() * q / 10).min(v.len().saturating_sub(1))).copied();
    (at(5).unwrap_or(f64::NAN), at(9).unwrap_or(f64::NAN))
}

fn p50(v: Vec<f64>) -> f64 {
    p50_p90(v).0
}

/// A table cell: `v` with `decimals`, or "-" for what a cut-short run never measured.
fn cell(v: f64, decimals: usize) -> String {
    match v.is_finite() {
        true => format!("{v:.decimals$}"),
        false => "-".into(),
    }
}

/// The two tables, and the comparisons the goals are stated in.
pub fn render(r: &Results, answer: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| | saves | save (`migrate`), ms | state on disk, MiB | source RSS at the save, MiB | restores | restore to first guest instruction, ms | restore to {answer}, ms |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for v in variants(Path::new("")) {
        let first = match v.kind {
            Kind::Qemu => "-".to_string(),
            Kind::Minnow => {
                let (a, b) = p50_p90(r.values(v.id, "first_instruction_ms"));
                format!("{} / {}", cell(a, 2), cell(b, 2))
            }
        };
        let (a50, a90) = p50_p90(r.values(v.id, "answer_ms"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {first} | {} / {} |",
            label(v.id),
            r.values(v.id, "save_ms").len(),
            cell(p50(r.values(v.id, "save_ms")), 1),
            cell(p50(r.values(v.id, "state_mib")), 1),
            cell(p50(r.values(v.id, "source_rss_kib")) / 1024.0, 1),
            r.values(v.id, "answer_ms").len(),
            cell(a50, 2),
            cell(a90, 2),
        );
    }
    let _ = writeln!(
        out,
        "\n{CLONES} clones at once:\n\n| | all answered, ms | total PSS, MiB |\n|---|---:|---:|"
    );
    for v in variants(Path::new("")) {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            label(v.id),
            cell(p50(r.values(v.id, "clones_all_ms")), 1),
            cell(p50(r.values(v.id, "clones_pss_kib")) / 1024.0, 1)
        );
    }
    let answer_of = |id| p50(r.values(id, "answer_ms"));
    let _ = writeln!(
        out,
        "\nminnow from `file:` reaches {answer} {}x sooner than QEMU (p50), and its first guest \
         instruction in {} ms (p50).",
        cell(answer_of("qemu-exec") / answer_of("minnow-file"), 1),
        cell(p50(r.values("minnow-file", "first_instruction_ms")), 2)
    );
    out
}

/// The chart: restore p50 and p90 and the clones' time, per variant.
pub fn chart(r: &Results, title: &str) -> String {
    let xs = [
        "restore p50".to_string(),
        "restore p90".to_string(),
        format!("{CLONES} clones, all answered"),
    ];
    let series: Vec<(String, Vec<f64>)> = variants(Path::new(""))
        .iter()
        .map(|v| {
            let (a50, a90) = p50_p90(r.values(v.id, "answer_ms"));
            let all = p50(r.values(v.id, "clones_all_ms"));
            (label(v.id).replace('`', ""), vec![a50, a90, all])
        })
        .collect();
    svg::grouped_bars(title, "ms from exec", &xs, &series)
}

/// Writes a run's table, data and chart to bench/results/<date>-<host>-<what>.{md,json,svg}.
pub fn write(what: &str, table: &str, r: &Results, title: &str) -> Result<()> {
    crate::nested::bench_disk::write_results(what, table, r.json())?;
    let out = crate::workspace_root().join("bench/results");
    let svg = out.join(format!("{}-{what}.svg", super::all::results_stem()?));
    std::fs::write(&svg, chart(r, title)).with_context(|| format!("writing {}", svg.display()))?;
    eprintln!("[bench] wrote {}", svg.display());
    Ok(())
}

/// `cargo xtask bench snapshot`: this host's half, then the nested half.
pub fn run() -> Result<()> {
    run_host()?;
    crate::nested::bench_snapshot::run()
}

/// `cargo xtask bench snapshot-host`: this host's half only (a few minutes).
pub fn run_host() -> Result<()> {
    let host = measure()?;
    print!("{host}");
    Ok(())
}

/// On this host's /dev/kvm, with the payload guest.
fn measure() -> Result<String> {
    let dir = crate::workspace_root().join("target/bench/snapshot");
    std::fs::create_dir_all(&dir)?;
    let rom = loop_rom(&dir)?;
    let common = |machine: &str| -> Vec<String> {
        let mut a: Vec<String> = ["-M", machine, "-m", MEMORY, "-nodefaults", "-no-user-config"]
            .map(String::from)
            .to_vec();
        a.extend(["-display", "none", "-bios"].map(String::from));
        a.push(rom.display().to_string());
        a
    };
    let byte = Step {
        ask: String::new(),
        answer: "S".into(),
        within: Duration::from_secs(10),
    };
    let setup = Setup {
        minnow: Vm {
            kind: Kind::Minnow,
            program: build_minnow()?,
            args: common("microvm,acpi=off"),
        },
        qemu: Vm {
            kind: Kind::Qemu,
            program: "qemu-system-x86_64".into(),
            args: common("microvm,accel=kvm,acpi=off,x-option-roms=off"),
        },
        prepare: vec![byte.clone()],
        probe: byte,
        saves: SAVES,
        runs: RUNS,
        clones: CLONES,
        dir,
        settle: Duration::from_secs(5),
    };
    eprintln!("[bench] snapshot: {SAVES} saves, {RUNS} restores and {CLONES} clones of each kind");
    let mut r = Results::default();
    snapshot_bench::measure(&setup, &[], |v, m, x| r.add(v, m, x)).map_err(anyhow::Error::msg)?;
    let table = format!(
        "\nSnapshots on this host's /dev/kvm: a {MEMORY} payload guest (a loop writing to COM1), \
         saved while running ({SAVES} saves each); restore: {RUNS} runs each, alternating, ms from \
         exec, p50 / p90:\n\n{}",
        render(&r, "the guest's next COM1 byte")
    );
    write(
        "snapshot",
        &table,
        &r,
        "Snapshot restore on this host (payload guest)",
    )?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_cut_short_run_never_measured_shows_as_a_dash() {
        let r = Results::from_lines(["MINNOW-SNAPBENCH minnow-file answer_ms 3.5"]);
        let table = render(&r, "x");
        assert!(!table.contains("NaN"), "{table}");
        assert!(
            table.contains("| QEMU 7.2 `exec:cat` | 0 | - | - | - | 0 | - | - / - |"),
            "{table}"
        );
        assert!(table.contains("reaches x -x sooner"), "{table}");
        assert!(!chart(&r, "t").contains("NaN"));
    }

    #[test]
    fn results_come_back_from_the_lines_l2_relays() {
        let r = Results::from_lines([
            "MINNOW-SNAPBENCH minnow-file answer_ms 3.5",
            "  MINNOW-SNAPBENCH minnow-file answer_ms 4.5",
            "MINNOW-SNAPBENCH qemu-exec clones_pss_kib 1024",
            "MINNOW-SNAPBENCH failed: the VMM ended",
            "unrelated",
        ]);
        assert_eq!(r.values("minnow-file", "answer_ms"), vec![3.5, 4.5]);
        assert_eq!(r.values("qemu-exec", "clones_pss_kib"), vec![1024.0]);
        assert!(!r.is_complete());
        assert_eq!(r.json()["minnow-file"]["answer_ms"][1], 4.5);
    }

    #[test]
    fn p90_is_the_ninth_decile_and_empty_is_nan() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(p50_p90(v), (11.0, 19.0));
        assert!(p50_p90(vec![]).0.is_nan());
    }
}
