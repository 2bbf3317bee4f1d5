//! A VM's life from outside: reboots that reuse what is open, a VM that stops on a signal while
//! nobody reads its output, a handle that pauses, resumes, resets and, dropped, stops it.
//! The guests are a few real-mode instructions in a ROM, so these run on any /dev/kvm.
use minnow_vmm::config::{Bios, Config, DebugExit, Machine, OnOffAuto, Serial};
use minnow_vmm::{ExitReason, RunState, Vm};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// These tests count the process's fds and threads: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("minnow-lifecycle-{}-{name}", std::process::id()))
}

/// A 64 KiB ROM: `code` at its start (F000:0000), and a far jump to it at the reset vector.
fn rom(name: &str, code: &[u8]) -> PathBuf {
    let mut rom = vec![0xF4u8; 64 * 1024];
    rom[..code.len()].copy_from_slice(code);
    // jmp far 0xF000:0x0000
    rom[0xFFF0..0xFFF5].copy_from_slice(&[0xEA, 0x00, 0x00, 0x00, 0xF0]);
    let path = temp(&format!("{name}.rom"));
    std::fs::write(&path, rom).expect("temp file");
    path
}

fn config(rom: PathBuf, serial: Serial) -> Config {
    Config {
        bios: Bios::File(rom),
        machine: Machine {
            acpi: OnOffAuto::Off,
            ..Machine::default()
        },
        memory: 16 << 20,
        debug_exit: Some(DebugExit {
            iobase: 0xF4,
            iosize: 4,
        }),
        serial,
        ..Config::default()
    }
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// The process's VM threads (vCPUs and event loops), by name: the test harness's own threads
/// come and go as other tests start and end.
fn vm_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .filter(|name| name.starts_with("vcpu") || name.starts_with("minnow-events"))
                .count()
        })
        .unwrap_or(0)
}

/// [`vm_threads`] once the VM's threads are gone: a joined thread's `/proc/self/task` entry can
/// outlive `pthread_join` for a moment (the kernel wakes the joiner before it reaps the task),
/// so this waits up to 2 s for the count to come down to `baseline`, and returns what it is then.
fn vm_threads_after_join(baseline: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let now = vm_threads();
        if now == baseline || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Counts its boots in RAM at 0x600, which a reset keeps; resets through the keyboard
/// controller until `boots`, then writes the count's low byte to isa-debug-exit.
fn rebooting_guest(boots: u16) -> Vec<u8> {
    let [lo, hi] = boots.to_le_bytes();
    vec![
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xD8, // mov ds, ax
        0xFF, 0x06, 0x00, 0x06, // inc word [0x600]
        0xA1, 0x00, 0x06, // mov ax, [0x600]
        0x3D, lo, hi, // cmp ax, boots
        0x73, 0x05, // jae done
        0xB0, 0xFE, // mov al, 0xfe
        0xE6, 0x64, // out 0x64, al: pulse reset
        0xF4, // hlt
        0xE6, 0xF4, // done: out 0xf4, al
        0xF4, // hlt
    ]
}

/// A guest reset resets the machine in place: after a thousand reboots the process has the
/// fds and threads it had after the first (each boot used to start another stdin reader and
/// reopen every file), and RAM kept the guest's count, as on a PC.
#[test]
fn a_thousand_reboots_reuse_every_fd_and_thread() {
    let _one = serial();
    let boots = 1000;
    let path = rom("reboots", &rebooting_guest(boots));
    let log = temp("reboots.serial");
    let (fds, threads) = (count("/proc/self/fd"), vm_threads());
    let vm = Vm::start(&config(path.clone(), Serial::File(log.clone()))).expect("the VM starts");
    let handle = vm.handle();
    let (mut most_fds, mut most_threads) = (0, 0);
    while handle.status() != RunState::Ended {
        most_fds = most_fds.max(count("/proc/self/fd"));
        most_threads = most_threads.max(vm_threads());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(vm.wait(), ExitReason::DebugExit(u32::from(boots as u8)));
    drop(handle);
    assert!(
        most_fds < fds + 40,
        "fds grew from {fds} to {most_fds} while rebooting"
    );
    assert!(
        most_threads <= threads + 3,
        "threads grew from {threads} to {most_threads}"
    );
    assert_eq!(count("/proc/self/fd"), fds, "fds left open");
    assert_eq!(vm_threads_after_join(threads), threads, "threads left running");
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(log);
}

/// Writes `byte` to COM1 forever.
fn chatty_guest(byte: u8) -> Vec<u8> {
    vec![
        0xBA, 0xF8, 0x03, // mov dx, 0x3f8
        0xB0, byte, // mov al, byte
        0xEE, // again: out dx, al
        0xEB, 0xFD, // jmp again
    ]
}

fn minnow(rom: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_minnow"));
    c.args(["-M", "microvm,acpi=off", "-m", "16M", "-bios"])
        .arg(rom)
        .args(["-serial", "stdio"]);
    c
}

fn wait_for_exit(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().expect("waiting for minnow") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Guest output never blocks a vCPU: with a stdout nobody reads, SIGTERM, SIGINT and SIGHUP
/// still stop the VM at once (each used to hang: the vCPU sat in a write to the full pipe), and
/// minnow says how much output it dropped.
#[test]
fn a_signal_stops_a_vm_whose_output_nobody_reads() {
    let _one = serial();
    let path = rom("chatty", &chatty_guest(b'x'));
    for (signal, status) in [(libc::SIGTERM, 143), (libc::SIGINT, 130), (libc::SIGHUP, 129)] {
        let mut child = minnow(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minnow runs");
        // Long enough for the pipe (and minnow's buffer) to fill; stdout is never read.
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let code = wait_for_exit(&mut child, Duration::from_secs(10));
        let mut stderr = String::new();
        let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
        assert_eq!(code, Some(status), "signal {signal}: {stderr}");
        assert!(stderr.contains("bytes of guest output were dropped"), "{stderr}");
    }
    let _ = std::fs::remove_file(path);
}

/// `rep outsb` is one access per byte, as on hardware (it used to be one wide write, so COM1
/// sent one byte of five).
#[test]
fn string_port_output_sends_every_byte() {
    let _one = serial();
    let code = [
        0x8C, 0xC8, // mov ax, cs
        0x8E, 0xD8, // mov ds, ax
        0xBE, 0x14, 0x00, // mov si, 0x14 (the text)
        0xB9, 0x05, 0x00, // mov cx, 5
        0xBA, 0xF8, 0x03, // mov dx, 0x3f8
        0xF3, 0x6E, // rep outsb
        0xB0, 0x00, // mov al, 0
        0xE6, 0xF4, // out 0xf4, al
        0xF4, // hlt
        b'h', b'e', b'l', b'l', b'o',
    ];
    let path = rom("outsb", &code);
    let log = temp("outsb.serial");
    let reason = minnow_vmm::run(&config(path.clone(), Serial::File(log.clone()))).expect("runs");
    assert_eq!(reason, ExitReason::DebugExit(0));
    assert_eq!(std::fs::read(&log).unwrap_or_default(), b"hello");
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(log);
}

fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Says 'S' once, then 'x' forever: a reset shows as a second 'S'.
fn starting_guest() -> Vec<u8> {
    vec![
        0xBA, 0xF8, 0x03, // mov dx, 0x3f8
        0xB0, b'S', // mov al, 'S'
        0xEE, // out dx, al
        0xB0, b'x', // mov al, 'x'
        0xEE, // again: out dx, al
        0xEB, 0xFD, // jmp again
    ]
}

/// The embedding application's controls: a paused VM runs no guest instruction (its output
/// stops), resumes where it was, resets in place, and ends when its handle is dropped, its
/// threads joined.
#[test]
fn a_handle_pauses_resumes_resets_and_dropping_the_vm_stops_it() {
    let _one = serial();
    let path = rom("controls", &starting_guest());
    let log = temp("controls.serial");
    let threads = vm_threads();
    let vm = Vm::start(&config(path.clone(), Serial::File(log.clone()))).expect("the VM starts");
    let h = vm.handle();
    std::thread::sleep(Duration::from_millis(200));
    h.pause().expect("pause");
    assert_eq!(h.status(), RunState::Paused);
    let paused_at = size(&log);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(size(&log), paused_at, "the guest ran while paused");
    h.resume().expect("resume");
    assert_eq!(h.status(), RunState::Running);
    std::thread::sleep(Duration::from_millis(200));
    assert!(size(&log) > paused_at, "the guest did not run again");
    h.reset().expect("reset");
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read(&log).unwrap_or_default();
    assert_eq!(
        text.iter().filter(|&&b| b == b'S').count(),
        2,
        "one start, one reset"
    );
    assert_eq!(vm_threads(), threads + 2, "a vCPU and the event loop");
    drop(vm);
    assert_eq!(vm_threads_after_join(threads), threads, "threads left running");
    assert_eq!(h.status(), RunState::Ended);
    assert!(h.pause().is_err(), "an ended VM refuses");
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(log);
}
