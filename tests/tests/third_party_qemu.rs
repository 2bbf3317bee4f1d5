//! Systems nobody here wrote, from Debian's packages (`cargo xtask third-party`), through
//! minnow.rom on QEMU (TCG), checked by what they print on the serial console:
//!
//! - memtest86+ 6.10, its x64 and ia32 builds (Linux boot protocol 2.12 images): on `pc` it must
//!   find all of RAM and test past the first 4 MiB window up to RAM's end, as under SeaBIOS. On
//!   `microvm` it finds all of RAM and starts test #0, but its screen stops updating there, under
//!   qboot and SeaBIOS too: memtest times itself with the ACPI PM timer or PIT channel 2 gated
//!   through port 0x61, and QEMU's microvm has neither.
//! - iPXE's `ipxe.lkrn` (protocol 2.07, no 32-bit entry: it runs only on BIOS services): refused
//!   in one line that says so.
use minnow_tests::{report, require_file, require_qemu, rom_path, third_party_file, QemuRun};
use std::time::Duration;

fn rom() -> std::path::PathBuf {
    require_qemu().unwrap_or_else(|e| panic!("{e}"));
    require_file(&rom_path(), "the Minnow ROM", "cargo xtask firmware").unwrap_or_else(|e| panic!("{e}"))
}

fn file(name: &str) -> std::path::PathBuf {
    third_party_file(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Boots memtest86+ with `bios` (None: QEMU's default firmware) until `marker` shows.
fn memtest(
    machine: &str,
    build: &str,
    bios: Option<&std::path::Path>,
    marker: &str,
) -> minnow_tests::RunOutput {
    let mut run = QemuRun::new(machine)
        .kernel(file(build))
        .append("console=ttyS0,115200")
        .memory("512M")
        .screen()
        .marker(marker)
        .timeout(Duration::from_secs(120));
    if let Some(bios) = bios {
        run = run.bios(bios);
    }
    run.run().unwrap_or_else(|e| panic!("{e}"))
}

fn has(out: &minnow_tests::RunOutput, text: &str) -> bool {
    out.lines.iter().any(|l| l.contains(text))
}

/// pc: all 511 MiB found (as SeaBIOS shows them), and test #0 reaches the window that ends at
/// the top of RAM. No `minnow:` error line.
fn memtest_pc(build: &str) {
    let rom = rom();
    let out = memtest("pc,accel=tcg", build, Some(&rom), "*[507MB of 511MB]");
    let tail = out.tail(30);
    assert!(
        out.marker_seen(),
        "{build}: test #0 never reached the end of RAM\n{tail}"
    );
    assert!(has(&out, "Memory : 511MB"), "{build}: RAM size\n{tail}");
    assert!(has(&out, "#0 [Address test"), "{tail}");
    assert!(!has(&out, "minnow:"), "{tail}");
    report(&format!(
        "[third-party] {build} on pc through minnow.rom: all of RAM, at the top after {:.1} s",
        out.marker_at.unwrap_or_default().as_secs_f64()
    ));
}

#[test]
fn memtest_x64_pc() {
    memtest_pc("memtest86+x64.bin");
}

#[test]
fn memtest_ia32_pc() {
    memtest_pc("memtest86+ia32.bin");
}

/// The reference: SeaBIOS (QEMU's default on pc) runs memtest's real-mode setup code; memtest
/// must see the same RAM there as through minnow.rom.
#[test]
fn memtest_sees_the_same_ram_under_seabios() {
    let out = memtest("pc,accel=tcg", "memtest86+x64.bin", None, "*Memory :");
    let line = out
        .lines
        .iter()
        .find(|l| l.contains("Memory :"))
        .cloned()
        .unwrap_or_default();
    assert!(
        line.contains("Memory : 511MB"),
        "SeaBIOS: {line}\n{}",
        out.tail(20)
    );
}

fn memtest_microvm(build: &str) {
    let rom = rom();
    let out = memtest(
        "microvm,x-option-roms=off,accel=tcg",
        build,
        Some(&rom),
        "*[4MB of 511MB]",
    );
    let tail = out.tail(30);
    assert!(
        out.marker_seen(),
        "{build}: test #0 never started on the first window\n{tail}"
    );
    assert!(has(&out, "Memory : 512MB"), "{build}: RAM size\n{tail}");
    assert!(has(&out, "#0 [Address test"), "{tail}");
    assert!(!has(&out, "minnow:"), "{tail}");
}

#[test]
fn memtest_x64_microvm() {
    memtest_microvm("memtest86+x64.bin");
}

#[test]
fn memtest_ia32_microvm() {
    memtest_microvm("memtest86+ia32.bin");
}

/// iPXE's ipxe.lkrn, by `-kernel` and by Minnow's fw_cfg file: one line naming why it cannot
/// boot (it was "does not fit in RAM", from ASCII read as init_size).
#[test]
fn ipxe_lkrn_is_refused_with_the_reason() {
    let rom = rom();
    let lkrn = file("ipxe.lkrn");
    let fw_cfg = format!("name=opt/org.minnow/kernel,file={}", lkrn.display());
    for (route, run) in [
        ("-kernel", QemuRun::new("pc,accel=tcg").kernel(&lkrn)),
        (
            "fw_cfg",
            QemuRun::new("microvm,x-option-roms=off,accel=tcg")
                .arg("-fw_cfg")
                .arg(&fw_cfg),
        ),
    ] {
        let out = run
            .bios(&rom)
            .memory("256M")
            .marker("minnow:*")
            .grace(Duration::from_millis(500))
            .timeout(Duration::from_secs(30))
            .run()
            .unwrap_or_else(|e| panic!("{e}"));
        let errors: Vec<&String> = out.lines.iter().filter(|l| l.starts_with("minnow:")).collect();
        assert_eq!(errors.len(), 1, "{route}: {}", out.tail(10));
        let want = "minnow: kernel is a boot protocol 2.07 image with no 32-bit entry (code32_start is 0)";
        assert!(errors[0].starts_with(want), "{route}: {}", errors[0]);
        assert!(errors[0].contains("SeaBIOS"), "{route}: {}", errors[0]);
    }
}
