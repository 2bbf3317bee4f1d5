//! Where a snapshot goes or comes from, as QEMU's migration URIs say it: `exec:CMD` (a shell
//! command reading the stream on its stdin, or writing it on its stdout), `file:PATH`, and for
//! `-incoming` only, `defer` (wait for `migrate-incoming`). Minnow saves to and restores from
//! the local host only: `tcp:`, `unix:`, `fd:` and `rdma:` are refused in one line.
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationUri {
    Exec(String),
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    Now(MigrationUri),
    /// `-incoming defer`: the VM waits, paused, for QMP `migrate-incoming`.
    Defer,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    #[error("migration URI '{0}': minnow saves and restores through exec: and file: only (no tcp:, unix:, fd: or rdma: migration to another host)")]
    Unsupported(String),
    #[error("migration URI '{0}': the {1} is empty")]
    Empty(String, &'static str),
}

impl MigrationUri {
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        if let Some(cmd) = uri.strip_prefix("exec:") {
            // QEMU runs it with /bin/sh -c, leading blanks and all.
            return match cmd.trim().is_empty() {
                true => Err(UriError::Empty(uri.into(), "command")),
                false => Ok(Self::Exec(cmd.into())),
            };
        }
        if let Some(path) = uri.strip_prefix("file:") {
            return match path.is_empty() {
                true => Err(UriError::Empty(uri.into(), "path")),
                false => Ok(Self::File(path.into())),
            };
        }
        Err(UriError::Unsupported(uri.into()))
    }
}

impl Incoming {
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        match uri {
            "defer" => Ok(Self::Defer),
            other => MigrationUri::parse(other).map(Self::Now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemus_local_uris_parse_and_the_others_are_refused() {
        assert_eq!(
            MigrationUri::parse("exec: gzip -c -d STATEFILE.gz"),
            Ok(MigrationUri::Exec(" gzip -c -d STATEFILE.gz".into()))
        );
        assert_eq!(
            MigrationUri::parse("file:/tmp/s"),
            Ok(MigrationUri::File("/tmp/s".into()))
        );
        assert_eq!(Incoming::parse("defer"), Ok(Incoming::Defer));
        assert!(MigrationUri::parse("defer").is_err());
        assert!(MigrationUri::parse("exec: ").is_err());
        let e = MigrationUri::parse("tcp:0:4444").unwrap_err().to_string();
        assert!(e.contains("exec: and file: only"), "{e}");
    }
}
