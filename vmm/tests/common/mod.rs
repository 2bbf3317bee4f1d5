//! What the `minnow` binary's integration tests share: temporary paths and tiny firmware.
#![allow(dead_code)] // each test file uses its own part

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
