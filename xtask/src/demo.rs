//! `cargo xtask demo`: the built-in defaults, end to end.
//!
//! By default Minnow's VMM boots the in-tree `hello.elf` guest twice on /dev/kvm, through its
//! built-in minnow.rom and then directly (`-bios none`); the guest greets and says what it was
//! handed; then the two boot timelines (`-boot-timeline`) are shown side by side.
//!
//! Real Linux instead:
//! * `--linux`: the nested route for machines like this project's, whose /dev/kvm cannot run a
//!   stock kernel: QEMU TCG runs a KVM host, in which minnow boots Debian's cloud kernel through
//!   minnow.rom and directly (see `cargo xtask nested-test`).
//! * `--linux-host`: minnow boots it right here, for a host with hardware virtualisation.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The two routes, as (label, extra minnow arguments).
const ROUTES: [(&str, &[&str]); 2] = [("minnow.rom", &[]), ("direct boot", &["-bios", "none"])];

pub fn run(linux: bool, linux_host: bool) -> Result<()> {
    if linux {
        return crate::nested::demo::run();
    }
    crate::firmware::build()?;
    let minnow = crate::minnow_bin::build()?;
    if linux_host {
        let guest = crate::guest::prepare()?;
        return linux_on_this_host(&minnow, &guest);
    }
    let payloads = crate::payloads::build()?;
    let out = crate::workspace_root().join("target/demo");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut timelines = Vec::new();
    for (label, extra) in ROUTES {
        let json = out.join(format!("{}.json", label.replace([' ', '.'], "-")));
        boot_hello(&minnow, &payloads.join("hello.elf"), label, extra, &json)?;
        let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
        timelines.push((label, parse_timeline(&text)?));
    }
    print_side_by_side(&timelines);
    Ok(())
}

fn boot_hello(minnow: &Path, hello: &Path, label: &str, extra: &[&str], json: &Path) -> Result<()> {
    let timeline = format!("-boot-timeline=json:{}", json.display());
    let args = [
        "-M",
        "microvm",
        "-m",
        "128M",
        "-smp",
        "2",
        "-nodefaults",
        "-device",
        "isa-debug-exit,iobase=0x501,iosize=2",
        "-append",
        "console=ttyS0 greetings from cargo xtask demo",
        timeline.as_str(),
    ];
    eprintln!(
        "\n[demo] {label}: {} {} {} -kernel {}",
        minnow.display(),
        extra.join(" "),
        args.join(" "),
        hello.display()
    );
    let status = Command::new(minnow)
        .args(extra)
        .args(args)
        .arg("-kernel")
        .arg(hello)
        .status()
        .with_context(|| format!("running {}", minnow.display()))?;
    // The guest's "every check passed" is isa-debug-exit value 0x10: status (0x10 << 1) | 1.
    if status.code() != Some(33) {
        bail!("minnow exited with {status} (33 means the guest's checks passed)");
    }
    Ok(())
}

/// One phase of a `-boot-timeline=json:` file: (event, ms since exec, exits during it).
type Row = (String, f64, u64);

fn parse_timeline(text: &str) -> Result<Vec<Row>> {
    let v: serde_json::Value = serde_json::from_str(text).context("parsing the boot timeline")?;
    let phases = v["phases"].as_array().context("no phases in the boot timeline")?;
    Ok(phases
        .iter()
        .map(|p| {
            let exits = p["exits"]
                .as_object()
                .map_or(0, |o| o.values().filter_map(|n| n.as_u64()).sum());
            (
                p["event"].as_str().unwrap_or("?").to_string(),
                p["at_ms"].as_f64().unwrap_or(f64::NAN),
                exits,
            )
        })
        .collect())
}

fn print_side_by_side(timelines: &[(&str, Vec<Row>)]) {
    // Every event either route reached, in the first route's order.
    let mut events: Vec<String> = Vec::new();
    for (_, rows) in timelines {
        for (e, _, _) in rows {
            if !events.contains(e) {
                events.push(e.clone());
            }
        }
    }
    println!("\nBoot timeline, ms since exec (VM exits in the phase ending there):\n");
    let mut header = format!("| {:<24}", "phase");
    for (label, _) in timelines {
        header.push_str(&format!(" | {label:>20}"));
    }
    println!("{header} |");
    println!("|{}", "---|".repeat(timelines.len() + 1));
    for e in &events {
        let mut line = format!("| {e:<24}");
        for (_, rows) in timelines {
            let cell = rows
                .iter()
                .find(|(name, _, _)| name == e)
                .map_or("-".to_string(), |(_, at, exits)| format!("{at:9.3} ({exits:>4})"));
            line.push_str(&format!(" | {cell:>20}"));
        }
        println!("{line} |");
    }
    println!(
        "\nThis machine's /dev/kvm may be software-emulated, which makes guest time here much longer \
         than on hardware; compare the columns, not the absolute numbers."
    );
}

/// Debian's cloud kernel with the test initramfs, booted by minnow on this host's /dev/kvm.
fn linux_on_this_host(minnow: &Path, guest: &Path) -> Result<()> {
    let kernel: PathBuf = guest.join("vmlinuz");
    let initrd: PathBuf = guest.join("initramfs.cpio");
    eprintln!(
        "[demo] {} -m 512M -smp 2 -kernel {} -initrd {} -append 'console=ttyS0' -boot-timeline",
        minnow.display(),
        kernel.display(),
        initrd.display()
    );
    let status = Command::new(minnow)
        .args([
            "-M",
            "microvm",
            "-m",
            "512M",
            "-smp",
            "2",
            "-nodefaults",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0", "-boot-timeline"])
        .status()
        .with_context(|| format!("running {}", minnow.display()))?;
    if !status.success() {
        bail!("minnow exited with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_parse_with_their_exit_totals() {
        let text = r#"{"phases": [
            {"event": "exec", "at_ms": 0.000, "delta_ms": 0.000, "exits": {}},
            {"event": "boot done", "at_ms": 12.5, "delta_ms": 12.5, "exits": {"pio_serial": 3, "hlt": 2}}
        ]}"#;
        let rows = parse_timeline(text).unwrap();
        assert_eq!(rows[1], ("boot done".to_string(), 12.5, 5));
        assert!(parse_timeline("{}").is_err());
    }
}
