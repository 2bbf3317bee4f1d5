//! What the `minnow` binary's integration tests share: temporary paths and tiny firmware.
#![allow(dead_code)] // each test file uses its own part

pub mod qmp;
pub mod vm;

use std::path::PathBuf;

/// A path in the temporary directory, unique to this test process: `minnow-<group>-<pid>-<name>`.
pub fn temp(group: &str, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("minnow-{group}-{}-{name}", std::process::id()))
}

/// A 64 KiB ROM that runs `code` (real mode) from the reset vector; the rest is `hlt`.
pub fn reset_vector_rom(code: &[u8]) -> Vec<u8> {
    let mut rom = vec![0xF4u8; 64 * 1024];
    rom[0xFFF0..0xFFF0 + code.len()].copy_from_slice(code);
    rom
}

/// [`reset_vector_rom`] written to [`temp`]`(group, "<name>.rom")`.
pub fn rom_file(group: &str, name: &str, code: &[u8]) -> PathBuf {
    let path = temp(group, &format!("{name}.rom"));
    std::fs::write(&path, reset_vector_rom(code)).expect("writing a temporary ROM");
    path
}

/// `cli; hlt; jmp $-1`: the guest sits still.
pub const HALT: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

/// Sends QMP's `quit` on `monitor` (a connected QMP socket) and checks minnow answered with its
/// SHUTDOWN event.
pub fn qmp_quit(mut monitor: std::os::unix::net::UnixStream) {
    use std::io::{Read, Write};
    monitor
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    monitor
        .write_all(br#"{"execute": "qmp_capabilities"}{"execute": "quit"}"#)
        .expect("write");
    let mut said = String::new();
    let _ = monitor.read_to_string(&mut said);
    assert!(said.contains("host-qmp-quit"), "{said}");
}
