//! Files minnow writes on its own behalf (`-serial file:`, `-chardev file`, `-D`, `-pidfile`) are
//! opened without following a symbolic link at their last component (`O_NOFOLLOW`). A VMM often
//! runs with more privilege than whoever can write the directory its log goes to; a link planted
//! there must not turn "write the guest's console here" into "truncate /etc/shadow". QEMU follows
//! such links; minnow refuses them, saying why.
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How an existing file is treated when it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Truncated, as QEMU's file chardev and `-D` do.
    Truncate,
    /// Kept: the caller locks it before it changes anything (the pid file).
    Keep,
}

/// Opens `path` for writing, creating it with `mode` (less the umask) when it does not exist. A
/// symbolic link there is an error that says so.
pub fn create(path: &Path, existing: Existing, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(existing == Existing::Truncate)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::other(
                "it is a symbolic link, which minnow does not follow for a file it writes (name \
                 the file itself)",
            ),
            _ => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("minnow-output-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_link_is_refused_and_its_target_left_alone() {
        let dir = scratch("link");
        let target = dir.join("precious");
        std::fs::write(&target, b"keep me").expect("target written");
        let link = dir.join("serial.log");
        std::os::unix::fs::symlink(&target, &link).expect("link made");
        for existing in [Existing::Truncate, Existing::Keep] {
            let err = create(&link, existing, 0o644).expect_err("a link must be refused");
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
        assert_eq!(std::fs::read(&target).expect("target read"), b"keep me");
        std::fs::remove_dir_all(dir).expect("cleaned up");
    }

    #[test]
    fn a_file_is_created_or_truncated_or_kept() {
        let dir = scratch("plain");
        let path = dir.join("log");
        create(&path, Existing::Truncate, 0o644)
            .and_then(|mut f| f.write_all(b"first"))
            .expect("created");
        create(&path, Existing::Keep, 0o644).expect("opened");
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        create(&path, Existing::Truncate, 0o644).expect("truncated");
        assert_eq!(std::fs::read(&path).expect("read").len(), 0);
        std::fs::remove_dir_all(dir).expect("cleaned up");
    }
}
