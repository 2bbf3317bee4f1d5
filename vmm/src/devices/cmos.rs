//! The MC146818 real-time clock and its 128 bytes of CMOS RAM: an index port (offset 0; bit 7
//! masks NMI and is ignored) and a data port (offset 1). This is "the RTC done right" of
//! specs.md 2.3: register A's update-in-progress bit clears as on hardware, so Linux's
//! `mc146818_avoid_UIP()` succeeds at once and rtc_cmos probes without the ~1 s stall of a
//! machine whose ports 0x70/0x71 read all-ones.
//!
//! Time comes from a [`Clock`]: the host's UTC time once, at creation, then the monotonic clock,
//! so host clock steps after start are not followed (QEMU's `-rtc clock=rt`). The guest may set
//! the clock; the device then keeps the guest's time, running at the host's rate. The day of the
//! week is derived from the date.
//!
//! No threads: register A's UIP bit and the interrupt flags in register C are computed from the
//! clock when read. For interrupts, the VMM's timer thread sleeps until [`Cmos::next_deadline`],
//! then calls [`Cmos::tick`]; when a guest access moves the deadline earlier the device signals
//! [`Cmos::deadline_changed`], so the thread recomputes it.
//!
//! The register set follows QEMU's hw/rtc/mc146818rtc.c (base year 2000 with the century in
//! 0x32, as QEMU's pc and microvm machines), and the memory-size bytes QEMU's microvm sets
//! (microvm_set_rtc), which firmware reads when there is no `etc/e820`. 128 bytes, as QEMU's: the
//! last of those bytes is 0x5D.
use std::io;
use std::time::{Duration, Instant, SystemTime};

use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// Where the RTC's time comes from; tests substitute their own.
pub trait Clock: Send {
    /// Monotonic time: the RTC runs at its rate, and deadlines are given on it.
    fn now(&self) -> Instant;
    /// UTC time since the Unix epoch. Read once, when the device is created.
    fn utc(&self) -> Duration;
}

/// The host's clocks.
pub struct HostClock;

impl Clock for HostClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn utc(&self) -> Duration {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

// Port offsets.
const INDEX_PORT: u64 = 0;
const DATA_PORT: u64 = 1;
/// Index port bit 7 masks NMI on a PC; there is no NMI to mask here.
const INDEX_MASK: u8 = 0x7F;

// Register indices.
const SECONDS: u8 = 0x00;
const SECONDS_ALARM: u8 = 0x01;
const MINUTES: u8 = 0x02;
const MINUTES_ALARM: u8 = 0x03;
const HOURS: u8 = 0x04;
const HOURS_ALARM: u8 = 0x05;
const DAY_OF_WEEK: u8 = 0x06;
const DAY_OF_MONTH: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const REG_A: u8 = 0x0A;
const REG_B: u8 = 0x0B;
const REG_C: u8 = 0x0C;
const REG_D: u8 = 0x0D;
/// The century, where QEMU keeps it (and where an ACPI FADT's CENTURY field should point).
const CENTURY: u8 = 0x32;
const TIME_REGISTERS: [u8; 8] = [
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
const BASE_MEMORY: u8 = 0x15;
/// Memory above 1 MiB in KiB, at most 65535 (2 bytes, written at both places).
const EXTENDED_MEMORY: u8 = 0x17;
const EXTENDED_MEMORY_COPY: u8 = 0x30;
/// Memory from 16 MiB to 4 GiB in 64 KiB units, at most 65535 (2 bytes).
const MEMORY_ABOVE_16M: u8 = 0x34;
/// Memory above 4 GiB in 64 KiB units (3 bytes).
const MEMORY_ABOVE_4G: u8 = 0x5B;

// Register A.
/// Update in progress: set for the 244 µs before each second boundary. Read-only.
const A_UIP: u8 = 0x80;
/// The divider-chain select bits; values above 0x20 stop the clock.
const A_DIVIDER: u8 = 0x70;
const A_DIVIDER_RUNNING_MAX: u8 = 0x20;
/// Both bits set: the divider chain is held in reset (clock stopped, no interrupts).
const A_DIVIDER_RESET: u8 = 0x60;
const A_RATE: u8 = 0x0F;
/// 32.768 kHz time base, 1024 Hz periodic rate: what BIOSes leave and QEMU resets to.
const A_DEFAULT: u8 = 0x26;

// Register B.
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_BINARY: u8 = 0x04;
const B_24_HOUR: u8 = 0x02;
/// 24-hour BCD, interrupts off.
const B_DEFAULT: u8 = B_24_HOUR;

// Register C: the interrupt flags line up with their enables in register B.
const C_IRQF: u8 = 0x80;
const C_PF: u8 = B_PIE;
const C_AF: u8 = B_AIE;
const C_UF: u8 = B_UIE;
const C_FLAGS: u8 = C_PF | C_AF | C_UF;

/// Register D: the battery is good and RAM and time are valid.
const D_VRT: u8 = 0x80;

/// 12-hour mode: hour bit 7 is PM.
const HOUR_PM: u8 = 0x80;
/// Alarm values 0xC0-0xFF match any value.
const ALARM_ANY: u8 = 0xC0;

const NS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// The divider chain's input frequency: periodic rates are in its ticks.
const TIME_BASE_HZ: i128 = 32_768;
/// UIP rises 8 time-base ticks (244 µs) before the update.
const UIP_WINDOW_NS: i128 = 8 * NS_PER_SEC / TIME_BASE_HZ;

pub struct Cmos<C: Clock = HostClock> {
    clock: C,
    irq: IrqLine,
    deadline_changed: EventFd,
    index: u8,
    /// Registers and RAM. The time registers are only meaningful while the clock is stopped
    /// (SET, or the divider): they hold the stopped time, which the guest may overwrite. While it
    /// runs, they are computed from `anchor` on every read.
    regs: [u8; 128],
    /// The guest's time at `anchor`, in ns since the Unix epoch. This count runs on while the
    /// clock is stopped, as the divider chain does: it keeps the phase of the second.
    anchor: Instant,
    anchor_ns: i128,
    /// Interrupt events up to this instant are in register C.
    last: Instant,
    warned_offsets: u8,
}

impl Cmos<HostClock> {
    /// An RTC on the host clock, in a machine with `low_ram` bytes of RAM below 4 GiB (from
    /// address 0) and `high_ram` above.
    pub fn new(low_ram: u64, high_ram: u64, irq: IrqLine) -> io::Result<Self> {
        Self::with_clock(low_ram, high_ram, irq, HostClock)
    }
}

impl<C: Clock> Cmos<C> {
    pub fn with_clock(low_ram: u64, high_ram: u64, irq: IrqLine, clock: C) -> io::Result<Self> {
        let now = clock.now();
        let utc = i128::try_from(clock.utc().as_nanos()).unwrap_or_default();
        let mut cmos = Self {
            irq,
            deadline_changed: EventFd::new(libc::EFD_NONBLOCK)?,
            index: 0,
            regs: [0; 128],
            anchor: now,
            anchor_ns: utc,
            last: now,
            warned_offsets: 0,
            clock,
        };
        cmos.regs[usize::from(REG_A)] = A_DEFAULT;
        cmos.regs[usize::from(REG_B)] = B_DEFAULT;
        cmos.set_memory_size(low_ram, high_ram);
        Ok(cmos)
    }

    /// Written (incremented) whenever a guest access may have moved [`Cmos::next_deadline`]
    /// earlier: the timer thread waits on it as well as on the deadline.
    pub fn deadline_changed(&self) -> &EventFd {
        &self.deadline_changed
    }

    /// When the next interrupt is due, if one can be: an update-ended, alarm or periodic event
    /// whose enable bit is on. `None` while the interrupt line is already raised (until the guest
    /// reads register C) or nothing is enabled.
    pub fn next_deadline(&self) -> Option<Instant> {
        let c = self.reg(REG_C);
        if c & C_IRQF != 0 || self.divider_in_reset() {
            return None;
        }
        let waiting = self.reg(REG_B) & C_FLAGS & !c;
        let from = self.guest_ns(self.last);
        let from_secs = whole_seconds(from);
        let mut next: Option<i128> = None;
        let mut consider = |at: i128| next = Some(next.map_or(at, |n| n.min(at)));
        if waiting & C_UF != 0 && !self.stopped() {
            consider(i128::from(from_secs + 1) * NS_PER_SEC);
        }
        if waiting & C_AF != 0 && !self.stopped() {
            if let Some(alarm) = self.next_alarm_after(from_secs) {
                consider(i128::from(alarm) * NS_PER_SEC);
            }
        }
        if let Some(period) = self.period_ticks().filter(|_| waiting & C_PF != 0) {
            let tick = (time_base_ticks(from).div_euclid(period) + 1) * period;
            // Round up, so that the tick count has reached `tick` at the deadline.
            consider((tick * NS_PER_SEC + TIME_BASE_HZ - 1).div_euclid(TIME_BASE_HZ));
        }
        let wait = u64::try_from(next? - from).unwrap_or(u64::MAX);
        self.last.checked_add(Duration::from_nanos(wait))
    }

    /// Brings the interrupt flags up to `now`, raising the line for an enabled one.
    pub fn tick(&mut self, now: Instant) {
        self.advance(now);
    }

    fn reg(&self, index: u8) -> u8 {
        self.regs[usize::from(index & INDEX_MASK)]
    }

    fn set_reg(&mut self, index: u8, value: u8) {
        self.regs[usize::from(index & INDEX_MASK)] = value;
    }

    fn set_memory_size(&mut self, low_ram: u64, high_ram: u64) {
        const KIB: u64 = 1 << 10;
        const MIB: u64 = 1 << 20;
        let base = (low_ram / KIB).min(640);
        let extended = (low_ram.saturating_sub(MIB) / KIB).min(0xFFFF);
        let above_16m = (low_ram.saturating_sub(16 * MIB) / (64 * KIB)).min(0xFFFF);
        let above_4g = (high_ram / (64 * KIB)).min(0xFF_FFFF);
        for (index, value, len) in [
            (BASE_MEMORY, base, 2),
            (EXTENDED_MEMORY, extended, 2),
            (EXTENDED_MEMORY_COPY, extended, 2),
            (MEMORY_ABOVE_16M, above_16m, 2),
            (MEMORY_ABOVE_4G, above_4g, 3),
        ] {
            for (i, byte) in value.to_le_bytes().into_iter().take(len).enumerate() {
                self.regs[usize::from(index) + i] = byte;
            }
        }
    }

    // The clock.

    fn guest_ns(&self, at: Instant) -> i128 {
        let elapsed = match at.checked_duration_since(self.anchor) {
            Some(after) => after.as_nanos() as i128,
            None => -(self.anchor.duration_since(at).as_nanos() as i128),
        };
        self.anchor_ns + elapsed
    }

    /// Whether updates are stopped: by SET, or by a divider setting that does not count.
    fn stopped(&self) -> bool {
        is_stopped(self.reg(REG_A), self.reg(REG_B))
    }

    fn divider_in_reset(&self) -> bool {
        self.reg(REG_A) & A_DIVIDER_RESET == A_DIVIDER_RESET
    }

    fn update_in_progress(&self, now: Instant) -> bool {
        !self.stopped() && self.guest_ns(now).rem_euclid(NS_PER_SEC) >= NS_PER_SEC - UIP_WINDOW_NS
    }

    /// Latches the running time into the time registers, as the clock stops.
    fn latch_time(&mut self, now: Instant) {
        let secs = whole_seconds(self.guest_ns(now));
        for index in TIME_REGISTERS {
            let value = self.time_register(index, secs);
            self.set_reg(index, value);
        }
    }

    /// Restarts the clock from the time registers, `phase` ns into the second.
    fn start_from_registers(&mut self, now: Instant, phase: i128) {
        self.anchor = now;
        self.anchor_ns = i128::from(self.registers_to_seconds()) * NS_PER_SEC + phase;
    }

    fn phase(&self, now: Instant) -> i128 {
        self.guest_ns(now).rem_euclid(NS_PER_SEC)
    }

    /// The value of time register `index` at `secs` seconds since the epoch, in the current
    /// format.
    fn time_register(&self, index: u8, secs: i64) -> u8 {
        let days = secs.div_euclid(SECS_PER_DAY);
        let time = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // All in range by construction: the casts below cannot truncate.
        match index {
            SECONDS => self.encode((time % 60) as u8),
            MINUTES => self.encode((time / 60 % 60) as u8),
            HOURS => self.encode_hour((time / 3600) as u8),
            // 1 = Sunday; 1970-01-01 was a Thursday.
            DAY_OF_WEEK => self.encode(((days + 4).rem_euclid(7) + 1) as u8),
            DAY_OF_MONTH => self.encode(day),
            MONTH => self.encode(month),
            YEAR => self.encode(year.rem_euclid(100) as u8),
            CENTURY => self.encode(year.div_euclid(100).rem_euclid(100) as u8),
            _ => self.reg(index),
        }
    }

    /// The time the registers hold, in seconds since the epoch. Out-of-range fields carry over
    /// (month 13 is January next year, day 0 the last of the previous month), as `mktime` does.
    fn registers_to_seconds(&self) -> i64 {
        let field = |index| self.decode(self.reg(index));
        let month = field(MONTH) - 1;
        let year = field(CENTURY) * 100 + field(YEAR) + month.div_euclid(12);
        let days = days_from_civil(year, month.rem_euclid(12) + 1) + field(DAY_OF_MONTH) - 1;
        days * SECS_PER_DAY + self.decode_hour(self.reg(HOURS)) * 3600 + field(MINUTES) * 60 + field(SECONDS)
    }

    fn encode(&self, value: u8) -> u8 {
        if self.reg(REG_B) & B_BINARY != 0 {
            value
        } else {
            ((value / 10 % 10) << 4) | (value % 10)
        }
    }

    fn decode(&self, value: u8) -> i64 {
        if self.reg(REG_B) & B_BINARY != 0 {
            i64::from(value)
        } else {
            i64::from(value >> 4) * 10 + i64::from(value & 0x0F)
        }
    }

    /// `hour` is 0-23.
    fn encode_hour(&self, hour: u8) -> u8 {
        if self.reg(REG_B) & B_24_HOUR != 0 {
            return self.encode(hour);
        }
        let twelve = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(twelve) | if hour >= 12 { HOUR_PM } else { 0 }
    }

    fn decode_hour(&self, value: u8) -> i64 {
        if self.reg(REG_B) & B_24_HOUR != 0 {
            return self.decode(value);
        }
        self.decode(value & !HOUR_PM) % 12 + if value & HOUR_PM != 0 { 12 } else { 0 }
    }

    // Interrupts.

    /// The periodic interrupt's period in time-base ticks, if register A selects one (QEMU's
    /// periodic_period_to_clock: rates 1 and 2 repeat rates 8 and 9).
    fn period_ticks(&self) -> Option<i128> {
        match self.reg(REG_A) & A_RATE {
            0 => None,
            rate @ 1..=2 => Some(1 << (rate + 6)),
            rate => Some(1 << (rate - 1)),
        }
    }

    /// The first whole second after `secs` at which the time registers will match the alarm.
    /// The alarm compares register bytes in the current format; a value 0xC0-0xFF matches any.
    fn next_alarm_after(&self, secs: i64) -> Option<i64> {
        let hours = self.alarm_field(HOURS_ALARM, 24, |h| self.encode_hour(h))?;
        let minutes = self.alarm_field(MINUTES_ALARM, 60, |m| self.encode(m))?;
        let seconds = self.alarm_field(SECONDS_ALARM, 60, |s| self.encode(s))?;
        let time = secs.rem_euclid(SECS_PER_DAY);
        let midnight = secs - time;
        // Every matching time of day occurs once a day: the first after `time` is within a day.
        for day in [0, SECS_PER_DAY] {
            for hour in hours.clone() {
                let at_hour = day + hour * 3600;
                if at_hour + 3599 <= time {
                    continue;
                }
                for minute in minutes.clone() {
                    let at_minute = at_hour + minute * 60;
                    if at_minute + 59 <= time {
                        continue;
                    }
                    if let Some(at) = seconds.clone().map(|s| at_minute + s).find(|&at| at > time) {
                        return Some(midnight + at);
                    }
                }
            }
        }
        None
    }

    /// The values (below `count`) an alarm register matches; `None` if it can match none.
    fn alarm_field(&self, index: u8, count: u8, encode: impl Fn(u8) -> u8) -> Option<std::ops::Range<i64>> {
        let alarm = self.reg(index);
        if alarm & ALARM_ANY == ALARM_ANY {
            return Some(0..i64::from(count));
        }
        let value = i64::from((0..count).find(|&v| encode(v) == alarm)?);
        Some(value..value + 1)
    }

    /// Sets the flags of the events between the last call and `now` in register C.
    /// Update-ended and alarm events need a running clock; periodic ones only a running
    /// divider chain.
    fn advance(&mut self, now: Instant) {
        if now <= self.last {
            return;
        }
        let (from, to) = (self.guest_ns(self.last), self.guest_ns(now));
        self.last = now;
        if self.divider_in_reset() {
            return;
        }
        let mut flags = 0;
        if !self.stopped() {
            if whole_seconds(from) < whole_seconds(to) {
                flags |= C_UF;
            }
            if self
                .next_alarm_after(whole_seconds(from))
                .is_some_and(|at| i128::from(at) * NS_PER_SEC <= to)
            {
                flags |= C_AF;
            }
        }
        if let Some(period) = self.period_ticks() {
            if time_base_ticks(from).div_euclid(period) < time_base_ticks(to).div_euclid(period) {
                flags |= C_PF;
            }
        }
        if flags != 0 {
            let c = self.reg(REG_C);
            self.set_reg(REG_C, c | flags);
            self.update_irq();
        }
    }

    /// IRQF is set while a flag and its enable are both on; the line gets an edge as it rises.
    fn update_irq(&mut self) {
        let c = self.reg(REG_C);
        if c & self.reg(REG_B) & C_FLAGS == 0 {
            self.set_reg(REG_C, c & !C_IRQF);
        } else if c & C_IRQF == 0 {
            self.set_reg(REG_C, c | C_IRQF);
            self.irq.trigger();
        }
    }

    // Register access.

    fn is_clock_register(index: u8) -> bool {
        index <= REG_D || index == CENTURY
    }

    fn read_register(&mut self, index: u8, now: Instant) -> u8 {
        if !Self::is_clock_register(index) {
            return self.reg(index);
        }
        self.advance(now);
        match index {
            REG_A if self.update_in_progress(now) => self.reg(REG_A) | A_UIP,
            REG_C => {
                let c = self.reg(REG_C);
                self.set_reg(REG_C, 0);
                c
            }
            REG_D => D_VRT,
            _ if TIME_REGISTERS.contains(&index) && !self.stopped() => {
                self.time_register(index, whole_seconds(self.guest_ns(now)))
            }
            _ => self.reg(index),
        }
    }

    fn write_register(&mut self, index: u8, value: u8, now: Instant) {
        if !Self::is_clock_register(index) {
            self.set_reg(index, value);
            return;
        }
        self.advance(now);
        match index {
            REG_A => self.write_a(value, now),
            REG_B => self.write_b(value, now),
            REG_C | REG_D => {}
            _ if TIME_REGISTERS.contains(&index) && !self.stopped() => {
                // Setting one field of a running clock: the others keep counting from now.
                let phase = self.phase(now);
                self.latch_time(now);
                self.set_reg(index, value);
                self.start_from_registers(now, phase);
            }
            _ => self.set_reg(index, value),
        }
    }

    fn write_a(&mut self, value: u8, now: Instant) {
        let (old, b) = (self.reg(REG_A), self.reg(REG_B));
        let new = value & !A_UIP;
        if !is_stopped(old, b) && is_stopped(new, b) {
            self.latch_time(now);
        }
        self.set_reg(REG_A, new);
        if is_stopped(old, b) && !is_stopped(new, b) {
            // Out of divider reset, the first update comes half a second later (datasheet).
            let phase = if old & A_DIVIDER_RESET == A_DIVIDER_RESET {
                NS_PER_SEC / 2
            } else {
                self.phase(now)
            };
            self.start_from_registers(now, phase);
        }
    }

    fn write_b(&mut self, value: u8, now: Instant) {
        let (a, old) = (self.reg(REG_A), self.reg(REG_B));
        // Setting SET clears UIE (datasheet).
        let new = if value & B_SET != 0 { value & !B_UIE } else { value };
        if !is_stopped(a, old) && is_stopped(a, new) {
            // Latch in the old format: that is what the registers held.
            self.latch_time(now);
        }
        self.set_reg(REG_B, new);
        if is_stopped(a, old) && !is_stopped(a, new) {
            let phase = self.phase(now);
            self.start_from_registers(now, phase);
        }
        self.update_irq();
    }

    /// A data-port access: the register core at the guest's clock, signalling the timer thread
    /// when the access brought the next deadline forward.
    fn data_access<R>(&mut self, access: impl FnOnce(&mut Self, u8, Instant) -> R) -> R {
        let index = self.index;
        let now = self.clock.now().max(self.last);
        if !Self::is_clock_register(index) {
            return access(self, index, now);
        }
        let before = self.next_deadline();
        let result = access(self, index, now);
        if let Some(after) = self.next_deadline() {
            if before.is_none_or(|before| after < before) {
                // A full counter means the thread has a wake-up pending anyway.
                let _ = self.deadline_changed.write(1);
            }
        }
        result
    }

    fn warn_offset(&mut self, offset: u64) {
        let bit = 1 << offset.min(7);
        if self.warned_offsets & bit == 0 {
            self.warned_offsets |= bit;
            eprintln!("minnow: cmos: access at offset {offset:#x} ignored");
        }
    }
}

/// Each byte is a port: a 16-bit write to the index port sets the index and writes the data,
/// as `outw` on a PC does.
impl<C: Clock> BusDevice for Cmos<C> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (port, byte) in (offset..).zip(data.iter_mut()) {
            *byte = match port {
                // Write-only.
                INDEX_PORT => 0xFF,
                DATA_PORT => self.data_access(|cmos, index, now| cmos.read_register(index, now)),
                _ => {
                    self.warn_offset(port);
                    0xFF
                }
            };
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (port, &byte) in (offset..).zip(data) {
            match port {
                INDEX_PORT => self.index = byte & INDEX_MASK,
                DATA_PORT => self.data_access(|cmos, index, now| cmos.write_register(index, byte, now)),
                _ => self.warn_offset(port),
            }
        }
    }
}

fn is_stopped(a: u8, b: u8) -> bool {
    b & B_SET != 0 || a & A_DIVIDER > A_DIVIDER_RUNNING_MAX
}

fn whole_seconds(ns: i128) -> i64 {
    // In range for any time the registers can express (years 0-25755).
    ns.div_euclid(NS_PER_SEC) as i64
}

fn time_base_ticks(ns: i128) -> i128 {
    (ns * TIME_BASE_HZ).div_euclid(NS_PER_SEC)
}

/// Days since 1970-01-01 of the first of `month` (1-12) in `year` (proleptic Gregorian; Howard
/// Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u8;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u8;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
