use super::*;

fn output(rc: i32, serial: &[&str], stderr: &[&str]) -> CaseOutput {
    CaseOutput {
        rc,
        seconds: 1.0,
        serial: serial.iter().map(|s| s.to_string()).collect(),
        tail: vec![],
        stderr: stderr.iter().map(|s| s.to_string()).collect(),
        after: vec![],
        ..CaseOutput::default()
    }
}

#[test]
fn a_linux_case_passes_only_with_the_whole_report() {
    let case = linux_case(LinuxImage::Pvh, Loader::Direct, true, true, 2);
    let Expect::Linux { append, .. } = &case.expect else {
        unreachable!()
    };
    let cmdline = format!("MINNOW-INIT cmdline={append}");
    let good = [
        cmdline.as_str(),
        "MINNOW-INIT mem_total_kb=222504",
        "MINNOW-INIT cpus=2",
        "MINNOW-INIT rtc=ok epoch=1000",
        "MINNOW-INIT done",
        "MINNOW-INIT hwrng=none bytes=0",
    ];
    assert!(check(&case, &output(0, &good, &[]), 1010).is_empty());
    // A clock far from the host's, a stall line, a lost CPU, a bad exit: each is named.
    let bad = check(&case, &output(0, &good, &[]), 100_000);
    assert!(
        bad[0].contains("the RTC does not give the host's time"),
        "{bad:?}"
    );
    let mut stalled = good.to_vec();
    stalled.push("[    1.0] rtc_cmos rtc_cmos: rtc_cmos: broken or not accessible");
    assert_eq!(check(&case, &output(0, &stalled, &[]), 1000).len(), 1);
    let mut one_cpu = good.to_vec();
    one_cpu[2] = "MINNOW-INIT cpus=1";
    assert!(check(&case, &output(0, &one_cpu, &[]), 1000)[0].starts_with("cpus="));
    assert_eq!(check(&case, &output(1, &good, &[]), 1000).len(), 1);
    let no_done = [&good[..4], &good[5..]].concat();
    assert_eq!(check(&case, &output(0, &no_done, &[]), 1000).len(), 1);
    let mut warned = good.to_vec();
    warned.push("[    0.4] WARNING: CPU: 0 PID: 0 at arch/x86/kernel/fpu/xstate.c:606 x+0x1");
    assert!(check(&case, &output(0, &warned, &[]), 1000).is_empty());
    warned.push("[    0.5] WARNING: CPU: 0 PID: 1 at arch/x86/kernel/apic/apic.c:1 y+0x2");
    assert_eq!(check(&case, &output(0, &warned, &[]), 1000).len(), 1);
}

#[test]
fn without_acpi_or_rtc_minnow_must_warn() {
    let case = linux_case(LinuxImage::BzImage, Loader::MinnowRom, false, false, 1);
    let Expect::Linux { append, .. } = &case.expect else {
        unreachable!()
    };
    let cmdline = format!("MINNOW-INIT cmdline={append}");
    let serial = [
        cmdline.as_str(),
        "MINNOW-INIT mem_total_kb=222504",
        "MINNOW-INIT cpus=1",
        "MINNOW-INIT rtc=none epoch=0",
        "MINNOW-INIT done",
        "MINNOW-INIT hwrng=none bytes=0",
    ];
    let warning = "minnow: warning: rtc=off without ACPI: Linux will probe the missing RTC";
    assert!(check(&case, &output(0, &serial, &[warning]), 0).is_empty());
    assert_eq!(check(&case, &output(0, &serial, &[]), 0).len(), 1);
}

#[test]
fn an_rng_case_needs_the_virtio_rng_driver_and_its_bytes() {
    let case = linux_case_rng(LinuxImage::Pvh, Loader::Direct, true);
    assert!(case.args.join(" ").contains("-device virtio-rng-device"));
    let Expect::Linux { append, .. } = &case.expect else {
        unreachable!()
    };
    assert!(case.args.contains(append) && append.ends_with(&case.name));
    let cmdline = format!("MINNOW-INIT cmdline={append}");
    let mut serial = vec![
        cmdline.as_str(),
        "MINNOW-INIT mem_total_kb=222504",
        "MINNOW-INIT cpus=1",
        "MINNOW-INIT rtc=ok epoch=1000",
        "MINNOW-INIT done",
        "MINNOW-INIT hwrng=virtio_rng.0 bytes=16",
    ];
    assert!(check(&case, &output(0, &serial, &[]), 1000).is_empty());
    serial[5] = "MINNOW-INIT hwrng=none bytes=0";
    assert_eq!(check(&case, &output(0, &serial, &[]), 1000).len(), 1);
}

#[test]
fn the_matrix_covers_every_loader_and_skips_what_cannot_work() {
    let names: Vec<String> = linux_cases().into_iter().map(|c| c.name).collect();
    for want in ["bzimage-minnowrom", "pvh-qboot", "pvh-direct", "rtcoff"] {
        assert!(names.iter().any(|n| n.contains(want)), "{want}");
    }
    let payloads = payload_cases();
    assert!(payloads
        .iter()
        .any(|c| c.name.contains("direct-kernel-bzImage32")));
    assert!(payloads
        .iter()
        .any(|c| c.name.contains("minnowrom-fwcfg-multiboot2")));
    assert!(!payloads
        .iter()
        .any(|c| c.name.contains("direct-kernel-multiboot")));
    let all: Vec<String> = payloads.iter().map(|c| c.name.clone()).chain(names).collect();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "case names must be unique");
}

#[test]
fn a_variant_of_a_variant_keeps_its_name_in_the_command_line() {
    let mut case = linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 1);
    rename(&mut case, "-blkqcow2", " minnow.blk=1");
    rename(&mut case, "-kill9", " minnow.blkkill=1");
    let Expect::Linux { append, .. } = &case.expect else {
        panic!("a Linux case")
    };
    assert_eq!(
        case.name,
        "linux-bzimage-minnowrom-acpion-rtcon-smp1-blkqcow2-kill9"
    );
    assert!(
        append.ends_with(&format!(
            "minnow.case={} minnow.blk=1 minnow.blkkill=1",
            case.name
        )),
        "{append}"
    );
    assert!(case.args.contains(append));
}

#[test]
fn a_xen_case_passes_only_when_dom0_ran_under_xen_with_both_command_lines() {
    let case = xen_case();
    let Expect::Xen {
        xen_cmdline,
        dom0_cmdline,
    } = &case.expect
    else {
        unreachable!()
    };
    let xen = format!("(XEN) Command line: {xen_cmdline}");
    let dom0 = format!("MINNOW-INIT cmdline={dom0_cmdline}");
    let good = [
        xen.as_str(),
        &dom0,
        "MINNOW-INIT hypervisor=xen",
        "MINNOW-INIT done",
    ];
    assert_eq!(check(&case, &output(0, &good, &[]), 0), Vec::<String>::new());
    let mut no_xen = good;
    no_xen[2] = "MINNOW-INIT hypervisor=none";
    assert_eq!(check(&case, &output(0, &no_xen, &[]), 0).len(), 1);
    // Xen dropped the first word of its command line: the name was missing.
    let cut = format!("(XEN) Command line: {}", xen_cmdline.split_once(' ').unwrap().1);
    let mut first_word_lost = good;
    first_word_lost[0] = &cut;
    assert_eq!(check(&case, &output(0, &first_word_lost, &[]), 0).len(), 1);
    assert_eq!(check(&case, &output(137, &good, &[]), 0).len(), 1);
}

#[test]
fn a_memtest_case_needs_every_text_on_its_screen() {
    let case = memtest_case("x64");
    let Expect::Screen { must_have } = &case.expect else {
        unreachable!()
    };
    let screen: Vec<String> = must_have.iter().map(|t| format!("[5;35H{t}   ")).collect();
    let lines: Vec<&str> = screen.iter().map(String::as_str).collect();
    assert!(check(&case, &output(143, &lines, &[]), 0).is_empty());
    assert_eq!(check(&case, &output(143, &lines[1..], &[]), 0).len(), 1);
}
