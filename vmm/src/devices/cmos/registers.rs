//! The MC146818's register indices and bits, and the constants of its time base.
// Port offsets.
pub(super) const INDEX_PORT: u64 = 0;
pub(super) const DATA_PORT: u64 = 1;
/// Index port bit 7 masks NMI on a PC; there is no NMI to mask here.
pub(super) const INDEX_MASK: u8 = 0x7F;

// Register indices.
pub(super) const SECONDS: u8 = 0x00;
pub(super) const SECONDS_ALARM: u8 = 0x01;
pub(super) const MINUTES: u8 = 0x02;
pub(super) const MINUTES_ALARM: u8 = 0x03;
pub(super) const HOURS: u8 = 0x04;
pub(super) const HOURS_ALARM: u8 = 0x05;
pub(super) const DAY_OF_WEEK: u8 = 0x06;
pub(super) const DAY_OF_MONTH: u8 = 0x07;
pub(super) const MONTH: u8 = 0x08;
pub(super) const YEAR: u8 = 0x09;
pub(super) const REG_A: u8 = 0x0A;
pub(super) const REG_B: u8 = 0x0B;
pub(super) const REG_C: u8 = 0x0C;
pub(super) const REG_D: u8 = 0x0D;
/// The century, where QEMU keeps it (and where an ACPI FADT's CENTURY field should point).
pub(super) const CENTURY: u8 = 0x32;
pub(super) const TIME_REGISTERS: [u8; 8] = [
    SECONDS,
    MINUTES,
    HOURS,
    DAY_OF_WEEK,
    DAY_OF_MONTH,
    MONTH,
    YEAR,
    CENTURY,
];

// Memory sizes, as QEMU's microvm_set_rtc writes them (little-endian).
/// Base memory in KiB, at most 640 (2 bytes).
pub(super) const BASE_MEMORY: u8 = 0x15;
/// Memory above 1 MiB in KiB, at most 65535 (2 bytes, written at both places).
pub(super) const EXTENDED_MEMORY: u8 = 0x17;
pub(super) const EXTENDED_MEMORY_COPY: u8 = 0x30;
/// Memory from 16 MiB to 4 GiB in 64 KiB units, at most 65535 (2 bytes).
pub(super) const MEMORY_ABOVE_16M: u8 = 0x34;
/// Memory above 4 GiB in 64 KiB units (3 bytes).
pub(super) const MEMORY_ABOVE_4G: u8 = 0x5B;

// Register A.
/// Update in progress: set for the 244 µs before each second boundary. Read-only.
pub(super) const A_UIP: u8 = 0x80;
/// The divider-chain select bits; values above 0x20 stop the clock.
pub(super) const A_DIVIDER: u8 = 0x70;
pub(super) const A_DIVIDER_RUNNING_MAX: u8 = 0x20;
/// Both bits set: the divider chain is held in reset (clock stopped, no interrupts).
pub(super) const A_DIVIDER_RESET: u8 = 0x60;
pub(super) const A_RATE: u8 = 0x0F;
/// 32.768 kHz time base, 1024 Hz periodic rate: what BIOSes leave and QEMU resets to.
pub(super) const A_DEFAULT: u8 = 0x26;

// Register B.
pub(super) const B_SET: u8 = 0x80;
pub(super) const B_PIE: u8 = 0x40;
pub(super) const B_AIE: u8 = 0x20;
pub(super) const B_UIE: u8 = 0x10;
pub(super) const B_BINARY: u8 = 0x04;
pub(super) const B_24_HOUR: u8 = 0x02;
/// 24-hour BCD, interrupts off.
pub(super) const B_DEFAULT: u8 = B_24_HOUR;

// Register C: the interrupt flags line up with their enables in register B.
pub(super) const C_IRQF: u8 = 0x80;
pub(super) const C_PF: u8 = B_PIE;
pub(super) const C_AF: u8 = B_AIE;
pub(super) const C_UF: u8 = B_UIE;
pub(super) const C_FLAGS: u8 = C_PF | C_AF | C_UF;

/// Register D: the battery is good and RAM and time are valid.
pub(super) const D_VRT: u8 = 0x80;

/// 12-hour mode: hour bit 7 is PM.
pub(super) const HOUR_PM: u8 = 0x80;
/// Alarm values 0xC0-0xFF match any value.
pub(super) const ALARM_ANY: u8 = 0xC0;

pub(super) const NS_PER_SEC: i128 = 1_000_000_000;
pub(super) const SECS_PER_DAY: i64 = 86_400;
/// The divider chain's input frequency: periodic rates are in its ticks.
pub(super) const TIME_BASE_HZ: i128 = 32_768;
/// UIP rises 8 time-base ticks (244 µs) before the update.
pub(super) const UIP_WINDOW_NS: i128 = 8 * NS_PER_SEC / TIME_BASE_HZ;
