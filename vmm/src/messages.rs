//! The lines minnow writes on stderr. Each starts with "minnow: ", as QEMU's start with its
//! program name; `-msg timestamp=on` puts the UTC time in front and `-msg guest-name=on` the
//! VM's name, as QEMU's `-msg` does.
//!
//! The style is process-wide, as QEMU's is: the CLI sets it once from the command line; a
//! library user who never sets it gets plain lines.
use std::sync::RwLock;
use std::time::SystemTime;

/// How each line begins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub timestamps: bool,
    /// The VM's name, when `-msg guest-name=on` and `-name` are both given.
    pub guest_name: Option<String>,
}

static STYLE: RwLock<Style> = RwLock::new(Style {
    timestamps: false,
    guest_name: None,
});

/// Sets how every later line begins.
pub fn set_style(style: Style) {
    *STYLE.write().unwrap_or_else(|p| p.into_inner()) = style;
}

/// The start of a line written now: `[TIME ][NAME ]minnow: `.
pub fn prefix() -> String {
    let style = STYLE.read().unwrap_or_else(|p| p.into_inner());
    prefix_at(&style, SystemTime::now())
}

fn prefix_at(style: &Style, now: SystemTime) -> String {
    let mut p = String::new();
    if style.timestamps {
        p.push_str(&humantime::format_rfc3339_micros(now).to_string());
        p.push(' ');
    }
    if let Some(name) = &style.guest_name {
        p.push_str(name);
        p.push(' ');
    }
    p.push_str("minnow: ");
    p
}

/// `report!("format", args...)`: one line on stderr, begun as [`prefix`] says.
#[macro_export]
macro_rules! report {
    ($($arg:tt)+) => {
        eprintln!("{}{}", $crate::messages::prefix(), format_args!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_begin_as_qemus_do() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_590_512_177_952);
        assert_eq!(prefix_at(&Style::default(), at), "minnow: ");
        let style = Style {
            timestamps: true,
            guest_name: Some("vm1".into()),
        };
        assert_eq!(prefix_at(&style, at), "2026-12-06T20:55:12.177952Z vm1 minnow: ");
    }
}
