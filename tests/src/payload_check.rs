//! What a boot conformance payload must report for a given loader, machine and input: the one
//! set of rules the QEMU matrix (tests/payloads_qemu.rs) and the nested real-KVM matrix
//! (`cargo xtask nested-test`) both check against.
use crate::payload_report::{fnv1a32, parse, unescape, PREFIX};
use std::collections::HashMap;

/// The isa-debug-exit port the payloads write to, and the exit statuses QEMU and Minnow turn
/// their 0x10 (pass) and 0x11 (fail) into: `(value << 1) | 1`.
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0x501,iosize=2";
pub const EXIT_PASS: i32 = 33;
pub const EXIT_FAIL: i32 = 35;
/// The initrd every row passes: this many bytes of [`initrd_bytes`].
pub const INITRD_LEN: usize = 100 * 1024;

/// Who loads the payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loader {
    MinnowRom,
    Qboot,
    /// SeaBIOS's microvm build (Debian's seabios package), booting -kernel through QEMU's
    /// option ROMs (linuxboot_dma.bin, pvh.bin, multiboot_dma.bin).
    SeaBios,
    /// The VMM itself (`-bios none`).
    Direct,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Payload {
    Multiboot1,
    Multiboot2,
    Pvh,
    BzImage,
    /// The bzImage without XLF_KERNEL_64: entered at its 32-bit entry.
    BzImage32,
}

impl Payload {
    pub const ALL: [Payload; 5] = [
        Payload::Multiboot1,
        Payload::Multiboot2,
        Payload::Pvh,
        Payload::BzImage,
        Payload::BzImage32,
    ];

    /// The file `cargo xtask payloads` writes.
    pub fn file(self) -> &'static str {
        match self {
            Payload::Multiboot1 => "multiboot1.elf",
            Payload::Multiboot2 => "multiboot2.elf",
            Payload::Pvh => "pvh.elf",
            Payload::BzImage => "bzImage",
            Payload::BzImage32 => "bzImage32",
        }
    }

    pub fn proto(self) -> &'static str {
        match self {
            Payload::Multiboot1 => "multiboot1",
            Payload::Multiboot2 => "multiboot2",
            Payload::Pvh => "pvh",
            Payload::BzImage | Payload::BzImage32 => "bzimage",
        }
    }
}

/// How the payload reaches the loader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Route {
    /// -kernel, -initrd, -append.
    Kernel,
    /// -fw_cfg opt/org.minnow/kernel, .../initrd, .../cmdline.
    FwCfg,
}

/// Combinations that cannot work, with the reason.
pub fn not_supported(loader: Loader, route: Route, payload: Payload) -> Option<&'static str> {
    match (loader, route, payload) {
        (Loader::Qboot, Route::FwCfg, _) => {
            Some("qboot does not read opt/org.minnow/kernel: raw kernels in fw_cfg files are Minnow's route")
        }
        (Loader::SeaBios, Route::FwCfg, _) => Some(
            "SeaBIOS does not read opt/org.minnow/kernel: raw kernels in fw_cfg files are Minnow's route",
        ),
        (Loader::Direct, Route::FwCfg, _) => {
            Some("direct boot has no firmware to read opt/org.minnow/kernel; it takes -kernel")
        }
        (Loader::Direct, _, Payload::Multiboot1 | Payload::Multiboot2) => Some(
            "direct boot (-bios none) loads the Linux protocols, bzImage and PVH ELF; \
             multiboot kernels boot through a firmware",
        ),
        (_, Route::Kernel, Payload::Multiboot2) => Some(
            "-kernel cannot load a multiboot 2 kernel (QEMU knows multiboot 1, PVH ELF and bzImage); \
             Minnow boots them from opt/org.minnow/kernel",
        ),
        _ => None,
    }
}

/// A field of the report line and the value qboot.rom (QEMU 7.2's build) is known to give
/// instead of a passing one, with why. In the payload's check order: the first is the result.
pub struct Deviation {
    pub key: &'static str,
    pub value: &'static str,
    pub why: &'static str,
}

/// qboot's known departures; `q35` because its e820 fault differs there.
pub fn qboot_deviations(loader: Loader, q35: bool) -> Vec<Deviation> {
    if loader != Loader::Qboot {
        return Vec::new();
    }
    let e820 = if q35 {
        Deviation {
            key: "e820",
            value: "bad:unsorted",
            why: "qboot lists its own reservations before QEMU's RAM entries",
        }
    } else {
        Deviation {
            key: "e820",
            value: "bad:zero-length-entry",
            why: "qboot's map ends with an empty entry of type 0 (and is out of order)",
        }
    };
    let mp = Deviation {
        key: "mp",
        value: "bad:entry-count:PCMP",
        why: "qboot writes an MP table (even with ACPI) but leaves its entry count 0; \
              Linux walks it by length and does not notice",
    };
    vec![e820, mp]
}

/// The initrd's bytes: a fixed pattern, so its checksum is known.
pub fn initrd_bytes() -> Vec<u8> {
    (0..INITRD_LEN as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ (i as u8))
        .collect()
}

/// A command line with repeated spaces, quotes, punctuation, a tab and UTF-8: the payload must
/// report every byte.
pub fn cmdline(name: &str) -> String {
    format!("minnow.test={name}  \"double\" 'single' a,b;c=d/e\\f ~!@#$%^&*()[]{{}}<>?|\tmu=\u{b5} end")
}

/// Everything the report must match.
pub struct Expected<'a> {
    pub loader: Loader,
    pub route: Route,
    pub payload: Payload,
    /// The kernel's path as the loader was given it: multiboot 1 via -kernel puts it in front
    /// of the command line, as GRUB does.
    pub kernel_arg: &'a str,
    pub cmdline: &'a str,
    pub mem_mib: u64,
    pub smp: u32,
    /// The ACPI tables the machine must have (the payload may find more); None: no ACPI.
    pub acpi_tables: Option<&'a [&'a str]>,
    /// "1g" or "2m": the page size the loader's or payload's page tables used, when the CPU
    /// model fixes it.
    pub pages: Option<&'a str>,
    pub deviations: &'a [Deviation],
}

impl Expected<'_> {
    /// The exit status the VMM must end with: pass, or fail when qboot deviates as known.
    pub fn exit_status(&self) -> i32 {
        if self.deviations.is_empty() {
            EXIT_PASS
        } else {
            EXIT_FAIL
        }
    }

    fn entry(&self) -> &'static str {
        match (self.payload, self.loader) {
            // qboot and SeaBIOS's linuxboot ROM enter a bzImage at its real-mode setup code,
            // which takes the 32-bit entry.
            (Payload::BzImage | Payload::BzImage32, Loader::Qboot | Loader::SeaBios) => "16",
            (Payload::BzImage, _) => "64",
            _ => "32",
        }
    }
}

/// Checks one field; on a mismatch records what was expected.
fn expect(bad: &mut Vec<String>, f: &HashMap<String, String>, key: &str, want: &str) {
    match f.get(key) {
        Some(v) if v == want => {}
        Some(v) => bad.push(format!("{key}={v}, expected {want}")),
        None => bad.push(format!("no {key}= field")),
    }
}

/// Checks the serial output against `e`; returns what is wrong (empty: all good). The exit
/// status is the caller's to compare with [`Expected::exit_status`].
pub fn check<'l>(lines: impl IntoIterator<Item = &'l str>, e: &Expected) -> Vec<String> {
    let mut bad = Vec::new();
    // Firmware may leave text in front of it on the same line ("Booting from ROM..").
    let reports: Vec<&str> = lines
        .into_iter()
        .filter_map(|l| l.find(PREFIX).map(|i| &l[i..]))
        .collect();
    let line = match reports.as_slice() {
        [one] => *one,
        [] => return vec!["no MINNOW-PAYLOAD line".into()],
        [first, ..] => {
            bad.push(format!("{} MINNOW-PAYLOAD lines, expected one", reports.len()));
            *first
        }
    };
    let f = parse(line);
    let deviation = |key: &str| e.deviations.iter().find(|d| d.key == key).map(|d| d.value);

    expect(&mut bad, &f, "proto", e.payload.proto());
    expect(&mut bad, &f, "entry", e.entry());
    for key in ["mode", "magic", "load"] {
        expect(&mut bad, &f, key, "ok");
    }
    check_cmdline(&mut bad, &f, e);
    let sum = fnv1a32(&initrd_bytes());
    expect(&mut bad, &f, "initrd_len", &INITRD_LEN.to_string());
    expect(&mut bad, &f, "initrd_sum", &format!("{sum:08x}"));

    let mem_kib = e.mem_mib * 1024;
    match f.get("mem_kb").and_then(|v| v.parse::<u64>().ok()) {
        Some(kb) if kb * 4 >= mem_kib * 3 && kb <= mem_kib => {}
        Some(kb) => bad.push(format!("mem_kb={kb}: expected 75%..100% of -m = {mem_kib} KiB")),
        None => bad.push("no numeric mem_kb= field".into()),
    }
    expect(&mut bad, &f, "e820", deviation("e820").unwrap_or("ok"));
    check_tables(&mut bad, &f, e, deviation("mp"));
    if let Some(pages) = e.pages {
        expect(&mut bad, &f, "pages", pages);
    }
    let result = match e.deviations.first() {
        None => "pass".to_string(),
        Some(d) => format!("fail:{}", d.value.strip_prefix("bad:").unwrap_or(d.value)),
    };
    expect(&mut bad, &f, "result", &result);
    bad
}

fn check_cmdline(bad: &mut Vec<String>, f: &HashMap<String, String>, e: &Expected) {
    let want = match (e.route, e.payload) {
        (Route::Kernel, Payload::Multiboot1) => format!("{} {}", e.kernel_arg, e.cmdline),
        // minnow.rom puts the image's name first for multiboot kernels, as QEMU does.
        (Route::FwCfg, Payload::Multiboot1 | Payload::Multiboot2) => {
            format!("opt/org.minnow/kernel {}", e.cmdline)
        }
        _ => e.cmdline.to_string(),
    };
    match f.get("cmdline") {
        Some(c) if unescape(c) == want.as_bytes() => {}
        Some(c) => bad.push(format!(
            "cmdline {:?}, expected {want:?}",
            String::from_utf8_lossy(&unescape(c))
        )),
        None => bad.push("no cmdline= field".into()),
    }
}

/// ACPI tables and MADT CPUs with ACPI; the MP table without (Minnow writes one only then).
fn check_tables(bad: &mut Vec<String>, f: &HashMap<String, String>, e: &Expected, mp: Option<&str>) {
    let smp = e.smp.to_string();
    match e.acpi_tables {
        Some(want) => {
            expect(bad, f, "acpi", "ok");
            let tables: Vec<&str> = f.get("acpi_tables").map_or(vec![], |t| t.split(',').collect());
            for t in want {
                if !tables.contains(t) {
                    bad.push(format!("acpi_tables={tables:?} lacks {t}"));
                }
            }
            expect(bad, f, "madt_cpus", &smp);
        }
        None => {
            expect(bad, f, "acpi", "none");
            expect(bad, f, "acpi_tables", "none");
        }
    }
    match (mp, e.acpi_tables.is_some()) {
        (Some(d), _) => {
            expect(bad, f, "mp", d);
            expect(bad, f, "mp_cpus", &smp);
        }
        // SeaBIOS always writes one, and counts only the CPUs that answered its startup IPI in
        // time (microvm gives it no CMOS CPU count to wait for), so its count is not checked.
        (None, _) if e.loader == Loader::SeaBios => expect(bad, f, "mp", "ok"),
        (None, true) => expect(bad, f, "mp", "none"),
        (None, false) => {
            expect(bad, f, "mp", "ok");
            expect(bad, f, "mp_cpus", &smp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected<'a>(cmdline: &'a str, acpi: Option<&'a [&'a str]>) -> Expected<'a> {
        Expected {
            loader: Loader::MinnowRom,
            route: Route::Kernel,
            payload: Payload::Pvh,
            kernel_arg: "/k",
            cmdline,
            mem_mib: 256,
            smp: 2,
            acpi_tables: acpi,
            pages: None,
            deviations: &[],
        }
    }

    fn report(cmdline: &str, extra: &str) -> String {
        let sum = fnv1a32(&initrd_bytes());
        format!(
            "{PREFIX}proto=pvh entry=32 mode=ok magic=ok load=ok cmdline=\"{cmdline}\" \
             initrd_len={INITRD_LEN} initrd_sum={sum:08x} mem_kb=250000 e820=ok {extra} result=pass"
        )
    }

    #[test]
    fn a_matching_report_passes_and_each_fault_is_named() {
        let tables: &[&str] = &["FACP", "APIC"];
        let good = report("x", "acpi=ok acpi_tables=FACP,DSDT,APIC madt_cpus=2 mp=none");
        assert_eq!(
            check([good.as_str()], &expected("x", Some(tables))),
            Vec::<String>::new()
        );

        let bad = report("y", "acpi=ok acpi_tables=FACP madt_cpus=1 mp=none");
        let faults = check([bad.as_str()], &expected("x", Some(tables)));
        assert!(
            faults.iter().any(|f| f.starts_with("cmdline \"y\"")),
            "{faults:?}"
        );
        assert!(faults.iter().any(|f| f.contains("lacks APIC")), "{faults:?}");
        assert!(
            faults.contains(&"madt_cpus=1, expected 2".to_string()),
            "{faults:?}"
        );

        let no_acpi = report("x", "acpi=none acpi_tables=none mp=ok mp_cpus=2");
        assert!(check([no_acpi.as_str()], &expected("x", None)).is_empty());
        assert_eq!(check(["noise"], &expected("x", None)), ["no MINNOW-PAYLOAD line"]);
    }

    #[test]
    fn unsupported_combinations_say_why() {
        assert!(not_supported(Loader::Direct, Route::Kernel, Payload::Multiboot1).is_some());
        assert!(not_supported(Loader::Qboot, Route::FwCfg, Payload::Pvh).is_some());
        assert!(not_supported(Loader::MinnowRom, Route::Kernel, Payload::Multiboot2).is_some());
        assert!(not_supported(Loader::MinnowRom, Route::FwCfg, Payload::Multiboot2).is_none());
        assert!(not_supported(Loader::Direct, Route::Kernel, Payload::BzImage32).is_none());
    }
}
