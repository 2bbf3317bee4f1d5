//! Systems nobody here wrote, from Debian's packages (`cargo xtask third-party`), through
//! minnow.rom on QEMU (TCG), checked by what they print on the serial console:
//!
//! - memtest86+ 6.10, its x64 and ia32 builds (Linux boot protocol 2.12 images): on `pc` it must
//!   find all of RAM and test past the first 4 MiB window up to RAM's end, as under SeaBIOS. On
//!   `microvm` it finds all of RAM and starts test #0, but its screen stops updating there, under
//!   qboot and SeaBIOS too: memtest times itself with the ACPI PM timer or PIT channel 2 gated
//!   through port 0x61, and QEMU's microvm (under TCG) has neither. minnow's microvm has KVM's
//!   PIT with port 0x61's gate: there memtest runs every test (`cargo xtask nested-test memtest`).
//! - iPXE's `ipxe.lkrn` (protocol 2.07, no 32-bit entry: it runs only on BIOS services): refused
//!   in one line that says so.
//! - Xen 4.17 with Debian's generic kernel as dom0 and the test guest's initramfs, on `pc`: as
//!   multiboot 1 through QEMU's `-kernel`, and as multiboot 2 through Minnow's fw_cfg files with
//!   two modules. dom0's /init reports `hypervisor=xen` and powers the machine off through Xen.
//!   `smap=0` works around QEMU TCG's SMAP emulation, which faults Xen's dom0 builder under
//!   SeaBIOS too; on KVM it is not needed.
use minnow_tests::{guest_dir, report, require_file, require_qemu, rom_path, third_party_file, QemuRun};
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

/// What one memtest run through minnow.rom must show: `marker` (the window test #0 must reach)
/// seen, memtest's RAM size `memory`, test #0 started, and no `minnow:` error line.
struct MemtestRow {
    machine: &'static str,
    marker: &'static str,
    memory: &'static str,
    /// What reaching the marker proves, for the failure message.
    reached: &'static str,
}

/// pc: all 511 MiB found (as SeaBIOS shows them), and test #0 reaches the window that ends at
/// the top of RAM.
const PC: MemtestRow = MemtestRow {
    machine: "pc,accel=tcg",
    marker: "*[507MB of 511MB]",
    memory: "Memory : 511MB",
    reached: "test #0 never reached the end of RAM",
};

/// microvm: all of RAM found and test #0 started on its first window (see the module comment).
const MICROVM: MemtestRow = MemtestRow {
    machine: "microvm,x-option-roms=off,accel=tcg",
    marker: "*[4MB of 511MB]",
    memory: "Memory : 512MB",
    reached: "test #0 never started on the first window",
};

fn memtest_through_minnow_rom(row: &MemtestRow, build: &str) {
    let rom = rom();
    let out = memtest(row.machine, build, Some(&rom), row.marker);
    let tail = out.tail(30);
    assert!(out.marker_seen(), "{build}: {}\n{tail}", row.reached);
    assert!(has(&out, row.memory), "{build}: RAM size\n{tail}");
    assert!(has(&out, "#0 [Address test"), "{tail}");
    assert!(!has(&out, "minnow:"), "{tail}");
    report(&format!(
        "[third-party] {build} on {} through minnow.rom: {} after {:.1} s",
        row.machine,
        row.marker.trim_start_matches('*'),
        out.marker_at.unwrap_or_default().as_secs_f64()
    ));
}

#[test]
fn memtest_x64_pc() {
    memtest_through_minnow_rom(&PC, "memtest86+x64.bin");
}

#[test]
fn memtest_ia32_pc() {
    memtest_through_minnow_rom(&PC, "memtest86+ia32.bin");
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
    assert!(line.contains(PC.memory), "SeaBIOS: {line}\n{}", out.tail(20));
}

#[test]
fn memtest_x64_microvm() {
    memtest_through_minnow_rom(&MICROVM, "memtest86+x64.bin");
}

#[test]
fn memtest_ia32_microvm() {
    memtest_through_minnow_rom(&MICROVM, "memtest86+ia32.bin");
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

/// Xen's own command line; its first option must survive (Xen drops the first word of a command
/// line from a loader other than GRUB 2, which must be the image name).
const XEN_CMDLINE: &str = "console=com1 com1=115200 smap=0 dom0_mem=512M";
const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen minnow.test=dom0";

fn initramfs() -> std::path::PathBuf {
    let dir = guest_dir().unwrap_or_else(|e| panic!("{e}"));
    require_file(
        &dir.join("initramfs.cpio"),
        "test guest initramfs",
        "cargo xtask guest",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Boots `run` to dom0's /init and checks what Xen and dom0 report.
fn xen_reaches_dom0_userspace(what: &str, run: QemuRun) {
    let out = run
        .memory("1G")
        .marker("MINNOW-INIT done")
        .grace(Duration::from_secs(20))
        .timeout(Duration::from_secs(300))
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    let tail = out.tail(30);
    assert!(out.marker_seen(), "{what}: dom0 never finished /init\n{tail}");
    assert!(
        has(&out, &format!("(XEN) Command line: {XEN_CMDLINE}")),
        "{what}: Xen's command line\n{tail}"
    );
    assert_eq!(
        out.value("MINNOW-INIT hypervisor="),
        Some("xen"),
        "{what}\n{tail}"
    );
    assert_eq!(
        out.value("MINNOW-INIT cmdline="),
        Some(DOM0_CMDLINE),
        "{what}\n{tail}"
    );
    assert!(!has(&out, "minnow:"), "{tail}");
    // dom0's power-off goes through Xen to ACPI S5: QEMU exits by itself.
    assert_eq!(out.exit_code(), Some(0), "{what}: QEMU did not power off\n{tail}");
    report(&format!(
        "[third-party] {what}: dom0 userspace at {:.1} s",
        out.marker_at.unwrap_or_default().as_secs_f64()
    ));
}

/// QEMU's multiboot loader; `-initrd` lists the modules, each "file args".
fn xen_multiboot1(bios: Option<&std::path::Path>) -> QemuRun {
    let modules = format!(
        "{} {DOM0_CMDLINE},{}",
        file("dom0-vmlinuz").display(),
        initramfs().display()
    );
    let run = QemuRun::new("pc,accel=tcg")
        .arg("-cpu")
        .arg("max")
        .kernel(file("xen-4.17-amd64"))
        .append(XEN_CMDLINE)
        .initrd(modules);
    match bios {
        Some(b) => run.bios(b),
        None => run,
    }
}

#[test]
fn xen_multiboot1_pc() {
    xen_reaches_dom0_userspace("Xen multiboot1 through minnow.rom", xen_multiboot1(Some(&rom())));
}

/// The reference the issue measured: the same boot under SeaBIOS.
#[test]
fn xen_multiboot1_pc_under_seabios() {
    require_qemu().unwrap_or_else(|e| panic!("{e}"));
    xen_reaches_dom0_userspace("Xen multiboot1 through SeaBIOS", xen_multiboot1(None));
}

/// Minnow's fw_cfg route: Xen is detected as multiboot 2 (its first header), the dom0 kernel and
/// initrd are modules 0 and 1, the first with its command line.
#[test]
fn xen_multiboot2_fw_cfg_pc() {
    let rom = rom();
    let fw_cfg = [
        format!(
            "name=opt/org.minnow/kernel,file={}",
            file("xen-4.17-amd64").display()
        ),
        format!("name=opt/org.minnow/cmdline,string={XEN_CMDLINE}"),
        format!(
            "name=opt/org.minnow/module/0,file={}",
            file("dom0-vmlinuz").display()
        ),
        format!("name=opt/org.minnow/module/0/cmdline,string={DOM0_CMDLINE}"),
        format!("name=opt/org.minnow/module/1,file={}", initramfs().display()),
    ];
    let mut run = QemuRun::new("pc,accel=tcg").arg("-cpu").arg("max").bios(&rom);
    for f in &fw_cfg {
        run = run.arg("-fw_cfg").arg(f);
    }
    xen_reaches_dom0_userspace("Xen multiboot2 from fw_cfg through minnow.rom", run);
}
