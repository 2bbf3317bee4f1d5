//! minnow.rom in the configurations the main matrices do not cover: fw_cfg without DMA (the
//! port I/O fallback; QEMU offers DMA unless told otherwise), pc/q35 under KVM, a PVH kernel in
//! an ELF32 container, and a test-exit device at 0xf4. Each boots the
//! PVH conformance payload with an initrd and checks its report.
use minnow_tests::payload_report::{fnv1a32, parse, PREFIX};
use minnow_tests::{payload_dir, report, require_file, require_kvm, require_qemu, rom_path, QemuRun};
use std::path::PathBuf;
use std::time::Duration;

fn boot(name: &str, machine: &str, extra: &[&str]) {
    boot_kernel(name, machine, "pvh.elf", extra);
}

fn boot_kernel(name: &str, machine: &str, kernel: &str, extra: &[&str]) {
    require_qemu().unwrap_or_else(|e| panic!("{e}"));
    let rom =
        require_file(&rom_path(), "the Minnow ROM", "cargo xtask firmware").unwrap_or_else(|e| panic!("{e}"));
    let kernel = require_file(
        &payload_dir().join(kernel),
        "the PVH payload",
        "cargo xtask payloads",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bytes: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let initrd = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("variants-{name}-{}.initrd", std::process::id()));
    std::fs::write(&initrd, &bytes).unwrap_or_else(|e| panic!("writing {}: {e}", initrd.display()));
    let mut run = QemuRun::new(machine)
        .bios(&rom)
        .kernel(&kernel)
        .initrd(&initrd)
        .append(&format!("minnow.test={name}"))
        .memory("256M")
        .arg("-device")
        .arg("isa-debug-exit,iobase=0x501,iosize=2")
        .marker(&format!("{PREFIX}*"))
        .grace(Duration::from_secs(5))
        .timeout(Duration::from_secs(60));
    for a in extra {
        run = run.arg(a);
    }
    let out = run.run().unwrap_or_else(|e| panic!("{name}: {e}"));
    let _ = std::fs::remove_file(&initrd);
    let line = out
        .lines
        .iter()
        .find(|l| l.starts_with(PREFIX))
        .cloned()
        .unwrap_or_default();
    let f = parse(&line);
    let ok = |k: &str, v: &str| f.get(k).map(String::as_str) == Some(v);
    assert!(ok("result", "pass"), "{name}: {line}\n{}", out.tail(20));
    assert!(ok("cmdline", &format!("minnow.test={name}")), "{name}: {line}");
    assert!(
        ok("initrd_sum", &format!("{:08x}", fnv1a32(&bytes))),
        "{name}: {line}"
    );
    assert_eq!(out.exit_code(), Some(33), "{name}: {}", out.tail(20));
    report(&format!(
        "[variant] {name}: pass in {:.2} s",
        out.elapsed.as_secs_f64()
    ));
}

#[test]
fn fw_cfg_without_dma_microvm() {
    boot(
        "nodma_microvm",
        "microvm,x-option-roms=off,accel=tcg",
        &["-global", "fw_cfg_io.dma_enabled=off"],
    );
}

#[test]
fn fw_cfg_without_dma_pc() {
    boot(
        "nodma_pc",
        "pc,accel=tcg",
        &["-global", "fw_cfg_io.dma_enabled=off"],
    );
}

#[test]
fn pc_under_kvm() {
    require_kvm().unwrap_or_else(|e| panic!("{e}"));
    boot("kvm_pc", "pc,accel=kvm", &[]);
}

#[test]
fn q35_under_kvm() {
    require_kvm().unwrap_or_else(|e| panic!("{e}"));
    boot("kvm_q35", "q35,accel=kvm", &[]);
}

/// A test-exit device where kvm-unit-tests and Rust OS test runners put it (0xf4, 4 ports): the
/// firmware must not write there (it used to write its milestones to 0xf4/0xf5, and QEMU exited
/// with status 3 before the kernel ran). The payload reaches its report and exits through 0x501.
#[test]
fn a_test_exit_device_at_0xf4_sees_no_firmware_write_microvm() {
    boot(
        "exit_f4_microvm",
        "microvm,x-option-roms=off,accel=tcg",
        &["-device", "isa-debug-exit,iobase=0xf4,iosize=4"],
    );
}

#[test]
fn a_test_exit_device_at_0xf4_sees_no_firmware_write_pc() {
    boot(
        "exit_f4_pc",
        "pc,accel=tcg",
        &["-device", "isa-debug-exit,iobase=0xf4,iosize=4"],
    );
}

/// The PVH payload as an ELF32 file (`objcopy -O elf32-i386`), which QEMU loads too.
#[test]
fn pvh_elf32_microvm() {
    boot_kernel(
        "elf32_microvm",
        "microvm,x-option-roms=off,accel=tcg",
        "pvh32.elf",
        &[],
    );
}

#[test]
fn pvh_elf32_pc() {
    boot_kernel("elf32_pc", "pc,accel=tcg", "pvh32.elf", &[]);
}
