//! `cargo xtask nested-test`: real Linux on Minnow's VMM, on real KVM.
//!
//! This machine's /dev/kvm cannot run a stock kernel, but QEMU TCG with `-cpu max` emulates AMD
//! SVM with nested paging. So: QEMU (L1) boots Debian's cloud kernel (L2) with kvm-amd loaded
//! from its own package, and an initramfs carrying a static `minnow`, qboot.rom, the L3 kernel
//! and initramfs, and the boot conformance payloads. L2's `/init` runs every case with `minnow`
//! on its /dev/kvm and relays what each guest printed; this side checks it.
//!
//! Outputs land in target/nested/: `test-l2.cpio`, `test-init.sh`, and `test-console.log` (L2's
//! console with host timestamps); `cargo xtask bench nested` writes `bench-*`.
pub mod bench;
pub mod bench_disk;
pub mod bench_net;
pub mod bench_snapshot;
mod cases;
mod console;
mod control;
pub mod demo;
mod image;
mod l1;
mod script;

use crate::guest;
use anyhow::{bail, Context, Result};
use cases::Case;
use console::CaseOutput;
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the L2 image is built from.
struct Inputs {
    guest_dir: PathBuf,
    modules: Vec<PathBuf>,
    minnow: PathBuf,
    /// guest-tools' static programs (vsock-echo is L2's end of the vsock test).
    guest_tools: PathBuf,
    /// minnow.rom as a file, for the seed workload's `-bios`.
    rom: PathBuf,
    /// The seed workload: its kernel and its disk.
    seed_kernel: PathBuf,
    seed_disk: PathBuf,
    payload_dir: PathBuf,
    /// `cargo xtask third-party`'s cache: Xen, its dom0 kernel, memtest86+.
    third_party: PathBuf,
    /// Put Debian's QEMU (with its libraries and ROMs) into L2 too, to compare against it.
    with_qemu: bool,
}

/// What one L2 boot produced.
struct Outcome {
    results: HashMap<String, CaseOutput>,
    log: PathBuf,
    timed_out: bool,
    timeout: Duration,
    elapsed: Duration,
    /// The cases L2 got stuck on, in order, one entry per fresh L2 boot they cost.
    stuck_on: Vec<String>,
}

/// Builds the ROM, the guest, the payloads and the static minnow.
fn prepare(with_qemu: bool) -> Result<Inputs> {
    let rom = crate::firmware::build()?;
    let guest_dir = guest::prepare()?;
    let modules = guest::modules::prepare(&guest_dir, guest::modules::NESTED_HOST)?;
    let payload_dir = crate::payloads::build()?;
    let minnow = crate::minnow_bin::build_static()?;
    let guest_tools = guest::build_guest_tools()?;
    let seed_kernel = crate::seed_kernel::build()?;
    let seed_disk = crate::seed_disk::build(&guest_tools.join("hello"))?;
    let third_party = crate::third_party::prepare()?;
    Ok(Inputs {
        guest_dir,
        modules,
        minnow,
        guest_tools,
        rom,
        seed_kernel,
        seed_disk,
        payload_dir,
        third_party,
        with_qemu,
    })
}

/// Builds the L2 image for `cases`, boots it, and splits its console into per-case outputs.
/// Files go to target/nested/<tag>-{init.sh,l2.cpio,console.log}.
fn boot(inputs: &Inputs, cases: &[Case], tag: &str) -> Result<Outcome> {
    let out = crate::workspace_root().join("target/nested");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let init = script::l2_init(guest::modules::NESTED_HOST, cases);
    fs::write(out.join(format!("{tag}-init.sh")), &init)?;
    let image = out.join(format!("{tag}-l2.cpio"));
    let archive = image::build(inputs, &init)?;
    fs::write(&image, &archive).with_context(|| format!("writing {}", image.display()))?;
    eprintln!(
        "[nested] L2 initramfs: {} ({:.1} MiB), {} cases",
        image.display(),
        archive.len() as f64 / f64::from(1 << 20),
        cases.len()
    );
    let log = out.join(format!("{tag}-console.log"));
    // About 10 s per Linux boot inside L2, well under 1 s per payload; generous, but finite. A
    // case that may run longer (its limit, and its after-commands) says so.
    let timeout = Duration::from_secs(
        180 + cases
            .iter()
            .map(|c| u64::from(c.limit_secs().max(60)) + u64::from(c.after_secs))
            .sum::<u64>(),
    );
    let longest = cases.iter().map(Case::limit_secs).max().unwrap_or(0);
    let memory = cases.iter().map(|c| c.l2_memory_mib).max().unwrap_or(0);
    let booted = unix_now();
    let run = l1::run(
        &inputs.guest_dir.join("vmlinuz"),
        &image,
        memory,
        cases.len(),
        &log,
        timeout,
        Duration::from_secs(u64::from(longest)),
    )?;
    Ok(Outcome {
        results: with_host_times(console::split(&run.console), booted),
        log,
        timed_out: run.timed_out,
        timeout,
        elapsed: run.elapsed,
        stuck_on: Vec::new(),
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Dates each result by the host's clock: L2 starts its uptime about when L1 starts, so a case
/// that ended at uptime `t` ended near `booted + t`. The guests' RTC checks compare against it; a
/// run with retries lasts longer than their slack.
fn with_host_times(mut results: HashMap<String, CaseOutput>, booted: i64) -> HashMap<String, CaseOutput> {
    for out in results.values_mut() {
        out.host_time = booted + out.ended_at as i64;
    }
    results
}

/// How `cargo xtask nested-test` runs its cases.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Run each case QEMU can run again right after it, with QEMU as the L3 VMM.
    pub control: bool,
    /// Keep a CPU-bound job running on one host core beside the nested host.
    pub load: bool,
    /// Run each chosen case this many times (0 and 1: once), to measure how often it hangs.
    pub repeat: usize,
}

/// A case is chosen when its name contains one of the filter's comma-separated parts.
fn matches(name: &str, filter: &str) -> bool {
    filter.split(',').any(|part| name.contains(part))
}

/// `cargo xtask nested-test [FILTER[,FILTER...]] [--control] [--load] [--repeat N]`.
pub fn run(filter: Option<&str>, options: Options) -> Result<()> {
    let chosen: Vec<Case> = cases::linux_cases()
        .into_iter()
        .chain(cases::payload_cases())
        .filter(|c| filter.is_none_or(|f| matches(&c.name, f)))
        .collect();
    if chosen.is_empty() {
        bail!("no case matches {filter:?}");
    }
    let chosen = control::repeated(chosen, options.repeat);
    let cases = match options.control {
        true => control::with_controls(chosen.clone()),
        false => chosen.clone(),
    };
    let inputs = prepare(options.control || cases.iter().any(Case::uses_qemu))?;
    let load = options.load.then(control::Load::start);
    let outcome = boot_to_the_end(
        &cases,
        |_| TIMES_STUCK_TO_FAIL,
        |cases, tag| boot(&inputs, cases, tag),
    )?;
    drop(load);
    let failed = report(&chosen, &outcome.results);
    if options.control {
        report_controls(&chosen, &outcome.results);
    }
    for (name, why) in cases::payload_not_supported() {
        if filter.is_none_or(|f| matches(&name, f)) {
            eprintln!("[nested] not supported: {name}: {why}");
        }
    }
    for (name, why) in cases::linux_not_run() {
        if filter.is_none_or(|f| matches(&name, f)) {
            eprintln!("[nested] not run: {name}: {why}");
        }
    }
    eprintln!(
        "[nested] {} of {} cases passed in {:.0} s{}; L2 got stuck {} time(s){} (console: {})",
        chosen.len() - failed,
        chosen.len(),
        outcome.elapsed.as_secs_f64(),
        if options.load {
            " beside a CPU-bound job"
        } else {
            ""
        },
        outcome.stuck_on.len(),
        match outcome.stuck_on.is_empty() {
            true => String::new(),
            false => format!(
                ", during {}, and was booted again each time",
                outcome.stuck_on.join(", ")
            ),
        },
        outcome.log.display()
    );
    if outcome.timed_out {
        bail!(
            "the L2 host did not finish within {} s",
            outcome.timeout.as_secs()
        );
    }
    if failed > 0 {
        bail!("{failed} nested case(s) failed");
    }
    Ok(())
}

/// One line per QEMU control run, then the cases that failed on minnow but passed on QEMU: those
/// are minnow's bugs, not the test bed's.
fn report_controls(cases: &[Case], results: &HashMap<String, CaseOutput>) {
    let mut ours = Vec::new();
    for case in cases {
        let Some(control) = control::qemu_control(case) else {
            continue;
        };
        let passed = |c: &Case| {
            results
                .get(&c.name)
                .is_some_and(|out| cases::check(c, out, out.host_time).is_empty())
        };
        let (minnow_ok, qemu_ok) = (passed(case), passed(&control));
        eprintln!(
            "[nested] control {} {} (minnow: {})",
            if qemu_ok { "ok  " } else { "FAIL" },
            control.name,
            if minnow_ok { "ok" } else { "FAIL" }
        );
        if !qemu_ok {
            if let Some(out) = results.get(&control.name) {
                for b in cases::check(&control, out, out.host_time) {
                    eprintln!("    {b}");
                }
            }
        }
        if qemu_ok && !minnow_ok {
            ours.push(case.name.clone());
        }
    }
    eprintln!(
        "[nested] failed on minnow but not on QEMU in the same L2: {}",
        if ours.is_empty() {
            "none".into()
        } else {
            ours.join(", ")
        }
    );
}

/// How many times L2 may get stuck on one case before the case fails.
const TIMES_STUCK_TO_FAIL: usize = 4;
/// The same for a benchmark's case: it starts many more VMs than a test's, and L2 froze in
/// about one case in two of `cargo xtask bench snapshot`, with QEMU 7.2 and 10.0 as L1 alike.
pub const TIMES_STUCK_TO_FAIL_BENCH: usize = 8;

/// Boots L2 for `cases`; when L2 gets stuck (QEMU TCG's nested SVM has locked up on us, about once
/// in 60 Linux cases and in 4 of 10 Xen boots, with nothing on L2's console), shows the end of its console, boots a fresh L2 for
/// the cases that had not finished, and runs the stuck one again last. L2 runs cases in order, so
/// the stuck one is the first without a result. A case that L2 gets stuck on
/// `times_stuck_to_fail(case)` times is failed, with the rest still run. The outcome holds every
/// result.
fn boot_to_the_end(
    cases: &[Case],
    times_stuck_to_fail: impl Fn(&Case) -> usize,
    mut boot: impl FnMut(&[Case], &str) -> Result<Outcome>,
) -> Result<Outcome> {
    let mut outcome = boot(cases, "test")?;
    let mut ran: Vec<Case> = cases.to_vec();
    // Every lock-up, in order.
    let mut stuck_on: Vec<String> = Vec::new();
    while outcome.timed_out {
        let mut left: Vec<Case> = ran
            .into_iter()
            .filter(|c| !outcome.results.contains_key(&c.name))
            .collect();
        if left.is_empty() {
            break;
        }
        let stuck = left.remove(0);
        show_console_tail(&outcome.log);
        // Last, so a case that sticks again cannot hold up the others.
        if stuck_on.iter().filter(|n| **n == stuck.name).count() + 1 < times_stuck_to_fail(&stuck) {
            left.push(stuck.clone());
        }
        stuck_on.push(stuck.name);
        if left.is_empty() {
            break;
        }
        eprintln!(
            "[nested] WARNING: L2 got stuck during {}; booting a fresh L2 for the {} case(s) left (the stuck one last)",
            stuck_on[stuck_on.len() - 1],
            left.len()
        );
        let next = boot(&left, &format!("retry{}", stuck_on.len()))?;
        outcome.results.extend(next.results);
        outcome.elapsed += next.elapsed;
        outcome.timed_out = next.timed_out;
        outcome.log = next.log;
        ran = left;
    }
    outcome.stuck_on = stuck_on;
    Ok(outcome)
}

/// The last lines L2 printed, to see why it stopped.
fn show_console_tail(log: &std::path::Path) {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("[nested] the end of L2's console ({}):", log.display());
    for l in &lines[lines.len().saturating_sub(25)..] {
        eprintln!("    L2| {l}");
    }
}

/// Prints one line per case, and for a failure what was wrong with the tail of its serial log
/// and minnow's stderr. Returns the number of failures.
fn report(cases: &[Case], results: &std::collections::HashMap<String, console::CaseOutput>) -> usize {
    let mut failed = 0;
    for case in cases {
        let Some(out) = results.get(&case.name) else {
            failed += 1;
            eprintln!(
                "[nested] FAIL {}: never finished (see the console log)",
                case.name
            );
            continue;
        };
        let bad = cases::check(case, out, out.host_time);
        if bad.is_empty() {
            eprintln!("[nested] ok   {} ({:.2} s)", case.name, out.seconds);
            continue;
        }
        failed += 1;
        eprintln!(
            "[nested] FAIL {} (exit {}, {:.2} s):",
            case.name, out.rc, out.seconds
        );
        for b in &bad {
            eprintln!("    {b}");
        }
        eprintln!("    minnow {}", case.args.join(" "));
        for l in &out.tail {
            eprintln!("    serial| {l}");
        }
        for l in &out.stderr {
            eprintln!("    stderr| {l}");
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The case names each fake L2 boot was given.
    type Boots = std::rc::Rc<std::cell::RefCell<Vec<Vec<String>>>>;

    /// A fake L2 that locks up when it reaches a case named in `sticks` (once per entry).
    fn fake_l2(sticks: &[&str]) -> (impl FnMut(&[Case], &str) -> Result<Outcome>, Boots) {
        let mut sticks: Vec<String> = sticks.iter().map(|s| s.to_string()).collect();
        let boots = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let seen = boots.clone();
        let boot = move |cases: &[Case], _tag: &str| {
            seen.borrow_mut()
                .push(cases.iter().map(|c| c.name.clone()).collect());
            let mut results = HashMap::new();
            let mut timed_out = false;
            for c in cases {
                if let Some(i) = sticks.iter().position(|s| *s == c.name) {
                    sticks.remove(i);
                    timed_out = true;
                    break;
                }
                results.insert(c.name.clone(), CaseOutput::default());
            }
            Ok(Outcome {
                results,
                log: PathBuf::from("/nonexistent/console.log"),
                timed_out,
                timeout: Duration::from_secs(1),
                elapsed: Duration::from_secs(1),
                stuck_on: Vec::new(),
            })
        };
        (boot, boots)
    }

    #[test]
    fn each_result_is_dated_by_when_its_case_ended_not_when_the_suite_did() {
        let console = "NESTED-CASE-BEGIN a\nNESTED-CASE-END a rc=0 start=3.0 end=12.6\n\
                       NESTED-CASE-BEGIN b\nNESTED-CASE-END b rc=0 start=12.7 end=700.2\n";
        let results = with_host_times(console::split(console), 1_000_000);
        assert_eq!(results["a"].host_time, 1_000_012);
        assert_eq!(results["b"].host_time, 1_000_700);
    }

    fn names(n: usize) -> Vec<Case> {
        cases::payload_cases().into_iter().take(n).collect()
    }

    #[test]
    fn a_case_l2_sticks_on_once_runs_again_last_and_the_rest_still_run() {
        let cases = names(4);
        let (boot, boots) = fake_l2(&[&cases[1].name]);
        let outcome = boot_to_the_end(&cases, |_| TIMES_STUCK_TO_FAIL, boot).unwrap();
        assert!(!outcome.timed_out);
        assert_eq!(outcome.results.len(), 4);
        let boots = boots.borrow();
        assert_eq!(boots.len(), 2);
        let n = |i: usize| cases[i].name.clone();
        assert_eq!(boots[1], vec![n(2), n(3), n(1)]);
    }

    #[test]
    fn a_case_waiting_for_its_rerun_still_gets_it_when_another_case_sticks() {
        let cases = names(4);
        let (boot, boots) = fake_l2(&[&cases[1].name, &cases[2].name]);
        let outcome = boot_to_the_end(&cases, |_| TIMES_STUCK_TO_FAIL, boot).unwrap();
        assert!(!outcome.timed_out);
        assert_eq!(outcome.results.len(), 4);
        let n = |i: usize| cases[i].name.clone();
        assert_eq!(boots.borrow()[2], vec![n(3), n(1), n(2)]);
    }

    #[test]
    fn a_case_l2_sticks_on_every_time_fails_and_the_rest_still_run() {
        let cases = names(4);
        let stuck = vec![cases[1].name.as_str(); TIMES_STUCK_TO_FAIL];
        let once_less = fake_l2(&stuck[1..]).0;
        let outcome = boot_to_the_end(&cases, |_| TIMES_STUCK_TO_FAIL, once_less).unwrap();
        assert!(!outcome.timed_out, "one time less is not yet a failure");
        assert_eq!(outcome.results.len(), 4);
        let (boot, _) = fake_l2(&stuck);
        let outcome = boot_to_the_end(&cases, |_| TIMES_STUCK_TO_FAIL, boot).unwrap();
        assert!(outcome.timed_out);
        assert_eq!(outcome.results.len(), 3);
        assert!(!outcome.results.contains_key(&cases[1].name));
    }
}
