//! Monitors on stdio, on the `minnow` binary. `-serial mon:stdio`: COM1 and HMP share stdin and
//! stdout as in QEMU; the guest is a ROM that echoes every byte COM1 receives, so what reaches
//! the guest shows, and the bytes expected are QEMU 7.2's (its help text, banner, prompts and
//! "QEMU: Terminated"). `-monitor stdio`: a reader slower than the monitor still gets every
//! byte.
mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Real mode, at the reset vector: wait for COM1's data-ready bit, read the byte, write it back.
const ECHO: [u8; 15] = [
    0xBA, 0xFD, 0x03, // mov dx, 0x3fd
    0xEC, //             in al, dx
    0xA8, 0x01, //       test al, 1
    0x74, 0xFB, //       jz -5
    0xBA, 0xF8, 0x03, // mov dx, 0x3f8
    0xEC, //             in al, dx
    0xEE, //             out dx, al
    0xEB, 0xF1, //       jmp -15
];

/// `cli; hlt; jmp $-1`.
const HALT: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

struct Vm {
    child: Child,
    stdin: ChildStdin,
    seen: Arc<Mutex<Vec<u8>>>,
    rom: PathBuf,
}

impl Vm {
    fn start(name: &str, code: &[u8], args: &[&str]) -> Vm {
        let rom = common::rom_file("stdio", name, code);
        let mut child = Command::new(env!("CARGO_BIN_EXE_minnow"))
            .args(["-M", "microvm", "-m", "16M", "-bios"])
            .arg(&rom)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("minnow runs");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Vm {
            child,
            stdin,
            seen,
            rom,
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.stdin.write_all(keys).expect("writing to minnow's stdin");
        self.stdin.flush().expect("flush");
    }

    /// Waits until stdout has shown `text` after what was already seen; returns all of it.
    fn wait_for(&self, text: &str) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned();
            if seen.contains(text) {
                return seen;
            }
            let tail = &seen[seen.floor_char_boundary(seen.len().saturating_sub(600))..];
            assert!(
                Instant::now() < until,
                "no {text:?} on stdout; it ended with {tail:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.rom);
    }
}

#[test]
fn ctrl_a_switches_between_com1_and_the_monitor_as_in_qemu() {
    let mut vm = Vm::start("echo", &ECHO, &["-serial", "mon:stdio"]);
    vm.type_keys(b"abc");
    vm.wait_for("abc");

    vm.type_keys(b"\x01h");
    vm.wait_for("C-a c    switch between console and monitor\n\rC-a C-a  sends C-a\n\r");

    vm.type_keys(b"\x01c");
    vm.wait_for("QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ");
    vm.type_keys(b"info status\n");
    vm.wait_for("VM status: running\r\n(qemu) ");
    // The guest gets nothing while the monitor has the keyboard: "qqq" shows twice (the
    // monitor's echo and its complaint), not a third time from the guest's echo.
    vm.type_keys(b"qqq\n");
    let seen = vm.wait_for("unknown command: 'qqq'\r\n(qemu) ");
    std::thread::sleep(Duration::from_millis(300));
    let seen_later = vm.wait_for(&seen);
    assert_eq!(seen_later.matches("qqq").count(), 2, "{seen_later:?}");
    vm.type_keys(b"stop\n");
    vm.wait_for("(qemu) stop\r\n(qemu) ");

    // Leaving the monitor ends its line at once, as QEMU's does.
    vm.type_keys(b"\x01c");
    vm.wait_for("(qemu) stop\r\n(qemu) \r\n");
    vm.type_keys(b"def\x01\x01");
    vm.type_keys(b"\x01c");
    // The guest is paused: what was typed to it waits, unechoed, until `cont`.
    let back = vm.wait_for("(qemu) stop\r\n(qemu) \r\n(qemu) ");
    std::thread::sleep(Duration::from_millis(300));
    let paused = vm.wait_for(&back);
    assert!(!paused.contains("def"), "the paused guest echoed: {paused:?}");
    vm.type_keys(b"cont\n");
    // It echoes once it runs again. (Where: minnow relays the monitor's echo of "cont" after
    // the command has run, so the guest's echo may come before it; QEMU echoes each key as it
    // is typed.)
    vm.wait_for("def\x01");

    vm.type_keys(b"\x01x");
    vm.wait_for("QEMU: Terminated\n\r");
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = vm.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < until, "minnow still runs after Ctrl-A x");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

/// The reader takes nothing for a while: what the monitor says waits (beyond the pipe's 64 KiB),
/// and reaches the reader in full once it reads, the last reply included.
#[test]
fn a_slow_reader_of_a_stdio_monitor_gets_every_byte() {
    let mut vm = Vm::start(
        "slow-reader",
        &HALT,
        &["-serial", "none", "-monitor", "stdio", "-name", "last-words"],
    );
    let seen = vm.seen.clone();
    // The reader thread is slowed by holding its buffer's lock while the commands go in.
    let held = seen.lock().unwrap();
    for _ in 0..300 {
        vm.type_keys(b"help\n");
    }
    vm.type_keys(b"info name\n");
    std::thread::sleep(Duration::from_secs(1));
    drop(held);
    let all = vm.wait_for("last-words\r\n(qemu) ");
    assert_eq!(all.matches("(qemu) help\r\n").count(), 300);
}
