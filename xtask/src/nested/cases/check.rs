//! What each case's output must show.
use super::virtio::{GUEST_LINE, HVC_INPUT, VSOCK_MESSAGE};
use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_blk(bad: &mut Vec<String>, out: &CaseOutput) {
    let disk = minnow_tests::payload_check::initrd_bytes();
    for at in [0usize, 51200] {
        let want = hex(&disk[at..at + 16]);
        let got = field(out, &format!("MINNOW-INIT blk_read@{}=", at / 16));
        if got != Some(want.as_str()) {
            bad.push(format!(
                "the guest read {got:?} at byte {at} of its disk, expected {want}"
            ));
        }
    }
    if field(out, "MINNOW-INIT blk_write=") != Some("0") {
        bad.push(format!(
            "the guest's write failed: {:?}",
            field(out, "MINNOW-INIT blk_write=")
        ));
    }
    if !out.after.iter().any(|l| l.trim() == GUEST_LINE) {
        bad.push(format!(
            "the disk image does not hold the guest's {GUEST_LINE:?} after minnow exited: {:?}",
            out.after
        ));
    }
}

/// The file system case: the image and the file system check clean, and every file the guest
/// reported synced reads back with the checksum the guest reported.
fn check_fs_killed(out: &CaseOutput, signal: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let want = if signal == "KILL" { 128 + 9 } else { 128 + 15 };
    if out.rc != want {
        bad.push(format!(
            "minnow exited with {}, expected {want} (SIG{signal})",
            out.rc
        ));
    }
    let synced: Vec<(&str, &str)> = out
        .serial
        .iter()
        .filter_map(|l| l.strip_prefix("MINNOW-SYNCED "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    if synced.len() < 3 {
        bad.push(format!(
            "the guest synced {} files before the kill, expected 3 or more",
            synced.len()
        ));
    }
    let after = out.after.join("\n");
    let clean = after.contains("No errors were found on the image.");
    let only_leaks = signal == "KILL"
        && after.contains("leaked clusters were found")
        && !after.contains("errors were found");
    if !clean && !only_leaks {
        bad.push(format!("qemu-img check found the image damaged: {after}"));
    }
    match out
        .after
        .iter()
        .find_map(|l| l.trim().strip_prefix("MINNOW-L2 e2fsck rc="))
    {
        Some("0") | Some("1") => {}
        other => bad.push(format!(
            "e2fsck found errors it could not fix (rc {other:?}): {after}"
        )),
    }
    for (file, sum) in synced {
        let back = format!("MINNOW-L2 {file} {sum}");
        if !out.after.iter().any(|l| l.trim() == back) {
            bad.push(format!(
                "{file} was synced by the guest (md5 {sum}) but does not read back so"
            ));
        }
    }
    bad
}

/// The value after `prefix` on the first serial line that starts with it.
fn field<'a>(out: &'a CaseOutput, prefix: &str) -> Option<&'a str> {
    out.serial.iter().find_map(|l| l.strip_prefix(prefix))
}

/// What is wrong with a case's output; empty when it passed. `now` is the host's Unix time.
pub fn check(case: &Case, out: &CaseOutput, now: i64) -> Vec<String> {
    let mut bad = check_expect(case, out, now);
    if let Some(line) = case.after_must_have {
        if !out.after.iter().any(|l| l.trim() == line) {
            bad.push(format!("L2 did not find {line:?} after the run: {:?}", out.after));
        }
    }
    bad
}

fn check_expect(case: &Case, out: &CaseOutput, now: i64) -> Vec<String> {
    match &case.expect {
        Expect::Timing if field(out, "MINNOW-INIT done").is_some() => vec![],
        Expect::Timing => vec!["the guest's /init never reported done".into()],
        Expect::Seed { acpi } => {
            let mut bad = Vec::new();
            let greeting = minnow_guest_tools::SEED_GREETING;
            if !out.serial.iter().chain(&out.tail).any(|l| l.trim() == greeting) {
                bad.push(format!("no {greeting:?} on the console"));
            }
            let want = if *acpi { 0 } else { 128 + 15 };
            if out.rc != want {
                bad.push(format!("minnow exited with {}, expected {want}", out.rc));
            }
            bad
        }
        Expect::Linux {
            smp,
            acpi,
            rtc,
            rng,
            blk,
            net,
            dhcp,
            vsock,
            hvc_input,
            killed,
            monitor,
            snapshot,
            append,
        } => {
            if *killed {
                let mut bad = Vec::new();
                check_blk(&mut bad, out);
                if out.rc != 128 + 9 {
                    bad.push(format!("minnow exited with {}, expected 137 (SIGKILL)", out.rc));
                }
                return bad;
            }
            let mut bad = check_linux(out, *smp, *acpi, *rtc, append, now);
            if let Some(kind) = monitor {
                bad.extend(super::monitor::check_monitor(*kind, &out.serial, &out.after));
            }
            if *snapshot {
                bad.extend(super::snapshot::check_snapshot(&out.serial, &out.after));
            }
            if *blk {
                check_blk(&mut bad, out);
            }
            if *net && field(out, "MINNOW-INIT net_ping=") != Some("ok") {
                bad.push(format!(
                    "the guest could not ping the TAP's host end: net_ping={:?}",
                    field(out, "MINNOW-INIT net_ping=")
                ));
            }
            if *dhcp {
                check_dhcp(&mut bad, out);
            }
            if *hvc_input && field(out, "MINNOW-INIT hvc0_input=") != Some(HVC_INPUT) {
                bad.push(format!(
                    "the guest did not read L2's line from hvc0: hvc0_input={:?}",
                    field(out, "MINNOW-INIT hvc0_input=")
                ));
            }
            let echoed = format!("vsock-echo: echoed {} bytes", VSOCK_MESSAGE.len());
            if *vsock && field(out, "MINNOW-INIT vsock=") != Some(echoed.as_str()) {
                bad.push(format!(
                    "the guest did not echo L2's vsock message: vsock={:?}",
                    field(out, "MINNOW-INIT vsock=")
                ));
            }
            let want = if *rng {
                "virtio_rng.0 bytes=16"
            } else {
                "none bytes=0"
            };
            match field(out, "MINNOW-INIT hwrng=") {
                Some(got) if got == want => {}
                got => bad.push(format!("hwrng={got:?}, expected {want:?}")),
            }
            bad
        }
        Expect::Xen {
            xen_cmdline,
            dom0_cmdline,
        } => check_xen(out, xen_cmdline, dom0_cmdline),
        Expect::FsKilled { signal } => check_fs_killed(out, signal),
        Expect::Urandom => super::urandom::check_urandom(&out.serial, &out.after),
        Expect::Screen { must_have } => must_have
            .iter()
            .filter(|text| !out.serial.iter().any(|l| l.contains(text.as_str())))
            .map(|text| format!("{text:?} never showed on the screen"))
            .collect(),
        Expect::Payload {
            loader,
            route,
            payload,
            smp,
            acpi,
            kernel_arg,
            cmdline,
        } => {
            let deviations = qboot_deviations(*loader, false);
            let expected = Expected {
                loader: *loader,
                route: *route,
                payload: *payload,
                kernel_arg,
                cmdline,
                mem_mib: MEM_MIB,
                smp: *smp,
                acpi_tables: acpi.then_some(MICROVM_TABLES),
                pages: None,
                deviations: &deviations,
            };
            let mut bad = payload_check::check(out.serial.iter().map(String::as_str), &expected);
            let want = expected.exit_status();
            if out.rc != want {
                bad.push(format!("minnow exited with {}, expected {want}", out.rc));
            }
            bad
        }
    }
}

fn check_xen(out: &CaseOutput, xen_cmdline: &str, dom0_cmdline: &str) -> Vec<String> {
    let mut bad = Vec::new();
    if field(out, "MINNOW-INIT done").is_none() {
        bad.push("dom0's /init never reported done".into());
        return bad;
    }
    let want = format!("(XEN) Command line: {xen_cmdline}");
    if !out.serial.iter().chain(&out.tail).any(|l| l.trim_end() == want) {
        bad.push(format!("Xen did not print {want:?}"));
    }
    if field(out, "MINNOW-INIT hypervisor=") != Some("xen") {
        bad.push(format!(
            "hypervisor={:?}, expected xen",
            field(out, "MINNOW-INIT hypervisor=")
        ));
    }
    if field(out, "MINNOW-INIT cmdline=") != Some(dom0_cmdline) {
        bad.push(format!(
            "dom0's cmdline {:?}, expected {dom0_cmdline:?}",
            field(out, "MINNOW-INIT cmdline=")
        ));
    }
    if out.rc != 0 {
        bad.push(format!(
            "minnow exited with {}, expected 0 (dom0 reset the machine)",
            out.rc
        ));
    }
    bad
}

fn check_linux(out: &CaseOutput, smp: u32, acpi: bool, rtc: bool, append: &str, now: i64) -> Vec<String> {
    let mut bad = Vec::new();
    if out.rc != 0 {
        bad.push(format!(
            "minnow exited with {}, expected 0 (guest power-off or reset)",
            out.rc
        ));
    }
    if field(out, "MINNOW-INIT done").is_none() {
        bad.push("the guest's /init never reported done".into());
        return bad;
    }
    if field(out, "MINNOW-INIT cmdline=") != Some(append) {
        bad.push(format!(
            "cmdline {:?}, expected {append:?}",
            field(out, "MINNOW-INIT cmdline=")
        ));
    }
    if field(out, "MINNOW-INIT cpus=") != Some(smp.to_string().as_str()) {
        bad.push(format!(
            "cpus={:?}, expected {smp}",
            field(out, "MINNOW-INIT cpus=")
        ));
    }
    let mem_kib = MEM_MIB * 1024;
    match field(out, "MINNOW-INIT mem_total_kb=").and_then(|v| v.parse::<u64>().ok()) {
        Some(kb) if kb * 10 >= mem_kib * 7 && kb <= mem_kib => {}
        other => bad.push(format!("MemTotal {other:?} kB: expected 70%..100% of {mem_kib}")),
    }
    check_rtc(&mut bad, out, acpi, rtc, now);
    for l in out.serial.iter().filter(|l| l.contains("WARNING:")) {
        if !KNOWN_WARNINGS.iter().any(|(at, _)| l.contains(at)) {
            bad.push(format!("the guest kernel warned: {l}"));
        }
    }
    bad
}

/// The RTC fixups as the guest sees them: a working /dev/rtc0 with the host's time when the RTC
/// is on; no RTC and no probe stall when it is off but ACPI can say so; and a warning from minnow
/// when nothing can tell the guest.
fn check_rtc(bad: &mut Vec<String>, out: &CaseOutput, acpi: bool, rtc: bool, now: i64) {
    let line = field(out, "MINNOW-INIT rtc=").unwrap_or("");
    let mut words = line.split_whitespace();
    let state = words.next().unwrap_or("");
    let epoch: Option<i64> = words
        .next()
        .and_then(|w| w.strip_prefix("epoch="))
        .and_then(|v| v.parse().ok());
    let want = if rtc { "ok" } else { "none" };
    if state != want {
        bad.push(format!("rtc={state:?}, expected {want}"));
    }
    if rtc {
        match epoch {
            Some(t) if (t - now).abs() <= CLOCK_SLACK_SECS => {}
            _ => bad.push(format!(
                "the guest's clock says {epoch:?}, the host's {now}: the RTC does not give the host's time"
            )),
        }
    }
    let stalled = out.serial.iter().any(|l| l.contains(RTC_STALL));
    let guest_can_know = rtc || acpi;
    if guest_can_know && stalled {
        bad.push(format!("the guest logged {RTC_STALL:?}: the RTC fixups failed"));
    }
    if !guest_can_know && !out.stderr.iter().any(|l| l.contains("rtc=off without ACPI")) {
        bad.push("rtc=off without ACPI, but minnow did not warn about it".into());
    }
}

/// The page L2 serves to guests on passt's gateway address (see script.rs).
pub const HTTP_PAGE: &str = "MINNOW-HTTP-PAGE";

/// The guest got QEMU's user-network address by DHCP and fetched L2's page through passt.
fn check_dhcp(bad: &mut Vec<String>, out: &CaseOutput) {
    let lease = field(out, "MINNOW-INIT dhcp=");
    if lease != Some("10.0.2.15 gateway=10.0.2.2") {
        bad.push(format!(
            "the guest's DHCP lease: {lease:?}, expected 10.0.2.15 via 10.0.2.2"
        ));
    }
    let page = field(out, "MINNOW-INIT http=");
    if page != Some(HTTP_PAGE) {
        bad.push(format!(
            "the guest fetched {page:?} from L2's HTTP server, expected {HTTP_PAGE:?}"
        ));
    }
}
