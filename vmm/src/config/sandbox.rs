//! `-sandbox on|off[,obsolete=..][,elevateprivileges=..][,spawn=..][,resourcecontrol=..]`, as
//! QEMU parses it (`enable` is the implied key). Minnow's filters are allow-lists, on unless
//! `-sandbox off`: the four sub-options, which in QEMU add calls to a deny-list, are checked as
//! QEMU checks them and change nothing, since none of those calls is allowed after start anyway.
use super::parse::{bad, key_values, on_off};
use super::ConfigError;

/// The values QEMU accepts for each sub-option.
const SUB_OPTIONS: [(&str, &[&str]); 4] = [
    ("obsolete", &["allow", "deny"]),
    ("elevateprivileges", &["allow", "deny", "children"]),
    ("spawn", &["allow", "deny"]),
    ("resourcecontrol", &["allow", "deny"]),
];

/// Whether the filters go on.
pub fn parse_sandbox(s: &str) -> Result<bool, ConfigError> {
    let mut enable = None;
    for (i, (key, value)) in key_values(s).into_iter().enumerate() {
        let (key, value) = match (i, value.is_empty()) {
            // The leading bare word is the value of the implied key.
            (0, true) => ("enable".to_string(), key),
            _ => (key, value),
        };
        if key == "enable" {
            enable = Some(on_off("-sandbox", &value)?);
            continue;
        }
        let Some((_, allowed)) = SUB_OPTIONS.iter().find(|(k, _)| *k == key) else {
            return Err(bad("-sandbox", &key, ": Invalid parameter (QEMU's keys: enable, obsolete, elevateprivileges, spawn, resourcecontrol)"));
        };
        if !allowed.contains(&value.as_str()) {
            return Err(bad(
                "-sandbox",
                &format!("{key}={value}"),
                &format!(": invalid argument for {key} (use {})", allowed.join(", ")),
            ));
        }
    }
    enable.ok_or_else(|| bad("-sandbox", s, ": say on or off"))
}

/// Tests only: which thread kind `-x-sandbox-violate` names.
#[cfg(feature = "sandbox-test")]
pub fn parse_violate(s: &str) -> Result<crate::sandbox::ThreadKind, ConfigError> {
    match s {
        "vcpu" => Ok(crate::sandbox::ThreadKind::Vcpu),
        "events" => Ok(crate::sandbox::ThreadKind::Events),
        "main" => Ok(crate::sandbox::ThreadKind::Main),
        _ => Err(bad("-x-sandbox-violate", s, ": use vcpu, events or main")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemus_spellings_are_taken() {
        assert!(parse_sandbox("on").is_ok_and(|on| on));
        assert!(parse_sandbox("off").is_ok_and(|on| !on));
        assert!(parse_sandbox("enable=on").is_ok_and(|on| on));
        assert!(
            parse_sandbox("on,obsolete=deny,elevateprivileges=children,spawn=deny,resourcecontrol=deny")
                .is_ok_and(|on| on)
        );
    }

    #[test]
    fn wrong_keys_and_values_are_named() {
        let err = |s: &str| parse_sandbox(s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("on,spawn=maybe").contains("invalid argument for spawn"));
        assert!(err("on,fork=deny").contains("fork"));
        assert!(err("maybe").contains("maybe"));
        assert!(err("spawn=deny").contains("on or off"));
    }
}
