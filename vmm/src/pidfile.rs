//! `-pidfile FILE`, as QEMU writes it: created if missing (mode 0600), locked (`lockf`) for as
//! long as the process lives, so a second minnow or QEMU given the same file refuses to start
//! instead of overwriting a running one's pid; then truncated and written; removed at exit. A
//! file removed by its exiting holder between our open and our lock is opened again. A symbolic
//! link at the path is refused.
use crate::output_file::{self, Existing};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("cannot open the pid file {0}: {1}")]
    Open(PathBuf, io::Error),
    #[error("cannot lock the pid file {0}: another process holds it (a minnow or QEMU running with it)")]
    Locked(PathBuf),
    #[error("cannot lock the pid file {0}: {1}")]
    Lock(PathBuf, io::Error),
    #[error("cannot write the pid file {0}: {1}")]
    Write(PathBuf, io::Error),
}

/// The locked pid file; dropping it removes the file.
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

impl PidFile {
    /// Writes this process's pid to `path`, holding the file's lock.
    pub fn create(path: &Path) -> Result<Self, PidFileError> {
        let mut file = loop {
            let file = Self::open_locked(path)?;
            // The holder we waited out may have removed the file we locked: then lock the new one.
            let same = std::fs::metadata(path)
                .ok()
                .zip(file.metadata().ok())
                .is_some_and(|(named, held)| named.ino() == held.ino() && named.dev() == held.dev());
            if same {
                break file;
            }
        };
        let write = |f: &mut File| {
            f.set_len(0)?;
            f.write_all(format!("{}\n", std::process::id()).as_bytes())
        };
        write(&mut file).map_err(|e| PidFileError::Write(path.into(), e))?;
        Ok(Self {
            path: path.into(),
            _file: file,
        })
    }

    fn open_locked(path: &Path) -> Result<File, PidFileError> {
        // Kept, not truncated: only the lock's holder may change it. Never through a link.
        let file = output_file::create(path, Existing::Keep, 0o600)
            .map_err(|e| PidFileError::Open(path.into(), e))?;
        // SAFETY: lockf on a descriptor this function owns; it reads no memory of ours.
        if unsafe { libc::lockf(file.as_raw_fd(), libc::F_TLOCK, 0) } != 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EACCES) => PidFileError::Locked(path.into()),
                _ => PidFileError::Lock(path.into(), e),
            });
        }
        Ok(file)
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (A second process refused is in the binary's tests: lockf locks belong to a process.)
    #[test]
    fn a_pid_file_is_written_and_removed() {
        let path = std::env::temp_dir().join(format!("minnow-pidfile-{}", std::process::id()));
        std::fs::write(&path, "a much longer stale content\n").expect("temp file");
        let pid = PidFile::create(&path).expect("created");
        let text = std::fs::read_to_string(&path).expect("written");
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(pid);
        assert!(!path.exists());
    }
}
