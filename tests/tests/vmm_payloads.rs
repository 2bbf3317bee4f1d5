//! Minnow's VMM, used as a library the way an embedding application would, booting the boot
//! conformance payloads through minnow.rom (and qboot.rom, the reference) on this machine's
//! /dev/kvm, and checking what each payload reports.
//!
//! Needs /dev/kvm (fails, saying so, without it), the ROM (`cargo xtask firmware`) and the
//! payloads (`cargo xtask payloads`).
use minnow_tests::payload_report::{fnv1a32, parse, unescape, PREFIX};
use minnow_tests::{payload_dir, report, require_file, require_kvm, rom_path, QBOOT_ROM};
use minnow_vmm::config::{Bios, DebugExit, FwCfgFile, FwCfgSource, Machine, OnOffAuto};
use minnow_vmm::{Config, ExitReason};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// The payloads' isa-debug-exit: 0x10 is "pass", 0x11 "fail".
const EXIT: DebugExit = DebugExit {
    iobase: 0x501,
    iosize: 2,
};
const PASS: ExitReason = ExitReason::DebugExit(0x10);

fn temp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("vmm-{name}-{}", std::process::id()))
}

/// An initrd of `len` known bytes, and its checksum.
fn initrd(name: &str, len: usize) -> (PathBuf, u32) {
    let bytes: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let path = temp(&format!("{name}.initrd"));
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    (path, fnv1a32(&bytes))
}

fn base_config(name: &str, bios: Bios, cpus: u8) -> Config {
    require_kvm().unwrap_or_else(|e| panic!("{name}: {e}"));
    Config {
        memory: 256 << 20,
        cpus,
        machine: Machine {
            acpi: OnOffAuto::Off,
            ..Machine::default()
        },
        bios,
        serial: minnow_vmm::config::Serial::File(temp(&format!("{name}.serial"))),
        debug_exit: Some(EXIT),
        ..Config::default()
    }
}

fn minnow_rom() -> Bios {
    Bios::File(
        require_file(&rom_path(), "the Minnow ROM", "cargo xtask firmware").unwrap_or_else(|e| panic!("{e}")),
    )
}

fn payload(file: &str) -> PathBuf {
    require_file(
        &payload_dir().join(file),
        "a boot conformance payload",
        "cargo xtask payloads",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the VM and returns its exit reason and the payload's report fields.
fn boot(name: &str, config: &Config) -> (ExitReason, HashMap<String, String>, String) {
    let start = Instant::now();
    let reason = minnow_vmm::run(config).unwrap_or_else(|e| panic!("{name}: minnow: {e}"));
    let log_path = match &config.serial {
        minnow_vmm::config::Serial::File(p) => p.clone(),
        _ => unreachable!("the tests log to a file"),
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let line = log
        .lines()
        .find(|l| l.starts_with(PREFIX))
        .unwrap_or("")
        .to_string();
    report(&format!(
        "[vmm] {name}: {reason:?} in {:.2} s",
        start.elapsed().as_secs_f64()
    ));
    (reason, parse(&line), log)
}

/// Boots `kernel` with `-kernel` through minnow.rom and checks the report.
fn kernel_row(name: &str, file: &str, proto: &str, cpus: u8) {
    kernel_row_with(name, minnow_rom(), file, proto, cpus);
}

/// Boots `kernel` with `-kernel` and `bios` (`Bios::None`: direct boot) and checks the report;
/// returns its fields.
fn kernel_row_with(name: &str, bios: Bios, file: &str, proto: &str, cpus: u8) -> HashMap<String, String> {
    let (initrd, sum) = initrd(name, 64 * 1024);
    let cmdline = format!("minnow.test={name} a=\"b c\" ,;");
    let config = Config {
        kernel: Some(payload(file)),
        initrd: Some(initrd.clone()),
        append: Some(cmdline.clone()),
        ..base_config(name, bios, cpus)
    };
    let (reason, f, log) = boot(name, &config);
    let _ = std::fs::remove_file(initrd);
    assert_eq!(reason, PASS, "{name}: the payload did not pass\n{log}");
    assert_eq!(f.get("proto").map(String::as_str), Some(proto), "{log}");
    // QEMU puts the kernel's name in front of a multiboot command line, as GRUB does.
    let got = unescape(f.get("cmdline").map_or("", String::as_str));
    let want = if proto == "multiboot1" {
        format!("{} {cmdline}", payload(file).display())
    } else {
        cmdline
    };
    assert_eq!(String::from_utf8_lossy(&got), want, "{log}");
    assert_eq!(f.get("initrd_len").map(String::as_str), Some("65536"), "{log}");
    assert_eq!(f.get("initrd_sum"), Some(&format!("{sum:08x}")), "{log}");
    assert_eq!(f.get("mp_cpus"), Some(&cpus.to_string()), "{log}");
    let mem: u64 = f.get("mem_kb").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((200 * 1024..=256 * 1024).contains(&mem), "mem_kb={mem}\n{log}");
    f
}

/// `-initrd "file args,file2"` is a module list for a multiboot kernel, as in QEMU (Xen's dom0
/// kernel and initrd come this way); module 0 is the first file, whole.
#[test]
fn minnow_rom_multiboot1_takes_a_module_list() {
    let name = "minnow_rom_multiboot1_modules";
    let (first, sum) = initrd(name, 64 * 1024);
    let (second, _) = initrd(&format!("{name}_2"), 4096);
    let list = format!("{} console=hvc0 a=b,{}", first.display(), second.display());
    let config = Config {
        kernel: Some(payload("multiboot1.elf")),
        initrd: Some(PathBuf::from(list)),
        append: Some(format!("minnow.test={name}")),
        ..base_config(name, minnow_rom(), 1)
    };
    let (reason, f, log) = boot(name, &config);
    let _ = (std::fs::remove_file(first), std::fs::remove_file(second));
    assert_eq!(reason, PASS, "{log}");
    assert_eq!(f.get("initrd_len").map(String::as_str), Some("65536"), "{log}");
    assert_eq!(f.get("initrd_sum"), Some(&format!("{sum:08x}")), "{log}");
}

#[test]
fn minnow_rom_pvh() {
    kernel_row("minnow_rom_pvh", "pvh.elf", "pvh", 1);
}

#[test]
fn minnow_rom_pvh_smp2() {
    kernel_row("minnow_rom_pvh_smp2", "pvh.elf", "pvh", 2);
}

#[test]
fn minnow_rom_bzimage_64bit_entry() {
    kernel_row("minnow_rom_bzimage", "bzImage", "bzimage", 1);
}

#[test]
fn minnow_rom_bzimage_32bit_entry() {
    kernel_row("minnow_rom_bzimage32", "bzImage32", "bzimage", 2);
}

// Direct boot (`-bios none`): the VMM loads the kernel itself, with no firmware, and the payload
// must find what minnow.rom hands it.

#[test]
fn direct_pvh() {
    let f = kernel_row_with("direct_pvh", Bios::None, "pvh.elf", "pvh", 1);
    assert_eq!(f.get("entry").map(String::as_str), Some("32"));
}

/// An ELF32 PVH kernel: direct boot reads it with the same ELF reader as minnow.rom (linux-loader's
/// took only ELF64 and refused it with "Invalid program header size").
#[test]
fn direct_pvh_elf32() {
    let f = kernel_row_with("direct_pvh_elf32", Bios::None, "pvh32.elf", "pvh", 1);
    assert_eq!(f.get("entry").map(String::as_str), Some("32"));
}

#[test]
fn minnow_rom_pvh_elf32() {
    kernel_row("minnow_rom_pvh_elf32", "pvh32.elf", "pvh", 1);
}

#[test]
fn direct_pvh_smp2() {
    kernel_row_with("direct_pvh_smp2", Bios::None, "pvh.elf", "pvh", 2);
}

#[test]
fn direct_bzimage_64bit_entry() {
    let f = kernel_row_with("direct_bzimage", Bios::None, "bzImage", "bzimage", 1);
    assert_eq!(f.get("entry").map(String::as_str), Some("64"));
}

#[test]
fn direct_bzimage_64bit_entry_smp2() {
    kernel_row_with("direct_bzimage_smp2", Bios::None, "bzImage", "bzimage", 2);
}

#[test]
fn direct_bzimage_32bit_entry() {
    let f = kernel_row_with("direct_bzimage32", Bios::None, "bzImage32", "bzimage", 1);
    assert_eq!(f.get("entry").map(String::as_str), Some("32"));
}

/// The same payload and machine through minnow.rom and through direct boot, without and with
/// ACPI: the same memory map (the payload prints the whole map only when it finds a fault, so
/// its entry count and RAM total stand for it; with ACPI both reserve the tables' pages at the top
/// of RAM below 4 GiB), the same MP table CPU count without ACPI, the same tables and MADT CPU
/// count with it. No initrd: minnow.rom, given QEMU's initrd at the top of RAM, puts the tables
/// below it, where direct boot puts the initrd below the tables. Reports how long each boot took.
#[test]
fn direct_boot_and_minnow_rom_hand_over_the_same_memory_map() {
    for acpi in [OnOffAuto::Off, OnOffAuto::On] {
        for (file, memory) in [
            ("pvh.elf", 256u64 << 20),
            ("bzImage", 256 << 20),
            ("pvh.elf", 4608 << 20),
        ] {
            let acpi_name = if acpi == OnOffAuto::On { "acpi" } else { "noacpi" };
            let run = |bios: Bios, label: &str| {
                let name = format!(
                    "e820_{label}_{acpi_name}_{}_{}m",
                    file.replace('.', "_"),
                    memory >> 20
                );
                let config = Config {
                    memory,
                    kernel: Some(payload(file)),
                    machine: Machine {
                        acpi,
                        ..Machine::default()
                    },
                    ..base_config(&name, bios, 2)
                };
                let start = Instant::now();
                let (reason, f, log) = boot(&name, &config);
                let elapsed = start.elapsed();
                assert_eq!(reason, PASS, "{name}\n{log}");
                (f, elapsed)
            };
            let (firmware, t_rom) = run(minnow_rom(), "rom");
            let (direct, t_direct) = run(Bios::None, "direct");
            let keys = [
                "e820",
                "e820_entries",
                "mem_kb",
                "mp",
                "mp_cpus",
                "acpi",
                "acpi_tables",
                "madt_cpus",
            ];
            for key in keys {
                assert_eq!(
                    direct.get(key),
                    firmware.get(key),
                    "{file} -m {}M {acpi_name}: {key}",
                    memory >> 20
                );
            }
            let field = |k: &str| direct.get(k).map(String::as_str);
            match acpi {
                OnOffAuto::On => {
                    assert_eq!((field("acpi"), field("madt_cpus")), (Some("ok"), Some("2")));
                    assert_eq!(field("mp"), Some("none"));
                }
                _ => assert_eq!((field("acpi"), field("mp_cpus")), (Some("none"), Some("2"))),
            }
            report(&format!(
                "[vmm] {file} -m {}M {acpi_name}: minnow.rom boot {:.1} ms, direct boot {:.1} ms",
                memory >> 20,
                t_rom.as_secs_f64() * 1e3,
                t_direct.as_secs_f64() * 1e3
            ));
        }
    }
}

#[test]
fn minnow_rom_multiboot1() {
    kernel_row("minnow_rom_multiboot1", "multiboot1.elf", "multiboot1", 1);
}

#[test]
fn minnow_rom_multiboot2_from_fw_cfg() {
    let name = "minnow_rom_multiboot2";
    let file = |name: &str, source| FwCfgFile {
        name: name.into(),
        source,
    };
    let config = Config {
        fw_cfg: vec![
            file(
                "opt/org.minnow/kernel",
                FwCfgSource::File(payload("multiboot2.elf")),
            ),
            file(
                "opt/org.minnow/cmdline",
                FwCfgSource::String("mb2 from fw_cfg".into()),
            ),
        ],
        ..base_config(name, minnow_rom(), 1)
    };
    let (reason, f, log) = boot(name, &config);
    assert_eq!(reason, PASS, "{log}");
    assert_eq!(f.get("proto").map(String::as_str), Some("multiboot2"), "{log}");
    assert_eq!(
        f.get("cmdline").map(String::as_str),
        Some("opt/org.minnow/kernel mb2 from fw_cfg"),
        "{log}"
    );
}

/// The reference: QEMU's own qboot.rom under Minnow's VMM reports what it reports under QEMU,
/// including its known deviations (a zero-length last e820 entry, an MP table whose entry count
/// is 0), which the payload then fails on.
#[test]
fn qboot_rom_pvh() {
    let name = "qboot_rom_pvh";
    let qboot = require_file(
        QBOOT_ROM.as_ref(),
        "qboot.rom",
        "apt-get install qemu-system-data",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = Config {
        kernel: Some(payload("pvh.elf")),
        append: Some("reference".into()),
        ..base_config(name, Bios::File(qboot), 1)
    };
    let (reason, f, log) = boot(name, &config);
    assert_eq!(reason, ExitReason::DebugExit(0x11), "{log}");
    assert_eq!(f.get("cmdline").map(String::as_str), Some("reference"), "{log}");
    assert_eq!(
        f.get("e820").map(String::as_str),
        Some("bad:zero-length-entry"),
        "{log}"
    );
    assert_eq!(f.get("mp_cpus").map(String::as_str), Some("1"), "{log}");
}

#[test]
fn the_minnow_rom_error_line_reaches_the_serial_log() {
    let name = "no_kernel";
    let config = base_config(name, minnow_rom(), 1);
    let log_path = match &config.serial {
        minnow_vmm::config::Serial::File(p) => p.clone(),
        _ => unreachable!(),
    };
    // The firmware halts after its error line: stop the VM from outside once it is there.
    let exit = std::thread::spawn(move || {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains("minnow: no kernel")
            {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    });
    let vm = minnow_vmm::Vm::start(&config).unwrap_or_else(|e| panic!("{e}"));
    let stopper = vm.handle();
    let watcher = std::thread::spawn(move || {
        let seen = exit.join().unwrap_or(false);
        stopper.quit().expect("the VM was running");
        seen
    });
    let reason = vm.wait();
    assert!(
        watcher.join().unwrap_or(false),
        "no 'minnow: no kernel' line on COM1"
    );
    assert_eq!(reason, ExitReason::Quit);
}

#[test]
fn bad_input_is_one_error_naming_the_file() {
    let mut config = base_config("bad_input", minnow_rom(), 1);
    config.kernel = Some("/nonexistent/vmlinuz".into());
    let e = minnow_vmm::run(&config).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/vmlinuz"), "{e}");
    let junk = temp("junk.kernel");
    std::fs::write(&junk, [0x55u8; 4096]).unwrap_or_else(|e| panic!("{e}"));
    config.kernel = Some(junk.clone());
    let e = minnow_vmm::run(&config).unwrap_err().to_string();
    let _ = std::fs::remove_file(&junk);
    assert!(e.contains("neither a bzImage"), "{e}");
    config.kernel = Some(payload("pvh.elf"));
    config.memory = 32 << 20;
    let (big, _) = initrd("too_big", 40 << 20);
    config.initrd = Some(big.clone());
    let e = minnow_vmm::run(&config).unwrap_err().to_string();
    let _ = std::fs::remove_file(big);
    assert!(e.contains("initrd"), "{e}");
}

#[test]
fn direct_boot_errors_name_the_file() {
    let mut config = base_config("direct_bad_input", Bios::None, 1);
    config.kernel = Some(payload("multiboot1.elf"));
    let e = minnow_vmm::run(&config).unwrap_err().to_string();
    assert!(
        e.contains("multiboot1.elf: ELF kernel without a PVH entry note"),
        "{e}"
    );
    config.kernel = Some(payload("pvh.elf"));
    config.memory = 32 << 20;
    let (big, _) = initrd("direct_too_big", 40 << 20);
    config.initrd = Some(big.clone());
    let e = minnow_vmm::run(&config).unwrap_err().to_string();
    let _ = std::fs::remove_file(&big);
    assert!(
        e.contains(&format!("{}: initrd of 0x2800000 bytes", big.display())),
        "{e}"
    );
}

// ACPI (acpi=on, and auto, which is on as on QEMU's microvm): minnow.rom installs the tables the
// VMM serves by running its table-loader script, and writes no MP table; direct boot installs the
// same tables where minnow.rom would, and writes no MP table either.

/// Boots `file` through minnow.rom on `machine` and checks that the payload found the microvm's
/// ACPI tables (every checksum, from the RSDP down to the DSDT) and a MADT with every CPU.
fn acpi_row(name: &str, machine: Machine, file: &str, proto: &str, cpus: u8) {
    acpi_row_with(name, minnow_rom(), machine, file, proto, cpus);
}

/// [`acpi_row`] with `bios` (`Bios::None`: direct boot), and an initrd the tables must leave
/// whole (the payload also checks that no table is in e820 RAM).
fn acpi_row_with(name: &str, bios: Bios, machine: Machine, file: &str, proto: &str, cpus: u8) {
    let (initrd, sum) = initrd(name, 64 * 1024);
    let config = Config {
        kernel: Some(payload(file)),
        initrd: Some(initrd.clone()),
        append: Some(format!("minnow.test={name}")),
        machine,
        ..base_config(name, bios, cpus)
    };
    let (reason, f, log) = boot(name, &config);
    let _ = std::fs::remove_file(initrd);
    assert_eq!(reason, PASS, "{name}: the payload did not pass\n{log}");
    let field = |k: &str| f.get(k).map(String::as_str);
    assert_eq!(field("proto"), Some(proto), "{log}");
    assert_eq!(field("initrd_len"), Some("65536"), "{log}");
    assert_eq!(f.get("initrd_sum"), Some(&format!("{sum:08x}")), "{log}");
    assert_eq!(field("e820"), Some("ok"), "{log}");
    assert_eq!(field("acpi"), Some("ok"), "{log}");
    let tables: Vec<&str> = field("acpi_tables").unwrap_or("").split(',').collect();
    for want in ["FACP", "APIC", "DSDT"] {
        assert!(
            tables.contains(&want),
            "acpi_tables={tables:?} lacks {want}\n{log}"
        );
    }
    assert_eq!(field("madt_cpus"), Some(cpus.to_string().as_str()), "{log}");
    assert_eq!(
        field("mp"),
        Some("none"),
        "the firmware writes no MP table with ACPI\n{log}"
    );
    assert_eq!(field("result"), Some("pass"), "{log}");
}

fn acpi_on() -> Machine {
    Machine {
        acpi: OnOffAuto::On,
        ..Machine::default()
    }
}

#[test]
fn minnow_rom_acpi_pvh() {
    acpi_row("minnow_rom_acpi_pvh", acpi_on(), "pvh.elf", "pvh", 1);
}

#[test]
fn minnow_rom_acpi_pvh_smp2() {
    acpi_row("minnow_rom_acpi_pvh_smp2", acpi_on(), "pvh.elf", "pvh", 2);
}

#[test]
fn minnow_rom_acpi_bzimage() {
    acpi_row("minnow_rom_acpi_bzimage", acpi_on(), "bzImage", "bzimage", 1);
}

#[test]
fn minnow_rom_acpi_bzimage_smp2() {
    acpi_row("minnow_rom_acpi_bzimage_smp2", acpi_on(), "bzImage", "bzimage", 2);
}

/// `acpi=auto` (the default) is on, as on QEMU's microvm.
#[test]
fn minnow_rom_acpi_auto_pvh_smp2() {
    acpi_row(
        "minnow_rom_acpi_auto_pvh_smp2",
        Machine::default(),
        "pvh.elf",
        "pvh",
        2,
    );
}

/// Without the RTC the tables say so (FADT IAPC_BOOT_ARCH bit 5) and have no PNP0B00 device.
#[test]
fn minnow_rom_acpi_rtc_off_bzimage() {
    let machine = Machine {
        rtc: OnOffAuto::Off,
        ..acpi_on()
    };
    acpi_row(
        "minnow_rom_acpi_rtc_off_bzimage",
        machine,
        "bzImage",
        "bzimage",
        1,
    );
}

#[test]
fn direct_acpi_pvh() {
    acpi_row_with("direct_acpi_pvh", Bios::None, acpi_on(), "pvh.elf", "pvh", 1);
}

#[test]
fn direct_acpi_pvh_smp2() {
    acpi_row_with("direct_acpi_pvh_smp2", Bios::None, acpi_on(), "pvh.elf", "pvh", 2);
}

#[test]
fn direct_acpi_bzimage() {
    acpi_row_with(
        "direct_acpi_bzimage",
        Bios::None,
        acpi_on(),
        "bzImage",
        "bzimage",
        1,
    );
}

#[test]
fn direct_acpi_bzimage_smp2() {
    acpi_row_with(
        "direct_acpi_bzimage_smp2",
        Bios::None,
        acpi_on(),
        "bzImage",
        "bzimage",
        2,
    );
}

/// `acpi=auto` is on for direct boot too, as with a firmware.
#[test]
fn direct_acpi_auto_bzimage_smp2() {
    acpi_row_with(
        "direct_acpi_auto_bzimage_smp2",
        Bios::None,
        Machine::default(),
        "bzImage",
        "bzimage",
        2,
    );
}

/// qboot.rom runs the same table-loader script and installs the same tables (it also writes its
/// MP table and its odd e820 map with ACPI, as under QEMU, so the payload fails on those).
#[test]
fn qboot_rom_acpi_pvh_smp2() {
    let name = "qboot_rom_acpi_pvh_smp2";
    let qboot = require_file(
        QBOOT_ROM.as_ref(),
        "qboot.rom",
        "apt-get install qemu-system-data",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = Config {
        kernel: Some(payload("pvh.elf")),
        machine: acpi_on(),
        ..base_config(name, Bios::File(qboot), 2)
    };
    let (reason, f, log) = boot(name, &config);
    assert_eq!(reason, ExitReason::DebugExit(0x11), "{log}");
    let field = |k: &str| f.get(k).map(String::as_str);
    assert_eq!(field("acpi"), Some("ok"), "{log}");
    assert_eq!(field("madt_cpus"), Some("2"), "{log}");
    let tables: Vec<&str> = field("acpi_tables").unwrap_or("").split(',').collect();
    for want in ["FACP", "APIC", "DSDT"] {
        assert!(
            tables.contains(&want),
            "acpi_tables={tables:?} lacks {want}\n{log}"
        );
    }
    assert_eq!(field("e820"), Some("bad:zero-length-entry"), "{log}");
}

/// `pic=off`: KVM runs only the local APICs and Minnow the I/O APICs (two, with ACPI, as on
/// QEMU's microvm), and the MADT says so: two I/O APICs, no PCAT_COMPAT. The default machine
/// has KVM's PICs and one I/O APIC. Through minnow.rom and direct boot alike.
#[test]
fn pic_off_describes_the_split_irqchip() {
    for (pic, acpi, bios, label) in [
        (OnOffAuto::Off, OnOffAuto::On, minnow_rom(), "rom"),
        (OnOffAuto::Off, OnOffAuto::On, Bios::None, "direct"),
        (OnOffAuto::Auto, OnOffAuto::On, Bios::None, "default"),
    ] {
        let name = format!("pic_{pic:?}_{label}");
        let config = Config {
            kernel: Some(payload("pvh.elf")),
            machine: Machine {
                pic,
                acpi,
                ..Machine::default()
            },
            ..base_config(&name, bios, 2)
        };
        let (reason, f, log) = boot(&name, &config);
        assert_eq!(reason, PASS, "{name}\n{log}");
        let field = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        let want = match pic {
            OnOffAuto::Off => ("2", "0", "2"),
            _ => ("1", "1", "2"),
        };
        assert_eq!(
            (field("madt_ioapics"), field("pcat"), field("madt_cpus")),
            want,
            "{name}\n{log}"
        );
    }
}

/// SeaBIOS's microvm build boots `-kernel` only through QEMU's option ROMs
/// (`x-option-roms=on`, the default), which minnow serves from QEMU's data directory as QEMU
/// does: a PVH ELF through pvh.bin, a bzImage through linuxboot_dma.bin. Checked by the rules
/// of the QEMU matrix, where SeaBIOS is a reference.
#[test]
fn seabios_boots_kernels_through_qemus_option_roms() {
    use minnow_tests::payload_check::{self, initrd_bytes, Expected, Loader, Payload, Route};
    let rom = require_file(
        minnow_tests::SEABIOS_MICROVM_ROM.as_ref(),
        "SeaBIOS microvm ROM",
        "apt-get install seabios",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let initrd = temp("seabios.initrd");
    std::fs::write(&initrd, initrd_bytes()).expect("writing the initrd");
    for payload in [Payload::Pvh, Payload::BzImage] {
        let name = format!("seabios_{}", payload.proto());
        let cmdline = payload_check::cmdline(&name);
        let config = Config {
            kernel: Some(self::payload(payload.file())),
            initrd: Some(initrd.clone()),
            append: Some(cmdline.clone()),
            machine: Machine::default(),
            ..base_config(&name, Bios::File(rom.clone()), 1)
        };
        let (reason, _, log) = boot(&name, &config);
        let kernel_arg = self::payload(payload.file()).display().to_string();
        let expected = Expected {
            loader: Loader::SeaBios,
            route: Route::Kernel,
            payload,
            kernel_arg: &kernel_arg,
            cmdline: &cmdline,
            mem_mib: 256,
            smp: 1,
            acpi_tables: Some(&["FACP", "APIC", "DSDT"]),
            pages: None,
            deviations: &[],
        };
        let bad = payload_check::check(log.lines(), &expected);
        assert!(bad.is_empty(), "{name}: {bad:?}\n{log}");
        assert_eq!(reason, PASS, "{name}\n{log}");
    }
    let _ = std::fs::remove_file(initrd);
}

/// Unless asked (`firmware_milestones`, which `-boot-timeline` sets), minnow.rom writes no
/// milestone: the timeline has no firmware phases, but the payload's "boot done" (0x3f0 <- 123,
/// Firecracker's convention) still arrives.
#[test]
fn the_firmware_reports_milestones_only_when_asked() {
    use minnow_vmm::timeline::{Event, ExitKind};
    let name = "quiet_firmware";
    let config = Config {
        kernel: Some(payload("pvh.elf")),
        ..base_config(name, minnow_rom(), 1)
    };
    let timeline = std::sync::Arc::new(minnow_vmm::Timeline::new(Instant::now()));
    let reason = minnow_vmm::run_with_timeline(&config, &timeline).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reason, PASS);
    let phases = timeline.phases();
    let events: Vec<Event> = phases.iter().map(|p| p.event).collect();
    let text = minnow_vmm::timeline::text(&phases);
    assert!(!events.contains(&Event::FirmwareStart), "{text}");
    assert!(!events.contains(&Event::FirmwareHandoff), "{text}");
    assert!(events.contains(&Event::BootDone), "{text}");
    let milestone_exits: u64 = phases
        .iter()
        .flat_map(|p| p.exits.iter())
        .filter(|(k, _)| *k == ExitKind::PioMilestone)
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(milestone_exits, 1, "only the payload's boot-done write: {text}");
}

/// The boot timeline of a firmware boot: every phase in order, the firmware's fw_cfg exits in
/// the phase that ends at its handoff, and the payload's "boot done" write before the exit.
#[test]
fn the_boot_timeline_has_every_phase_in_order() {
    use minnow_vmm::timeline::{Event, ExitKind};
    let name = "timeline";
    let config = Config {
        kernel: Some(payload("pvh.elf")),
        firmware_milestones: true,
        ..base_config(name, minnow_rom(), 1)
    };
    let timeline = std::sync::Arc::new(minnow_vmm::Timeline::new(Instant::now()));
    let reason = minnow_vmm::run_with_timeline(&config, &timeline).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reason, PASS);
    let phases = timeline.phases();
    let events: Vec<Event> = phases.iter().map(|p| p.event).collect();
    assert_eq!(
        events,
        [
            Event::Exec,
            Event::VmCreated,
            Event::FirstInstruction,
            Event::FirmwareStart,
            Event::FirmwareHandoff,
            Event::FirstSerialByte,
            Event::BootDone,
            Event::Exit
        ],
        "{}",
        minnow_vmm::timeline::text(&phases)
    );
    let handoff = &phases[4];
    let fw_cfg = handoff.exits.iter().find(|(k, _)| *k == ExitKind::PioFwCfg);
    assert!(
        fw_cfg.is_some_and(|(_, n)| *n >= 5),
        "{}",
        minnow_vmm::timeline::text(&phases)
    );
    report(&format!("[vmm] {}", minnow_vmm::timeline::text(&phases)));
}
