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
use minnow_tests::payload_check::{
    self, cmdline, initrd_bytes, not_supported, qboot_deviations, Deviation, Expected, Loader, Payload,
    Route, DEBUG_EXIT_DEVICE,
};
use minnow_tests::payload_report::PREFIX;
use minnow_tests::{
    payload_dir, report, require_file, require_kvm, require_qemu, rom_path, QemuRun, RunOutput, QBOOT_ROM,
    SEABIOS_MICROVM_ROM,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Machine {
    /// microvm with its default hardware-reduced ACPI.
    Microvm,
    MicrovmNoAcpi,
    Pc,
    Q35,
}

impl Machine {
    /// `option_roms`: SeaBIOS boots -kernel only through QEMU's option ROMs; minnow.rom and qboot
    /// load the kernel themselves (x-option-roms=off).
    fn qemu_arg(self, accel: Accel, option_roms: bool) -> String {
        let m = match (self, option_roms) {
            (Machine::Microvm, false) => "microvm,x-option-roms=off",
            (Machine::MicrovmNoAcpi, false) => "microvm,x-option-roms=off,acpi=off",
            (Machine::Microvm, true) => "microvm",
            (Machine::MicrovmNoAcpi, true) => "microvm,acpi=off",
            (Machine::Pc, _) => "pc",
            (Machine::Q35, _) => "q35",
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

#[derive(Clone, Copy, Debug)]
struct Row {
    firmware: Loader,
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

/// The initrd file (under the target directory, rewritten once per test process).
fn initrd() -> &'static PathBuf {
    static INITRD: OnceLock<PathBuf> = OnceLock::new();
    INITRD.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("payload-initrd.bin");
        // Write and rename, so a concurrent test process never sees half a file.
        let partial = dir.join(format!("payload-initrd.bin.{}", std::process::id()));
        std::fs::write(&partial, initrd_bytes())
            .and_then(|()| std::fs::rename(&partial, &path))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    })
}

fn check(row: &Row, out: &RunOutput, kernel: &Path, cmdline: &str, deviations: &[Deviation]) -> Vec<String> {
    let kernel_arg = kernel.display().to_string();
    let expected = Expected {
        loader: row.firmware,
        route: row.route,
        payload: row.payload,
        kernel_arg: &kernel_arg,
        cmdline,
        mem_mib: row.mem_mib,
        smp: row.smp,
        acpi_tables: row.machine.has_acpi().then(|| row.machine.acpi_tables()),
        // qemu64 (QEMU's default model) has no 1 GiB pages; `-cpu max` does.
        pages: Some(if row.cpu == Some("max") { "1g" } else { "2m" }),
        deviations,
    };
    let mut bad = payload_check::check(out.lines.iter().map(String::as_str), &expected);
    let status = expected.exit_status();
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
        Loader::MinnowRom => require_file(&rom_path(), "Minnow ROM", "cargo xtask firmware"),
        Loader::Qboot => require_file(
            QBOOT_ROM.as_ref(),
            "qboot ROM",
            "apt-get install qemu-system-data (comes with qemu-system-x86)",
        ),
        Loader::SeaBios => require_file(
            SEABIOS_MICROVM_ROM.as_ref(),
            "SeaBIOS microvm ROM",
            "apt-get install seabios",
        ),
        Loader::Direct => Err(format!(
            "{name}: QEMU rows run a firmware; direct boot is the VMM's"
        )),
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
    if let Some(reason) = not_supported(row.firmware, row.route, row.payload) {
        if !run_anyway {
            report(&format!("[payload] {name}: not supported: {reason}"));
            return;
        }
        report(&format!(
            "[payload] {name}: marked not supported ({reason}); running it anyway"
        ));
    }
    let initrd = initrd();
    for p in [&kernel, initrd] {
        assert!(
            !p.to_string_lossy().contains(','),
            "{name}: {} contains a comma, which QEMU's -initrd (multiboot module list) and -fw_cfg \
             options cannot carry",
            p.display()
        );
    }
    let cmdline = cmdline(name);
    let mut q = QemuRun::new(&row.machine.qemu_arg(row.accel, row.firmware == Loader::SeaBios))
        .bios(&rom)
        .memory(&format!("{}M", row.mem_mib))
        .smp(row.smp);
    if let Some(cpu) = row.cpu {
        q = q.arg("-cpu").arg(cpu);
    }
    q = q
        .arg("-device")
        .arg(DEBUG_EXIT_DEVICE)
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
    let deviations = qboot_deviations(row.firmware, row.machine == Machine::Q35);
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
                firmware: Loader::$fw,
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
    minnow_microvm_kernel_multiboot1:        MinnowRom Microvm       Tcg Kernel Multiboot1, 512, 1;
    minnow_microvm_kernel_multiboot2:        MinnowRom Microvm       Tcg Kernel Multiboot2, 512, 1;
    minnow_microvm_kernel_pvh:               MinnowRom Microvm       Tcg Kernel Pvh,        512, 1;
    minnow_microvm_kernel_bzimage:           MinnowRom Microvm       Tcg Kernel BzImage,    512, 1;
    minnow_microvm_noacpi_kernel_multiboot1: MinnowRom MicrovmNoAcpi Tcg Kernel Multiboot1, 512, 1;
    minnow_microvm_noacpi_kernel_pvh:        MinnowRom MicrovmNoAcpi Tcg Kernel Pvh,        512, 1;
    minnow_microvm_noacpi_kernel_bzimage:    MinnowRom MicrovmNoAcpi Tcg Kernel BzImage,    512, 1;
    minnow_pc_kernel_multiboot1:             MinnowRom Pc            Tcg Kernel Multiboot1, 512, 1;
    minnow_pc_kernel_pvh:                    MinnowRom Pc            Tcg Kernel Pvh,        512, 1;
    minnow_pc_kernel_bzimage:                MinnowRom Pc            Tcg Kernel BzImage,    512, 1;
    minnow_q35_kernel_multiboot1:            MinnowRom Q35           Tcg Kernel Multiboot1, 512, 1;
    minnow_q35_kernel_pvh:                   MinnowRom Q35           Tcg Kernel Pvh,        512, 1;
    minnow_q35_kernel_bzimage:               MinnowRom Q35           Tcg Kernel BzImage,    512, 1;
    minnow_microvm_kernel_bzimage32:         MinnowRom Microvm       Tcg Kernel BzImage32,  512, 1;
    minnow_pc_kernel_bzimage32:              MinnowRom Pc            Tcg Kernel BzImage32,  512, 1;

    // minnow.rom, opt/org.minnow/* (the firmware detects the format itself).
    minnow_microvm_fwcfg_multiboot1:         MinnowRom Microvm       Tcg FwCfg Multiboot1,  512, 1;
    minnow_microvm_fwcfg_multiboot2:         MinnowRom Microvm       Tcg FwCfg Multiboot2,  512, 1;
    minnow_microvm_fwcfg_pvh:                MinnowRom Microvm       Tcg FwCfg Pvh,         512, 1;
    minnow_microvm_fwcfg_bzimage:            MinnowRom Microvm       Tcg FwCfg BzImage,     512, 1;
    minnow_microvm_noacpi_fwcfg_multiboot1:  MinnowRom MicrovmNoAcpi Tcg FwCfg Multiboot1,  512, 1;
    minnow_microvm_noacpi_fwcfg_multiboot2:  MinnowRom MicrovmNoAcpi Tcg FwCfg Multiboot2,  512, 1;
    minnow_microvm_noacpi_fwcfg_pvh:         MinnowRom MicrovmNoAcpi Tcg FwCfg Pvh,         512, 1;
    minnow_microvm_noacpi_fwcfg_bzimage:     MinnowRom MicrovmNoAcpi Tcg FwCfg BzImage,     512, 1;
    minnow_pc_fwcfg_multiboot1:              MinnowRom Pc            Tcg FwCfg Multiboot1,  512, 1;
    minnow_pc_fwcfg_multiboot2:              MinnowRom Pc            Tcg FwCfg Multiboot2,  512, 1;
    minnow_pc_fwcfg_pvh:                     MinnowRom Pc            Tcg FwCfg Pvh,         512, 1;
    minnow_pc_fwcfg_bzimage:                 MinnowRom Pc            Tcg FwCfg BzImage,     512, 1;
    minnow_q35_fwcfg_multiboot1:             MinnowRom Q35           Tcg FwCfg Multiboot1,  512, 1;
    minnow_q35_fwcfg_multiboot2:             MinnowRom Q35           Tcg FwCfg Multiboot2,  512, 1;
    minnow_q35_fwcfg_pvh:                    MinnowRom Q35           Tcg FwCfg Pvh,         512, 1;
    minnow_q35_fwcfg_bzimage:                MinnowRom Q35           Tcg FwCfg BzImage,     512, 1;
    minnow_microvm_noacpi_fwcfg_bzimage32:   MinnowRom MicrovmNoAcpi Tcg FwCfg BzImage32,   512, 1;
    minnow_q35_fwcfg_bzimage32:              MinnowRom Q35           Tcg FwCfg BzImage32,   512, 1;

    // minnow.rom: two CPUs (MADT, or the MP table without ACPI), RAM above 4 GiB.
    minnow_microvm_kernel_pvh_smp2:          MinnowRom Microvm       Tcg Kernel Pvh,        512, 2;
    minnow_microvm_noacpi_kernel_pvh_smp2:   MinnowRom MicrovmNoAcpi Tcg Kernel Pvh,        512, 2;
    minnow_microvm_noacpi_fwcfg_multiboot2_smp2: MinnowRom MicrovmNoAcpi Tcg FwCfg Multiboot2, 512, 2;
    minnow_pc_kernel_bzimage_smp2:           MinnowRom Pc            Tcg Kernel BzImage,    512, 2;
    minnow_q35_fwcfg_multiboot2_smp2:        MinnowRom Q35           Tcg FwCfg Multiboot2,  512, 2;
    minnow_pc_kernel_pvh_3584m:              MinnowRom Pc            Tcg Kernel Pvh,        3584, 1;
    minnow_q35_fwcfg_bzimage_3584m:          MinnowRom Q35           Tcg FwCfg BzImage,     3584, 1;
    // minnow.rom and the payloads with 1 GiB pages.
    minnow_microvm_kernel_bzimage_cpumax:    MinnowRom Microvm       Tcg Kernel BzImage,    512, 1, cpu = "max";
    minnow_pc_fwcfg_multiboot2_cpumax:       MinnowRom Pc            Tcg FwCfg Multiboot2,  512, 1, cpu = "max";

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
    minnow_microvm_kernel_pvh_kvm:           MinnowRom Microvm       Kvm Kernel Pvh,        512, 1;
    minnow_microvm_fwcfg_multiboot2_kvm:     MinnowRom Microvm       Kvm FwCfg Multiboot2,  512, 1;
    minnow_microvm_noacpi_kernel_pvh_kvm:    MinnowRom MicrovmNoAcpi Kvm Kernel Pvh,        512, 2;
    minnow_microvm_noacpi_fwcfg_multiboot2_kvm: MinnowRom MicrovmNoAcpi Kvm FwCfg Multiboot2, 512, 1;
    minnow_microvm_kernel_bzimage_kvm:       MinnowRom Microvm       Kvm Kernel BzImage,    512, 1;
    qboot_microvm_kernel_pvh_kvm:            Qboot Microvm        Kvm Kernel Pvh,        512, 1;

    // SeaBIOS (bios-microvm.bin), the other reference: -kernel through QEMU's option ROMs.
    seabios_microvm_kernel_multiboot1:       SeaBios Microvm      Tcg Kernel Multiboot1, 512, 1;
    seabios_microvm_kernel_pvh:              SeaBios Microvm      Tcg Kernel Pvh,        512, 1;
    seabios_microvm_kernel_bzimage:          SeaBios Microvm      Tcg Kernel BzImage,    512, 1;
    seabios_microvm_kernel_bzimage32:        SeaBios Microvm      Tcg Kernel BzImage32,  512, 1;
    seabios_microvm_noacpi_kernel_pvh:       SeaBios MicrovmNoAcpi Tcg Kernel Pvh,       512, 2;
}

#[test]
fn option_values_escape_commas() {
    assert_eq!(opt_value("a,b"), "a,,b");
}
