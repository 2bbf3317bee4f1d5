//! The seccomp filters on the `minnow` binary: a VM runs and exits under them (the default), and
//! a forbidden call from each kind of thread ends the process by SIGSYS with one line naming the
//! thread and the call. The forbidden call comes from the test-only `-x-sandbox-violate`, built
//! only with the `sandbox-test` feature: `cargo test -p minnow-vmm --features sandbox-test
//! --test sandbox`.
#![cfg(feature = "sandbox-test")]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

/// `mov al, 2; out 0xf4, al; hlt`: isa-debug-exit with 2, minnow's status (2 << 1) | 1.
const EXIT_5: [u8; 5] = [0xB0, 0x02, 0xE6, 0xF4, 0xF4];

fn minnow(args: &[&str]) -> Output {
    let rom = common::rom_file("sandbox", "exit5", &EXIT_5);
    Command::new(env!("CARGO_BIN_EXE_minnow"))
        .args([
            "-M",
            "microvm",
            "-m",
            "16M",
            "-serial",
            "none",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
            "-bios",
        ])
        .arg(&rom)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("minnow runs")
}

#[test]
fn a_vm_runs_and_ends_under_the_filters() {
    for args in [&[][..], &["-sandbox", "on"], &["-sandbox", "off"]] {
        let out = minnow(args);
        assert_eq!(
            out.status.code(),
            Some(5),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_forbidden_call_from_any_thread_ends_the_vm_with_one_line() {
    for (kind, thread) in [("vcpu", "vcpu0"), ("events", "minnow-events"), ("main", "main")] {
        let out = minnow(&["-x-sandbox-violate", kind]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSYS),
            "{kind}: {:?} {err}",
            out.status
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{kind}: {err}");
        assert!(
            lines[0].contains(&format!("thread {thread} made a forbidden system call: getppid")),
            "{kind}: {err}"
        );
        // The control: without filters the same call is harmless.
        let out = minnow(&["-x-sandbox-violate", kind, "-sandbox", "off"]);
        assert_eq!(out.status.code(), Some(5), "{kind} without filters");
    }
}
