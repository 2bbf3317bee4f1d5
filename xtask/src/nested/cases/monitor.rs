//! Linux driven through QEMU's human monitor, as a person at the terminal would: `-serial
//! mon:stdio`, and L2 typing into minnow's stdin. The guest's /init (`minnow.monitor`) keeps a
//! shell on its console and powers off when the ACPI power button is pressed. L2 asks the shell
//! for the guest's uptime, switches to the monitor (Ctrl-A c), `stop`s the VM for 5 s, `cont`s
//! it, asks the shell again, and ends with `system_powerdown`. QEMU's control run types the same.
use super::{linux_case, rename, Case, Expect, LinuxImage};
use minnow_tests::payload_check::Loader;

/// How long L2 keeps the VM stopped.
pub const PAUSE_SECS: u32 = 5;
/// Where L2 writes its own clock readings, for the check.
const TIMES: &str = "/tmp/monitor-times";

/// What L2 types, from a FIFO that is minnow's stdin. `w TEXT` waits (up to 30 s) for TEXT on
/// minnow's stdout, which is COM1 and the monitor together.
fn typist() -> String {
    format!(
        r#"(w() {{ i=0; while ! grep -q -F -e "$1" /tmp/serial.log 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; }}
 up() {{ cut -d' ' -f1 /proc/uptime; }}
 w 'MINNOW-INIT shell=ready'
 echo 'echo MINNOW-SHELL before=$(cut -d" " -f1 /proc/uptime)'; w 'MINNOW-SHELL before='; t0=$(up)
 printf '\001c'; w '(qemu) '
 echo stop; echo 'info status'; w 'VM status: paused'; t1=$(up)
 sleep {PAUSE_SECS}
 t2=$(up); echo cont; echo 'info status'; w 'VM status: running'
 printf '\001c'
 echo 'echo MINNOW-SHELL after=$(cut -d" " -f1 /proc/uptime)'; w 'MINNOW-SHELL after='; t3=$(up)
 echo "MINNOW-L2 before=$t0 stopped=$t1 continued=$t2 after=$t3" >{TIMES}
 printf '\001c'; echo system_powerdown; w 'powerbutton=pressed') >/tmp/case.stdin &"#
    )
}

pub(super) fn linux_case_monitor() -> Case {
    let mut case = linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 1);
    rename(&mut case, "-hmp", " minnow.monitor=1");
    case.args.extend(["-serial", "mon:stdio"].map(String::from));
    case.serial_on_stdout = true;
    case.setup = vec![
        format!("rm -f /tmp/case.stdin {TIMES} && mkfifo /tmp/case.stdin"),
        typist(),
    ];
    case.after = vec![format!("cat {TIMES}")];
    if let Expect::Linux { monitor, .. } = &mut case.expect {
        *monitor = true;
    }
    case
}

/// L2's clock readings: (before, stopped, continued, after).
fn l2_times(after: &[String]) -> Option<(f64, f64, f64, f64)> {
    let line = after
        .iter()
        .find_map(|l| l.trim().strip_prefix("MINNOW-L2 before="))?;
    let v: Vec<f64> = line
        .split(' ')
        .map(|w| w.rsplit('=').next().unwrap_or(w).parse().ok())
        .collect::<Option<_>>()?;
    match v[..] {
        [a, b, c, d] => Some((a, b, c, d)),
        _ => None,
    }
}

fn guest_uptime(serial: &[String], which: &str) -> Option<f64> {
    let prefix = format!("MINNOW-SHELL {which}=");
    serial
        .iter()
        .find_map(|l| l.trim().strip_prefix(&prefix)?.parse().ok())
}

/// The shell answered before and after the pause, the monitor said the VM was paused, the
/// guest's clock did not count the pause (as under QEMU), and the power button powered it off.
pub(super) fn check_monitor(serial: &[String], after: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    let has = |text: &str| serial.iter().any(|l| l.contains(text));
    for text in [
        "VM status: paused",
        "VM status: running",
        "MINNOW-INIT powerbutton=pressed",
    ] {
        if !has(text) {
            bad.push(format!("{text:?} never showed"));
        }
    }
    let (Some(before), Some(later)) = (guest_uptime(serial, "before"), guest_uptime(serial, "after")) else {
        bad.push("the guest's shell did not answer both before and after the pause".into());
        return bad;
    };
    let Some((t0, stopped, continued, t3)) = l2_times(after) else {
        bad.push(format!("L2's clock readings are missing: {after:?}"));
        return bad;
    };
    let paused = continued - stopped;
    let hidden = (t3 - t0) - (later - before);
    if later <= before {
        bad.push(format!("the guest's uptime went from {before} to {later}"));
    }
    if paused < f64::from(PAUSE_SECS) || hidden < paused - 2.0 {
        bad.push(format!(
            "the VM was stopped {paused:.1} s; the guest's clock counted {:.1} s of it (L2: {:.1} s \
             between the shell's answers, the guest: {:.1} s)",
            paused - hidden,
            t3 - t0,
            later - before
        ));
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_pause_the_guest_did_not_count_passes_one_it_counted_fails() {
        let serial = lines(&[
            "MINNOW-SHELL before=10.00",
            "VM status: paused",
            "VM status: running",
            "MINNOW-SHELL after=11.50",
            "MINNOW-INIT powerbutton=pressed",
        ]);
        let after = lines(&["MINNOW-L2 before=100.0 stopped=100.5 continued=105.6 after=107.0"]);
        assert_eq!(check_monitor(&serial, &after), Vec::<String>::new());
        let counted = lines(&[
            "MINNOW-SHELL before=10.00",
            "VM status: paused",
            "VM status: running",
            "MINNOW-SHELL after=16.80",
            "MINNOW-INIT powerbutton=pressed",
        ]);
        let bad = check_monitor(&counted, &after);
        assert!(bad.len() == 1 && bad[0].contains("counted"), "{bad:?}");
        assert!(!check_monitor(&serial[..4], &after).is_empty());
    }
}
