//! The nested half of `cargo xtask bench snapshot`: inside the nested KVM host, on real KVM,
//! Debian's cloud kernel with the test initramfs in 256 MiB and one vCPU, on minnow (through
//! minnow.rom) and on QEMU 7.2's microvm with the same kernel, initramfs and command line.
//!
//! guest-tools' `snapshot-bench` runs it in L2, in [`SAVES`] rounds of one case per variant, each
//! round in a fresh L2 (a case L2 gets stuck on, the test bed's TCG-SVM freeze, runs again in a
//! fresh L2, as in the nested suite; a variant whose case never finishes stops there, see
//! [`times_stuck_to_fail`]). Each case boots the source, has its shell fill [`FILL_MIB`] of
//! a tmpfs with random bytes (so the state holds about 240 MiB of touched memory), saves it,
//! then times its restores or its clones; a clone has answered when its shell echoes a line
//! typed into its console. L2 relays the results on its console
//! (`MINNOW-SNAPBENCH` lines), rendered here like the host's half.
use super::cases::{linux_case, paths, qemu_linux_args, set_append, Case, Expect, LinuxImage};
use crate::bench::snapshot::{render, write, Results, CLONES, RUNS};
use anyhow::{bail, Result};
use minnow_guest_tools::snapshot_bench::variants;
use minnow_tests::payload_check::Loader;
use std::path::Path;

/// Each variant's restores come in this many L2 cases, each after a save of its own (a fresh
/// boot of the source, about a minute in L2), then one case saves again and starts the clones:
/// when L2 freezes (the test bed's: every `exec:` case froze it on 2026-12-07, QEMU's too), only
/// the case it froze in runs again.
const RESTORE_CASES: usize = 4;
/// Saves of each kind: one per case.
const SAVES: usize = RESTORE_CASES + 1;
/// What the guest's shell writes into a tmpfs before the save.
const FILL_MIB: usize = 170;
/// Where L2 keeps the states, sockets and the clones' stderr (its tmpfs).
const DIR: &str = "/tmp/snapbench";
/// The guest's command line on both VMMs: a shell on COM1 (`minnow.monitor`).
const APPEND: &str = "console=ttyS0 loglevel=5 panic=-1 minnow.monitor=1";
/// L2's RAM for this run: QEMU's 16 clones hold about 230 MiB each, and three states sit in
/// L2's tmpfs.
const L2_MEMORY_MIB: u32 = 8192;
/// One case's limit in L2, seconds: a save takes up to a minute and a half; QEMU's restores
/// took 15 to 40 s each in L2 (each reads the whole state through a pipe), and its 16 clones
/// read 16 states at once. L2's heartbeat, not this limit, tells a frozen L2.
const LIMIT_SECS: u32 = 1200;

/// How many times L2 may freeze in a case before its variant stops. The `exec:` variants get
/// one: L2 froze in every one of their cases on 2026-12-07 (8 of 8, minnow's and QEMU's alike, with
/// QEMU 7.2 and 10.0 as L1), and retrying each as often as the others would add about 3 hours.
fn times_stuck_to_fail(case: &Case) -> usize {
    match case.args[0].ends_with("-exec") {
        true => 1,
        false => super::TIMES_STUCK_TO_FAIL_BENCH,
    }
}

fn minnow_args() -> Vec<String> {
    let mut args = linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 1).args;
    set_append(&mut args, APPEND);
    args
}

/// The cases of one variant: [`RESTORE_CASES`] cases of restores, then the clones.
fn cases(variant: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = (1..=RESTORE_CASES)
        .map(|n| case(variant, &format!("restores-{n}"), RUNS / RESTORE_CASES, 0))
        .collect();
    cases.push(case(variant, "clones", 0, CLONES));
    cases
}

fn case(variant: &str, part: &str, runs: usize, clones: usize) -> Case {
    let mut args = vec![variant.to_string()];
    args.extend([1, runs, clones, FILL_MIB].iter().map(ToString::to_string));
    args.extend([DIR.to_string(), "--".into(), paths::MINNOW.into()]);
    args.extend(minnow_args());
    args.extend(["--".into(), paths::QEMU.into()]);
    args.extend(qemu_linux_args(
        "microvm,accel=kvm,rtc=on",
        paths::VMLINUZ,
        APPEND,
    ));
    let mut case = Case::new(
        format!("bench-snapshot-{variant}-{part}"),
        paths::SNAPSHOT_BENCH,
        args,
        Expect::Timing,
    );
    // Its results are its stdout, which L2 relays as it relays a serial log.
    case.serial_on_stdout = true;
    case.hang_secs = LIMIT_SECS;
    case.l2_memory_mib = L2_MEMORY_MIB;
    // Progress on L2's console as it comes (see snapshot-bench).
    case.setup = vec!["chmod 0666 /dev/kmsg".into()];
    case
}

pub fn run() -> Result<()> {
    let inputs = super::prepare(true)?;
    // The cases of every variant snapshot-bench knows, a round of one case each per L2: a run
    // cut short by L2's freezes still compares them.
    let per_variant: Vec<(&str, Vec<Case>)> = variants(Path::new(""))
        .iter()
        .map(|v| (v.id, cases(v.id)))
        .collect();
    let mut outputs = Vec::new();
    let mut stuck_on = Vec::new();
    let mut given_up: Vec<&str> = Vec::new();
    // The console of the L2 each given-up variant last froze in.
    let mut stuck_logs = Vec::new();
    for round in 0..SAVES {
        let cases: Vec<Case> = per_variant
            .iter()
            .filter(|(id, _)| !given_up.contains(id))
            .map(|(_, cases)| cases[round].clone())
            .collect();
        if cases.is_empty() {
            break;
        }
        let mut outcome = super::boot_to_the_end(&cases, times_stuck_to_fail, |c, tag| {
            super::boot(&inputs, c, &format!("bench-snapshot-{}-{tag}", round + 1))
        })?;
        for (id, cases) in &per_variant {
            if !given_up.contains(id) && !outcome.results.contains_key(&cases[round].name) {
                given_up.push(id);
                stuck_logs.push(outcome.log.clone());
            }
        }
        let log = &outcome.log;
        outputs.extend(
            cases
                .iter()
                .filter_map(|c| outcome.results.remove(&c.name).map(|o| (o, log.clone()))),
        );
        stuck_on.extend(outcome.stuck_on);
    }
    let results = Results::from_lines(
        outputs
            .iter()
            .flat_map(|(o, _)| o.serial.iter().map(String::as_str)),
    );
    for (o, log) in &outputs {
        if let Some(failed) = o
            .serial
            .iter()
            .chain(&o.stderr)
            .find(|l| l.contains("MINNOW-SNAPBENCH failed") || l.contains("snapshot-bench:"))
        {
            bail!("{} (see {})", failed.trim(), log.display());
        }
    }
    eprintln!(
        "[nested] L2 got stuck {} time(s) and was booted again: {stuck_on:?}",
        stuck_on.len()
    );
    let missing = match given_up.is_empty() {
        true => String::new(),
        false => format!(
            "\nIncomplete: L2 froze {} times (the test bed's freeze, see docs/benchmarks.md); \
             these variants stopped at their first case that never finished: {}.\n",
            stuck_on.len(),
            given_up.join(", ")
        ),
    };
    let table = format!(
        "\nSnapshots inside the nested KVM host (real KVM under QEMU TCG): Debian's cloud kernel \
         and the test initramfs in 256 MiB, one vCPU, its shell having filled {FILL_MIB} MiB of a \
         tmpfs; saved while running ({SAVES} saves each); restore: {RUNS} runs each, \
         ms from exec in L2, p50 / p90 (in rounds of one case per variant, each case {} restores \
         or {CLONES} clones after a save of their own):\n\n{}",
        RUNS / RESTORE_CASES,
        render(&results, "the guest's shell answering")
    ) + &missing;
    print!("{table}");
    write(
        "snapshot-nested",
        &table,
        &results,
        "Snapshot restore in the nested KVM host (Debian kernel)",
    )?;
    if !results.is_complete() || !given_up.is_empty() {
        bail!(
            "the nested snapshot benchmark did not finish: L2 froze in {} (see {})",
            given_up.join(", "),
            stuck_logs
                .iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_restores_in_parts_then_clones() {
        let cases = cases("minnow-file");
        assert_eq!(cases.len(), SAVES);
        let count = |c: &Case, i: usize| c.args[i].parse::<usize>().unwrap();
        assert_eq!(cases.iter().map(|c| count(c, 2)).sum::<usize>(), RUNS);
        assert_eq!(cases.iter().map(|c| count(c, 3)).sum::<usize>(), CLONES);
        assert!(cases.iter().all(|c| count(c, 1) == 1), "a save in every case");
        assert_eq!(cases[SAVES - 1].name, "bench-snapshot-minnow-file-clones");
    }

    #[test]
    fn an_exec_variant_stops_at_its_first_freeze_the_file_variant_is_retried() {
        let first = |v: &str| cases(v).remove(0);
        assert_eq!(times_stuck_to_fail(&first("minnow-exec")), 1);
        assert_eq!(times_stuck_to_fail(&first("qemu-exec")), 1);
        assert_eq!(
            times_stuck_to_fail(&first("minnow-file")),
            super::super::TIMES_STUCK_TO_FAIL_BENCH
        );
    }

    #[test]
    fn both_vmms_boot_the_same_kernel_with_the_same_command_line() {
        let case = case("qemu-exec", "restores-1", 5, 0);
        assert_eq!(case.args[0], "qemu-exec");
        let parts: Vec<&[String]> = case.args.split(|a| a == "--").collect();
        assert_eq!(parts.len(), 3, "{:?}", case.args);
        for vmm in &parts[1..] {
            let at = vmm.iter().position(|a| a == "-append").unwrap();
            assert_eq!(vmm[at + 1], APPEND);
            assert_eq!(vmm.iter().filter(|a| *a == "-append").count(), 1);
            assert!(vmm.iter().any(|a| a == paths::VMLINUZ));
            assert!(vmm.iter().any(|a| a == "256M"), "{vmm:?}");
        }
        assert_eq!(parts[1][0], paths::MINNOW);
        assert_eq!(parts[2][0], paths::QEMU);
    }

    #[test]
    fn the_script_with_the_benchmark_parses() {
        for v in variants(Path::new("")) {
            cases(v.id)
                .into_iter()
                .for_each(super::super::cases::assert_script_parses);
        }
    }
}
