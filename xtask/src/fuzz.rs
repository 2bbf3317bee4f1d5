//! `cargo xtask fuzz [TARGET...] [--seconds N | --long]`: runs each cargo-fuzz target (fuzz/), or
//! the ones named, for N seconds
//! (default 20, the CI-sized run `cargo xtask test` makes; `--long` is 10 minutes each), then
//! prints a table of executions and coverage per target, for docs/fuzzing.md. Needs a nightly
//! toolchain and cargo-fuzz, which scripts/setup.sh installs. A crash fails the run, leaving its
//! input in fuzz/artifacts/.
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The targets, as fuzz/Cargo.toml names them: every device a guest can touch through its bus,
/// qcow2 images, kernel images for both loaders, the command line, what a QMP client sends, what
/// a `-netdev stream` peer sends.
const TARGETS: [&str; 11] = [
    "legacy_devices",
    "virtio_mmio",
    "virtio_blk",
    "fw_cfg_guest",
    "qcow2_image",
    "kernel_layout",
    "direct_boot",
    "config_parse",
    "qmp_input",
    "net_stream",
    "snapshot_state",
];
pub const CI_SECONDS: u64 = 20;
/// `--long`: each target this long.
pub const LONG_SECONDS: u64 = 600;

/// What libFuzzer said at the end of one target's run.
#[derive(Default)]
struct Stats {
    executions: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
}

impl Stats {
    /// Reads a line of libFuzzer's output: `stat::number_of_executed_units: N` and the final
    /// `#N DONE cov: C ft: F corp: K/...`.
    fn take(&mut self, line: &str) {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            self.executions = n.trim().parse().unwrap_or(self.executions);
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) == Some(&"DONE") {
            let after = |key: &str| {
                words
                    .iter()
                    .position(|w| *w == key)
                    .and_then(|i| words.get(i + 1))
                    .and_then(|v| v.split('/').next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            self.coverage = after("cov:");
            self.features = after("ft:");
            self.corpus = after("corp:");
        }
    }
}

/// The targets to run: all of them, or the ones named (each must exist).
fn chosen(names: &[String]) -> Result<Vec<&'static str>> {
    if names.is_empty() {
        return Ok(TARGETS.to_vec());
    }
    names
        .iter()
        .map(|n| match TARGETS.iter().find(|t| **t == n.as_str()) {
            Some(t) => Ok(*t),
            None => bail!("no fuzz target {n:?}; the targets are {}", TARGETS.join(", ")),
        })
        .collect()
}

pub fn run(names: &[String], seconds: u64) -> Result<()> {
    let targets = chosen(names)?;
    let dir = crate::workspace_root().join("fuzz");
    let probe = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        bail!(
            "cargo fuzz needs a nightly toolchain and cargo-fuzz: `rustup toolchain install nightly \
             --profile minimal && cargo install cargo-fuzz` (scripts/setup.sh does both)"
        );
    }
    let mut table = Vec::new();
    for target in targets {
        eprintln!("[fuzz] {target}: {seconds} s");
        let mut child = Command::new("cargo")
            .current_dir(&dir)
            .args(["+nightly", "fuzz", "run", "-O", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .stderr(Stdio::piped())
            .spawn()
            .context("running cargo fuzz")?;
        let mut stats = Stats::default();
        let mut tail = Vec::new();
        for line in BufReader::new(child.stderr.take().context("cargo fuzz's stderr")?)
            .lines()
            .map_while(Result::ok)
        {
            stats.take(&line);
            tail.push(line);
            if tail.len() > 60 {
                tail.remove(0);
            }
        }
        let status = child.wait().context("waiting for cargo fuzz")?;
        if !status.success() {
            for l in &tail {
                eprintln!("    {l}");
            }
            bail!(
                "fuzz target {target} found a failure ({status}); its input is in fuzz/artifacts/{target}/"
            );
        }
        eprintln!(
            "[fuzz] {target}: {} executions, coverage {} edges, {} features",
            stats.executions, stats.coverage, stats.features
        );
        table.push((target, stats));
    }
    eprintln!("\n| target | seconds | executions | exec/s | edges covered | features | corpus |");
    eprintln!("|---|---:|---:|---:|---:|---:|---:|");
    for (target, s) in table {
        eprintln!(
            "| {target} | {seconds} | {} | {} | {} | {} | {} |",
            s.executions,
            s.executions / seconds.max(1),
            s.coverage,
            s.features,
            s.corpus
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_all_by_default_or_the_named_ones() {
        assert_eq!(chosen(&[]).map(|t| t.len()).ok(), Some(TARGETS.len()));
        assert_eq!(chosen(&["qmp_input".into()]).ok(), Some(vec!["qmp_input"]));
        let err = chosen(&["qmp".into()]).map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains("\"qmp\"") && e.contains("qmp_input")));
    }

    #[test]
    fn libfuzzers_final_lines_give_the_stats() {
        let mut s = Stats::default();
        s.take("#182120\tDONE   cov: 927 ft: 4324 corp: 917/105Kb lim: 970 exec/s: 11382 rss: 444Mb");
        s.take("stat::number_of_executed_units: 182120");
        assert_eq!(
            (s.executions, s.coverage, s.features, s.corpus),
            (182120, 927, 4324, 917)
        );
    }
}
