//! Boot the conformance payloads (payloads/, built into target/payloads/ by `cargo xtask payloads`)
//! through minnow.rom and, as the reference, qboot.rom, and check the one line each prints:
//!
//! ```text
//! MINNOW-PAYLOAD proto=pvh entry=32 mode=ok magic=ok load=ok cmdline="..." initrd_len=102400
//!   initrd_sum=... mem_kb=... e820=ok e820_entries=5 acpi=ok acpi_tables=FACP,DSDT,APIC
//!   madt_cpus=1 mp=none mp_cpus=none cr0=0x11 pages=2m result=pass
//! ```
//!
//! then leave QEMU through `isa-debug-exit` at port 0x501: status 33 for pass, 35 for fail.
//!
//! One #[test] per row, named `<firmware>_<machine>_<route>_<payload>[_<variant>]`, so rows can be
//! filtered: `cargo test -p minnow-tests --test payloads_qemu -- qboot_`, `-- _kvm`, `-- _fwcfg_`.
//! Routes: `kernel` is QEMU's `-kernel/-initrd/-append`; `fwcfg` is Minnow's own
//! `opt/org.minnow/{kernel,initrd,cmdline}` files, the only way to pass a multiboot 2 kernel.
//!
//! Combinations that cannot work print "not supported: <reason>" and pass. qboot.rom's known
//! departures from what the payloads check (see `qboot_deviations`) are expected exactly: the row
//! passes when qboot still deviates that way and fails, asking for the table to be updated, when
//! it no longer does.
//!
//! Environment: MINNOW_ROM, MINNOW_PAYLOAD_DIR, MINNOW_QEMU_JOBS (see the fixture),
//! MINNOW_PAYLOAD_TIMEOUT (seconds per boot; default 30 under TCG, 60 under KVM),
//! MINNOW_RUN_UNSUPPORTED=1 (run the rows marked not supported, to re-check them).
use minnow_tests::payload_report::{fnv1a32, parse, unescape, PREFIX};
use minnow_tests::{
    payload_dir, report, require_file, require_kvm, require_qemu, rom_path, QemuRun, RunOutput, QBOOT_ROM,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Every report line starts with this (payloads/src/report.rs).
/// QEMU's exit status for the payload's 0x10 (pass) and 0x11 (fail) written to isa-debug-exit.
const EXIT_PASS: i32 = 33;
const EXIT_FAIL: i32 = 35;
/// The initrd every row passes: this many bytes of a fixed pattern.
const INITRD_LEN: usize = 100 * 1024;

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
}

impl Machine {
    fn qemu_arg(self, accel: Accel) -> String {
        let m = match self {
            // x-option-roms=off: no linuxboot/pvh option ROMs; the firmware loads the kernel.
            Machine::Microvm => "microvm,x-option-roms=off",
            Machine::MicrovmNoAcpi => "microvm,x-option-roms=off,acpi=off",
            Machine::Pc => "pc",
            Machine::Q35 => "q35",
        };
        let accel = match accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        };
        format!("{m},accel={accel}")
    }

    fn has_acpi(self) -> bool {
        self != Machine::MicrovmNoAcpi
    }

    /// Tables QEMU builds for the machine that the payload must find (it may find more).
    fn acpi_tables(self) -> &'static [&'static str] {
        match self {
            Machine::Microvm => &["FACP", "APIC", "DSDT"],
            Machine::MicrovmNoAcpi => &[],
            Machine::Pc => &["FACP", "APIC", "DSDT", "FACS", "HPET"],
            Machine::Q35 => &["FACP", "APIC", "DSDT", "FACS", "HPET", "MCFG"],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Accel {
    Tcg,
    Kvm,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Payload {
    Multiboot1,
    Multiboot2,
    Pvh,
    BzImage,
    /// The bzImage without XLF_KERNEL_64: entered at its 32-bit entry.
    BzImage32,
}

impl Payload {
    fn file(self) -> &'static str {
        match self {
            Payload::Multiboot1 => "multiboot1.elf",
            Payload::Multiboot2 => "multiboot2.elf",
            Payload::Pvh => "pvh.elf",
            Payload::BzImage => "bzImage",
            Payload::BzImage32 => "bzImage32",
        }
    }
    fn proto(self) -> &'static str {
        match self {
            Payload::Multiboot1 => "multiboot1",
            Payload::Multiboot2 => "multiboot2",
            Payload::Pvh => "pvh",
            Payload::BzImage | Payload::BzImage32 => "bzimage",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    /// QEMU's -kernel, -initrd, -append.
    Kernel,
    /// -fw_cfg opt/org.minnow/kernel, .../initrd, .../cmdline.
    FwCfg,
}

#[derive(Clone, Copy, Debug)]
struct Row {
    firmware: Firmware,
    machine: Machine,
    accel: Accel,
    route: Route,
    payload: Payload,
    mem_mib: u64,
    smp: u32,
    /// -cpu, when not QEMU's default (qemu64, which lacks 1 GiB pages: `max` takes the other
    /// page-table path in the firmware and in the payload).
    cpu: Option<&'static str>,
}

/// Combinations that cannot work, with the reason.
fn not_supported(row: &Row) -> Option<&'static str> {
    match (row.firmware, row.route, row.payload) {
        (Firmware::Qboot, Route::FwCfg, _) => {
            Some("qboot does not read opt/org.minnow/kernel: raw kernels in fw_cfg files are Minnow's route")
        }
        (_, Route::Kernel, Payload::Multiboot2) => Some(
            "QEMU's -kernel cannot load a multiboot 2 kernel (it knows multiboot 1, PVH ELF and bzImage); \
             Minnow boots them from opt/org.minnow/kernel",
        ),
        _ => None,
    }
}

/// A field of the report line and the value qboot.rom (QEMU 7.2's build) is known to give
/// instead of a passing one, with why. In the payload's check order: the first is the result.
struct Deviation {
    key: &'static str,
    value: &'static str,
    why: &'static str,
}

fn qboot_deviations(row: &Row) -> Vec<Deviation> {
    if row.firmware != Firmware::Qboot {
        return Vec::new();
    }
    let e820 = match row.machine {
        Machine::Q35 => Deviation {
            key: "e820",
            value: "bad:unsorted",
            why: "qboot lists its own reservations before QEMU's RAM entries",
        },
        _ => Deviation {
            key: "e820",
            value: "bad:zero-length-entry",
            why: "qboot's map ends with an empty entry of type 0 (and is out of order)",
        },
    };
    let mp = Deviation {
        key: "mp",
        value: "bad:entry-count:PCMP",
        why: "qboot writes an MP table (even with ACPI) but leaves its entry count 0; \
              Linux walks it by length and does not notice",
    };
    vec![e820, mp]
}

fn timeout(accel: Accel) -> Duration {
    let default = match accel {
        Accel::Tcg => 30,
        Accel::Kvm => 60,
    };
    let secs = std::env::var("MINNOW_PAYLOAD_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// The initrd file (under the target directory, rewritten once per test process) and its FNV-1a 32.
fn initrd() -> &'static (PathBuf, u32) {
    static INITRD: OnceLock<(PathBuf, u32)> = OnceLock::new();
    INITRD.get_or_init(|| {
        let bytes: Vec<u8> = (0..INITRD_LEN as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ (i as u8))
            .collect();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("payload-initrd.bin");
        // Write and rename, so a concurrent test process never sees half a file.
        let partial = dir.join(format!("payload-initrd.bin.{}", std::process::id()));
        std::fs::write(&partial, &bytes)
            .and_then(|()| std::fs::rename(&partial, &path))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        (path, fnv1a32(&bytes))
    })
}

/// A command line with repeated spaces, quotes, punctuation, a tab and UTF-8: the payload must
/// report every byte.
fn cmdline(name: &str) -> String {
    format!("minnow.test={name}  \"double\" 'single' a,b;c=d/e\\f ~!@#$%^&*()[]{{}}<>?|\tmu=\u{b5} end")
}

/// Checks one field; on a mismatch records what was expected.
fn expect(bad: &mut Vec<String>, f: &HashMap<String, String>, key: &str, want: &str) {
    match f.get(key) {
        Some(v) if v == want => {}
        Some(v) => bad.push(format!("{key}={v}, expected {want}")),
        None => bad.push(format!("no {key}= field")),
    }
}

fn check(row: &Row, out: &RunOutput, kernel: &Path, cmdline: &str, deviations: &[Deviation]) -> Vec<String> {
    let mut bad = Vec::new();
    let lines: Vec<&String> = out.lines.iter().filter(|l| l.starts_with(PREFIX)).collect();
    let line = match lines.as_slice() {
        [one] => one.as_str(),
        [] => {
            bad.push("no MINNOW-PAYLOAD line".into());
            return bad;
        }
        _ => {
            bad.push(format!("{} MINNOW-PAYLOAD lines, expected one", lines.len()));
            lines[0].as_str()
        }
    };
    let f = parse(line);
    let deviation = |key: &str| deviations.iter().find(|d| d.key == key).map(|d| d.value);

    expect(&mut bad, &f, "proto", row.payload.proto());
    let entry = match (row.payload, row.firmware) {
        // qboot enters a bzImage at its real-mode setup code, which takes the 32-bit entry.
        (Payload::BzImage | Payload::BzImage32, Firmware::Qboot) => "16",
        (Payload::BzImage, Firmware::Minnow) => "64",
        _ => "32",
    };
    expect(&mut bad, &f, "entry", entry);
    for key in ["mode", "magic", "load"] {
        expect(&mut bad, &f, key, "ok");
    }

    // QEMU's multiboot loader passes "<kernel file> <-append>" as the command line.
    let want_cmdline = match (row.route, row.payload) {
        (Route::Kernel, Payload::Multiboot1) => format!("{} {cmdline}", kernel.display()),
        _ => cmdline.to_string(),
    };
    match f.get("cmdline") {
        Some(c) if unescape(c) == want_cmdline.as_bytes() => {}
        Some(c) => bad.push(format!(
            "cmdline {:?}, expected {want_cmdline:?}",
            String::from_utf8_lossy(&unescape(c))
        )),
        None => bad.push("no cmdline= field".into()),
    }
    let (_, sum) = initrd();
    expect(&mut bad, &f, "initrd_len", &INITRD_LEN.to_string());
    expect(&mut bad, &f, "initrd_sum", &format!("{sum:08x}"));

    let mem_kib = row.mem_mib * 1024;
    match f.get("mem_kb").and_then(|v| v.parse::<u64>().ok()) {
        Some(kb) if kb * 4 >= mem_kib * 3 && kb <= mem_kib => {}
        Some(kb) => bad.push(format!("mem_kb={kb}: expected 75%..100% of -m = {mem_kib} KiB")),
        None => bad.push("no numeric mem_kb= field".into()),
    }
    expect(&mut bad, &f, "e820", deviation("e820").unwrap_or("ok"));

    let smp = row.smp.to_string();
    if row.machine.has_acpi() {
        expect(&mut bad, &f, "acpi", "ok");
        let tables: Vec<&str> = f.get("acpi_tables").map_or(vec![], |t| t.split(',').collect());
        for want in row.machine.acpi_tables() {
            if !tables.contains(want) {
                bad.push(format!("acpi_tables={tables:?} lacks {want}"));
            }
        }
        expect(&mut bad, &f, "madt_cpus", &smp);
    } else {
        expect(&mut bad, &f, "acpi", "none");
        expect(&mut bad, &f, "acpi_tables", "none");
    }
    match (deviation("mp"), row.machine.has_acpi()) {
        (Some(d), _) => {
            expect(&mut bad, &f, "mp", d);
            expect(&mut bad, &f, "mp_cpus", &smp);
        }
        // Minnow writes an MP table only for machines without ACPI.
        (None, true) => expect(&mut bad, &f, "mp", "none"),
        (None, false) => {
            expect(&mut bad, &f, "mp", "ok");
            expect(&mut bad, &f, "mp_cpus", &smp);
        }
    }

    // qemu64 (QEMU's default model) has no 1 GiB pages; `-cpu max` does.
    expect(
        &mut bad,
        &f,
        "pages",
        if row.cpu == Some("max") { "1g" } else { "2m" },
    );

    let (result, status) = match deviations.first() {
        None => ("pass".to_string(), EXIT_PASS),
        Some(d) => (
            format!("fail:{}", d.value.strip_prefix("bad:").unwrap_or(d.value)),
            EXIT_FAIL,
        ),
    };
    expect(&mut bad, &f, "result", &result);
    if out.exit_code() != Some(status) {
        bad.push(match out.exit_code() {
            Some(c) => format!("QEMU exited with {c}, expected {status}"),
            None if out.timed_out => format!(
                "QEMU did not exit within {:.0} s (is isa-debug-exit missing?)",
                out.elapsed.as_secs_f64()
            ),
            None => "QEMU was killed before it exited by itself".into(),
        });
    }
    bad
}

/// Fails unless QEMU can run, naming every missing piece and how to get it.
fn prerequisites(name: &str, row: &Row) -> (PathBuf, PathBuf) {
    let mut missing = Vec::new();
    if let Err(e) = require_qemu() {
        missing.push(e);
    }
    if row.accel == Accel::Kvm {
        if let Err(e) = require_kvm() {
            missing.push(e);
        }
    }
    let rom = match row.firmware {
        Firmware::Minnow => require_file(&rom_path(), "Minnow ROM", "cargo xtask firmware"),
        Firmware::Qboot => require_file(
            QBOOT_ROM.as_ref(),
            "qboot ROM",
            "apt-get install qemu-system-data (comes with qemu-system-x86)",
        ),
    };
    let kernel = require_file(
        &payload_dir().join(row.payload.file()),
        "payload",
        "cargo xtask payloads",
    );
    match (rom, kernel) {
        (Ok(r), Ok(k)) if missing.is_empty() => (r, k),
        (r, k) => {
            missing.extend([r.err(), k.err()].into_iter().flatten());
            panic!("{name}: cannot run:\n  {}", missing.join("\n  "));
        }
    }
}

/// QEMU's option syntax ends a value at a comma (",," escapes one).
fn opt_value(s: &str) -> String {
    s.replace(',', ",,")
}

fn boot(name: &str, row: Row) {
    let (rom, kernel) = prerequisites(name, &row);
    let run_anyway = std::env::var_os("MINNOW_RUN_UNSUPPORTED").is_some_and(|v| v == "1");
    if let Some(reason) = not_supported(&row) {
        if !run_anyway {
            report(&format!("[payload] {name}: not supported: {reason}"));
            return;
        }
        report(&format!(
            "[payload] {name}: marked not supported ({reason}); running it anyway"
        ));
    }
    let (initrd, _) = initrd();
    for p in [&kernel, initrd] {
        assert!(
            !p.to_string_lossy().contains(','),
            "{name}: {} contains a comma, which QEMU's -initrd (multiboot module list) and -fw_cfg \
             options cannot carry",
            p.display()
        );
    }
    let cmdline = cmdline(name);
    let mut q = QemuRun::new(&row.machine.qemu_arg(row.accel))
        .bios(&rom)
        .memory(&format!("{}M", row.mem_mib))
        .smp(row.smp);
    if let Some(cpu) = row.cpu {
        q = q.arg("-cpu").arg(cpu);
    }
    q = q
        .arg("-device")
        .arg("isa-debug-exit,iobase=0x501,iosize=2")
        // The payload exits right after its line; a short grace period catches one that does not.
        .marker(&format!("{PREFIX}proto=*"))
        .grace(Duration::from_secs(5))
        .timeout(timeout(row.accel));
    q = match row.route {
        Route::Kernel => q.kernel(&kernel).initrd(initrd).append(&cmdline),
        Route::FwCfg => q
            .arg("-fw_cfg")
            .arg(&format!("name=opt/org.minnow/kernel,file={}", kernel.display()))
            .arg("-fw_cfg")
            .arg(&format!("name=opt/org.minnow/initrd,file={}", initrd.display()))
            .arg("-fw_cfg")
            .arg(&format!(
                "name=opt/org.minnow/cmdline,string={}",
                opt_value(&cmdline)
            )),
    };
    let out = q.run().unwrap_or_else(|e| panic!("{name}: {e}"));
    let deviations = qboot_deviations(&row);
    let bad = check(&row, &out, &kernel, &cmdline, &deviations);
    if !bad.is_empty() {
        panic!("{name}:\n  {}\n{}", bad.join("\n  "), out.tail(10));
    }
    let at = out.exit_at.unwrap_or(out.elapsed).as_secs_f64();
    report(&format!(
        "[payload] {name}: ok, QEMU exited with {} at {at:.2} s",
        out.exit_code().unwrap_or(-1)
    ));
    for d in &deviations {
        report(&format!(
            "[payload] {name}: known qboot deviation, as expected: {}={} ({})",
            d.key, d.value, d.why
        ));
    }
}

/// One #[test] per row: `name: Firmware Machine Accel Route Payload, <MiB>, <cpus>[, cpu = "<model>"];`
macro_rules! rows {
    ($($name:ident: $fw:ident $machine:ident $accel:ident $route:ident $payload:ident, $mem:literal, $smp:literal $(, cpu = $cpu:literal)?;)*) => {$(
        #[test]
        fn $name() {
            let row = Row {
                firmware: Firmware::$fw,
                machine: Machine::$machine,
                accel: Accel::$accel,
                route: Route::$route,
                payload: Payload::$payload,
                mem_mib: $mem,
                smp: $smp,
                cpu: None $(.or(Some($cpu)))?,
            };
            boot(stringify!($name), row);
        }
    )*};
}

rows! {
    // minnow.rom, QEMU's -kernel.
    minnow_microvm_kernel_multiboot1:        Minnow Microvm       Tcg Kernel Multiboot1, 512, 1;
    minnow_microvm_kernel_multiboot2:        Minnow Microvm       Tcg Kernel Multiboot2, 512, 1;
    minnow_microvm_kernel_pvh:               Minnow Microvm       Tcg Kernel Pvh,        512, 1;
    minnow_microvm_kernel_bzimage:           Minnow Microvm       Tcg Kernel BzImage,    512, 1;
    minnow_microvm_noacpi_kernel_multiboot1: Minnow MicrovmNoAcpi Tcg Kernel Multiboot1, 512, 1;
    minnow_microvm_noacpi_kernel_pvh:        Minnow MicrovmNoAcpi Tcg Kernel Pvh,        512, 1;
    minnow_microvm_noacpi_kernel_bzimage:    Minnow MicrovmNoAcpi Tcg Kernel BzImage,    512, 1;
    minnow_pc_kernel_multiboot1:             Minnow Pc            Tcg Kernel Multiboot1, 512, 1;
    minnow_pc_kernel_pvh:                    Minnow Pc            Tcg Kernel Pvh,        512, 1;
    minnow_pc_kernel_bzimage:                Minnow Pc            Tcg Kernel BzImage,    512, 1;
    minnow_q35_kernel_multiboot1:            Minnow Q35           Tcg Kernel Multiboot1, 512, 1;
    minnow_q35_kernel_pvh:                   Minnow Q35           Tcg Kernel Pvh,        512, 1;
    minnow_q35_kernel_bzimage:               Minnow Q35           Tcg Kernel BzImage,    512, 1;
    minnow_microvm_kernel_bzimage32:         Minnow Microvm       Tcg Kernel BzImage32,  512, 1;
    minnow_pc_kernel_bzimage32:              Minnow Pc            Tcg Kernel BzImage32,  512, 1;

    // minnow.rom, opt/org.minnow/* (the firmware detects the format itself).
    minnow_microvm_fwcfg_multiboot1:         Minnow Microvm       Tcg FwCfg Multiboot1,  512, 1;
    minnow_microvm_fwcfg_multiboot2:         Minnow Microvm       Tcg FwCfg Multiboot2,  512, 1;
    minnow_microvm_fwcfg_pvh:                Minnow Microvm       Tcg FwCfg Pvh,         512, 1;
    minnow_microvm_fwcfg_bzimage:            Minnow Microvm       Tcg FwCfg BzImage,     512, 1;
    minnow_microvm_noacpi_fwcfg_multiboot1:  Minnow MicrovmNoAcpi Tcg FwCfg Multiboot1,  512, 1;
    minnow_microvm_noacpi_fwcfg_multiboot2:  Minnow MicrovmNoAcpi Tcg FwCfg Multiboot2,  512, 1;
    minnow_microvm_noacpi_fwcfg_pvh:         Minnow MicrovmNoAcpi Tcg FwCfg Pvh,         512, 1;
    minnow_microvm_noacpi_fwcfg_bzimage:     Minnow MicrovmNoAcpi Tcg FwCfg BzImage,     512, 1;
    minnow_pc_fwcfg_multiboot1:              Minnow Pc            Tcg FwCfg Multiboot1,  512, 1;
    minnow_pc_fwcfg_multiboot2:              Minnow Pc            Tcg FwCfg Multiboot2,  512, 1;
    minnow_pc_fwcfg_pvh:                     Minnow Pc            Tcg FwCfg Pvh,         512, 1;
    minnow_pc_fwcfg_bzimage:                 Minnow Pc            Tcg FwCfg BzImage,     512, 1;
    minnow_q35_fwcfg_multiboot1:             Minnow Q35           Tcg FwCfg Multiboot1,  512, 1;
    minnow_q35_fwcfg_multiboot2:             Minnow Q35           Tcg FwCfg Multiboot2,  512, 1;
    minnow_q35_fwcfg_pvh:                    Minnow Q35           Tcg FwCfg Pvh,         512, 1;
    minnow_q35_fwcfg_bzimage:                Minnow Q35           Tcg FwCfg BzImage,     512, 1;
    minnow_microvm_noacpi_fwcfg_bzimage32:   Minnow MicrovmNoAcpi Tcg FwCfg BzImage32,   512, 1;
    minnow_q35_fwcfg_bzimage32:              Minnow Q35           Tcg FwCfg BzImage32,   512, 1;

    // minnow.rom: two CPUs (MADT, or the MP table without ACPI), RAM above 4 GiB.
    minnow_microvm_kernel_pvh_smp2:          Minnow Microvm       Tcg Kernel Pvh,        512, 2;
    minnow_microvm_noacpi_kernel_pvh_smp2:   Minnow MicrovmNoAcpi Tcg Kernel Pvh,        512, 2;
    minnow_microvm_noacpi_fwcfg_multiboot2_smp2: Minnow MicrovmNoAcpi Tcg FwCfg Multiboot2, 512, 2;
    minnow_pc_kernel_bzimage_smp2:           Minnow Pc            Tcg Kernel BzImage,    512, 2;
    minnow_q35_fwcfg_multiboot2_smp2:        Minnow Q35           Tcg FwCfg Multiboot2,  512, 2;
    minnow_pc_kernel_pvh_3584m:              Minnow Pc            Tcg Kernel Pvh,        3584, 1;
    minnow_q35_fwcfg_bzimage_3584m:          Minnow Q35           Tcg FwCfg BzImage,     3584, 1;
    // minnow.rom and the payloads with 1 GiB pages.
    minnow_microvm_kernel_bzimage_cpumax:    Minnow Microvm       Tcg Kernel BzImage,    512, 1, cpu = "max";
    minnow_pc_fwcfg_multiboot2_cpumax:       Minnow Pc            Tcg FwCfg Multiboot2,  512, 1, cpu = "max";

    // qboot.rom, the reference: QEMU's -kernel only.
    qboot_microvm_kernel_multiboot1:         Qboot Microvm        Tcg Kernel Multiboot1, 512, 1;
    qboot_microvm_kernel_multiboot2:         Qboot Microvm        Tcg Kernel Multiboot2, 512, 1;
    qboot_microvm_kernel_pvh:                Qboot Microvm        Tcg Kernel Pvh,        512, 1;
    qboot_microvm_kernel_bzimage:            Qboot Microvm        Tcg Kernel BzImage,    512, 1;
    qboot_microvm_noacpi_kernel_multiboot1:  Qboot MicrovmNoAcpi  Tcg Kernel Multiboot1, 512, 1;
    qboot_microvm_noacpi_kernel_pvh:         Qboot MicrovmNoAcpi  Tcg Kernel Pvh,        512, 1;
    qboot_microvm_noacpi_kernel_bzimage:     Qboot MicrovmNoAcpi  Tcg Kernel BzImage,    512, 1;
    qboot_pc_kernel_multiboot1:              Qboot Pc             Tcg Kernel Multiboot1, 512, 1;
    qboot_pc_kernel_pvh:                     Qboot Pc             Tcg Kernel Pvh,        512, 1;
    qboot_pc_kernel_bzimage:                 Qboot Pc             Tcg Kernel BzImage,    512, 1;
    qboot_q35_kernel_multiboot1:             Qboot Q35            Tcg Kernel Multiboot1, 512, 1;
    qboot_q35_kernel_pvh:                    Qboot Q35            Tcg Kernel Pvh,        512, 1;
    qboot_q35_kernel_bzimage:                Qboot Q35            Tcg Kernel BzImage,    512, 1;
    qboot_microvm_kernel_bzimage32:          Qboot Microvm        Tcg Kernel BzImage32,  512, 1;
    qboot_microvm_noacpi_kernel_pvh_smp2:    Qboot MicrovmNoAcpi  Tcg Kernel Pvh,        512, 2;
    qboot_pc_kernel_bzimage_smp2:            Qboot Pc             Tcg Kernel BzImage,    512, 2;
    qboot_q35_kernel_pvh_cpumax:             Qboot Q35            Tcg Kernel Pvh,        512, 1, cpu = "max";
    qboot_microvm_fwcfg_multiboot1:          Qboot Microvm        Tcg FwCfg Multiboot1,  512, 1;
    qboot_microvm_fwcfg_multiboot2:          Qboot Microvm        Tcg FwCfg Multiboot2,  512, 1;
    qboot_microvm_fwcfg_pvh:                 Qboot Microvm        Tcg FwCfg Pvh,         512, 1;
    qboot_microvm_fwcfg_bzimage:             Qboot Microvm        Tcg FwCfg BzImage,     512, 1;

    // KVM (on this machine an instruction emulator, ~2.5 M instructions/s): few rows.
    minnow_microvm_kernel_pvh_kvm:           Minnow Microvm       Kvm Kernel Pvh,        512, 1;
    minnow_microvm_fwcfg_multiboot2_kvm:     Minnow Microvm       Kvm FwCfg Multiboot2,  512, 1;
    minnow_microvm_noacpi_kernel_pvh_kvm:    Minnow MicrovmNoAcpi Kvm Kernel Pvh,        512, 2;
    minnow_microvm_noacpi_fwcfg_multiboot2_kvm: Minnow MicrovmNoAcpi Kvm FwCfg Multiboot2, 512, 1;
    minnow_microvm_kernel_bzimage_kvm:       Minnow Microvm       Kvm Kernel BzImage,    512, 1;
    qboot_microvm_kernel_pvh_kvm:            Qboot Microvm        Kvm Kernel Pvh,        512, 1;
}

#[test]
fn report_lines_parse_and_unescape() {
    let line = "MINNOW-PAYLOAD proto=pvh entry=32 cmdline=\"a \\x22b\\x22 c=d\\x09\\xc2\\xb5\" \
                initrd_len=5 result=pass";
    let f = parse(line);
    assert_eq!(f["proto"], "pvh");
    assert_eq!(unescape(&f["cmdline"]), "a \"b\" c=d\t\u{b5}".as_bytes());
    assert_eq!(f["initrd_len"], "5");
    assert_eq!(f["result"], "pass");
    assert_eq!(fnv1a32(b"foobar"), 0xBF9C_F968);
    assert_eq!(opt_value("a,b"), "a,,b");
}
