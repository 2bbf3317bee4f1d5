//! minnow.rom's clear failures: each bad input gives one line on COM1 (then the CPU halts), never a
//! silent hang or a triple fault. Raw images go through `opt/org.minnow/kernel`, where the firmware
//! itself parses them (QEMU's `-kernel` would reject most of these before the firmware runs).
use minnow_tests::{report, require_file, require_qemu, rom_path, QemuRun};
use std::path::PathBuf;
use std::time::Duration;

fn rom() -> PathBuf {
    require_qemu().unwrap_or_else(|e| panic!("{e}"));
    require_file(&rom_path(), "the Minnow ROM", "cargo xtask firmware").unwrap_or_else(|e| panic!("{e}"))
}

/// Boots minnow.rom on microvm with `args` and returns the firmware's `minnow:` line.
fn firmware_error(name: &str, memory: &str, args: &[&str]) -> String {
    let mut run = QemuRun::new("microvm,x-option-roms=off,accel=tcg")
        .bios(rom())
        .memory(memory)
        .marker("minnow:*")
        .timeout(Duration::from_secs(30));
    for a in args {
        run = run.arg(a);
    }
    let out = run.run().unwrap_or_else(|e| panic!("{e}"));
    let errors: Vec<_> = out.lines.iter().filter(|l| l.starts_with("minnow:")).collect();
    assert_eq!(errors.len(), 1, "expected one firmware line\n{}", out.tail(20));
    report(&format!("[error] {name}: {}", errors[0]));
    errors[0].clone()
}

/// Writes `bytes` to a temporary file that lives as long as the returned guard.
fn temp_file(name: &str, bytes: &[u8]) -> tempfile_guard::Guard {
    tempfile_guard::Guard::new(name, bytes)
}

mod tempfile_guard {
    use std::path::PathBuf;
    pub struct Guard(pub PathBuf);
    impl Guard {
        pub fn new(name: &str, bytes: &[u8]) -> Self {
            let p = std::env::temp_dir().join(format!("minnow-{}-{name}", std::process::id()));
            std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
            Self(p)
        }
        pub fn arg(&self) -> String {
            format!("name=opt/org.minnow/kernel,file={}", self.0.display())
        }
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn no_kernel_says_how_to_pass_one() {
    let line = firmware_error("no kernel", "128M", &[]);
    assert!(
        line.contains("no kernel in fw_cfg") && line.contains("-kernel"),
        "{line}"
    );
}

#[test]
fn a_corrupt_setup_header_is_named() {
    let mut image = vec![0u8; 64 * 1024];
    image[0x1F1] = 4;
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x0105u16.to_le_bytes()); // protocol 1.05: too old
    let f = temp_file("old-bzimage", &image);
    let line = firmware_error("corrupt setup header", "128M", &["-fw_cfg", &f.arg()]);
    assert!(
        line.contains("corrupt Linux setup header") && line.contains("1.05"),
        "{line}"
    );
}

#[test]
fn an_elf_without_a_pvh_note_is_named() {
    // An x86_64 ELF kernel with no Xen note and no multiboot header.
    let mut elf = vec![0u8; 0x1100];
    elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    elf[18] = 62;
    elf[32..40].copy_from_slice(&64u64.to_le_bytes());
    elf[54] = 56;
    elf[56] = 1;
    elf[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf[64 + 8..64 + 16].copy_from_slice(&0x1000u64.to_le_bytes());
    elf[64 + 24..64 + 32].copy_from_slice(&0x20_0000u64.to_le_bytes());
    elf[64 + 32..64 + 40].copy_from_slice(&0x100u64.to_le_bytes());
    elf[64 + 40..64 + 48].copy_from_slice(&0x100u64.to_le_bytes());
    let f = temp_file("no-note.elf", &elf);
    let line = firmware_error("ELF without PVH note", "128M", &["-fw_cfg", &f.arg()]);
    assert!(line.contains("no PVH entry note"), "{line}");
}

#[test]
fn an_image_larger_than_ram_says_to_add_memory() {
    // A PVH ELF whose segment needs 64 MiB from 16 MiB, in a 32 MiB guest.
    let mut elf = vec![0u8; 0x1100];
    elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    elf[18] = 62;
    elf[32..40].copy_from_slice(&64u64.to_le_bytes());
    elf[54] = 56;
    elf[56] = 1;
    elf[64..68].copy_from_slice(&1u32.to_le_bytes());
    elf[64 + 8..64 + 16].copy_from_slice(&0x1000u64.to_le_bytes());
    elf[64 + 24..64 + 32].copy_from_slice(&0x100_0000u64.to_le_bytes());
    elf[64 + 32..64 + 40].copy_from_slice(&0x100u64.to_le_bytes());
    elf[64 + 40..64 + 48].copy_from_slice(&0x400_0000u64.to_le_bytes());
    let f = temp_file("too-big.elf", &elf);
    let line = firmware_error("image larger than RAM", "32M", &["-fw_cfg", &f.arg()]);
    assert!(
        line.contains("does not fit in RAM") && line.contains("-m"),
        "{line}"
    );
}

#[test]
fn an_unknown_format_is_named() {
    let f = temp_file("garbage", &[0x5A; 16 * 1024]);
    let line = firmware_error("unknown format", "128M", &["-fw_cfg", &f.arg()]);
    assert!(line.contains("not a bzImage"), "{line}");
}
