//! A virtio-blk guest on this host's /dev/kvm saved half way through writing to its disk:
//! blklog.elf (a payload with a virtio-blk driver, booted directly) writes a log, record after
//! record, each flushed. It is saved while it runs, and its image copied while it is stopped
//! after the save (the snapshot recipe's "another disk file"). The clone, on the copy, and the
//! source, resumed on the original, each write the rest: both logs must check clean, every
//! record in its place and nothing torn (`minnow_payloads::blklog::check`, the log's fsck).
//!
//! Needs /dev/kvm and the payloads (`cargo xtask payloads`, or $MINNOW_PAYLOAD_DIR).
mod common;

use common::qmp::Qmp;
use common::vm::Vm;
use minnow_payloads::blklog::{check, DONE, RECORDS, WROTE};
use std::path::PathBuf;
use std::time::Duration;

fn temp(name: &str) -> PathBuf {
    common::temp("snapdisk", name)
}

fn blklog_elf() -> PathBuf {
    let dir = std::env::var_os("MINNOW_PAYLOAD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/payloads"));
    let elf = dir.join("blklog.elf");
    assert!(elf.exists(), "{} is missing: cargo xtask payloads", elf.display());
    elf
}

/// Each record takes about a third of a second here (the guest is emulated): generous limits.
const RUN: Duration = Duration::from_secs(120);
/// The payload's isa-debug-exit on success: (0x10 << 1) | 1.
const PASSED: Option<i32> = Some(33);

fn reply(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or("")
}

fn start(name: &str, image: &std::path::Path, extra: &[&str]) -> Vm {
    let elf = blklog_elf().display().to_string();
    let drive = format!("file={},format=raw,if=none,id=d", image.display());
    let mut args = vec!["-M", "microvm,acpi=off", "-bios", "none", "-kernel", &elf];
    args.extend(["-drive", &drive, "-device", "virtio-blk-device,drive=d"]);
    args.extend(["-device", "isa-debug-exit,iobase=0x501,iosize=2"]);
    args.extend(extra);
    Vm::launch("snapdisk", name, &args, &[])
}

/// The record numbers the guest reported writing, in order.
fn written(serial: &str) -> Vec<u64> {
    serial
        .lines()
        .filter_map(|l| l.trim().strip_prefix(WROTE)?.parse().ok())
        .collect()
}

#[test]
fn a_disk_log_saved_half_way_is_finished_by_the_clone_and_by_the_source() {
    let image = temp("source.raw");
    let copy = temp("clone.raw");
    let state = temp("blklog.state");
    std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
    let source = start("source", &image, &[]);
    // (COM1 lines end in \r\n.)
    source.wait_for_text(&format!("{WROTE}4\r"), RUN);
    let mut q: Qmp = source.monitor();
    // Saved while it runs: the VM stops for the copy and stays stopped, as QEMU's does.
    let uri = format!("file:{}", state.display());
    let lines = q.call(&format!(
        r#"{{"execute":"migrate","arguments":{{"uri":"{uri}"}}}}"#
    ));
    assert_eq!(reply(&lines), r#"{"return": {}}"#, "{lines:?}");
    let saved_at = *written(&source.output()).last().expect("records before the save");
    std::fs::copy(&image, &copy).unwrap();
    assert_eq!(reply(&q.call(r#"{"execute":"cont"}"#)), r#"{"return": {}}"#);
    let clone = start("clone", &copy, &["-incoming", &uri]);
    let clone_out = clone.wait_for_text(DONE, RUN);
    let source_out = source.wait_for_text(DONE, RUN);
    let (status, err) = clone.ended_within(RUN);
    assert_eq!(status, PASSED, "clone: {err}\n{clone_out}");
    let resumed = written(&clone_out);
    assert!(
        !resumed.contains(&0) && resumed.last() == Some(&(RECORDS - 1)),
        "the clone goes on from record {saved_at}: {clone_out}"
    );
    let (status, err) = source.ended_within(RUN);
    assert_eq!(status, PASSED, "source: {err}\n{source_out}");
    let all: Vec<u64> = (0..RECORDS).collect();
    assert_eq!(written(&source_out), all, "the source writes each record once");
    for (who, path) in [("source", &image), ("clone", &copy)] {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            check(&bytes),
            Ok(RECORDS),
            "{who}'s log (saved after record {saved_at})"
        );
    }
    for p in [&image, &copy, &state] {
        let _ = std::fs::remove_file(p);
    }
}
