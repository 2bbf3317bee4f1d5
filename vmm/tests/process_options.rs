//! The options about the minnow process rather than the machine, on the `minnow` binary:
//! `-daemonize` with `-pidfile`, `-d`/`-D` (what the guest does wrong, and where that goes) and
//! `-msg timestamp=on`. The guests are a few real-mode instructions in a ROM.
mod common;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn temp(name: &str) -> PathBuf {
    common::temp("process", name)
}

fn rom(name: &str, code: &[u8]) -> PathBuf {
    common::rom_file("process", name, code)
}

use common::HALT;
/// `mov dx, 0x2f0; in al, dx; out dx, al; cli; hlt`: a read and a write where nothing sits.
const PROBE: [u8; 7] = [0xBA, 0xF0, 0x02, 0xEC, 0xEE, 0xFA, 0xF4];

fn minnow(rom: &PathBuf, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minnow"));
    cmd.args(["-M", "microvm", "-m", "16M", "-bios"])
        .arg(rom)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Runs minnow for `secs`, then SIGTERMs it; what it printed.
fn run_for(rom: &PathBuf, args: &[&str], secs: u64) -> Output {
    let child = minnow(rom, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("minnow runs");
    std::thread::sleep(Duration::from_secs(secs));
    // SAFETY: kill sends a signal to our own child, which has not been reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait_with_output().expect("minnow ends")
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Kills a daemon a failed test leaves behind.
struct Reaper(i32);

impl Drop for Reaper {
    fn drop(&mut self) {
        if pid_alive(self.0) {
            // SAFETY: kill sends a signal; the pid is the daemon this test started.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "{what} did not happen within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The parent returns 0 once the VM runs; the daemon is in a session of its own but does not
/// lead it, writes its pid, keeps its monitor, and on `quit` ends and removes its pid file and
/// socket.
#[test]
fn daemonize_returns_once_the_vm_runs_and_the_daemon_serves_its_monitor() {
    let rom = rom("daemon", &HALT);
    let (pidfile, sock) = (temp("daemon.pid"), temp("daemon.sock"));
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let pidfile_arg = pidfile.display().to_string();
    let out = minnow(&rom, &["-daemonize", "-pidfile", &pidfile_arg, "-qmp", &qmp])
        .output()
        .expect("minnow runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&pidfile).expect("the pid file is written before the parent returns");
    let pid: i32 = text.trim().parse().expect("a pid");
    let _reaper = Reaper(pid);
    assert!(pid_alive(pid));
    // SAFETY: getsid reads a process's session id.
    let (session, ours) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    assert_ne!(session, ours, "the daemon left the caller's session");
    assert_ne!(
        session, pid,
        "the daemon leads no session (it can take no terminal)"
    );

    common::qmp_quit(UnixStream::connect(&sock).expect("the daemon's monitor"));
    eventually("the daemon ending", || !pid_alive(pid));
    assert!(!pidfile.exists() && !sock.exists());
    let _ = std::fs::remove_file(&rom);
}

/// A pid file in use: a second minnow given it refuses to start, and leaves it alone.
#[test]
fn a_locked_pid_file_is_refused() {
    let rom = rom("pidfile", &HALT);
    let pidfile = temp("locked.pid");
    let pidfile_arg = pidfile.display().to_string();
    let mut first = minnow(&rom, &["-serial", "none", "-pidfile", &pidfile_arg])
        .spawn()
        .expect("minnow runs");
    eventually("the first pid file", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t == format!("{}\n", first.id()))
    });
    let second = minnow(&rom, &["-serial", "none", "-pidfile", &pidfile_arg])
        .output()
        .expect("minnow runs");
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another process holds it"), "{err}");
    let text = std::fs::read_to_string(&pidfile).expect("still there");
    assert_eq!(text, format!("{}\n", first.id()));
    let _ = first.kill();
    let _ = first.wait();
    let _ = std::fs::remove_file(&pidfile);
    let _ = std::fs::remove_file(&rom);
}

/// A daemon whose VM cannot start: the parent exits 1 and the child's reason reaches the
/// caller's stderr.
#[test]
fn daemonize_fails_in_the_parent_when_the_vm_cannot_start() {
    let rom = temp("missing.rom");
    let out = minnow(&rom, &["-daemonize"]).output().expect("minnow runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.rom"), "{err}");
}

/// The files minnow writes for itself never follow a symbolic link: each option refuses one in
/// one line naming the path, exits 1, and the link's target is untouched.
#[test]
fn output_files_never_follow_a_symbolic_link() {
    let rom = rom("halt-for-links", &HALT);
    let target = temp("precious");
    std::fs::write(&target, b"keep me").expect("target written");
    let link = temp("planted-link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).expect("link made");
    let link_arg = link.display().to_string();
    let serial = format!("file:{link_arg}");
    let chardev = format!("file,id=c0,path={link_arg}");
    let cases: [&[&str]; 4] = [
        &["-serial", &serial],
        &["-D", &link_arg, "-d", "unimp"],
        &["-pidfile", &link_arg],
        &[
            "-device",
            "virtio-serial-device",
            "-chardev",
            &chardev,
            "-device",
            "virtconsole,chardev=c0",
        ],
    ];
    for args in cases {
        let out = minnow(&rom, args).output().expect("minnow runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&link_arg) && err.contains("symbolic link") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert_eq!(
            std::fs::read(&target).expect("target read"),
            b"keep me",
            "{args:?}"
        );
    }
    let _ = std::fs::remove_file(link);
    let _ = std::fs::remove_file(target);
}

/// By default guest errors are logged and unclaimed accesses are not; `-d unimp` logs those,
/// `-D` puts them in a file instead of on stderr, `-msg timestamp=on` dates each line.
#[test]
fn d_and_capital_d_choose_what_is_logged_and_where() {
    let rom = rom("probe", &PROBE);
    let quiet = run_for(&rom, &["-serial", "none"], 1);
    let err = String::from_utf8_lossy(&quiet.stderr);
    assert!(!err.contains("no device there"), "{err}");

    let loud = run_for(
        &rom,
        &["-serial", "none", "-d", "unimp", "-msg", "timestamp=on"],
        1,
    );
    let err = String::from_utf8_lossy(&loud.stderr);
    let line = err
        .lines()
        .find(|l| l.ends_with("minnow: port 0x2f0: 1-byte read, no device there"))
        .unwrap_or_else(|| panic!("no unimp line: {err}"));
    let stamp = line.split(' ').next().unwrap_or_default();
    assert!(
        stamp.len() == "2026-12-07T02:02:20.144089Z".len() && stamp.ends_with('Z'),
        "{line}"
    );
    assert!(err.contains("port 0x2f0: 1-byte write, no device there"), "{err}");

    let log = temp("guest.log");
    std::fs::write(&log, "old contents\n").expect("temp file");
    let filed = run_for(
        &rom,
        &["-serial", "none", "-d", "unimp", "-D", &log.display().to_string()],
        1,
    );
    let err = String::from_utf8_lossy(&filed.stderr);
    assert!(!err.contains("no device there"), "{err}");
    let text = std::fs::read_to_string(&log).expect("the -D file");
    assert_eq!(
        text,
        "minnow: port 0x2f0: 1-byte read, no device there\nminnow: port 0x2f0: 1-byte write, no device there\n"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&rom);
}
