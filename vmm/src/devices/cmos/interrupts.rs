//! The RTC's interrupts: update-ended, alarm and periodic events, computed from the clock when
//! asked rather than by a thread of the device's own.
use std::time::{Duration, Instant};

use super::calendar::whole_seconds;
use super::registers::*;
use super::{Clock, Cmos};

impl<C: Clock> Cmos<C> {
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

    /// The periodic interrupt's period in time-base ticks, if register A selects one (QEMU's
    /// periodic_period_to_clock: rates 1 and 2 repeat rates 8 and 9).
    pub(super) fn period_ticks(&self) -> Option<i128> {
        match self.reg(REG_A) & A_RATE {
            0 => None,
            rate @ 1..=2 => Some(1 << (rate + 6)),
            rate => Some(1 << (rate - 1)),
        }
    }

    /// The first whole second after `secs` at which the time registers will match the alarm.
    /// The alarm compares register bytes in the current format; a value 0xC0-0xFF matches any.
    pub(super) fn next_alarm_after(&self, secs: i64) -> Option<i64> {
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
    pub(super) fn alarm_field(
        &self,
        index: u8,
        count: u8,
        encode: impl Fn(u8) -> u8,
    ) -> Option<std::ops::Range<i64>> {
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
    pub(super) fn advance(&mut self, now: Instant) {
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
    pub(super) fn update_irq(&mut self) {
        let c = self.reg(REG_C);
        if c & self.reg(REG_B) & C_FLAGS == 0 {
            self.set_reg(REG_C, c & !C_IRQF);
        } else if c & C_IRQF == 0 {
            self.set_reg(REG_C, c | C_IRQF);
            self.irq.trigger();
        }
    }
}

fn time_base_ticks(ns: i128) -> i128 {
    (ns * TIME_BASE_HZ).div_euclid(NS_PER_SEC)
}
