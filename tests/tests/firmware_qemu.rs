//! Boot Debian's cloud kernel under QEMU TCG through each firmware, machine and kernel format, and
//! check what the guest's /init reports (see xtask/src/guest_init.sh).
//!
//! One #[test] per row, named `<firmware>_<machine>_<format>[_<variant>]`, so rows can be filtered:
//! `cargo test -p minnow-tests -- qboot_`, `-- minnow_microvm`, `-- _pvh`.
//! qboot.rom (QEMU's own build) is the reference: its rows prove the test's expectations.
//!
//! Environment: MINNOW_ROM, MINNOW_GUEST_DIR (see the fixture), MINNOW_TSC_KHZ, MINNOW_QEMU_JOBS,
//! MINNOW_BOOT_TIMEOUT (seconds, default 60), MINNOW_RUN_UNSUPPORTED=1 (run rows the table marks
//! as not supported, to re-check them).
use minnow_tests::{guest_dir, report, require_file, require_qemu, rom_path, tsc_khz, QemuRun, QBOOT_ROM};
use std::time::Duration;

const MARKER_DONE: &str = "MINNOW-INIT done";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Firmware {
    Minnow,
    Qboot,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Machine {
    /// microvm with its default hardware-reduced ACPI.
    Microvm,
    MicrovmNoAcpi,
    Pc,
    Q35,
    /// q35 with a VM generation ID device, whose ACPI tables need the table-loader's
    /// WRITE_POINTER command (the firmware tells QEMU where it put the GUID buffer).
    Q35Vmgenid,
}

impl Machine {
    fn qemu_arg(self) -> &'static str {
        match self {
            // x-option-roms=off: no linuxboot/pvh option ROMs; the firmware itself must load the
            // kernel from fw_cfg.
            Machine::Microvm => "microvm,x-option-roms=off,accel=tcg",
            Machine::MicrovmNoAcpi => "microvm,x-option-roms=off,acpi=off,accel=tcg",
            Machine::Pc => "pc,accel=tcg",
            Machine::Q35 | Machine::Q35Vmgenid => "q35,accel=tcg",
        }
    }

    fn extra_args(self) -> &'static [&'static str] {
        match self {
            Machine::Q35Vmgenid => &["-device", "vmgenid,guid=324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87"],
            _ => &[],
        }
    }

    /// Whether Linux's `poweroff -f` can end QEMU: it needs ACPI (without it Linux just halts).
    fn can_power_off(self) -> bool {
        self != Machine::MicrovmNoAcpi
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kernel {
    /// <guest>/vmlinuz, booted through the Linux boot protocol.
    BzImage,
    /// <guest>/vmlinux, the ELF with the Xen PVH entry note.
    Pvh,
}

#[derive(Clone, Copy, Debug)]
struct Row {
    firmware: Firmware,
    machine: Machine,
    kernel: Kernel,
    mem_mib: u64,
    smp: u32,
}

/// Combinations that cannot work, with the reason. Such rows print "not supported: <reason>"
/// and pass. Everything else must boot.
fn not_supported(row: &Row) -> Option<&'static str> {
    match (row.firmware, row.machine) {
        // Without ACPI the CPUs are described only by an MP table, and Debian's cloud kernel is
        // built without CONFIG_X86_MPPARSE: it logs "APIC: ACPI MADT or MP tables are not detected"
        // and boots one CPU whatever the firmware writes. minnow.rom's MP table is checked by its
        // unit tests and, in-guest, by the boot conformance payloads.
        (Firmware::Qboot, Machine::Q35Vmgenid) => {
            Some("qboot panics on the table-loader's WRITE_POINTER command, which -device vmgenid needs")
        }
        (_, Machine::MicrovmNoAcpi) if row.smp > 1 => Some(
            "the Debian cloud kernel has no CONFIG_X86_MPPARSE, so without ACPI it sees only the boot CPU",
        ),
        _ => None,
    }
}

fn boot_timeout() -> Duration {
    let secs = std::env::var("MINNOW_BOOT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// A token no other boot uses, so a line from a stale or different run cannot match.
fn unique_token(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}.{}.{}", std::process::id(), nanos % 1_000_000_000)
}

/// Checks what the guest printed against the row; returns the mismatches.
fn check(out: &minnow_tests::RunOutput, cmdline: &str, row: &Row) -> Vec<String> {
    let mut bad = Vec::new();
    if !out.lines.iter().any(|l| l.starts_with("MINNOW-INIT ")) {
        bad.push("no MINNOW-INIT lines: the guest never reached /init".into());
    } else {
        check_values(out, cmdline, row, &mut bad);
    }
    if !out.marker_seen() {
        bad.push(match (out.timed_out, &out.status) {
            (true, _) => format!("no {MARKER_DONE:?} within {:.0} s", out.elapsed.as_secs_f64()),
            (false, Some(st)) => format!("QEMU exited ({st}) before {MARKER_DONE:?}"),
            (false, None) => format!("serial output ended before {MARKER_DONE:?}"),
        });
    }
    bad
}

fn check_values(out: &minnow_tests::RunOutput, cmdline: &str, row: &Row, bad: &mut Vec<String>) {
    match out.value("MINNOW-INIT cmdline=") {
        Some(c) if c == cmdline => {}
        Some(c) => bad.push(format!("cmdline: guest saw {c:?}, passed {cmdline:?}")),
        None => bad.push("no MINNOW-INIT cmdline= line".into()),
    }
    let mem_kib = row.mem_mib * 1024;
    match out
        .value("MINNOW-INIT mem_total_kb=")
        .map(|v| v.trim().parse::<u64>())
    {
        // MemTotal excludes the kernel image and early reservations, so it is a bit below -m.
        Some(Ok(kb)) if kb * 10 > mem_kib * 8 && kb <= mem_kib => {}
        Some(Ok(kb)) => bad.push(format!(
            "mem_total_kb={kb}: expected in (80%, 100%] of -m = {mem_kib} kB"
        )),
        Some(Err(_)) | None => bad.push("no numeric MINNOW-INIT mem_total_kb= line".into()),
    }
    match out.value("MINNOW-INIT cpus=").map(|v| v.trim().parse::<u32>()) {
        Some(Ok(n)) if n == row.smp => {}
        Some(Ok(n)) => bad.push(format!("cpus={n}, expected -smp {}", row.smp)),
        Some(Err(_)) | None => bad.push("no numeric MINNOW-INIT cpus= line".into()),
    }
}

fn boot(name: &str, row: Row) {
    // Missing prerequisites fail the test, naming every missing piece and how to get it.
    let mut missing = Vec::new();
    if let Err(e) = require_qemu() {
        missing.push(e);
    }
    let rom = match row.firmware {
        Firmware::Minnow => require_file(&rom_path(), "Minnow ROM", "cargo xtask firmware"),
        Firmware::Qboot => require_file(
            QBOOT_ROM.as_ref(),
            "qboot ROM",
            "apt-get install qemu-system-data (comes with qemu-system-x86)",
        ),
    };
    let (file, what) = match row.kernel {
        Kernel::BzImage => ("vmlinuz", "guest kernel (bzImage)"),
        Kernel::Pvh => ("vmlinux", "guest kernel (PVH ELF)"),
    };
    let guest = guest_dir();
    let kernel = guest
        .clone()
        .and_then(|d| require_file(&d.join(file), what, "cargo xtask guest"));
    let initrd =
        guest.and_then(|d| require_file(&d.join("initramfs.cpio"), "guest initramfs", "cargo xtask guest"));
    let khz = tsc_khz();
    let (rom, kernel, initrd, khz) = match (rom, kernel, initrd, khz) {
        (Ok(r), Ok(k), Ok(i), Ok(t)) if missing.is_empty() => (r, k, i, t),
        (r, k, i, t) => {
            missing.extend([r.err(), k.err(), i.err(), t.err()].into_iter().flatten());
            panic!("{name}: cannot run:\n  {}", missing.join("\n  "));
        }
    };

    let run_anyway = std::env::var_os("MINNOW_RUN_UNSUPPORTED").is_some_and(|v| v == "1");
    if let Some(reason) = not_supported(&row) {
        if !run_anyway {
            report(&format!("[boot] {name}: not supported: {reason}"));
            return;
        }
        report(&format!(
            "[boot] {name}: marked not supported ({reason}); running it anyway"
        ));
    }

    let cmdline = format!(
        "console=ttyS0 panic=-1 tsc_early_khz={khz} tsc=reliable minnow.test={}",
        unique_token(name)
    );
    let mut run = QemuRun::new(row.machine.qemu_arg());
    for a in row.machine.extra_args() {
        run = run.arg(a);
    }
    let out = run
        .bios(&rom)
        .kernel(&kernel)
        .initrd(&initrd)
        .append(&cmdline)
        .memory(&format!("{}M", row.mem_mib))
        .smp(row.smp)
        .marker(MARKER_DONE)
        .timeout(boot_timeout())
        // Long enough to see whether the guest's power-off ends QEMU (about 0.3 s on pc).
        .grace(if row.machine.can_power_off() {
            Duration::from_millis(1500)
        } else {
            Duration::ZERO
        })
        .run()
        .unwrap_or_else(|e| panic!("{name}: {e}"));

    let bad = check(&out, &cmdline, &row);
    if !bad.is_empty() {
        panic!("{name}: {}\n{}", bad.join("; "), out.tail(40));
    }
    let marker = out.marker_at.unwrap_or_default().as_secs_f64();
    let end = match out.exit_at {
        Some(t) => format!("QEMU exited at {:.2} s", t.as_secs_f64()),
        None if row.machine.can_power_off() => "no power-off within 1.5 s (killed)".into(),
        None => "killed (no ACPI power-off on this machine)".into(),
    };
    let mem = out.value("MINNOW-INIT mem_total_kb=").unwrap_or("?");
    report(&format!(
        "[boot] {name}: ok (MemTotal {mem} kB), {MARKER_DONE:?} at {marker:.2} s, {end}"
    ));
}

/// One #[test] per row: `name: Firmware Machine Kernel, <MiB>, <cpus>;`
macro_rules! rows {
    ($($name:ident: $fw:ident $machine:ident $kernel:ident, $mem:literal, $smp:literal;)*) => {$(
        #[test]
        fn $name() {
            let row = Row {
                firmware: Firmware::$fw,
                machine: Machine::$machine,
                kernel: Kernel::$kernel,
                mem_mib: $mem,
                smp: $smp,
            };
            boot(stringify!($name), row);
        }
    )*};
}

rows! {
    qboot_microvm_bzimage:          Qboot Microvm       BzImage, 512, 1;
    qboot_microvm_pvh:              Qboot Microvm       Pvh,     512, 1;
    qboot_microvm_noacpi_bzimage:   Qboot MicrovmNoAcpi BzImage, 512, 1;
    qboot_microvm_noacpi_pvh:       Qboot MicrovmNoAcpi Pvh,     512, 1;
    qboot_pc_bzimage:               Qboot Pc            BzImage, 512, 1;
    qboot_pc_pvh:                   Qboot Pc            Pvh,     512, 1;
    qboot_q35_bzimage:              Qboot Q35           BzImage, 512, 1;
    qboot_q35_pvh:                  Qboot Q35           Pvh,     512, 1;
    qboot_microvm_bzimage_3584m:    Qboot Microvm       BzImage, 3584, 1;
    qboot_pc_pvh_3584m:             Qboot Pc            Pvh,     3584, 1;
    qboot_microvm_bzimage_smp2:     Qboot Microvm       BzImage, 512, 2;
    qboot_microvm_noacpi_pvh_smp2:  Qboot MicrovmNoAcpi Pvh,     512, 2;

    minnow_microvm_bzimage:         Minnow Microvm       BzImage, 512, 1;
    minnow_microvm_pvh:             Minnow Microvm       Pvh,     512, 1;
    minnow_microvm_noacpi_bzimage:  Minnow MicrovmNoAcpi BzImage, 512, 1;
    minnow_microvm_noacpi_pvh:      Minnow MicrovmNoAcpi Pvh,     512, 1;
    minnow_pc_bzimage:              Minnow Pc            BzImage, 512, 1;
    minnow_pc_pvh:                  Minnow Pc            Pvh,     512, 1;
    minnow_q35_bzimage:             Minnow Q35           BzImage, 512, 1;
    minnow_q35_vmgenid_pvh:         Minnow Q35Vmgenid    Pvh,     512, 1;
    qboot_q35_vmgenid_pvh:          Qboot Q35Vmgenid     Pvh,     512, 1;
    minnow_q35_pvh:                 Minnow Q35           Pvh,     512, 1;
    minnow_microvm_bzimage_3584m:   Minnow Microvm       BzImage, 3584, 1;
    minnow_pc_pvh_3584m:            Minnow Pc            Pvh,     3584, 1;
    minnow_microvm_bzimage_smp2:    Minnow Microvm       BzImage, 512, 2;
    minnow_microvm_noacpi_pvh_smp2: Minnow MicrovmNoAcpi Pvh,     512, 2;
}
