//! `-run-with user=USER,chroot=DIR[,async-teardown=off]` (QEMU 9.1's spelling) and QEMU 7.2's
//! `-runas USER` and `-chroot DIR`: the user and root directory minnow switches to once every
//! file, device and socket it needs is open. USER is a name or `UID:GID`, as QEMU takes it.
use super::parse::{bad, key_values, on_off};
use super::ConfigError;
use std::path::PathBuf;

/// Whom to become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// A user name, looked up in the password database (before any chroot).
    Name(String),
    /// `UID:GID`: no lookup, no supplementary groups.
    Ids { uid: u32, gid: u32 },
}

/// What `-run-with`, `-runas` and `-chroot` asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunWith {
    pub user: Option<RunAs>,
    pub chroot: Option<PathBuf>,
}

impl RunWith {
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.chroot.is_none()
    }
}

/// `-runas`'s and `user=`'s value.
pub fn parse_user(option: &str, s: &str) -> Result<RunAs, ConfigError> {
    if s.is_empty() {
        return Err(bad(option, s, ": name a user, or UID:GID"));
    }
    if let Some((uid, gid)) = s.split_once(':') {
        let id = |v: &str| v.parse::<u32>().ok().filter(|n| *n != u32::MAX);
        return match (id(uid), id(gid)) {
            (Some(uid), Some(gid)) => Ok(RunAs::Ids { uid, gid }),
            _ => Err(bad(option, s, ": a UID:GID pair is two numbers")),
        };
    }
    Ok(RunAs::Name(s.to_string()))
}

/// One `-run-with`, merged into `into` (a later option wins, as in QEMU).
pub fn parse_run_with(s: &str, into: &mut RunWith) -> Result<(), ConfigError> {
    for (key, value) in key_values(s) {
        match key.as_str() {
            "user" => into.user = Some(parse_user("-run-with user", &value)?),
            "chroot" if !value.is_empty() => into.chroot = Some(value.into()),
            "chroot" => return Err(bad("-run-with chroot", &value, ": name a directory")),
            // Minnow tears its VM down in the process itself; asking for a separate teardown
            // process is an error, not silently ignored.
            "async-teardown" => {
                if on_off("-run-with async-teardown", &value)? {
                    return Err(bad(
                        "-run-with async-teardown",
                        &value,
                        ": Minnow has no teardown process (use off)",
                    ));
                }
            }
            _ => {
                return Err(bad(
                    "-run-with",
                    &key,
                    ": Invalid parameter (keys: user, chroot, async-teardown)",
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_names_or_id_pairs() {
        assert_eq!(
            parse_user("-runas", "nobody").ok(),
            Some(RunAs::Name("nobody".into()))
        );
        assert_eq!(
            parse_user("-runas", "1000:100").ok(),
            Some(RunAs::Ids { uid: 1000, gid: 100 })
        );
        for wrong in ["", "1000:", ":5", "a:b", "1:4294967295"] {
            assert!(parse_user("-runas", wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn run_with_takes_qemus_keys_and_the_last_value() {
        let mut r = RunWith::default();
        parse_run_with("user=nobody,chroot=/var/empty", &mut r).expect("parses");
        parse_run_with("chroot=/srv/jail,async-teardown=off", &mut r).expect("parses");
        assert_eq!(r.user, Some(RunAs::Name("nobody".into())));
        assert_eq!(r.chroot, Some(PathBuf::from("/srv/jail")));
        let e = parse_run_with("async-teardown=on", &mut r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no teardown process"), "{e}");
        let e = parse_run_with("jail=/x", &mut r).unwrap_err().to_string();
        assert!(e.contains("jail"), "{e}");
    }
}
