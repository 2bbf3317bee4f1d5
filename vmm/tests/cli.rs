//! The `minnow` binary: one line on stderr and a non-zero status for every mistake, QEMU's exit
//! statuses for the guest's way out.
mod common;

use std::process::{Command, Output};

fn minnow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minnow"))
        .args(args)
        .output()
        .expect("the minnow binary runs")
}

fn error_line(args: &[&str]) -> String {
    let out = minnow(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("minnow: "), "{stderr}");
    stderr
}

#[test]
fn help_lists_the_options() {
    let out = minnow(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for option in [
        "-M, -machine microvm",
        "-bios FILE|none",
        "isa-debug-exit",
        "-no-reboot",
        "exit status",
    ] {
        assert!(text.contains(option), "--help lacks {option}");
    }
}

#[test]
fn mistakes_are_one_line_naming_the_problem() {
    assert!(error_line(&["-usb"]).contains("unsupported option -usb"));
    assert!(error_line(&["-m", "lots"]).contains("bad memory size \"lots\""));
    assert!(error_line(&["-smp", "0"]).contains("-smp"));
    assert!(error_line(&["-bios", "/nonexistent.rom"]).contains("/nonexistent.rom"));
    // Interrupt controller combinations that cannot work say why and what to use instead.
    for (machine, says) in [
        ("microvm,acpi=on,ioapic2=on", "add pic=off"),
        ("microvm,pic=off,pit=on", "use pit=off"),
        ("microvm,pic=off,acpi=off", "use acpi=on or pic=on"),
        (
            "microvm,pic=off,acpi=on,ioapic2=on,acpi=off",
            "use acpi=on or pic=on",
        ),
    ] {
        let line = error_line(&["-M", machine]);
        assert!(line.contains(says), "{machine}: {line}");
    }
    let not_a_rom = std::env::temp_dir().join(format!("minnow-cli-{}.rom", std::process::id()));
    std::fs::write(&not_a_rom, [0u8; 1000]).expect("temp file");
    let line = error_line(&["-bios", not_a_rom.to_str().unwrap_or_default()]);
    let _ = std::fs::remove_file(&not_a_rom);
    assert!(line.contains("multiple of 64 KiB"), "{line}");
}

use common::reset_vector_rom;

/// The exit status of a VM whose firmware writes to isa-debug-exit at 0xf4 (QEMU's classic setup).
fn debug_exit_status(code: &[u8]) -> Option<i32> {
    let path = std::env::temp_dir().join(format!(
        "minnow-cli-exit-{}-{}.rom",
        std::process::id(),
        code.len()
    ));
    std::fs::write(&path, reset_vector_rom(code)).expect("temp file");
    let out = minnow(&[
        "-M",
        "microvm,acpi=off",
        "-bios",
        path.to_str().unwrap_or_default(),
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-serial",
        "none",
    ]);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.code()
}

/// minnow exits as QEMU does: `((value << 1) | 1) & 0xff` for 1-, 2- and 4-byte writes (QEMU
/// 7.2 gives these same statuses for these ROMs), so no written value can read as a pass (0).
#[test]
fn isa_debug_exit_gives_qemus_status() {
    // mov al, 0x21 ; out 0xf4, al
    assert_eq!(debug_exit_status(&[0xB0, 0x21, 0xE6, 0xF4]), Some(0x43));
    // mov ax, 0x0180 ; out 0xf4, ax: 0x301 keeps its low byte
    assert_eq!(debug_exit_status(&[0xB8, 0x80, 0x01, 0xE7, 0xF4]), Some(0x01));
    // mov eax, 0x40000000 ; out 0xf4, eax: 0x80000001, not 0
    let wide = [0x66, 0xB8, 0, 0, 0, 0x40, 0x66, 0xE7, 0xF4];
    assert_eq!(debug_exit_status(&wide), Some(0x01));
}

/// A VM that fails while it runs (here a KVM internal error: an x87 load from unbacked memory,
/// which KVM's emulator does not do) exits 4, even, which no isa-debug-exit write gives: a test
/// runner that reads 1 as a pass (kvm-unit-tests) cannot mistake it for one.
#[test]
fn a_vm_failing_at_run_time_exits_4_with_one_line() {
    // mov ax, 0xd000 ; mov ds, ax ; fld dword [0] ; hlt
    let code = [0xB8, 0x00, 0xD0, 0x8E, 0xD8, 0xD9, 0x06, 0x00, 0x00, 0xF4];
    let rom = common::rom_file("cli", "internal-error", &code);
    let out = minnow(&[
        "-M",
        "microvm,acpi=off",
        "-bios",
        rom.to_str().unwrap_or_default(),
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-serial",
        "none",
    ]);
    let _ = std::fs::remove_file(&rom);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("KVM internal error"), "{stderr}");
}
