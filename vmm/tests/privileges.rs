//! `-run-with user=,chroot=`, `-runas` and `-chroot` on the `minnow` binary: once its VM is
//! built, minnow runs as that user, in that root, and still serves its monitor and its guest.
//! Switching users needs root: run as another user, the test checks the one-line refusal.
mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn temp(name: &str) -> PathBuf {
    common::temp("privileges", name)
}

fn minnow(args: &[&str]) -> Command {
    let rom = common::rom_file("privileges", "halt", &common::HALT);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minnow"));
    cmd.args(["-M", "microvm", "-m", "16M", "-serial", "none", "-bios"])
        .arg(rom)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `/proc/PID/status`'s line `key`, its values.
fn status(pid: u32, key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process exists");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn connect(sock: &Path) -> UnixStream {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(sock) {
            Ok(s) => return s,
            Err(e) if Instant::now() > until => panic!("the monitor {}: {e}", sock.display()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Quits through QMP; returns what minnow printed on stderr and its exit status.
fn quit(mut child: Child, sock: &Path) -> (String, Option<i32>) {
    common::qmp_quit(connect(sock));
    let status = child.wait().expect("minnow ends");
    let mut err = String::new();
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    (err, status.code())
}

/// As root: each spelling leaves minnow running as nobody, its root the jail, with no other
/// group, serving its monitor; `quit` ends it cleanly.
#[test]
fn the_vm_runs_as_the_user_in_the_root_it_was_told() {
    if !is_root() {
        eprintln!("the_vm_runs_as_the_user_in_the_root_it_was_told: needs root to switch users; the refusal is tested instead");
        let out = minnow(&["-runas", "nobody"]).output().expect("minnow runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("-run-with user: switching to uid"), "{err}");
        return;
    }
    let jail = temp("jail");
    std::fs::create_dir_all(&jail).expect("the jail");
    let jail_arg = jail.display().to_string();
    let spellings = [
        vec!["-run-with".to_string(), format!("user=nobody,chroot={jail_arg}")],
        vec![
            "-runas".into(),
            "nobody".into(),
            "-chroot".into(),
            jail_arg.clone(),
        ],
    ];
    for (i, spelling) in spellings.iter().enumerate() {
        let sock = temp(&format!("qmp{i}.sock"));
        let qmp = format!("unix:{},server=on,wait=off", sock.display());
        let mut args: Vec<&str> = vec!["-qmp", &qmp];
        args.extend(spelling.iter().map(String::as_str));
        let child = minnow(&args).spawn().expect("minnow runs");
        let pid = child.id();
        drop(connect(&sock));
        assert_eq!(status(pid, "Uid"), ["65534"; 4], "{spelling:?}");
        assert_eq!(status(pid, "Gid"), ["65534"; 4], "{spelling:?}");
        assert_eq!(status(pid, "Groups"), ["65534"], "{spelling:?}");
        let root = std::fs::read_link(format!("/proc/{pid}/root")).expect("its root");
        assert_eq!(root, jail.canonicalize().expect("the jail"), "{spelling:?}");
        let (err, code) = quit(child, &sock);
        assert_eq!(code, Some(0), "{spelling:?}: {err}");
        let _ = std::fs::remove_file(&sock);
    }
    let _ = std::fs::remove_dir(&jail);
}

/// What cannot be done is said in one line, before the guest runs.
#[test]
fn an_unknown_user_or_a_missing_root_is_one_line() {
    for (args, says) in [
        (
            &["-run-with", "user=no-such-user-minnow"][..],
            "-run-with user=no-such-user-minnow: no such user",
        ),
        (
            &["-chroot", "/nonexistent-minnow-jail"][..],
            "-run-with chroot=/nonexistent-minnow-jail: ",
        ),
    ] {
        let out = minnow(args).output().expect("minnow runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A jailed minnow need not name any host path: the firmware and a disk passed as inherited
/// descriptors (`/proc/self/fd/N`) work as files do. The ROM writes 2 to isa-debug-exit
/// (status 5) once it runs.
#[test]
fn firmware_and_disks_can_be_inherited_descriptors() {
    let rom = common::rom_file("privileges", "exit5", &[0xB0, 0x02, 0xE6, 0xF4, 0xF4]);
    let disk = temp("disk.raw");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("a disk");
    let script = format!(
        "exec '{}' -M microvm -m 16M -serial none -device isa-debug-exit,iobase=0xf4,iosize=4 \
         -bios /proc/self/fd/3 -drive file=/proc/self/fd/4,format=raw,if=none,id=d0 \
         -device virtio-blk-device,drive=d0 3<'{}' 4<>'{}'",
        env!("CARGO_BIN_EXE_minnow"),
        rom.display(),
        disk.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    let _ = std::fs::remove_file(&disk);
}
