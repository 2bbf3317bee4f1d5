//! `cargo xtask bench net`: virtio-net throughput inside the nested KVM host: the guest fetches
//! an 8 MiB file from L2's HTTP server (busybox wget and httpd) over a TAP, for minnow with and
//! without its seccomp filters and for QEMU microvm, and through passt, for minnow with and
//! without (`-netdev user`) and for QEMU (`-netdev stream` to a passt L2 started, QEMU 7.2 having
//! no passt of its own), all interleaved. Times are the guest's /proc/uptime (10 ms). Every VMM
//! runs as L2's unprivileged user; the TAP is made for it (`tap-add`).
use super::bench::median;
use super::bench_disk::write_results;
use super::cases::{linux_case, paths, qemu_linux_case, set_append, Case, Expect, LinuxImage};
use super::console::CaseOutput;
use anyhow::{bail, Result};
use minnow_tests::payload_check::Loader;

const ROUNDS: usize = 3;
/// The file's size (L2's script makes it; see script.rs).
pub const FILE_MIB: f64 = 8.0;
/// passt in L2 runs under TCG too: a slow path, given time.
const LIMIT_SECS: u32 = 180;
/// The socket of the passt L2 starts for QEMU's row.
const PASST_SOCKET: &str = "/tmp/passt-bench.sock";

#[derive(Clone, Copy, PartialEq)]
enum Vmm {
    Minnow,
    MinnowUnfiltered,
    Qemu,
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Tap,
    /// `-netdev user` (minnow starts passt), or for QEMU `-netdev stream` to a passt L2 starts.
    Passt,
}

struct Config {
    label: &'static str,
    vmm: Vmm,
    link: Link,
}

const CONFIGS: [Config; 6] = [
    Config {
        label: "minnow, TAP",
        vmm: Vmm::Minnow,
        link: Link::Tap,
    },
    Config {
        label: "minnow -sandbox off, TAP",
        vmm: Vmm::MinnowUnfiltered,
        link: Link::Tap,
    },
    Config {
        label: "QEMU microvm, TAP",
        vmm: Vmm::Qemu,
        link: Link::Tap,
    },
    Config {
        label: "minnow, -netdev user (passt)",
        vmm: Vmm::Minnow,
        link: Link::Passt,
    },
    Config {
        label: "minnow -sandbox off, -netdev user (passt)",
        vmm: Vmm::MinnowUnfiltered,
        link: Link::Passt,
    },
    Config {
        label: "QEMU microvm, -netdev stream to passt",
        vmm: Vmm::Qemu,
        link: Link::Passt,
    },
];

fn append(link: Link) -> String {
    let how = match link {
        Link::Tap => "tap",
        Link::Passt => "dhcp",
    };
    format!("console=ttyS0 loglevel=5 panic=-1 minnow.netbench={how}")
}

fn case(c: &Config, name: String) -> Case {
    let append = append(c.link);
    let mut case = match c.vmm {
        Vmm::Minnow | Vmm::MinnowUnfiltered => {
            linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 1)
        }
        Vmm::Qemu => qemu_linux_case("microvm,accel=kvm,rtc=on", &append),
    };
    set_append(&mut case.args, &append);
    let netdev = match (c.link, c.vmm) {
        (Link::Tap, _) => "tap,id=n0,ifname=tap0,script=no,downscript=no".to_string(),
        (Link::Passt, Vmm::Qemu) => {
            format!("stream,id=n0,server=off,addr.type=unix,addr.path={PASST_SOCKET}")
        }
        (Link::Passt, _) => "user,id=n0".to_string(),
    };
    case.args
        .extend(["-netdev", &netdev, "-device", "virtio-net-device,netdev=n0"].map(String::from));
    if c.vmm == Vmm::MinnowUnfiltered {
        case.args.extend(["-sandbox".to_string(), "off".to_string()]);
    }
    case.setup = match (c.link, c.vmm) {
        (Link::Tap, _) => vec![
            format!("{} tap0 {}", paths::TAP_ADD, super::script::L2_UID),
            "ifconfig tap0 10.0.2.1 netmask 255.255.255.0 up".into(),
        ],
        (Link::Passt, Vmm::Qemu) => super::cases::passt_for_stream(PASST_SOCKET),
        (Link::Passt, _) => Vec::new(),
    };
    case.hang_secs = LIMIT_SECS;
    case.name = name;
    case.expect = Expect::Timing;
    case
}

/// MB/s from the guest's timestamps.
fn rate(out: &CaseOutput) -> Option<f64> {
    let line = out
        .serial
        .iter()
        .find_map(|l| l.strip_prefix("MINNOW-NETBENCH "))?;
    let t: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.split_once('=').and_then(|(_, v)| v.parse().ok()))
        .collect();
    let [t0, t1, bytes] = t[..] else {
        return None;
    };
    // The whole file, or the run failed.
    if bytes < FILE_MIB * 1_048_576.0 {
        return None;
    }
    Some(bytes / 1e6 / (t1 - t0).max(0.01))
}

pub fn run() -> Result<()> {
    let mut cases = Vec::new();
    for round in 0..ROUNDS {
        for (i, c) in CONFIGS.iter().enumerate() {
            cases.push(case(c, format!("net-{i}-round{round}")));
        }
    }
    let inputs = super::prepare(true)?;
    let outcome = super::boot(&inputs, &cases, "bench-net")?;
    if outcome.timed_out {
        bail!(
            "the L2 host did not finish within {} s",
            outcome.timeout.as_secs()
        );
    }
    let mut table = format!(
        "\nvirtio-net inside the nested KVM host ({ROUNDS} runs each, interleaved; the guest fetches \
         {FILE_MIB} MiB from L2's busybox httpd with busybox wget; every VMM as L2's unprivileged user):\n\n\
         | configuration | MB/s (median) | runs (MB/s) | vs minnow, TAP |\n|---|---:|---|---:|\n"
    );
    let mut json = Vec::new();
    let (mut reference, mut failures) = (f64::NAN, 0);
    for (i, c) in CONFIGS.iter().enumerate() {
        let runs: Vec<f64> = (0..ROUNDS)
            .filter_map(|r| outcome.results.get(&format!("net-{i}-round{r}")))
            .filter_map(rate)
            .collect();
        failures += ROUNDS - runs.len();
        let m = median(&mut runs.clone());
        if i == 0 {
            reference = m;
        }
        let list: Vec<String> = runs.iter().map(|r| format!("{r:.1}")).collect();
        table.push_str(&format!(
            "| {} | {m:.1} | {} | {:.2}x |\n",
            c.label,
            list.join(", "),
            m / reference
        ));
        json.push(serde_json::json!({ "label": c.label, "mb_s": runs }));
    }
    print!("{table}");
    write_results(
        "net",
        &table,
        serde_json::json!({
            "note": "virtio-net in the nested KVM host of cargo xtask nested-test; guest busybox wget of 32 MiB from L2's httpd",
            "configurations": json,
        }),
    )?;
    if failures > 0 {
        bail!(
            "{failures} run(s) gave no whole MINNOW-NETBENCH line (see {})",
            outcome.log.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_needs_the_whole_file() {
        let out = |line: &str| CaseOutput {
            serial: vec![line.to_string()],
            ..CaseOutput::default()
        };
        let r = rate(&out("MINNOW-NETBENCH t0=1.00 t1=3.00 bytes=8388608")).unwrap();
        assert!((r - 8.388608 / 2.0).abs() < 1e-9);
        assert!(rate(&out("MINNOW-NETBENCH t0=1.00 t1=3.00 bytes=1000")).is_none());
        assert!(rate(&CaseOutput::default()).is_none());
    }
}
