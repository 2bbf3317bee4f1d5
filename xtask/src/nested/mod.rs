//! `cargo xtask nested-test`: real Linux on Minnow's VMM, on real KVM.
//!
//! This machine's /dev/kvm cannot run a stock kernel, but QEMU TCG with `-cpu max` emulates AMD
//! SVM with nested paging. So: QEMU (L1) boots Debian's cloud kernel (L2) with kvm-amd loaded
//! from its own package, and an initramfs carrying a static `minnow`, qboot.rom, the L3 kernel
//! and initramfs, and the boot conformance payloads. L2's `/init` runs every case with `minnow`
//! on its /dev/kvm and relays what each guest printed; this side checks it.
//!
//! Outputs land in target/nested/: `l2.cpio`, `init.sh`, and `console.log` (L2's console with
//! host timestamps).
mod cases;
mod console;
mod l1;
mod script;

use crate::guest::{self, cpio::Newc};
use anyhow::{bail, Context, Result};
use cases::{paths, Case};
use minnow_tests::payload_check::{initrd_bytes, Payload};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the L2 image is built from.
struct Inputs {
    guest_dir: PathBuf,
    modules: Vec<PathBuf>,
    minnow: PathBuf,
    payload_dir: PathBuf,
}

pub fn run(filter: Option<&str>) -> Result<()> {
    let cases: Vec<Case> = cases::linux_cases()
        .into_iter()
        .chain(cases::payload_cases())
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    if cases.is_empty() {
        bail!("no case matches {filter:?}");
    }
    crate::firmware::build()?;
    let guest_dir = guest::prepare()?;
    let modules = guest::modules::prepare(&guest_dir, guest::modules::KVM_HOST)?;
    let payload_dir = crate::payloads::build()?;
    let minnow = crate::minnow_bin::build_static()?;
    let inputs = Inputs {
        guest_dir,
        modules,
        minnow,
        payload_dir,
    };

    let out = crate::workspace_root().join("target/nested");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let init = script::l2_init(guest::modules::KVM_HOST, &cases);
    fs::write(out.join("init.sh"), &init)?;
    let image = out.join("l2.cpio");
    let archive = l2_image(&inputs, &init)?;
    fs::write(&image, &archive).with_context(|| format!("writing {}", image.display()))?;
    eprintln!(
        "[nested] L2 initramfs: {} ({:.1} MiB), {} cases",
        image.display(),
        archive.len() as f64 / f64::from(1 << 20),
        cases.len()
    );

    let log = out.join("console.log");
    // About 15 s per Linux boot inside L2, a few for a payload; generous, but finite.
    let timeout = Duration::from_secs(180 + 60 * cases.len() as u64);
    let run = l1::run(
        &inputs.guest_dir.join("vmlinuz"),
        &image,
        cases.len(),
        &log,
        timeout,
    )?;
    let results = console::split(&run.console);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let failed = report(&cases, &results, now);
    eprintln!(
        "[nested] {} of {} cases passed in {:.0} s (console: {})",
        cases.len() - failed,
        cases.len(),
        run.elapsed.as_secs_f64(),
        log.display()
    );
    if run.timed_out {
        bail!("the L2 host did not finish within {} s", timeout.as_secs());
    }
    if failed > 0 {
        bail!("{failed} nested case(s) failed");
    }
    Ok(())
}

/// Prints one line per case, and for a failure what was wrong with the tail of its serial log
/// and minnow's stderr. Returns the number of failures.
fn report(
    cases: &[Case],
    results: &std::collections::HashMap<String, console::CaseOutput>,
    now: i64,
) -> usize {
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
        let bad = cases::check(case, out, now);
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

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The L2 initramfs: busybox, the KVM modules, minnow, qboot.rom, the L3 kernel and initramfs,
/// the payloads and their initrd, and the generated `/init`.
fn l2_image(inputs: &Inputs, init: &str) -> Result<Vec<u8>> {
    let mut c = Newc::new();
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "lib",
        "lib/modules",
        "fw",
        "linux",
        "payload",
    ] {
        c.dir(d, 0o755)?;
    }
    c.char_dev("dev/console", 0o600, 5, 1)?;
    c.file("bin/busybox", 0o755, &read(Path::new("/bin/busybox"))?)?;
    c.file("bin/minnow", 0o755, &read(&inputs.minnow)?)?;
    for m in &inputs.modules {
        let name = m.file_name().context("module path")?.to_string_lossy();
        c.file(&format!("lib/modules/{name}"), 0o644, &read(m)?)?;
    }
    let qboot = Path::new(minnow_tests::QBOOT_ROM);
    let qboot_bytes = read(qboot).context("qboot.rom comes with qemu-system-data")?;
    c.file(paths::QBOOT_ROM.trim_start_matches('/'), 0o644, &qboot_bytes)?;
    for (dest, src) in [
        (paths::VMLINUZ, "vmlinuz"),
        (paths::VMLINUX, "vmlinux"),
        (paths::INITRAMFS, "initramfs.cpio"),
    ] {
        c.file(
            dest.trim_start_matches('/'),
            0o644,
            &read(&inputs.guest_dir.join(src))?,
        )?;
    }
    for p in Payload::ALL {
        let dest = format!("{}/{}", paths::PAYLOAD_DIR, p.file());
        c.file(
            dest.trim_start_matches('/'),
            0o755,
            &read(&inputs.payload_dir.join(p.file()))?,
        )?;
    }
    c.file(
        paths::PAYLOAD_INITRD.trim_start_matches('/'),
        0o644,
        &initrd_bytes(),
    )?;
    c.file("init", 0o755, init.as_bytes())?;
    Ok(c.finish())
}
