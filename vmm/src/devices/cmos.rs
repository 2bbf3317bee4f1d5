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
//! clock when read. For interrupts, the event loop's RTC timer waits until [`Cmos::next_deadline`],
//! then calls [`Cmos::tick`]; when a guest access moves the deadline earlier the device signals
//! [`Cmos::deadline_changed`], so the timer recomputes it.
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
use crate::runtime::guest_log::GuestLog;
use crate::snapshot::codec::{self, StateError};

mod calendar;
mod interrupts;
mod registers;

use calendar::whole_seconds;
use registers::*;

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
    log: GuestLog,
}

impl Cmos<HostClock> {
    /// An RTC on the host clock, in a machine with `low_ram` bytes of RAM below 4 GiB (from
    /// address 0) and `high_ram` above.
    pub fn new(low_ram: u64, high_ram: u64, irq: IrqLine, log: GuestLog) -> io::Result<Self> {
        Self::with_clock(low_ram, high_ram, irq, HostClock, log)
    }
}

impl<C: Clock> Cmos<C> {
    pub fn with_clock(
        low_ram: u64,
        high_ram: u64,
        irq: IrqLine,
        clock: C,
        log: GuestLog,
    ) -> io::Result<Self> {
        let now = clock.now();
        let utc = i128::try_from(clock.utc().as_nanos()).unwrap_or_default();
        let mut cmos = Self {
            irq,
            deadline_changed: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
            index: 0,
            regs: [0; 128],
            anchor: now,
            anchor_ns: utc,
            last: now,
            log,
            clock,
        };
        cmos.regs[usize::from(REG_A)] = A_DEFAULT;
        cmos.regs[usize::from(REG_B)] = B_DEFAULT;
        cmos.set_memory_size(low_ram, high_ram);
        Ok(cmos)
    }

    /// `-rtc base=`: the guest's time runs `offset_ns` ahead of the host's UTC.
    pub fn shift_time(&mut self, offset_ns: i128) {
        self.anchor_ns = self.anchor_ns.saturating_add(offset_ns);
    }

    /// Written (incremented) whenever a guest access may have moved [`Cmos::next_deadline`]
    /// earlier: the RTC timer waits on it as well as on the deadline.
    pub fn deadline_changed(&self) -> &EventFd {
        &self.deadline_changed
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

    /// A data-port access: the register core at the guest's clock, signalling the RTC timer
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
        crate::guest_log!(
            self.log,
            GuestError,
            "cmos bad access",
            "cmos: access at offset {offset:#x} ignored"
        );
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

    /// The chip's RESET pin: the clock and the CMOS RAM keep running (they are on the battery),
    /// the interrupt enables and flags clear, as QEMU's `rtc_reset` does.
    fn reset(&mut self) {
        self.index = 0;
        self.regs[usize::from(REG_B)] &= !(B_PIE | B_AIE | B_UIE);
        self.regs[usize::from(REG_C)] = 0;
        self.last = self.clock.now();
        let _ = self.deadline_changed.write(1);
    }

    fn kind(&self) -> &'static str {
        "rtc"
    }

    /// The registers, and the guest's time as an offset from the host's UTC: a restore later
    /// (or a clone) shows the time that has passed since, as a real clock would.
    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        let now = self.clock.now();
        let utc = i128::try_from(self.clock.utc().as_nanos()).unwrap_or_default();
        codec::encode(
            "rtc",
            &RtcState {
                index: self.index,
                regs: self.regs.to_vec(),
                offset_from_utc_ns: self.guest_ns(now) - utc,
            },
        )
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let state: RtcState = codec::decode("rtc", bytes)?;
        let regs: [u8; 128] =
            state.regs.as_slice().try_into().map_err(|_| {
                StateError::refused("rtc", format!("{} registers, not 128", state.regs.len()))
            })?;
        let now = self.clock.now();
        let utc = i128::try_from(self.clock.utc().as_nanos()).unwrap_or_default();
        self.index = state.index;
        self.regs = regs;
        self.anchor = now;
        self.anchor_ns = utc.saturating_add(state.offset_from_utc_ns);
        self.last = now;
        let _ = self.deadline_changed.write(1);
        Ok(())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RtcState {
    index: u8,
    regs: Vec<u8>,
    offset_from_utc_ns: i128,
}

fn is_stopped(a: u8, b: u8) -> bool {
    b & B_SET != 0 || a & A_DIVIDER > A_DIVIDER_RUNNING_MAX
}

#[cfg(test)]
mod tests;
