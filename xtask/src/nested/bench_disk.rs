//! `cargo xtask bench disk`: virtio-blk throughput inside the nested KVM host, minnow against
//! QEMU microvm on the same disk images, raw and qcow2, and minnow with its seccomp filters
//! against minnow without (`-sandbox off`), all interleaved.
//!
//! The guest (Debian's cloud kernel, the test initramfs, `minnow.diskbench=1`) times busybox dd
//! with O_DIRECT on /dev/vda: 64 MiB written in 1 MiB blocks (then fsync), read back in 1 MiB
//! blocks, then 4 MiB as 4 KiB reads and 4 KiB writes one at a time (queue depth 1: IOPS as a
//! single-threaded guest sees them). Times are the guest's /proc/uptime (10 ms resolution). The
//! images live in L2's tmpfs, so the host side is memory: this measures the VMMs' virtio paths,
//! not a disk.
use super::bench::median;
use super::cases::{linux_case, paths, qemu_linux_case, set_append, Case, Expect, LinuxImage};
use super::console::CaseOutput;
use anyhow::{bail, Result};
use minnow_tests::payload_check::Loader;

const ROUNDS: usize = 5;
/// Where each run's fresh image is, in L2.
const DISK: &str = "/tmp/bench-disk.img";
/// Sizes the guest's dd runs use (see xtask/src/guest_init.sh).
const SEQ_MIB: f64 = 64.0;
const SMALL_IOS: f64 = 1024.0;

#[derive(Clone, Copy, PartialEq)]
enum Vmm {
    Minnow,
    /// minnow with `-sandbox off`: what the filters cost.
    MinnowUnfiltered,
    Qemu,
}

struct Config {
    label: &'static str,
    vmm: Vmm,
    format: &'static str,
}

const CONFIGS: [Config; 6] = [
    Config {
        label: "minnow, raw",
        vmm: Vmm::Minnow,
        format: "raw",
    },
    Config {
        label: "minnow -sandbox off, raw",
        vmm: Vmm::MinnowUnfiltered,
        format: "raw",
    },
    Config {
        label: "QEMU microvm, raw",
        vmm: Vmm::Qemu,
        format: "raw",
    },
    Config {
        label: "minnow, qcow2",
        vmm: Vmm::Minnow,
        format: "qcow2",
    },
    Config {
        label: "minnow -sandbox off, qcow2",
        vmm: Vmm::MinnowUnfiltered,
        format: "qcow2",
    },
    Config {
        label: "QEMU microvm, qcow2",
        vmm: Vmm::Qemu,
        format: "qcow2",
    },
];

/// The guest's command line; the same for both VMMs.
const APPEND: &str = "console=ttyS0 loglevel=5 panic=-1 minnow.diskbench=1";

fn case(c: &Config, name: String) -> Case {
    let drive = [
        "-drive".to_string(),
        format!("file={DISK},format={},if=none,id=d0", c.format),
        "-device".to_string(),
        "virtio-blk-device,drive=d0".to_string(),
    ];
    // A fresh 80 MiB image for every run, made by QEMU's qemu-img.
    let setup = vec![format!(
        "rm -f {DISK} && {} create -q -f {} {DISK} 80M",
        paths::QEMU_IMG,
        c.format
    )];
    let mut case = match c.vmm {
        Vmm::Minnow | Vmm::MinnowUnfiltered => {
            linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 1)
        }
        Vmm::Qemu => qemu_linux_case("microvm,accel=kvm,rtc=on", APPEND),
    };
    // The same command line for both (minnow's linux_case names its case there; not here).
    set_append(&mut case.args, APPEND);
    case.args.extend(drive);
    if c.vmm == Vmm::MinnowUnfiltered {
        case.args.extend(["-sandbox".to_string(), "off".to_string()]);
    }
    case.name = name;
    case.setup = setup;
    case.expect = Expect::Timing;
    case
}

/// (seq write MB/s, seq read MB/s, 4k read IOPS, 4k write IOPS) from the guest's timestamps.
fn rates(out: &CaseOutput) -> Option<[f64; 4]> {
    let line = out
        .serial
        .iter()
        .find_map(|l| l.strip_prefix("MINNOW-DISKBENCH "))?;
    let t: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.split_once('=').and_then(|(_, v)| v.parse().ok()))
        .collect();
    let [t0, t1, t2, t3, t4] = t[..] else {
        return None;
    };
    let mb = SEQ_MIB * 1.048_576;
    // 10 ms resolution: a zero-length step is "faster than measurable", shown as at 10 ms.
    let d = |a: f64, b: f64| (b - a).max(0.01);
    Some([
        mb / d(t0, t1),
        mb / d(t1, t2),
        SMALL_IOS / d(t2, t3),
        SMALL_IOS / d(t3, t4),
    ])
}

pub fn run() -> Result<()> {
    let mut cases = Vec::new();
    for round in 0..ROUNDS {
        for (i, c) in CONFIGS.iter().enumerate() {
            cases.push(case(c, format!("disk-{i}-round{round}")));
        }
    }
    let inputs = super::prepare(true)?;
    let outcome = super::boot(&inputs, &cases, "bench-disk")?;
    if outcome.timed_out {
        bail!(
            "the L2 host did not finish within {} s",
            outcome.timeout.as_secs()
        );
    }
    let mut table = format!(
        "\nvirtio-blk inside the nested KVM host ({ROUNDS} runs each, interleaved; guest: Debian's cloud \
         kernel, busybox dd with O_DIRECT on /dev/vda; images in L2's tmpfs):\n\n\
         | configuration | seq write 1 MiB, MB/s | seq read 1 MiB, MB/s | 4 KiB read IOPS (QD1) | 4 KiB write IOPS (QD1) | vs minnow raw (read) |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    let mut json = Vec::new();
    let mut reference = f64::NAN;
    let mut failures = 0;
    for (i, c) in CONFIGS.iter().enumerate() {
        let runs: Vec<[f64; 4]> = (0..ROUNDS)
            .filter_map(|r| outcome.results.get(&format!("disk-{i}-round{r}")))
            .filter_map(rates)
            .collect();
        failures += ROUNDS - runs.len();
        let m: Vec<f64> = (0..4)
            .map(|k| median(&mut runs.iter().map(|r| r[k]).collect::<Vec<_>>()))
            .collect();
        if i == 0 {
            reference = m[1];
        }
        table.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x |\n",
            c.label,
            m[0],
            m[1],
            m[2],
            m[3],
            m[1] / reference
        ));
        json.push(serde_json::json!({
            "label": c.label,
            "runs": runs.iter().map(|r| serde_json::json!({
                "seq_write_mb_s": r[0], "seq_read_mb_s": r[1], "read_4k_iops": r[2], "write_4k_iops": r[3],
            })).collect::<Vec<_>>(),
        }));
    }
    print!("{table}");
    write_results(
        "disk",
        &table,
        serde_json::json!({
            "note": "virtio-blk in the nested KVM host of cargo xtask nested-test; guest dd with O_DIRECT, images in tmpfs",
            "configurations": json,
        }),
    )?;
    if failures > 0 {
        bail!(
            "{failures} run(s) gave no MINNOW-DISKBENCH line (see {})",
            outcome.log.display()
        );
    }
    Ok(())
}

/// Writes a nested benchmark's table and data to bench/results/<date>-<host>-<what>.{md,json}.
pub fn write_results(what: &str, table: &str, data: serde_json::Value) -> Result<()> {
    let out = crate::workspace_root().join("bench/results");
    std::fs::create_dir_all(&out)?;
    let stem = format!("{}-{what}", crate::bench::all::results_stem()?);
    std::fs::write(out.join(format!("{stem}.md")), table)?;
    std::fs::write(
        out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&data)?,
    )?;
    eprintln!("[nested] wrote bench/results/{stem}.{{md,json}}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_guest_timestamps() {
        let out = CaseOutput {
            serial: vec!["MINNOW-DISKBENCH t0=1.00 t1=1.50 t2=1.75 t3=2.75 t4=3.75".into()],
            ..CaseOutput::default()
        };
        let r = rates(&out).unwrap();
        assert!((r[0] - 64.0 * 1.048_576 / 0.5).abs() < 1e-9);
        assert!((r[1] - 64.0 * 1.048_576 / 0.25).abs() < 1e-9);
        assert!((r[2] - 1024.0).abs() < 1e-9);
        assert!((r[3] - 1024.0).abs() < 1e-9);
        assert!(rates(&CaseOutput::default()).is_none());
    }

    #[test]
    fn both_vmms_get_the_same_guest_command_line_and_drive() {
        for (i, c) in CONFIGS.iter().enumerate() {
            let case = case(c, format!("disk-{i}"));
            let at = case.args.iter().position(|a| a == "-append").unwrap();
            assert_eq!(case.args[at + 1], APPEND);
            assert_eq!(case.args.iter().filter(|a| *a == "-append").count(), 1);
            assert!(case
                .args
                .contains(&format!("file={DISK},format={},if=none,id=d0", c.format)));
        }
    }
}
