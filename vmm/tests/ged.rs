//! The ACPI GED on KVM: a guest's S5 write to the sleep control register powers the VM off (exit
//! status 0), its 0x42 to the reset register resets it, and without ACPI there is no GED.
//!
//! The guest is a 64 KiB ROM whose reset vector enters 32-bit protected mode, writes one byte to
//! one GED register, then writes 0x21 to isa-debug-exit at 0xF4 (status 0x43): the first request
//! to stop wins, so that status means the GED write did nothing.
use minnow_vmm::config::{Bios, DebugExit, Machine, OnOffAuto, Serial};
use minnow_vmm::{Config, ExitReason};
use std::path::PathBuf;
use std::process::Command;

/// The last 256 bytes of the ROM, from GNU as:
///
/// ```text
///         .code16                         # at 0xFFFFFF00
///         cli
///         lgdtl   %cs:(gdtr - _start + 0xFF00)
///         movl    %cr0, %eax
///         orb     $1, %al
///         movl    %eax, %cr0
///         ljmpl   $0x08, $pm32
///         .code32
/// pm32:   movw    $0x10, %ax
///         movw    %ax, %ds
///         movb    $VALUE, ADDRESS         # bytes 0x1E..0x25: c6 05 <ADDRESS> <VALUE>
///         movb    $0x21, %al
///         outb    %al, $0xF4
/// 1:      hlt
///         jmp     1b
///         .balign 8
/// gdt:    .quad   0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF   # at 0x30: null, code, data
/// gdtr:   .word   23
///         .long   gdt
///         .org    0xF0                    # the reset vector
///         .code16
///         jmp     _start
/// ```
const TAIL: [u8; 0x4E] = [
    0xFA, 0x2E, 0x66, 0x0F, 0x01, 0x16, 0x48, 0xFF, 0x0F, 0x20, 0xC0, 0x0C, // cli; lgdt; cr0
    0x01, 0x0F, 0x22, 0xC0, 0x66, 0xEA, 0x18, 0xFF, 0xFF, 0xFF, 0x08, 0x00, // ljmpl 8:pm32
    0x66, 0xB8, 0x10, 0x00, 0x8E, 0xD8, 0xC6, 0x05, 0x00, 0x00, 0x00, 0x00, // ds; movb
    0x00, 0xB0, 0x21, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD, 0x00, 0x00, 0x00, 0x00, // out; hlt
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, // gdt
    0x00, 0x9B, 0xCF, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x93, 0xCF, 0x00, //
    0x17, 0x00, 0x30, 0xFF, 0xFF, 0xFF, // gdtr
];
const MOVB_ADDRESS: usize = 0x20;
const MOVB_VALUE: usize = 0x24;

/// GED registers (QEMU's microvm).
const SLEEP_CONTROL: u32 = 0xFEA0_0200;
const RESET: u32 = 0xFEA0_0202;
/// SLP_EN | SLP_TYP 5 (S5) << 2: what Linux writes to power off.
const S5: u8 = 0x20 | (5 << 2);

/// A ROM file that writes `value` to `address`.
fn rom(name: &str, address: u32, value: u8) -> PathBuf {
    let mut image = vec![0xF4u8; 64 * 1024];
    let tail = &mut image[0xFF00..];
    tail[..TAIL.len()].copy_from_slice(&TAIL);
    tail[MOVB_ADDRESS..MOVB_ADDRESS + 4].copy_from_slice(&address.to_le_bytes());
    tail[MOVB_VALUE] = value;
    // jmp _start, at the reset vector.
    tail[0xF0..0xF3].copy_from_slice(&[0xE9, 0x0D, 0xFF]);
    let path = std::env::temp_dir().join(format!("minnow-ged-{name}-{}.rom", std::process::id()));
    std::fs::write(&path, &image).expect("temp file");
    path
}

fn run(name: &str, acpi: OnOffAuto, address: u32, value: u8) -> ExitReason {
    let path = rom(name, address, value);
    let config = Config {
        machine: Machine {
            acpi,
            ..Machine::default()
        },
        bios: Bios::File(path.clone()),
        serial: Serial::None,
        debug_exit: Some(DebugExit {
            iobase: 0xF4,
            iosize: 1,
        }),
        // A reset would otherwise reboot into the same ROM forever.
        no_reboot: true,
        ..Config::default()
    };
    let reason = minnow_vmm::run(&config);
    let _ = std::fs::remove_file(&path);
    reason.unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn s5_powers_off_and_0x42_resets() {
    assert_eq!(run("s5", OnOffAuto::On, SLEEP_CONTROL, S5), ExitReason::PowerOff);
    assert_eq!(
        run("auto", OnOffAuto::Auto, SLEEP_CONTROL, S5),
        ExitReason::PowerOff
    );
    assert_eq!(run("reset", OnOffAuto::On, RESET, 0x42), ExitReason::Reset);
    // Not S5, not the reset value: the guest goes on to isa-debug-exit.
    assert_eq!(
        run("s3", OnOffAuto::On, SLEEP_CONTROL, 0x20 | (3 << 2)),
        ExitReason::DebugExit(0x21)
    );
    // No ACPI, no GED: the write goes nowhere.
    assert_eq!(
        run("no_acpi", OnOffAuto::Off, SLEEP_CONTROL, S5),
        ExitReason::DebugExit(0x21)
    );
}

/// `minnow` exits with status 0 when the guest powers off through the GED, as QEMU does.
#[test]
fn the_cli_exits_0_on_an_acpi_power_off() {
    let path = rom("cli", SLEEP_CONTROL, S5);
    let out = Command::new(env!("CARGO_BIN_EXE_minnow"))
        .args(["-M", "microvm,acpi=on", "-serial", "none"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=1", "-bios"])
        .arg(&path)
        .output()
        .expect("the minnow binary runs");
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
