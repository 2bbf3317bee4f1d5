//! `-rtc base=utc|localtime|DATE[,clock=host|rt|vm][,driftfix=none|slew]`, as QEMU takes it.
//! The RTC keeps the host's clock (`clock=host`); `clock=rt|vm` and `driftfix=slew` are
//! accepted and noted as without effect here.
use super::parse::bad;
use super::ConfigError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the guest's RTC starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtcBase {
    /// The host's UTC (QEMU's default).
    #[default]
    Utc,
    /// The host's local time.
    LocalTime,
    /// A given date and time, from which the RTC runs on.
    Fixed(SystemTime),
}

impl RtcBase {
    /// The guest's RTC time minus the host's UTC, in ns, at `now`.
    pub fn offset_ns(self, now: SystemTime) -> i128 {
        match self {
            Self::Utc => 0,
            Self::LocalTime => i128::from(local_utc_offset_s(now)) * 1_000_000_000,
            Self::Fixed(at) => ns(at) - ns(now),
        }
    }
}

fn ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The host's local time zone's offset from UTC at `now`, in seconds.
fn local_utc_offset_s(now: SystemTime) -> i64 {
    // time_t is an i64 on x86_64 (with glibc and with musl).
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64;
    // SAFETY: an all-zero tm is valid; localtime_r reads `secs` and fills `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    match unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        true => 0,
        false => tm.tm_gmtoff,
    }
}

/// Parses `-rtc`'s value; things accepted without effect go to `notes`.
pub fn parse_rtc(value: &str, notes: &mut Vec<String>) -> Result<RtcBase, ConfigError> {
    let mut base = RtcBase::Utc;
    for item in value.split(',') {
        let (key, v) = item.split_once('=').unwrap_or((item, ""));
        match (key, v) {
            ("base", "utc") => base = RtcBase::Utc,
            ("base", "localtime") => base = RtcBase::LocalTime,
            ("base", date) => base = RtcBase::Fixed(parse_date(date)?),
            ("clock", "host") | ("driftfix", "none") => {}
            ("clock", "rt" | "vm") => notes.push(format!(
                "-rtc clock={v}: accepted, without effect: the RTC follows the host's clock"
            )),
            ("driftfix", "slew") => notes.push(
                "-rtc driftfix=slew: accepted, without effect: RTC ticks a guest missed are not delivered again".into(),
            ),
            _ => {
                return Err(bad(
                    "-rtc",
                    item,
                    ": give base=utc|localtime|YYYY-MM-DDTHH:MM:SS, clock=host, driftfix=none|slew",
                ))
            }
        }
    }
    Ok(base)
}

/// QEMU's forms: `2006-06-17T16:01:21` or `2006-06-17`.
fn parse_date(date: &str) -> Result<SystemTime, ConfigError> {
    let full = match date.len() {
        10 => format!("{date}T00:00:00"),
        _ => date.to_string(),
    };
    humantime::parse_rfc3339_weak(&full).map_err(|_| {
        bad(
            "-rtc base",
            date,
            ": give utc, localtime or a date as 2006-06-17T16:01:21",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemus_rtc_options_parse() {
        let mut notes = Vec::new();
        assert_eq!(
            parse_rtc("base=utc,driftfix=slew", &mut notes).unwrap(),
            RtcBase::Utc
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(
            parse_rtc("base=localtime", &mut notes).unwrap(),
            RtcBase::LocalTime
        );
        let RtcBase::Fixed(at) = parse_rtc("base=2006-06-17T16:01:21,clock=host", &mut notes).unwrap() else {
            panic!("a fixed base")
        };
        assert_eq!(at.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_150_560_081);
        let offset = RtcBase::Fixed(at).offset_ns(at + Duration::from_secs(10));
        assert_eq!(offset, -10_000_000_000);
        assert!(parse_rtc("base=yesterday", &mut notes).is_err());
        assert!(parse_rtc("clock=tsc", &mut notes).is_err());
    }
}
