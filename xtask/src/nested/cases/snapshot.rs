//! The snapshot recipe ("fast launch by local migration") on Linux, on real KVM, through the
//! telnet HMP monitor, as the QEMU-lite workflow types it:
//!
//! 1. The source VM boots with the recipe's options (hot-plug slots, the RTC's drift fix, the
//!    PIT's lost-tick policy, virtio-net on a TAP, a virtconsole). Its shell writes a file into
//!    the guest's ramdisk; then `stop`, `migrate_set_speed 4095m`,
//!    `migrate "exec:gzip -c > STATE.gz"`, `info migrate`, `cont`: the source's shell still
//!    answers, and the power button ends it.
//! 2. A clone: the same command line plus `-incoming "exec: gzip -c -d STATE.gz"` and another
//!    monitor port. It waits, paused (the source was stopped when saved), until `cont`; then its
//!    shell answers and reads the source's file back.
//! 3. Eight clones at once from the state unpacked to a file (`-incoming file:`, memory shared
//!    copy-on-write): each answers.
//!
//! The VM has an ext4 file system on virtio-blk, mounted when it is saved, with one file synced
//! and one still only in the guest's page cache. L2 copies the image while the source is stopped
//! (the recipe's "another disk file"): the `exec:` clone gets a copy of its own, writes more,
//! unmounts, and L2 checks the image with e2fsck and reads the files back; the eight clones share
//! the copy through `snapshot=on` overlays.
//!
//! The VM has vhost-vsock too, its guest listening on port 1234 when it is saved. L2 talks to
//! the source after `cont` (vhost stopped for the save and started again), then to each clone,
//! each under a CID of its own: the clone's guest answers from its new CID only if it took the
//! transport reset minnow sends on restore (it reads its CID again then).
//!
//! The guest's console is COM1 (`console=ttyS0`) rather than the recipe's hvc0: the test
//! guest's /init loads virtio_console as a module, after the kernel has picked its console.
use super::monitor::HELPERS;
use super::{linux_case, paths, rename, Case, Expect, LinuxImage};
use crate::nested::script::{sh_quote, L2_USER};
use minnow_tests::payload_check::Loader;

const STATE_GZ: &str = "/tmp/state.gz";
const STATE_RAW: &str = "/tmp/state.raw";
const SECRET: &str = "snapshot-secret-42";
/// The source's disk, the copy L2 takes while the source is stopped (the clones' shared base,
/// under `snapshot=on`), and the `exec:` clone's own copy, which L2 checks after it.
const DISK: &str = "/tmp/snapfs.qcow2";
const DISK_BASE: &str = "/tmp/snapfs-base.qcow2";
const DISK_EXEC: &str = "/tmp/snapfs-exec.qcow2";
/// What the source's guest writes: one file synced, one most likely still only in its page cache
/// at the save (ext4 commits every 5 s).
const SYNCED: &str = "synced-before-save";
const DIRTY: &str = "dirty-at-save";
/// The guest's shell reads its VM generation ID (the first 8 of its 16 bytes) from /dev/mem.
const GENERATION: &str = "\\$(devmem 0xFEA01000 32)\\$(devmem 0xFEA01004 32)";
/// How many clones run at once from one file.
pub const CLONES: u32 = 8;

/// The recipe's options, beside the test guest's kernel, initramfs and machine.
fn recipe_args() -> Vec<String> {
    [
        "-cpu",
        "host",
        "-m",
        "256,maxmem=1G,slots=2",
        "-rtc",
        "base=utc,driftfix=slew",
        "-global",
        "kvm-pit.lost_tick_policy=discard",
        "-nographic",
        "-no-user-config",
        "-netdev",
        "tap,id=n0,ifname=tap0,script=no,downscript=no",
        "-device",
        "virtio-net-device,netdev=n0",
        "-device",
        "virtio-serial-device",
        "-chardev",
        "file,id=charconsole0,path=/tmp/hvc0.log",
        "-device",
        "virtconsole,chardev=charconsole0,id=console0",
        "-serial",
        "stdio",
        "-drive",
        "file=/tmp/snapfs.qcow2,format=qcow2,if=none,id=fs",
        "-device",
        "virtio-blk-device,drive=fs",
        "-device",
        "vhost-vsock-device,guest-cid=3",
    ]
    .map(String::from)
    .to_vec()
}

/// Shell: `reap PID` waits for PID up to 60 s, then kills it; `mon PORT` connects fd 4 to the
/// telnet monitor at PORT, its output in /tmp/mon-PORT;
/// `say TEXT` types a monitor line; `wm PORT TEXT` waits (30 s) for TEXT from that monitor.
pub(super) const MONITOR_HELPERS: &str = r#"reap() { i=0; while kill -0 $1 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; kill -9 $1 2>/dev/null; }
 mon() { rm -f /tmp/mon-$1.in; mkfifo /tmp/mon-$1.in; i=0; while ! grep -q ":$(printf %04X $1) 00000000:0000 0A" /proc/net/tcp && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; nc 127.0.0.1 $1 </tmp/mon-$1.in >/tmp/mon-$1 2>&1 & exec 4>/tmp/mon-$1.in; }
 say() { printf '%s\r\n' "$1" >&4; }
 wm() { i=0; while ! grep -q -F -e "$2" /tmp/mon-$1 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; }"#;

/// L2's typing for the source: its output is the source's stdin (COM1).
fn source_typist() -> String {
    let vsock = vsock_send(3, "source");
    format!(
        "({HELPERS}
 {MONITOR_HELPERS}
 w 'MINNOW-INIT shell=ready'
 echo 'echo {SECRET} >/minnow-snap'
 echo '(/bin/vsock-echo listen 1234 >/vsock.log 2>&1 &)'
 echo 'mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo {SYNCED} >/mnt/synced && sync && echo {DIRTY} >/mnt/dirty'
 ask source
 echo \"echo MINNOW-GEN''ERATION source={GENERATION} acpi=\\$(ls /sys/bus/acpi/devices | grep -c VMGENCTR)\"; w 'MINNOW-GENERATION source='
 mon 1234; wm 1234 '(qemu)'
 say stop; say 'migrate_set_speed 4095m'; say 'migrate \"exec:gzip -c > {STATE_GZ}\"'; say 'info migrate'
 wm 1234 'Migration status: completed'
 cp {DISK} {DISK_BASE}; cp {DISK} {DISK_EXEC}; chown {L2_USER} {DISK_EXEC}
 say cont; say 'info status'; wm 1234 'VM status: running'
 {vsock} >/tmp/vsock-source.out 2>&1
 ask resumed
 say system_powerdown; w 'powerbutton=pressed'
 sed 's/^/MINNOW-SOURCE-MONITOR /' /tmp/mon-1234 >/tmp/source-monitor) >/tmp/case.stdin &"
    )
}

/// Starts clone `n` (run as L2's user) in the background, `$pidN` its pid; its stdin is a FIFO
/// a `sleep` holds open (`$holdN`), so each line typed into it (`type_into N`) reaches the guest.
/// Each clone has its own host backends, as the recipe allows: its own TAP and console file
/// (one TAP cannot be opened by two VMs).
fn clone_start(args: &[String], incoming: &str, port: u32, n: u32) -> String {
    let own: Vec<String> = args
        .iter()
        .map(|a| {
            let disk = match n {
                EXEC_CLONE => DISK_EXEC.to_string(),
                _ => format!("{DISK_BASE},snapshot=on"),
            };
            a.replace("ifname=tap0", &format!("ifname={}", clone_tap(n)))
                .replace("path=/tmp/hvc0.log", &format!("path=/tmp/hvc0-{n}.log"))
                .replace(&format!("file={DISK},"), &format!("file={disk},"))
                .replace("guest-cid=3", &format!("guest-cid={}", clone_cid(n)))
        })
        .collect();
    vm_start(paths::MINNOW, &own, &["-incoming", incoming], port, n)
}

/// Starts `program` with `args` and `extra` and a telnet monitor at `port`, as L2's user, in
/// the background: `$pidN` its pid, its console `/tmp/cloneN.log`, its stderr
/// `/tmp/cloneN.err`; its stdin a FIFO a `sleep` holds open (`$holdN`), so each line echoed
/// into `/tmp/cloneN.in` reaches the guest.
pub(super) fn vm_start(program: &str, args: &[String], extra: &[&str], port: u32, n: u32) -> String {
    let words: Vec<String> = args
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .map(sh_quote)
        .collect();
    format!(
        "rm -f /tmp/clone{n}.in; mkfifo /tmp/clone{n}.in; chown {L2_USER} /tmp/clone{n}.in; \
         su -s /bin/sh -c 'exec \"$0\" \"$@\"' -- {L2_USER} {program} {args} \
         -monitor telnet:127.0.0.1:{port},server,nowait </tmp/clone{n}.in >/tmp/clone{n}.log 2>/tmp/clone{n}.err & \
         pid{n}=$!; sleep 900 >/tmp/clone{n}.in & hold{n}=$!",
        args = words.join(" "),
    )
}

/// L2's side of the vsock echo with the VM at `cid`: the message names `who`.
fn vsock_send(cid: u32, who: &str) -> String {
    format!("{} send {cid} 1234 MINNOW-VSOCK-{who} 30", paths::VSOCK_ECHO)
}

/// Clone `n`'s vsock CID (the source's is 3).
fn clone_cid(n: u32) -> u32 {
    10 + n
}

/// L2 talks to clone `n` over vsock and relays what came back; the guest's shell then prints
/// what its listener said (`MINNOW-CLONE-VSOCKLOG`, relayed with the clone's other lines).
fn vsock_clone(n: u32) -> String {
    format!(
        "{} >/tmp/vsock-{n}.out 2>&1; sed 's/^/MINNOW-VSOCK {n} /' /tmp/vsock-{n}.out; \
         echo \"echo MINNOW-CLONE-VSOCKLOG{n} \\$(cat /vsock.log | tr '\\n' ' ') pids=\\$(pidof vsock-echo)\" >/tmp/clone{n}.in",
        vsock_send(clone_cid(n), &format!("CLONE{n}"))
    )
}

/// The clone that goes through `exec:`; the others are numbered from 0.
const EXEC_CLONE: u32 = 99;

/// Clone `n`'s TAP.
fn clone_tap(n: u32) -> String {
    format!("tapc{n}")
}

/// Has clone `n`'s shell print the source's files (its ramdisk's and its disk's) and write one
/// more to the disk, synced; the `exec:` clone then unmounts it. Waits (60 s) for its answer.
fn ask_clone(n: u32) -> String {
    let after = match n {
        EXEC_CLONE => "echo after-restore >/mnt/after && umount /mnt; echo MINNOW-CLONE-UMOUNT rc=\\$?",
        _ => "echo after-restore >/mnt/after && sync && echo MINNOW-CLONE-SYNCED",
    };
    format!(
        "echo \"echo MINNOW-CLONE{n} file=\\$(cat /minnow-snap) disk=\\$(cat /mnt/synced)+\\$(cat /mnt/dirty) \
         generation={GENERATION} uptime=\\$(cut -d' ' -f1 /proc/uptime); {after}\" >/tmp/clone{n}.in"
    )
}

/// L2 checks the `exec:` clone's image once it ended: e2fsck finds it clean, and the files
/// written before the save (synced, and only cached) and after the restore are on it.
fn check_exec_disk() -> String {
    format!(
        "{img} convert -O raw {DISK_EXEC} /tmp/snapfs.raw && {fsck} -fn /tmp/snapfs.raw >/tmp/snapfsck.log 2>&1; \
         echo \"MINNOW-L2 snapfsck rc=$?\"; grep -i -E 'inconsisten|error|needs_recovery' /tmp/snapfsck.log; \
         for f in synced dirty after; do echo \"MINNOW-L2 snapdisk $f=$({debugfs} -R \"cat /$f\" /tmp/snapfs.raw 2>/dev/null)\"; done; \
         rm -f /tmp/snapfs.raw /tmp/snapfsck.log",
        img = paths::QEMU_IMG,
        fsck = paths::E2FSCK,
        debugfs = paths::DEBUGFS,
    )
}

fn wait_clone(n: u32) -> String {
    format!(
        "i=0; while ! grep -q 'MINNOW-CLONE{n} file=' /tmp/clone{n}.log && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
    )
}

/// After the source ended: one clone through `exec:`, then [`CLONES`] at once from a file. One
/// script: each after-command runs in its own subshell.
fn clones(args: &[String]) -> String {
    let x = EXEC_CLONE;
    let mut s = vec![
        format!("{HELPERS}\n {MONITOR_HELPERS}"),
        // What L2 is doing, every 10 s: the steps below are long on an emulated CPU.
        "(while :; do sleep 10; echo \"MINNOW-STATE tick $(up): $(ls -s /tmp/state.raw 2>/dev/null) minnows=$(pidof minnow | wc -w) free=$(free -m | awk 'NR==2 {print $4}')M\"; done) & ticker=$!".into(),
        "cat /tmp/source-monitor 2>/dev/null".into(),
        "sed 's/^/MINNOW-VSOCK source /' /tmp/vsock-source.out".into(),
        format!("ls -l {STATE_GZ} | sed 's/^/MINNOW-STATE /'"),
        // One clone through exec:, word for word.
        clone_start(args, &format!("exec: gzip -c -d {STATE_GZ}"), 1235, x),
        "mon 1235; wm 1235 '(qemu)'; say 'info status'; wm 1235 'VM status:'; say cont; say 'info status'".into(),
        // Diagnostics: does the shell answer at all, and what does the disk have in flight?
        format!("echo 'echo MINNOW-CLONE-PROBE inflight=$(cat /sys/block/vda/inflight) state=$(cat /proc/*/stat 2>/dev/null | grep -c \" D \")' >/tmp/clone{x}.in; i=0; while ! grep -q MINNOW-CLONE-PROBE /tmp/clone{x}.log && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; grep MINNOW-CLONE-PROBE /tmp/clone{x}.log"),
        ask_clone(x),
        wait_clone(x),
        vsock_clone(x),
        format!("i=0; while ! grep -q 'MINNOW-CLONE-UMOUNT' /tmp/clone{x}.log && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"),
        format!("say system_powerdown; reap $pid{x}; kill $hold{x}; exec 4>&-"),
        check_exec_disk(),
        "echo \"MINNOW-STATE exec clone done at $(up)\"".into(),
        format!("sed 's/^/MINNOW-CLONE-MONITOR /' /tmp/mon-1235; grep -E 'MINNOW-CLONE|WARNING|soft lockup|clocksource|BUG' /tmp/clone{x}.log; sed 's/^/MINNOW-CLONE-STDERR /' /tmp/clone{x}.err"),
        // What the clone's console said last (only in the log; the checks read the lines above).
        format!("tail -n 15 /tmp/clone{x}.log | sed 's/^/MINNOW-CLONE-TAIL /'"),
        // Eight at once from one file: memory mapped copy-on-write.
        format!("gzip -c -d {STATE_GZ} >{STATE_RAW} && chown {L2_USER} {STATE_RAW}"),
    ];
    for i in 0..CLONES {
        s.push(clone_start(args, &format!("file:{STATE_RAW}"), 1240 + i, i));
    }
    for i in 0..CLONES {
        s.push(format!(
            "mon {port}; wm {port} '(qemu)'; say cont; exec 4>&-",
            port = 1240 + i
        ));
        s.push(ask_clone(i));
    }
    for i in 0..CLONES {
        s.push(wait_clone(i));
    }
    for i in 0..CLONES {
        s.push(vsock_clone(i));
    }
    s.push("grep -h -E 'MINNOW-CLONE([0-9]+ file=|-VSOCKLOG)' /tmp/clone[0-9].log; sed 's/^/MINNOW-CLONES-STDERR /' /tmp/clone[0-9].err".into());
    for i in 0..CLONES {
        s.push(format!("kill $pid{i} $hold{i}; reap $pid{i}"));
    }
    s.push(format!(
        "rm -f {STATE_GZ} {STATE_RAW} {DISK} {DISK_BASE} {DISK_EXEC}; kill $ticker"
    ));
    s.join("\n")
}

pub(super) fn linux_case_snapshot() -> Case {
    let mut case = linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 2);
    rename(&mut case, "-snapshot", " minnow.monitor=1");
    case.args.extend(recipe_args());
    let clone_args = case.args.clone();
    case.args
        .extend(["-monitor", "telnet:127.0.0.1:1234,server,nowait"].map(String::from));
    case.serial_on_stdout = true;
    let uid = crate::nested::script::L2_UID;
    let taps: Vec<String> = std::iter::once(EXEC_CLONE)
        .chain(0..CLONES)
        .map(|n| format!("{} {} {uid}", paths::TAP_ADD, clone_tap(n)))
        .collect();
    case.setup = vec![
        format!("{} tap0 {uid}", paths::TAP_ADD),
        taps.join("; "),
        "ifconfig tap0 10.0.2.1 netmask 255.255.255.0 up".into(),
        "rm -f /tmp/case.stdin /tmp/source-monitor && mkfifo /tmp/case.stdin".into(),
        // snapshot=on's overlays go to /var/tmp, as QEMU's.
        "mkdir -p /var/tmp && chmod 1777 /var/tmp".into(),
        format!("cp {} {DISK}", paths::EXT4_QCOW2),
        source_typist(),
    ];
    case.after = vec![clones(&clone_args)];
    case.stop_when = None;
    case.hang_secs = 240;
    // One clone through gunzip, the state unpacked, then nine Linux guests resuming at once,
    // all on L2's one emulated CPU.
    case.after_secs = 900;
    if let Expect::Linux { snapshot, .. } = &mut case.expect {
        *snapshot = true;
    }
    case
}

/// The source saved and ran on, the clone waited for `cont` and read the source's file, every
/// one of the [`CLONES`] did too, and no clone's kernel complained about its clock.
pub(super) fn check_snapshot(serial: &[String], after: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    let has = |lines: &[String], text: &str| lines.iter().any(|l| l.contains(text));
    for (text, what) in [
        ("MINNOW-SHELL source=", "the source's shell never answered"),
        (
            "MINNOW-SHELL resumed=",
            "the source's shell did not answer after migrate and cont",
        ),
    ] {
        if !has(serial, text) {
            bad.push(what.into());
        }
    }
    for (text, what) in [
        (
            "MINNOW-SOURCE-MONITOR Migration status: completed",
            "the source's migrate did not complete",
        ),
        (
            "MINNOW-CLONE-MONITOR VM status: paused",
            "the clone did not wait, paused, for cont",
        ),
        (
            &format!("MINNOW-CLONE{EXEC_CLONE} file={SECRET} disk={SYNCED}+{DIRTY}") as &str,
            "the clone did not read the source's files (ramdisk and disk)",
        ),
        (
            "MINNOW-CLONE-UMOUNT rc=0",
            "the clone could not unmount its file system",
        ),
        (
            "MINNOW-L2 snapfsck rc=0",
            "e2fsck did not find the clone's file system clean",
        ),
        (
            &format!("MINNOW-L2 snapdisk synced={SYNCED}") as &str,
            "the file synced before the save is not on the clone's disk",
        ),
        (
            &format!("MINNOW-L2 snapdisk dirty={DIRTY}") as &str,
            "the file cached at the save did not reach the clone's disk",
        ),
        (
            "MINNOW-L2 snapdisk after=after-restore",
            "the file written after the restore is not on the clone's disk",
        ),
    ] {
        if !has(after, text) {
            bad.push(what.into());
        }
    }
    let answered = (0..CLONES)
        .filter(|i| {
            has(
                after,
                &format!("MINNOW-CLONE{i} file={SECRET} disk={SYNCED}+{DIRTY}"),
            )
        })
        .count();
    if answered != CLONES as usize {
        bad.push(format!("{answered} of {CLONES} clones at once answered"));
    }
    let mut peers = vec![("source".to_string(), "source".to_string())];
    peers.extend(
        std::iter::once(EXEC_CLONE)
            .chain(0..CLONES)
            .map(|n| (n.to_string(), format!("CLONE{n}"))),
    );
    for (who, tag) in peers {
        if !has(after, &format!("MINNOW-VSOCK {who} MINNOW-VSOCK-{tag}")) {
            bad.push(format!("vsock: {who} did not echo L2's message"));
        }
    }
    bad.extend(check_generations(serial, after));
    for l in after.iter().filter(|l| {
        let complaint = ["WARNING", "soft lockup", "clocksource", "BUG", "STDERR minnow:"]
            .iter()
            .any(|t| l.contains(t));
        // The recipe's hot-plug slots and drift fix are noted at every start, as they should be.
        complaint && !l.contains("accepted, without effect")
    }) {
        bad.push(format!("a clone said: {l}"));
    }
    bad
}

/// A word's value after `key=` on the first line that has it.
fn value_after<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let rest = &l[l.find(key)? + key.len()..];
        rest.split_whitespace().next()
    })
}

/// The source's guest saw the VM generation ID device in ACPI; every clone read another ID.
fn check_generations(serial: &[String], after: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    let source = value_after(serial, "MINNOW-GENERATION source=");
    if value_after(serial, " acpi=") != Some("1") {
        bad.push("the guest has no VMGENCTR device in /sys/bus/acpi/devices".into());
    }
    let mut seen: Vec<&str> = source.into_iter().collect();
    for n in std::iter::once(EXEC_CLONE).chain(0..CLONES) {
        let key = format!("MINNOW-CLONE{n} ");
        let line = after.iter().find(|l| l.contains(&key));
        match line
            .and_then(|l| l.split(" generation=").nth(1))
            .and_then(|r| r.split_whitespace().next())
        {
            Some(g) if seen.contains(&g) => {
                bad.push(format!("clone {n} has a generation ID seen before: {g}"))
            }
            Some(g) if g.starts_with("0x") => seen.push(g),
            other => bad.push(format!("clone {n} did not read its generation ID: {other:?}")),
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clones_command_line_is_the_sources_plus_incoming() {
        let case = linux_case_snapshot();
        let joined = case.after.join("\n");
        assert!(
            joined.contains("'-incoming' 'exec: gzip -c -d /tmp/state.gz'"),
            "{joined}"
        );
        assert!(joined.contains("'256,maxmem=1G,slots=2'"), "{joined}");
        assert!(case
            .args
            .iter()
            .any(|a| a == "telnet:127.0.0.1:1234,server,nowait"));
        assert!(
            !joined.contains("1234,server"),
            "a clone has its own monitor port"
        );
    }

    #[test]
    fn the_script_parses() {
        super::super::assert_script_parses(linux_case_snapshot());
    }

    #[test]
    fn every_clone_must_answer() {
        let serial: Vec<String> = [
            "MINNOW-SHELL source=1.0",
            "MINNOW-GENERATION source=0x11110xAAAA acpi=1",
            "MINNOW-SHELL resumed=2.0",
        ]
        .map(String::from)
        .to_vec();
        let mut after: Vec<String> = vec![
            "MINNOW-SOURCE-MONITOR Migration status: completed".into(),
            "MINNOW-CLONE-MONITOR VM status: paused (postmigrate)".into(),
            format!("MINNOW-CLONE{EXEC_CLONE} file={SECRET} disk={SYNCED}+{DIRTY} generation=0x22220xBBBB uptime=3.0"),
            "MINNOW-CLONE-UMOUNT rc=0".into(),
            "MINNOW-L2 snapfsck rc=0".into(),
            format!("MINNOW-L2 snapdisk synced={SYNCED}"),
            format!("MINNOW-L2 snapdisk dirty={DIRTY}"),
            "MINNOW-L2 snapdisk after=after-restore".into(),
            "MINNOW-VSOCK source MINNOW-VSOCK-source".into(),
            format!("MINNOW-VSOCK {EXEC_CLONE} MINNOW-VSOCK-CLONE{EXEC_CLONE}"),
        ];
        after.extend((0..CLONES).map(|i| format!("MINNOW-VSOCK {i} MINNOW-VSOCK-CLONE{i}")));
        after.extend((0..CLONES).map(|i| {
            format!("MINNOW-CLONE{i} file={SECRET} disk={SYNCED}+{DIRTY} generation=0x{i}0x{i} uptime=3.0")
        }));
        let mut same = after.clone();
        same[8 + 2 + CLONES as usize] =
            format!("MINNOW-CLONE0 file={SECRET} disk={SYNCED}+{DIRTY} generation=0x11110xAAAA uptime=3.0");
        assert!(check_snapshot(&serial, &same)[0].contains("seen before"));
        assert_eq!(check_snapshot(&serial, &after), Vec::<String>::new());
        let mut unclean = after.clone();
        unclean[4] = "MINNOW-L2 snapfsck rc=4".into();
        assert!(check_snapshot(&serial, &unclean)[0].contains("e2fsck"));
        after.pop();
        assert!(!check_snapshot(&serial, &after).is_empty());
        after.push("[ 5.0] clocksource: timekeeping watchdog on CPU0".into());
        assert!(check_snapshot(&serial, &after).len() >= 2);
    }
}
