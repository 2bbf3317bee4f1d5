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

/// Runs minnow with `image` as its ROM, isa-debug-exit at 0xf4 (QEMU's classic setup), no
/// serial port, and `more` options. Each call has its own ROM file: tests run in parallel.
fn run_rom(image: &[u8], more: &[&str]) -> Output {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let rom = common::temp("cli", &format!("rom-{n}.rom"));
    std::fs::write(&rom, image).expect("writing a temporary ROM");
    let mut args = vec![
        "-M",
        "microvm,acpi=off",
        "-bios",
        rom.to_str().unwrap_or_default(),
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-serial",
        "none",
    ];
    args.extend(more);
    let out = minnow(&args);
    let _ = std::fs::remove_file(&rom);
    out
}

/// The exit status of a VM whose firmware writes to isa-debug-exit at 0xf4.
fn debug_exit_status(code: &[u8]) -> Option<i32> {
    let out = run_rom(&reset_vector_rom(code), &[]);
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
    let out = run_rom(&reset_vector_rom(&code), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("KVM internal error"), "{stderr}");
}

/// The status of a ROM that writes what it found (a CPUID fact, a port) to isa-debug-exit,
/// under `-cpu cpu`.
fn cpuid_status(cpu: &str, code: &[u8]) -> Option<i32> {
    cpuid_status_with(&[], cpu, code)
}

/// [`cpuid_status`] with more options. The code sits at 0xF000 in the ROM; the reset vector
/// jumps to it (`jmp near 0xf000`).
fn cpuid_status_with(more: &[&str], cpu: &str, code: &[u8]) -> Option<i32> {
    let mut image = reset_vector_rom(&[0xE9, 0x0D, 0xF0]);
    image[0xF000..0xF000 + code.len()].copy_from_slice(code);
    let mut args = vec!["-cpu", cpu];
    args.extend(more);
    run_rom(&image, &args).status.code()
}

/// `-cpu` models and flags reach the guest's CPUID as QEMU gives them: x2APIC on by default
/// (QEMU's qemu64 under KVM too) and off with `-x2apic`; qemu64 and kvm64 with QEMU's signatures.
#[test]
fn cpu_models_and_flags_reach_the_guests_cpuid() {
    // mov eax, 1 ; cpuid ; shr ecx, 21 ; and cl, 1 ; mov al, cl ; out 0xf4, al ; hlt
    let x2apic = [
        0x66, 0xB8, 1, 0, 0, 0, 0x0F, 0xA2, 0x66, 0xC1, 0xE9, 21, 0x80, 0xE1, 1, 0x88, 0xC8, 0xE6, 0xF4, 0xF4,
    ];
    for (cpu, on) in [
        ("host", true),
        ("host,-x2apic", false),
        ("qemu64", true),
        ("qemu64,x2apic=off", false),
    ] {
        assert_eq!(
            cpuid_status(cpu, &x2apic),
            Some(1 | (i32::from(on) << 1)),
            "{cpu}"
        );
    }
    // mov eax, 1 ; cpuid ; shr eax, 4 ; out 0xf4, al ; hlt: family and model's low nibbles.
    // QEMU 7.2's microvm gives these same statuses: 247 (qemu64, 15/107), 237 (kvm64, 15/6).
    let signature = [
        0x66, 0xB8, 1, 0, 0, 0, 0x0F, 0xA2, 0x66, 0xC1, 0xE8, 4, 0xE6, 0xF4, 0xF4,
    ];
    assert_eq!(cpuid_status("qemu64", &signature), Some(247));
    assert_eq!(cpuid_status("kvm64", &signature), Some(237));
}

#[test]
fn an_unknown_cpu_model_or_flag_is_one_line() {
    assert!(error_line(&["-cpu", "pentium"]).contains("pentium"));
    assert!(error_line(&["-cpu", "host,+frobnicate"]).contains("+frobnicate"));
}

/// `-overcommit cpu-pm=on` keeps the guest's idle instructions in the guest where KVM offers it,
/// and the CPUID shows MONITOR/MWAIT exactly when KVM lets MWAIT run in the guest, as in QEMU.
#[test]
fn overcommit_cpu_pm_shows_mwait_when_kvm_lets_the_guest_run_it() {
    const KVM_CAP_X86_DISABLE_EXITS: libc::c_ulong = 143;
    let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm");
    let mwait_in_guest = kvm.check_extension_raw(KVM_CAP_X86_DISABLE_EXITS) & 1 != 0;
    // mov eax, 1 ; cpuid ; shr ecx, 3 ; and cl, 1 ; mov al, cl ; out 0xf4, al ; hlt
    let monitor = [
        0x66, 0xB8, 1, 0, 0, 0, 0x0F, 0xA2, 0x66, 0xC1, 0xE9, 3, 0x80, 0xE1, 1, 0x88, 0xC8, 0xE6, 0xF4, 0xF4,
    ];
    let status = cpuid_status_with(&["-overcommit", "cpu-pm=on"], "host", &monitor);
    assert_eq!(status, Some(1 | (i32::from(mwait_in_guest) << 1)));
}

/// `-device pc-testdev`: the register written as 32 bits at 0xe0 reads back byte-wise at 0xe8
/// (one register, as in QEMU); without the device the port reads all-ones.
#[test]
fn pc_testdev_register_is_shared_by_its_two_port_ranges() {
    // mov eax, 0x12345678 ; out 0xe0, eax ; in al, 0xe9 ; out 0xf4, al ; hlt
    let code = [
        0x66, 0xB8, 0x78, 0x56, 0x34, 0x12, 0x66, 0xE7, 0xE0, 0xE4, 0xE9, 0xE6, 0xF4, 0xF4,
    ];
    let with = cpuid_status_with(&["-device", "pc-testdev"], "host", &code);
    assert_eq!(with, Some((0x56 << 1) | 1));
    assert_eq!(cpuid_status("host", &code), Some(0xFF));
}

/// `-device help` and `-device ?` list the devices as QEMU does (kvm-unit-tests' runner greps
/// `"pc-testdev"` there) and exit 0.
#[test]
fn device_help_lists_the_devices_in_qemus_format() {
    for ask in ["help", "?"] {
        let out = minnow(&["-device", ask]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("name \"pc-testdev\", bus ISA"), "{text}");
        assert!(text.contains("name \"isa-debug-exit\", bus ISA"), "{text}");
    }
}
