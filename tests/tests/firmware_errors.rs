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

/// An x86_64 ELF kernel with one PT_LOAD of `memsz` bytes at `paddr`, and no Xen note and no
/// multiboot header.
fn elf_with_one_segment(paddr: u64, memsz: u64) -> Vec<u8> {
    let mut elf = vec![0u8; 0x1100];
    elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    elf[18] = 62;
    elf[32..40].copy_from_slice(&64u64.to_le_bytes());
    elf[54] = 56;
    elf[56] = 1;
    elf[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf[64 + 8..64 + 16].copy_from_slice(&0x1000u64.to_le_bytes());
    elf[64 + 24..64 + 32].copy_from_slice(&paddr.to_le_bytes());
    elf[64 + 32..64 + 40].copy_from_slice(&0x100u64.to_le_bytes());
    elf[64 + 40..64 + 48].copy_from_slice(&memsz.to_le_bytes());
    elf
}

#[test]
fn an_elf_without_a_pvh_note_is_named() {
    let f = temp_file("no-note.elf", &elf_with_one_segment(0x20_0000, 0x100));
    let line = firmware_error("ELF without PVH note", "128M", &["-fw_cfg", &f.arg()]);
    assert!(line.contains("no PVH entry note"), "{line}");
}

#[test]
fn an_image_larger_than_ram_says_to_add_memory() {
    // A segment that needs 64 MiB from 16 MiB, in a 32 MiB guest.
    let f = temp_file("too-big.elf", &elf_with_one_segment(0x100_0000, 0x400_0000));
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

/// A CPU exception inside the firmware prints one line instead of triple-faulting. Nothing a
/// user can pass makes the firmware fault, so gdb forces one: stop right after the IDT is loaded,
/// point RIP at a `ud2`, and read COM1.
#[test]
fn a_cpu_exception_in_the_firmware_is_one_line_not_a_triple_fault() {
    use std::process::{Command, Stdio};
    let rom = rom();
    let elf_path = minnow_tests::workspace_root().join("target/x86_64-unknown-none/rom/minnow-firmware");
    let elf = std::fs::read(&elf_path)
        .unwrap_or_else(|e| panic!("{}: {e} (cargo xtask firmware)", elf_path.display()));
    let text = find_section(&elf, b".text").unwrap_or_else(|| panic!("no .text in {}", elf_path.display()));
    // `lidt (%reg)` is 0F 01 /3 with a register operand: the firmware's only lidt.
    let (base, bytes) = text;
    let lidt = bytes
        .windows(3)
        .position(|w| w[0] == 0x0F && w[1] == 0x01 && (w[2] & 0x38) == 0x18 && w[2] < 0x40);
    let ud2 = bytes.windows(2).position(|w| w == [0x0F, 0x0B]);
    let (Some(lidt), Some(ud2)) = (lidt, ud2) else {
        panic!("no lidt or ud2 in the firmware's .text")
    };
    let (after_lidt, ud2) = (base + lidt as u64 + 3, base + ud2 as u64);
    let log = std::env::temp_dir().join(format!("minnow-exception-{}.log", std::process::id()));
    let port = 21000 + (std::process::id() % 20000) as u16;
    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-M",
            "microvm,x-option-roms=off,accel=tcg",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .arg("-bios")
        .arg(&rom)
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .args(["-gdb", &format!("tcp:127.0.0.1:{port}"), "-S"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("qemu-system-x86_64: {e}"));
    std::thread::sleep(Duration::from_millis(500));
    // Bounded: if the breakpoint were never hit, gdb would wait forever.
    let gdb = Command::new("timeout")
        .args(["30", "gdb", "-q", "-batch", "-ex", "set architecture i386:x86-64"])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args(["-ex", &format!("hbreak *{after_lidt:#x}"), "-ex", "continue"])
        .args(["-ex", &format!("set $rip = {ud2:#x}"), "-ex", "detach"])
        .output();
    let mut line = String::new();
    for _ in 0..100 {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        if line.contains("CPU exception") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = qemu.kill();
    let _ = qemu.wait();
    let _ = std::fs::remove_file(&log);
    let gdb = gdb.unwrap_or_else(|e| panic!("gdb: {e} (apt-get install gdb, or bash scripts/setup.sh)"));
    assert!(
        gdb.status.success(),
        "gdb failed: {}",
        String::from_utf8_lossy(&gdb.stderr)
    );
    let want = format!("minnow: CPU exception 6 (invalid opcode) at rip {ud2:#x}");
    assert!(line.contains(&want), "expected {want:?} on COM1, got {line:?}");
    report(&format!("[error] CPU exception: {}", line.trim()));
}

/// The load address and bytes of an ELF64 section, by name.
fn find_section<'a>(elf: &'a [u8], name: &[u8]) -> Option<(u64, &'a [u8])> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(0x28)? as usize,
        u16_at(0x3A)? as usize,
        u16_at(0x3C)?,
        u16_at(0x3E)?,
    );
    let section = |i: usize| {
        let at = shoff + i * shentsize;
        Some((
            u64_at(at + 0x10)?,
            u64_at(at + 0x18)? as usize,
            u64_at(at + 0x20)? as usize,
            elf.get(at..at + 4)?,
        ))
    };
    let (_, strtab, _, _) = section(usize::from(shstrndx))?;
    (0..usize::from(shnum)).find_map(|i| {
        let (addr, offset, size, name_off) = section(i)?;
        let name_off = u32::from_le_bytes(name_off.try_into().ok()?) as usize;
        let found = elf.get(strtab + name_off..)?.split(|&b| b == 0).next()?;
        (found == name).then(|| elf.get(offset..offset + size).map(|b| (addr, b)))?
    })
}
