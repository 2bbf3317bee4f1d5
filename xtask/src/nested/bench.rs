//! `cargo xtask bench nested`: real Linux boot times on real KVM, inside the nested host, for
//! every way Minnow boots it and for QEMU's microvm on the same L2, interleaved.
//!
//! Each run is one VMM process in L2, from its start to its exit after the guest's `/init`
//! powers off (L2's clock, 10 ms resolution). The guest's own uptime at `/init` splits that into
//! the kernel's boot and everything else (VMM start, firmware, power-off).
use super::cases::{linux_case, paths, Case, Expect, LinuxImage, RTC_STALL};
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
    case.expect = Expect::Timing;
    Config { label, case }
}

/// QEMU's microvm with the same kernel, initramfs and command line; `extra` goes after `-M`'s
/// machine name.
fn qemu(label: &'static str, machine: &str) -> Config {
    let append = "console=ttyS0 loglevel=5 panic=-1";
    let args = [
        "-M",
        machine,
        "-cpu",
        "host",
        "-m",
        "256M",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        paths::VMLINUZ,
        "-initrd",
        paths::INITRAMFS,
        "-append",
        append,
    ];
    Config {
        label,
        case: Case {
            name: String::new(),
            program: paths::QEMU,
            args: args.map(String::from).to_vec(),
            expect: Expect::Timing,
        },
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
    stalls: usize,
    failures: usize,
}

fn median(v: &mut [f64]) -> f64 {
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
            cases.push(Case {
                name: format!("bench-{i}-round{round}"),
                program: c.case.program,
                args: c.case.args.clone(),
                expect: Expect::Timing,
            });
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
                    row.stalls += usize::from(o.serial.iter().any(|l| l.contains(RTC_STALL)));
                }
                None => row.failures += 1,
            }
        }
    }
    print_table(&mut rows);
    if rows.iter().any(|r| r.failures > 0) {
        bail!(
            "some runs did not reach the guest's init (see {})",
            outcome.log.display()
        );
    }
    Ok(())
}

fn print_table(rows: &mut [Row]) {
    println!(
        "\nLinux ({} runs each, interleaved) from VMM start to exit after /init powers off, inside the \
         nested KVM host; -m 256M -smp 1, console=ttyS0 loglevel=5:\n",
        ROUNDS
    );
    println!("| configuration | wall median (min-max), s | kernel to /init, s | rest, s | vs minnow.rom | rtc_cmos stall |");
    println!("|---|---:|---:|---:|---:|---|");
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
        println!(
            "| {}{failed} | {wall:.2} ({min:.2}-{max:.2}) | {up:.2} | {:.2} | {:.2}x | {stall} |",
            r.label,
            wall - up,
            wall / reference
        );
    }
}
