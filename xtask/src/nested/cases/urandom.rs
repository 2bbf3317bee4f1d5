//! The snapshot issue's urandom check: two clones of one saved VM read /dev/urandom right after
//! `cont`, and must read different bytes. The guest is Debian's generic kernel (the cloud one
//! has no `CONFIG_VMGENID`), which reseeds its RNG when the VM generation ID changes.
//!
//! The same run does it on QEMU 7.2's microvm, which has no vmgenid: its result is reported
//! (`MINNOW-L2 urandom qemu=same|different`), not asserted, since without vmgenid whether two
//! clones draw the same bytes depends on when the guest last reseeded.
use super::monitor::HELPERS;
use super::snapshot::{vm_start, MONITOR_HELPERS};
use super::{machine_args, paths, qemu_linux_args, Case, Expect};

const NAME: &str = "linux-generic-minnowrom-snapshot-urandom";
const STATE: &str = "/tmp/urandom.state";
const QEMU_STATE: &str = "/tmp/urandom-qemu.state";
/// VM numbers (their files /tmp/cloneN.*) and monitor ports: minnow's two clones, QEMU's source
/// and its two clones.
const MINNOW_CLONES: [u32; 2] = [20, 21];
const QEMU_SOURCE: u32 = 30;
const QEMU_CLONES: [u32; 2] = [31, 32];
const PORT_BASE: u32 = 1300;

fn append() -> String {
    format!("console=ttyS0 loglevel=5 panic=-1 minnow.case={NAME} minnow.monitor=1")
}

/// The guest, on minnow: the generic kernel, the test initramfs, COM1 on stdio.
fn minnow_args() -> Vec<String> {
    let mut args = machine_args(true, true, true, 1);
    args.extend(
        [
            "-kernel",
            paths::DOM0_KERNEL,
            "-initrd",
            paths::INITRAMFS,
            "-append",
            &append(),
            "-serial",
            "stdio",
        ]
        .map(String::from),
    );
    args
}

/// The same guest on QEMU's microvm (ACPI on, as minnow's).
fn qemu_args() -> Vec<String> {
    let mut args = qemu_linux_args("microvm,accel=kvm,acpi=on,rtc=on", paths::DOM0_KERNEL, &append());
    args.extend(["-serial", "stdio"].map(String::from));
    args
}

/// Shell: `wl N TEXT` waits (60 s) for TEXT on VM N's console.
const WAIT_LOG: &str = r#"wl() { i=0; while ! grep -q -F -e "$2" /tmp/clone$1.log 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; }"#;

/// Has VM `n`'s shell print 16 bytes of /dev/urandom, tagged `who`, and waits for them.
fn read_urandom(n: u32, who: &str) -> String {
    format!(
        "echo \"echo MINNOW-URANDOM {who} \\$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n')\" >/tmp/clone{n}.in; wl {n} 'MINNOW-URANDOM {who} '"
    )
}

/// L2's typing for minnow's source VM: once the shell answers, save it, paused, then quit.
fn source_typist() -> String {
    let port = PORT_BASE;
    format!(
        "({HELPERS}
 {MONITOR_HELPERS}
 w 'MINNOW-INIT shell=ready'
 echo \"echo MINNOW-VMGENID bound=\\$(ls /sys/bus/acpi/drivers/vmgenid 2>/dev/null | grep -c VMGENCTR)\"; w 'MINNOW-VMGENID bound='
 mon {port}; wm {port} '(qemu)'
 say stop; say 'migrate file:{STATE}'; say 'info migrate'; wm {port} 'Migration status:'
 say quit) >/tmp/case.stdin &"
    )
}

/// Two clones of `state` (an `-incoming` URI) on `program`: each is continued, then reads
/// urandom at once. `cont` is repeated until the VM runs (QEMU refuses it until its incoming
/// migration is finalized).
fn two_clones(program: &str, args: &[String], incoming: &str, clones: [u32; 2], who: &str) -> Vec<String> {
    let mut s = Vec::new();
    for n in clones {
        s.push(vm_start(
            program,
            args,
            &["-incoming", incoming],
            PORT_BASE + n,
            n,
        ));
    }
    for n in clones {
        let port = PORT_BASE + n;
        s.push(format!(
            "mon {port}; wm {port} '(qemu)'; i=0; while ! grep -q 'VM status: running' /tmp/mon-{port} && [ $i -lt 30 ]; \
             do say cont; say 'info status'; sleep 1; i=$((i+1)); done; exec 4>&-"
        ));
        s.push(read_urandom(n, &format!("{who}{n}")));
    }
    s.push(format!(
        "for n in {} {}; do grep -h -E 'MINNOW-URANDOM|WARNING|BUG|soft lockup|clocksource' /tmp/clone$n.log | sed 's/^/MINNOW-URANDOM-LOG {who} /'; \
         sed 's/^/MINNOW-URANDOM-STDERR {who} /' /tmp/clone$n.err; done",
        clones[0], clones[1]
    ));
    s.push(format!(
        "a=$(grep -h 'MINNOW-URANDOM {who}{0} ' /tmp/clone{0}.log | cut -d' ' -f3); b=$(grep -h 'MINNOW-URANDOM {who}{1} ' /tmp/clone{1}.log | cut -d' ' -f3); \
         if [ -n \"$a\" ] && [ \"$a\" = \"$b\" ]; then echo 'MINNOW-L2 urandom {who}=same'; else echo 'MINNOW-L2 urandom {who}=different'; fi",
        clones[0], clones[1]
    ));
    s.push(format!(
        "kill $pid{0} $pid{1} $hold{0} $hold{1}; reap $pid{0}; reap $pid{1}",
        clones[0], clones[1]
    ));
    s
}

/// QEMU's source VM: booted, saved paused through `exec:cat`, ended.
fn qemu_source() -> Vec<String> {
    let (n, port) = (QEMU_SOURCE, PORT_BASE + QEMU_SOURCE);
    vec![
        vm_start(paths::QEMU, &qemu_args(), &[], port, n),
        format!("wl {n} 'MINNOW-INIT shell=ready'; echo \"MINNOW-L2 qemu source up at $(up): $(grep -c 'shell=ready' /tmp/clone{n}.log)\"; sed 's/^/MINNOW-URANDOM-QEMU-STDERR /' /tmp/clone{n}.err"),
        format!(
            "mon {port}; wm {port} '(qemu)'; say stop; say 'migrate \"exec:cat > {QEMU_STATE}\"'; \
             i=0; while ! grep -q 'Migration status: completed' /tmp/mon-{port} && [ $i -lt 60 ]; do say 'info migrate'; sleep 1; i=$((i+1)); done; \
             say quit; reap $pid{n}; kill $hold{n}; exec 4>&-"
        ),
        format!("ls -l {QEMU_STATE} | sed 's/^/MINNOW-L2 qemu state: /'"),
    ]
}

pub(super) fn linux_case_snapshot_urandom() -> Case {
    let mut case = Case::new(NAME.into(), paths::MINNOW, minnow_args(), Expect::Urandom);
    case.args
        .extend(["-monitor", &format!("telnet:127.0.0.1:{PORT_BASE},server,nowait")].map(String::from));
    case.serial_on_stdout = true;
    case.setup = vec![
        "rm -f /tmp/case.stdin && mkfifo /tmp/case.stdin".into(),
        source_typist(),
    ];
    let mut after = vec![
        format!("{HELPERS}\n {MONITOR_HELPERS}\n {WAIT_LOG}"),
        // What L2 is doing, every 20 s (each step waits long on an emulated CPU).
        "(while :; do sleep 20; echo \"MINNOW-L2 tick $(up): vmms=$(pidof minnow qemu-system-x86_64 | wc -w)\"; done) & ticker=$!".into(),
    ];
    after.push(format!("chown {} {STATE}", crate::nested::script::L2_USER));
    after.extend(two_clones(
        paths::MINNOW,
        &minnow_args(),
        &format!("file:{STATE}"),
        MINNOW_CLONES,
        "minnow",
    ));
    after.extend(qemu_source());
    after.extend(two_clones(
        paths::QEMU,
        &qemu_args(),
        &format!("exec:cat {QEMU_STATE}"),
        QEMU_CLONES,
        "qemu",
    ));
    after.push(format!("rm -f {STATE} {QEMU_STATE}; kill $ticker"));
    case.after = vec![after.join("\n")];
    case.hang_secs = 240;
    // Two minnow clones, a QEMU boot of the generic kernel and two QEMU clones.
    case.after_secs = 600;
    case
}

/// minnow's guest bound its vmgenid driver, and minnow's two clones read different bytes.
pub(super) fn check_urandom(serial: &[String], after: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    if !serial.iter().any(|l| l.contains("MINNOW-VMGENID bound=1")) {
        bad.push("the generic kernel's vmgenid driver did not bind to minnow's VMGENCTR device".into());
    }
    let bytes = |who: &str| {
        after.iter().find_map(|l| {
            let rest = l.split(&format!("MINNOW-URANDOM {who} ")).nth(1)?;
            let hex = rest.split_whitespace().next()?;
            (hex.len() == 32).then(|| hex.to_string())
        })
    };
    let [a, b] = MINNOW_CLONES.map(|n| bytes(&format!("minnow{n}")));
    match (a, b) {
        (Some(a), Some(b)) if a == b => bad.push(format!("two clones read the same urandom bytes: {a}")),
        (Some(_), Some(_)) => {}
        (a, b) => bad.push(format!("a clone did not read urandom: {a:?} {b:?}")),
    }
    // Only minnow's clones are held to it: QEMU's run is the comparison.
    let minnow_said = |l: &&String| {
        l.contains("STDERR minnow ")
            || (l.contains("LOG minnow ")
                && ["WARNING", "BUG", "soft lockup", "clocksource"]
                    .iter()
                    .any(|t| l.contains(t)))
    };
    for l in after.iter().filter(minnow_said) {
        bad.push(format!("a clone said: {l}"));
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_parses() {
        super::super::assert_script_parses(linux_case_snapshot_urandom());
    }

    #[test]
    fn clones_that_read_the_same_bytes_fail() {
        let serial = vec!["MINNOW-VMGENID bound=1".to_string()];
        let line = |n: u32, hex: &str| format!("MINNOW-URANDOM minnow{n} {hex}");
        let same = vec![line(20, &"ab".repeat(16)), line(21, &"ab".repeat(16))];
        let mut warned = same.clone();
        warned.push("MINNOW-URANDOM-LOG qemu [ 1.0] WARNING: in QEMU's guest".into());
        assert_eq!(
            check_urandom(&serial, &warned).len(),
            1,
            "QEMU's clones are not held to it"
        );
        warned.push("MINNOW-URANDOM-LOG minnow [ 1.0] WARNING: in minnow's guest".into());
        assert_eq!(check_urandom(&serial, &warned).len(), 2);
        assert!(check_urandom(&serial, &same)[0].contains("the same"));
        let differ = vec![line(20, &"ab".repeat(16)), line(21, &"cd".repeat(16))];
        assert_eq!(check_urandom(&serial, &differ), Vec::<String>::new());
        assert!(check_urandom(&[], &differ)[0].contains("vmgenid"));
        assert!(check_urandom(&serial, &differ[..1])[0].contains("did not read"));
    }
}
