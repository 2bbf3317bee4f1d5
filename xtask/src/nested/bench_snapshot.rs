//! The nested half of `cargo xtask bench snapshot`: inside the nested KVM host, on real KVM,
//! Debian's cloud kernel with the test initramfs in 256 MiB and one vCPU, on minnow (through
//! minnow.rom) and on QEMU 7.2's microvm with the same kernel, initramfs and command line.
//!
//! guest-tools' `snapshot-bench` runs it in L2, one case per variant (a case L2 gets stuck on,
//! the test bed's TCG-SVM freeze, runs again in a fresh L2, as in the nested suite): it boots
//! the source, has its
//! shell fill [`FILL_MIB`] of a tmpfs with random bytes (so the state holds about 240 MiB of
//! touched memory), saves it, then times the restores and the clones; a clone has answered when
//! its shell echoes a line typed into its console. L2 relays the results on its console
//! (`MINNOW-SNAPBENCH` lines), rendered here like the host's half.
use super::cases::{linux_case, paths, qemu_linux_args, set_append, Case, Expect, LinuxImage};
use crate::bench::snapshot::{render, write, Results, CLONES, RUNS};
use anyhow::{bail, Result};
use minnow_guest_tools::snapshot_bench::variants;
use minnow_tests::payload_check::Loader;
use std::path::Path;

/// Saves of each kind: each is a fresh boot of the source, about 20 s in L2.
const SAVES: usize = 2;
/// What the guest's shell writes into a tmpfs before the save.
const FILL_MIB: usize = 170;
/// Where L2 keeps the states, sockets and the clones' stderr (its tmpfs).
const DIR: &str = "/tmp/snapbench";
/// The guest's command line on both VMMs: a shell on COM1 (`minnow.monitor`).
const APPEND: &str = "console=ttyS0 loglevel=5 panic=-1 minnow.monitor=1";
/// L2's RAM for this run: QEMU's 16 clones hold about 230 MiB each, and three states sit in
/// L2's tmpfs.
const L2_MEMORY_MIB: u32 = 8192;
/// One variant's limit in L2, seconds: QEMU's restores took 15 to 40 s each in L2 (each reads
/// the whole state through a pipe), and a variant has 20 of them and 16 clones.
const LIMIT_SECS: u32 = 2400;

fn minnow_args() -> Vec<String> {
    let mut args = linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 1).args;
    set_append(&mut args, APPEND);
    args
}

fn case(variant: &str) -> Case {
    let mut args = vec![variant.to_string()];
    args.extend([SAVES, RUNS, CLONES, FILL_MIB].iter().map(ToString::to_string));
    args.extend([DIR.to_string(), "--".into(), paths::MINNOW.into()]);
    args.extend(minnow_args());
    args.extend(["--".into(), paths::QEMU.into()]);
    args.extend(qemu_linux_args(
        "microvm,accel=kvm,rtc=on",
        paths::VMLINUZ,
        APPEND,
    ));
    let mut case = Case::new(
        format!("bench-snapshot-{variant}"),
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
    // One case per variant snapshot-bench knows.
    let cases: Vec<Case> = variants(Path::new("")).iter().map(|v| case(v.id)).collect();
    let outcome = super::boot_to_the_end(&cases, |c, tag| {
        super::boot(&inputs, c, &format!("bench-snapshot-{tag}"))
    })?;
    let outputs: Vec<_> = cases
        .iter()
        .filter_map(|c| outcome.results.get(&c.name))
        .collect();
    let results = Results::from_lines(outputs.iter().flat_map(|o| o.serial.iter().map(String::as_str)));
    if let Some(failed) = outputs
        .iter()
        .flat_map(|o| o.serial.iter().chain(&o.stderr))
        .find(|l| l.contains("MINNOW-SNAPBENCH failed") || l.contains("snapshot-bench:"))
    {
        bail!("{} (see {})", failed.trim(), outcome.log.display());
    }
    if !results.is_complete() {
        bail!(
            "the nested snapshot benchmark did not finish (see {})",
            outcome.log.display()
        );
    }
    eprintln!(
        "[nested] L2 got stuck {} time(s) and was booted again: {:?}",
        outcome.stuck_on.len(),
        outcome.stuck_on
    );
    let table = format!(
        "\nSnapshots inside the nested KVM host (real KVM under QEMU TCG): Debian's cloud kernel \
         and the test initramfs in 256 MiB, one vCPU, its shell having filled {FILL_MIB} MiB of a \
         tmpfs; saved while running ({SAVES} saves each); restore: {RUNS} runs each, \
         ms from exec in L2, p50 / p90 (one variant after the other, each in its own L2 case):\n\n{}",
        render(&results, "the guest's shell answering")
    );
    print!("{table}");
    write(
        "snapshot-nested",
        &table,
        &results,
        "Snapshot restore in the nested KVM host (Debian kernel)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_vmms_boot_the_same_kernel_with_the_same_command_line() {
        let case = case("qemu-exec");
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
            super::super::cases::assert_script_parses(case(v.id));
        }
    }
}
