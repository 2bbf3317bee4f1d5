//! Snapshots on the `minnow` binary with a payload guest on this host's /dev/kvm: a VM saved
//! with `migrate` and started again from the file with `-incoming` carries on exactly where it
//! stopped (its registers, its RAM, its UART), as many times as wanted; bad state files and
//! other machines are refused in one line; and the save works under the seccomp filters,
//! through the broker.
mod common;

use common::qmp::Qmp;
use common::vm::Vm;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn temp(name: &str) -> PathBuf {
    common::temp("snapshot", name)
}

/// Real mode, from the ROM's start: forever, the next letter of a counter kept in RAM at
/// 0x500 ('a' to 'z'), written to COM1, then a delay.
const COUNTER: &[u8] = &[
    0xBA, 0xF8, 0x03, // mov dx, 0x3f8
    0xA0, 0x00, 0x05, // loop: mov al, [0x500]
    0xFE, 0xC0, // inc al
    0x3C, 0x61, // cmp al, 'a'
    0x72, 0x04, // jb reset
    0x3C, 0x7A, // cmp al, 'z'
    0x76, 0x02, // jbe ok
    0xB0, 0x61, // reset: mov al, 'a'
    0xA2, 0x00, 0x05, // ok: mov [0x500], al
    0xEE, // out dx, al
    0xB9, 0xFF, 0xFF, // mov cx, 0xffff
    0xE2, 0xFE, // loop $
    0xEB, 0xE6, // jmp loop
];

/// A 64 KiB ROM with [`COUNTER`] at its start and a jump there at the reset vector; one file
/// per test (`name`), as each test removes its own when it ends.
fn counter_rom(name: &str) -> PathBuf {
    let mut rom = vec![0xF4u8; 64 * 1024];
    rom[..COUNTER.len()].copy_from_slice(COUNTER);
    // jmp near 0x0000 (from 0xFFF3, the next instruction): rel16 = -0xFFF3.
    rom[0xFFF0..0xFFF3].copy_from_slice(&[0xE9, 0x0D, 0x00]);
    let path = temp(&format!("{name}.rom"));
    std::fs::write(&path, rom).expect("writing the ROM");
    path
}

/// minnow on `rom` with `extra` (`-M microvm`, 32 MiB).
fn start_env(name: &str, rom: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Vm {
    let rom = rom.display().to_string();
    let mut args = vec!["-M", "microvm", "-bios", &rom];
    args.extend(extra);
    Vm::launch("snapshot", name, &args, env)
}

fn start(name: &str, rom: &Path, extra: &[&str]) -> Vm {
    start_env(name, rom, extra, &[])
}

fn next_letter(c: char) -> char {
    match c {
        'z' => 'a',
        c => (c as u8 + 1) as char,
    }
}

fn reply(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or("")
}

/// Saves a paused counter, then starts two clones from the file: each waits, paused, for
/// `cont`, then writes the letter after the last one the first VM wrote.
#[test]
fn a_saved_vm_resumes_where_it_stopped_in_every_clone() {
    let rom = counter_rom("resume");
    let state = temp("counter.state");
    let first = start("first", &rom, &[]);
    first.wait_for_output(5);
    let mut q = first.monitor();
    let events_on = r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true}]}}"#;
    assert_eq!(reply(&q.call(events_on)), r#"{"return": {}}"#);
    assert_eq!(reply(&q.call(r#"{"execute":"stop"}"#)), r#"{"return": {}}"#);
    let lines = q.call(&format!(
        r#"{{"execute":"migrate","arguments":{{"uri":"file:{}"}}}}"#,
        state.display()
    ));
    assert_eq!(reply(&lines), r#"{"return": {}}"#, "{lines:?}");
    let events: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("\"MIGRATION"))
        .map(|l| common::qmp::event(l))
        .collect();
    assert_eq!(
        events,
        [
            r#""event": "MIGRATION", "data": {"status": "setup"}}"#,
            r#""event": "MIGRATION", "data": {"status": "active"}}"#,
            r#""event": "MIGRATION_PASS", "data": {"pass": 1}}"#,
            r#""event": "MIGRATION", "data": {"status": "completed"}}"#,
        ]
    );
    let migrated = reply(&q.call(r#"{"execute":"query-migrate"}"#)).to_string();
    assert!(migrated.contains(r#""status": "completed""#), "{migrated}");
    assert!(
        migrated.contains(r#""total": 33488896"#),
        "32 MiB less the ROM's low window: {migrated}"
    );
    let generation = |q: &mut Qmp| reply(&q.call(r#"{"execute":"query-vm-generation-id"}"#)).to_string();
    let source_generation = generation(&mut q);
    assert!(
        source_generation.starts_with(r#"{"return": {"guid": ""#),
        "{source_generation}"
    );
    let saved = first.output();
    let err = first.quit(&mut q);
    assert!(err.is_empty(), "{err}");
    let last = saved.chars().last().expect("output");
    let mut generations = vec![source_generation];
    let meta = std::fs::metadata(&state).expect("the state file");
    let size = meta.len();
    assert!(size > 32 << 20 && size < (32 << 20) + (1 << 20), "{size} bytes");
    let on_disk = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
    assert!(
        on_disk < 4 << 20,
        "pages of zeros are holes: {on_disk} bytes on disk"
    );

    for clone in ["clone1", "clone2"] {
        let vm = start(clone, &rom, &["-incoming", &format!("file:{}", state.display())]);
        let mut q = vm.monitor();
        let status = reply(&q.call(r#"{"execute":"query-status"}"#)).to_string();
        assert!(
            status.contains(r#""status": "paused""#),
            "a paused VM's clone waits: {status}"
        );
        let clone_generation = generation(&mut q);
        assert!(
            !generations.contains(&clone_generation),
            "each clone is a new generation: {clone_generation} after {generations:?}"
        );
        generations.push(clone_generation);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(vm.output(), "", "nothing runs before cont");
        assert_eq!(reply(&q.call(r#"{"execute":"cont"}"#)), r#"{"return": {}}"#);
        let out = vm.wait_for_output(3);
        let first: char = out.chars().next().expect("a letter");
        assert_eq!(first, next_letter(last), "{clone} went on from {last:?}: {out:?}");
        let expected: String = std::iter::successors(Some(first), |&c| Some(next_letter(c)))
            .take(out.len())
            .collect();
        assert_eq!(out, expected, "the counter in RAM goes on");
        let err = vm.quit(&mut q);
        assert!(err.is_empty(), "{err}");
    }
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(&rom);
}

/// HMP's recipe: migrate through a shell command (gzip) from a running VM, which stays
/// stopped (postmigrate) until cont; the clone restores through `exec:` and runs by itself.
#[test]
fn the_hmp_recipe_with_exec_and_gzip() {
    let rom = counter_rom("recipe");
    let state = temp("recipe.gz");
    let first = start("recipe", &rom, &[]);
    first.wait_for_output(3);
    let mut q = first.monitor();
    let hmp = |q: &mut Qmp, line: &str| {
        let lines = q.call(&format!(
            r#"{{"execute":"human-monitor-command","arguments":{{"command-line":"{}"}}}}"#,
            line.replace('"', "\\\"")
        ));
        reply(&lines).to_string()
    };
    assert_eq!(hmp(&mut q, "migrate_set_speed 4095m"), r#"{"return": ""}"#);
    let said = hmp(&mut q, &format!("migrate \"exec:gzip -c > {}\"", state.display()));
    assert_eq!(said, r#"{"return": ""}"#);
    let info = hmp(&mut q, "info migrate");
    assert!(info.contains("Migration status: completed"), "{info}");
    let status = reply(&q.call(r#"{"execute":"query-status"}"#)).to_string();
    assert!(status.contains("postmigrate"), "{status}");
    let saved = first.output();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(first.output(), saved, "stopped after migrate");
    assert_eq!(hmp(&mut q, "cont"), r#"{"return": ""}"#);
    first.wait_for_output(saved.len() + 2);
    let last = saved.chars().last().expect("output");
    drop(first.quit(&mut q));

    let clone = start(
        "recipe-clone",
        &rom,
        &["-incoming", &format!("exec: gzip -c -d {}", state.display())],
    );
    let out = clone.wait_for_output(2);
    assert_eq!(
        out.chars().next(),
        Some(next_letter(last)),
        "{out:?} after {last:?}"
    );
    let mut q = clone.monitor();
    let status = reply(&q.call(r#"{"execute":"query-status"}"#)).to_string();
    assert!(status.contains(r#""running": true"#), "{status}");
    drop(clone.quit(&mut q));
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(&rom);
}

/// A restore that cannot be right is refused before the guest runs, in one line, and a save
/// that fails leaves the VM as it was.
#[test]
fn bad_snapshots_and_failed_saves_are_one_clear_error() {
    let rom = counter_rom("bad");
    let state = temp("bad.state");
    let vm = start("bad-source", &rom, &[]);
    vm.wait_for_output(1);
    let mut q = vm.monitor();
    let quiet = q.call(r#"{"execute":"migrate","arguments":{"uri":"exec:exit 3"}}"#);
    assert!(
        !quiet.iter().any(|l| l.contains("MIGRATION")),
        "no MIGRATION events without the capability: {quiet:?}"
    );
    let events_on = r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true}]}}"#;
    assert_eq!(reply(&q.call(events_on)), r#"{"return": {}}"#);
    let bogus = r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"bogus","state":true}]}}"#;
    assert!(reply(&q.call(bogus)).contains("does not accept value 'bogus'"));
    let failed = q.call(r#"{"execute":"migrate","arguments":{"uri":"exec:exit 3"}}"#);
    assert!(
        reply(&failed).contains("the command exited with status 3"),
        "{failed:?}"
    );
    assert!(
        failed.iter().any(|l| l.contains(r#""status": "failed""#)),
        "{failed:?}"
    );
    let status = reply(&q.call(r#"{"execute":"query-status"}"#)).to_string();
    assert!(
        status.contains(r#""running": true"#),
        "a failed save runs the VM again: {status}"
    );
    let nowhere = q.call(r#"{"execute":"migrate","arguments":{"uri":"file:/nonexistent/dir/x"}}"#);
    assert!(
        reply(&nowhere).contains("No such file or directory"),
        "{nowhere:?}"
    );
    let tcp = q.call(r#"{"execute":"migrate","arguments":{"uri":"tcp:127.0.0.1:4444"}}"#);
    assert!(reply(&tcp).contains("exec: and file: only"), "{tcp:?}");
    // A full disk, through either kind of stream: /dev/full fails every write with ENOSPC.
    for uri in ["file:/dev/full", "exec:cat >/dev/full"] {
        let full = q.call(&format!(
            r#"{{"execute":"migrate","arguments":{{"uri":"{uri}"}}}}"#
        ));
        let said = reply(&full);
        assert!(
            said.contains("No space left on device") || said.contains("exited with status 1"),
            "{uri}: {full:?}"
        );
        assert_eq!(said.lines().count(), 1, "{said}");
        let status = reply(&q.call(r#"{"execute":"query-status"}"#)).to_string();
        assert!(status.contains(r#""running": true"#), "{uri}: {status}");
    }
    let saved = q.call(&format!(
        r#"{{"execute":"migrate","arguments":{{"uri":"file:{}"}}}}"#,
        state.display()
    ));
    assert_eq!(reply(&saved), r#"{"return": {}}"#);
    drop(vm.quit(&mut q));

    let incoming = format!("file:{}", state.display());
    let restore = |name: &str, extra: &[&str]| {
        let mut args = vec!["-incoming", incoming.as_str()];
        args.extend_from_slice(extra);
        start(name, &rom, &args).ended()
    };
    let (status, err) = restore("bad-memory", &["-m", "64M"]);
    assert_eq!(status, Some(1));
    assert!(
        err.contains("-m: the snapshot is of a 32 MiB guest, this one has 64 MiB"),
        "{err}"
    );
    let (_, err) = restore("bad-smp", &["-smp", "2"]);
    assert!(
        err.contains("-smp: the snapshot has 1 vCPUs, this machine 2"),
        "{err}"
    );
    let (_, err) = restore("bad-devices", &["-device", "virtio-rng-device"]);
    assert!(err.contains("virtio-rng"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let mut bytes = std::fs::read(&state).unwrap();
    bytes.truncate(1000);
    let short = temp("short.state");
    std::fs::write(&short, &bytes).unwrap();
    let vm = start(
        "bad-short",
        &rom,
        &["-incoming", &format!("file:{}", short.display())],
    );
    let (status, err) = vm.ended();
    assert_eq!(status, Some(1));
    assert!(err.contains("the state stream ended early"), "{err}");
    bytes[0] = b'X';
    std::fs::write(&short, &bytes).unwrap();
    let vm = start(
        "bad-magic",
        &rom,
        &["-incoming", &format!("file:{}", short.display())],
    );
    assert!(vm.ended().1.contains("not a minnow snapshot"));
    for f in [&state, &short, &rom] {
        let _ = std::fs::remove_file(f);
    }
}

/// `-drive snapshot=on`, the clones' shared disk: several VMs open one image at once, each
/// with its overlay in $TMPDIR, which no name reaches; a VM that would write the image itself
/// is refused while they run, in one line; and the image is left as it was.
#[test]
fn clones_share_one_image_through_throwaway_overlays() {
    let rom = counter_rom("overlay");
    let image = temp("shared.raw");
    std::fs::write(&image, vec![0x5A; 1 << 20]).unwrap();
    let tmpdir = temp("overlays");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let drive = format!("file={},format=raw,if=none,id=d", image.display());
    let shared = format!("{drive},snapshot=on");
    let blk = ["-device", "virtio-blk-device,drive=d"];
    let env = [("TMPDIR", tmpdir.as_path())];
    let one = start_env("overlay-1", &rom, &["-drive", &shared, blk[0], blk[1]], &env);
    let two = start_env(
        "overlay-2",
        &rom,
        &["-snapshot", "-drive", &drive, blk[0], blk[1]],
        &env,
    );
    one.wait_for_output(1);
    two.wait_for_output(1);
    let names: Vec<_> = std::fs::read_dir(&tmpdir).unwrap().collect();
    assert!(names.is_empty(), "the overlays have no names: {names:?}");
    let (status, err) = start("overlay-writer", &rom, &["-drive", &drive, blk[0], blk[1]]).ended();
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("lock") && err.lines().count() == 1, "{err}");
    let nowhere = Path::new("/nonexistent/dir");
    let (_, err) = start_env(
        "overlay-nowhere",
        &rom,
        &["-drive", &shared, blk[0], blk[1]],
        &[("TMPDIR", nowhere)],
    )
    .ended();
    assert!(err.contains("snapshot=on") && err.contains("TMPDIR"), "{err}");
    for vm in [one, two] {
        let mut q = vm.monitor();
        drop(vm.quit(&mut q));
    }
    assert_eq!(std::fs::read(&image).unwrap(), vec![0x5A; 1 << 20]);
    let _ = std::fs::remove_file(&image);
    let _ = std::fs::remove_dir(&tmpdir);
    let _ = std::fs::remove_file(&rom);
}
