//! `-global DRIVER.PROPERTY=VALUE`: QEMU's defaults for a device type. microvm's only one that
//! matters here is the in-kernel PIT's lost-tick policy; any other is refused in one line.
use super::parse::bad;
use super::ConfigError;

/// What the in-kernel PIT does with ticks the guest missed (`kvm-pit.lost_tick_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LostTickPolicy {
    /// Delivered late (KVM's reinjection, QEMU's default).
    #[default]
    Delay,
    /// Dropped: a guest that was not running does not get a burst of ticks after.
    Discard,
}

/// Parses one `-global`.
pub fn parse_global(value: &str) -> Result<LostTickPolicy, ConfigError> {
    let refuse = || {
        bad(
            "-global",
            value,
            ": minnow takes kvm-pit.lost_tick_policy=delay|discard only",
        )
    };
    let (property, v) = value.split_once('=').ok_or_else(refuse)?;
    match (property, v) {
        ("kvm-pit.lost_tick_policy", "delay") => Ok(LostTickPolicy::Delay),
        ("kvm-pit.lost_tick_policy", "discard") => Ok(LostTickPolicy::Discard),
        _ => Err(refuse()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pits_policy_is_taken() {
        assert_eq!(
            parse_global("kvm-pit.lost_tick_policy=discard").unwrap(),
            LostTickPolicy::Discard
        );
        assert!(parse_global("kvm-pit.lost_tick_policy=slew").is_err());
        assert!(parse_global("isa-serial.chardev=x").is_err());
    }
}
