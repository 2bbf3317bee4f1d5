//! The RTC's calendar: time registers in BCD or binary, 12- or 24-hour, as register B selects,
//! to and from seconds since the Unix epoch.
use super::registers::*;
use super::{Clock, Cmos};

impl<C: Clock> Cmos<C> {
    /// The value of time register `index` at `secs` seconds since the epoch, in the current
    /// format.
    pub(super) fn time_register(&self, index: u8, secs: i64) -> u8 {
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
    pub(super) fn registers_to_seconds(&self) -> i64 {
        let field = |index| self.decode(self.reg(index));
        let month = field(MONTH) - 1;
        let year = field(CENTURY) * 100 + field(YEAR) + month.div_euclid(12);
        let days = days_from_civil(year, month.rem_euclid(12) + 1) + field(DAY_OF_MONTH) - 1;
        days * SECS_PER_DAY + self.decode_hour(self.reg(HOURS)) * 3600 + field(MINUTES) * 60 + field(SECONDS)
    }

    pub(super) fn encode(&self, value: u8) -> u8 {
        if self.reg(REG_B) & B_BINARY != 0 {
            value
        } else {
            ((value / 10 % 10) << 4) | (value % 10)
        }
    }

    pub(super) fn decode(&self, value: u8) -> i64 {
        if self.reg(REG_B) & B_BINARY != 0 {
            i64::from(value)
        } else {
            i64::from(value >> 4) * 10 + i64::from(value & 0x0F)
        }
    }

    /// `hour` is 0-23.
    pub(super) fn encode_hour(&self, hour: u8) -> u8 {
        if self.reg(REG_B) & B_24_HOUR != 0 {
            return self.encode(hour);
        }
        let twelve = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(twelve) | if hour >= 12 { HOUR_PM } else { 0 }
    }

    pub(super) fn decode_hour(&self, value: u8) -> i64 {
        if self.reg(REG_B) & B_24_HOUR != 0 {
            return self.decode(value);
        }
        self.decode(value & !HOUR_PM) % 12 + if value & HOUR_PM != 0 { 12 } else { 0 }
    }
}

pub(super) fn whole_seconds(ns: i128) -> i64 {
    // In range for any time the registers can express (years 0-25755).
    ns.div_euclid(NS_PER_SEC) as i64
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
mod tests {
    use super::*;

    #[test]
    fn calendar_conversions_round_trip() {
        for days in (-800_000..800_000).step_by(97) {
            let (year, month, day) = civil_from_days(days);
            assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            assert_eq!(days_from_civil(year, i64::from(month)) + i64::from(day) - 1, days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // Day 19,782 since 1970: the leap day the device tests run on.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
