//! Linux driven through QEMU's monitors on real KVM. The guest's /init (`minnow.monitor`) keeps a
//! shell on its console and powers off when the ACPI power button is pressed. L2 types into
//! minnow's stdin (COM1): it asks the shell for the guest's uptime, `stop`s the VM for
//! [`PAUSE_SECS`], `cont`s it, asks the shell again, and ends with `system_powerdown`. QEMU's
//! control run gets the same typing.
//!
//! * HMP: `-serial mon:stdio`, the monitor reached with Ctrl-A c, as a person at a terminal would.
//! * QMP: `-qmp unix:...`, driven by guest-tools' `qmp-call` (L2 has no Python); its transcript
//!   must show the events QEMU sends: STOP, RESUME, POWERDOWN, SHUTDOWN from the guest.
use super::{linux_case, paths, rename, Case, Expect, LinuxImage};
use minnow_tests::payload_check::Loader;

/// How long L2 keeps the VM stopped.
pub const PAUSE_SECS: u32 = 5;
/// Where L2 writes its own clock readings and the QMP transcript, for the check.
const TIMES: &str = "/tmp/monitor-times";
const TRANSCRIPT: &str = "/tmp/qmp-transcript";
const QMP_SOCKET: &str = "/tmp/qmp.sock";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MonitorKind {
    Hmp,
    Qmp,
}

/// The typist's helpers: `w TEXT` waits (up to 30 s) for TEXT on minnow's stdout (COM1, and the
/// HMP monitor with mon:stdio); `up` is L2's clock; `ask WHICH` has the guest's shell print its
/// uptime as `MINNOW-SHELL WHICH=...` and waits for it. The typed command spells the marker with
/// an empty quote, so the shell's echo of what was typed cannot pass for its answer.
pub(super) const HELPERS: &str = r#"w() { i=0; while ! grep -q -F -e "$1" /tmp/serial.log 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; }
 up() { cut -d' ' -f1 /proc/uptime; }
 ask() { echo "echo MINNOW-SHE''LL $1=\$(cut -d' ' -f1 /proc/uptime)"; w "MINNOW-SHELL $1="; }"#;

/// What L2 does: its output is minnow's stdin (a FIFO).
fn typist(kind: MonitorKind) -> String {
    let (stop, cont, powerdown) = match kind {
        MonitorKind::Hmp => (
            "printf '\\001c'; w '(qemu) '; echo stop; echo 'info status'; w 'VM status: paused'".to_string(),
            "echo cont; echo 'info status'; w 'VM status: running'; printf '\\001c'".to_string(),
            "printf '\\001c'; echo system_powerdown".to_string(),
        ),
        MonitorKind::Qmp => {
            let call = format!("{} {QMP_SOCKET}", paths::QMP_CALL);
            (
                format!("{call} stop query-status >>{TRANSCRIPT} 2>&1"),
                format!("{call} cont query-status >>{TRANSCRIPT} 2>&1"),
                format!("{call} system_powerdown --until SHUTDOWN >>{TRANSCRIPT} 2>&1"),
            )
        }
    };
    format!(
        "({HELPERS}
 w 'MINNOW-INIT shell=ready'
 ask before; t0=$(up)
 {stop}; t1=$(up)
 sleep {PAUSE_SECS}
 t2=$(up); {cont}
 ask after; t3=$(up)
 echo \"MINNOW-L2 before=$t0 stopped=$t1 continued=$t2 after=$t3\" >{TIMES}
 {powerdown}; w 'powerbutton=pressed') >/tmp/case.stdin &"
    )
}

fn monitor_case(kind: MonitorKind) -> Case {
    let mut case = linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 1);
    let (suffix, serial) = match kind {
        MonitorKind::Hmp => ("-hmp", "mon:stdio"),
        MonitorKind::Qmp => ("-qmp", "stdio"),
    };
    rename(&mut case, suffix, " minnow.monitor=1");
    case.args.extend(["-serial", serial].map(String::from));
    if kind == MonitorKind::Qmp {
        let qmp = format!("unix:{QMP_SOCKET},server=on,wait=off");
        case.args.extend(["-qmp".into(), qmp]);
    }
    case.serial_on_stdout = true;
    case.setup = vec![
        format!("rm -f /tmp/case.stdin {TIMES} {TRANSCRIPT} && mkfifo /tmp/case.stdin"),
        typist(kind),
    ];
    case.after = vec![format!("cat {TIMES}"), format!("cat {TRANSCRIPT} 2>/dev/null")];
    if let Expect::Linux { monitor, .. } = &mut case.expect {
        *monitor = Some(kind);
    }
    case
}

pub(super) fn linux_case_hmp() -> Case {
    monitor_case(MonitorKind::Hmp)
}

pub(super) fn linux_case_qmp() -> Case {
    monitor_case(MonitorKind::Qmp)
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

/// The shell's answer may share its line with the monitor's last prompt (HMP's `(qemu) ` stays
/// on the console when the typist leaves the monitor) and with a kernel message printed right
/// after it: the number is what follows the marker up to the first character that is not part
/// of one.
fn guest_uptime(serial: &[String], which: &str) -> Option<f64> {
    let marker = format!("MINNOW-SHELL {which}=");
    serial.iter().find_map(|l| {
        let after = l.split_once(&marker)?.1;
        let end = after
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(after.len());
        after[..end].parse().ok()
    })
}

/// What the monitor must have said: HMP's `info status` lines on the console; QMP's replies and
/// events in qmp-call's transcript, in order.
fn monitor_said(kind: MonitorKind, serial: &[String], after: &[String]) -> Vec<String> {
    let (lines, wanted): (&[String], &[&str]) = match kind {
        MonitorKind::Hmp => (serial, &["VM status: paused", "VM status: running"]),
        MonitorKind::Qmp => (
            after,
            &[
                r#""event": "STOP""#,
                r#"{"return": {"status": "paused", "singlestep": false, "running": false}}"#,
                r#""event": "RESUME""#,
                r#"{"return": {"status": "running", "singlestep": false, "running": true}}"#,
                r#""event": "POWERDOWN""#,
                r#""event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}"#,
            ],
        ),
    };
    let mut bad = Vec::new();
    let mut from = 0;
    for text in wanted {
        match lines[from..].iter().position(|l| l.contains(text)) {
            Some(at) => from += at + 1,
            None => bad.push(format!("the monitor never said {text} (in order)")),
        }
    }
    bad
}

/// The shell answered before and after the pause, the monitor said what QEMU's says, the
/// guest's clock did not count the pause (as under QEMU), and the power button powered it off.
pub(super) fn check_monitor(kind: MonitorKind, serial: &[String], after: &[String]) -> Vec<String> {
    let mut bad = monitor_said(kind, serial, after);
    if !serial
        .iter()
        .any(|l| l.contains("MINNOW-INIT powerbutton=pressed"))
    {
        bad.push("the guest never saw the power button pressed".into());
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

    const TIMES_LINE: &str = "MINNOW-L2 before=100.0 stopped=100.5 continued=105.6 after=107.0";

    #[test]
    fn a_pause_the_guest_did_not_count_passes_one_it_counted_fails() {
        let serial = lines(&[
            "MINNOW-SHELL before=10.00",
            "VM status: paused",
            "VM status: running",
            "MINNOW-SHELL after=11.50",
            "MINNOW-INIT powerbutton=pressed",
        ]);
        let after = lines(&[TIMES_LINE]);
        assert_eq!(
            check_monitor(MonitorKind::Hmp, &serial, &after),
            Vec::<String>::new()
        );
        let mut counted = serial.clone();
        counted[3] = "MINNOW-SHELL after=16.80".into();
        let bad = check_monitor(MonitorKind::Hmp, &counted, &after);
        assert!(bad.len() == 1 && bad[0].contains("counted"), "{bad:?}");
        assert!(!check_monitor(MonitorKind::Hmp, &serial[..4], &after).is_empty());
    }

    #[test]
    fn the_shells_answer_counts_after_a_prompt_but_not_as_typed() {
        let serial = lines(&[
            "echo MINNOW-SHE''LL after=$(cut -d' ' -f1 /proc/uptime)",
            "(qemu) MINNOW-SHELL after=3.62",
            "MINNOW-SHELL before=2.85[    2.893753] clocksource: Long readout interval",
        ]);
        assert_eq!(guest_uptime(&serial, "after"), Some(3.62));
        assert_eq!(guest_uptime(&serial, "before"), Some(2.85));
        assert_eq!(guest_uptime(&serial[..1], "after"), None);
    }

    #[test]
    fn qmp_needs_its_events_in_order() {
        let serial = lines(&[
            "MINNOW-SHELL before=10.00",
            "MINNOW-SHELL after=11.50",
            "MINNOW-INIT powerbutton=pressed",
        ]);
        let transcript = [
            TIMES_LINE,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#,
            r#"{"return": {}}"#,
            r#"{"return": {"status": "paused", "singlestep": false, "running": false}}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}"#,
            r#"{"return": {"status": "running", "singlestep": false, "running": true}}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "POWERDOWN"}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#,
        ];
        let after = lines(&transcript);
        assert_eq!(
            check_monitor(MonitorKind::Qmp, &serial, &after),
            Vec::<String>::new()
        );
        let mut swapped = after.clone();
        swapped.swap(1, 4);
        assert!(!check_monitor(MonitorKind::Qmp, &serial, &swapped).is_empty());
    }

    #[test]
    fn the_typist_asks_the_monitor_it_is_given() {
        let hmp = typist(MonitorKind::Hmp);
        assert!(
            hmp.contains("echo stop") && hmp.contains("printf '\\001c'"),
            "{hmp}"
        );
        let qmp = typist(MonitorKind::Qmp);
        assert!(
            qmp.contains("/bin/qmp-call /tmp/qmp.sock stop query-status"),
            "{qmp}"
        );
        assert!(qmp.contains("--until SHUTDOWN"), "{qmp}");
    }
}
