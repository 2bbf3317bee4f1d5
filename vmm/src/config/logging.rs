//! `-d ITEMS`, `-D FILE` and `-msg ...`: what minnow logs about what the guest does wrong,
//! where it goes, and how minnow's lines on stderr begin.
use super::parse::{bad, key_values, on_off};
use super::ConfigError;
use std::path::PathBuf;

/// QEMU's `-d` items that trace its TCG translator or interpreter: nothing to log under KVM.
const TCG_ITEMS: &[&str] = &[
    "out_asm",
    "in_asm",
    "op",
    "op_opt",
    "op_ind",
    "op_plugin",
    "int",
    "exec",
    "cpu",
    "fpu",
    "mmu",
    "pcall",
    "cpu_reset",
    "page",
    "nochain",
    "plugin",
    "strace",
    "tid",
];

const ITEMS_HINT: &str = ": minnow logs guest_errors (what the guest does wrong) and unimp \
                          (accesses to ports and addresses no device claims)";

/// Which of the guest's doings are logged (`-d`). Minnow logs `guest_errors` unless `-d` says
/// otherwise (QEMU logs nothing without `-d`); each kind of message is rate-limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogItems {
    /// Bad register accesses, malformed virtio requests, unknown device commands.
    pub guest_errors: bool,
    /// Port I/O and MMIO where no device sits.
    pub unimp: bool,
}

impl Default for LogItems {
    fn default() -> Self {
        Self {
            guest_errors: true,
            unimp: false,
        }
    }
}

/// `-d`, `-D` and `-msg` together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub items: LogItems,
    /// `-D FILE`: the guest's log goes there (truncated at start, as QEMU's) instead of stderr.
    pub file: Option<PathBuf>,
    /// `-msg timestamp=on`: each stderr line starts with the UTC time, as QEMU's do.
    pub timestamps: bool,
    /// `-msg guest-name=on`: and with the `-name`.
    pub guest_name: bool,
}

/// `-d ITEM[,ITEM...]`: exactly the items named are logged.
pub(super) fn parse_items(s: &str) -> Result<LogItems, ConfigError> {
    let mut items = LogItems {
        guest_errors: false,
        unimp: false,
    };
    for item in s.split(',') {
        match item {
            "guest_errors" => items.guest_errors = true,
            "unimp" => items.unimp = true,
            t if TCG_ITEMS.contains(&t) || t.starts_with("trace:") => {
                return Err(bad(
                    "-d",
                    t,
                    &format!("{ITEMS_HINT}; {t} traces QEMU's TCG, which a KVM-only VMM has not"),
                ))
            }
            other => return Err(bad("-d", other, ITEMS_HINT)),
        }
    }
    Ok(items)
}

/// `-msg [timestamp[=on|off]][,guest-name[=on|off]]`.
pub(super) fn parse_msg(log: &mut LogConfig, s: &str) -> Result<(), ConfigError> {
    for (k, v) in key_values(s) {
        let on = v.is_empty() || on_off(&format!("-msg {k}"), &v)?;
        match k.as_str() {
            "timestamp" => log.timestamps = on,
            "guest-name" => log.guest_name = on,
            _ => return Err(bad("-msg", &k, ": use timestamp=on|off or guest-name=on|off")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d_names_exactly_what_is_logged() {
        let items = parse_items("unimp").unwrap();
        assert_eq!((items.guest_errors, items.unimp), (false, true));
        let items = parse_items("guest_errors,unimp").unwrap();
        assert_eq!((items.guest_errors, items.unimp), (true, true));
        let e = parse_items("guest_errors,in_asm").unwrap_err().to_string();
        assert!(e.contains("in_asm") && e.contains("TCG"), "{e}");
        let e = parse_items("bogus").unwrap_err().to_string();
        assert!(e.contains("\"bogus\"") && e.contains("unimp"), "{e}");
    }

    #[test]
    fn msg_takes_qemus_keys() {
        let mut log = LogConfig::default();
        parse_msg(&mut log, "timestamp=on,guest-name").unwrap();
        assert!(log.timestamps && log.guest_name);
        parse_msg(&mut log, "timestamp=off").unwrap();
        assert!(!log.timestamps);
        assert!(parse_msg(&mut log, "color=on").is_err());
        assert!(parse_msg(&mut log, "timestamp=maybe").is_err());
    }
}
