//! Image locking as QEMU does it, byte for byte, so minnow, QEMU and qemu-img see each other
//! (QEMU's block/file-posix.c): open file description (OFD) read locks on single bytes of the
//! image file. A process holding permission bit `i` (consistent read, write, write-unchanged,
//! resize) locks byte 100 + `i`; one that does not share permission `i` with others locks byte
//! 200 + `i`. Taking a permission that someone refuses to share, or refusing one that someone
//! holds, fails, with QEMU's words. The locks live as long as the image's open file description.
//! Measured against QEMU 7.2: a read-write raw drive locks 100, 101 and 201; qcow2 adds 103 and
//! 203 (resize); a read-only drive or backing file 100 and 201 (and 203 for qcow2 chains).
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const CONSISTENT_READ: u8 = 1 << 0;
pub const WRITE: u8 = 1 << 1;
pub const WRITE_UNCHANGED: u8 = 1 << 2;
pub const RESIZE: u8 = 1 << 3;
const PERMISSIONS: [(u8, &str); 4] = [
    (CONSISTENT_READ, "consistent read"),
    (WRITE, "write"),
    (WRITE_UNCHANGED, "write unchanged"),
    (RESIZE, "resize"),
];
const HELD_BASE: i64 = 100;
const UNSHARED_BASE: i64 = 200;

/// What a drive holds and refuses to share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub held: u8,
    pub unshared: u8,
}

impl Permissions {
    /// A raw drive, or a qcow2 image's own file (which also resizes as it grows).
    pub fn for_image(writable: bool, qcow2: bool) -> Self {
        let resize = if qcow2 { RESIZE } else { 0 };
        match writable {
            true => Self {
                held: CONSISTENT_READ | WRITE | resize,
                unshared: WRITE | resize,
            },
            false => Self {
                held: CONSISTENT_READ,
                unshared: WRITE | resize,
            },
        }
    }

    /// A backing file: read, and nobody may change it under the images above it.
    pub fn for_backing() -> Self {
        Self {
            held: CONSISTENT_READ,
            unshared: WRITE | RESIZE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: failed to get \"{permission}\" lock: is another process using the image (QEMU, qemu-img, another minnow)? (-drive ...,locking=off shares it anyway)")]
    Taken { path: PathBuf, permission: &'static str },
    #[error("{path}: failed to get shared \"{permission}\" lock: is another process using the image (QEMU, qemu-img, another minnow)? (-drive ...,locking=off shares it anyway)")]
    Held { path: PathBuf, permission: &'static str },
    #[error("{path}: locking the image: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn flock(kind: libc::c_int, byte: i64) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: byte,
        l_len: 1,
        l_pid: 0,
    }
}

/// Takes a shared lock on `byte` through `file`'s open file description.
fn lock_byte(file: &File, byte: i64) -> std::io::Result<()> {
    let mut fl = flock(libc::F_RDLCK, byte);
    // SAFETY: F_OFD_SETLK reads one struct flock from the live local.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether another open file description holds a lock on `byte`.
fn locked_by_others(file: &File, byte: i64) -> std::io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK, byte);
    // SAFETY: F_OFD_GETLK reads and writes one struct flock in the live local.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Locks `file` (the image at `path`) for `perms`, or says who is in the way. The locks stay
/// with `file`'s open file description: keep it open as long as the image is in use.
pub fn lock(file: &File, path: &Path, perms: Permissions) -> Result<(), LockError> {
    let io = |source| LockError::Io {
        path: path.into(),
        source,
    };
    for (i, (bit, _)) in PERMISSIONS.iter().enumerate() {
        if perms.held & bit != 0 {
            lock_byte(file, HELD_BASE + i as i64).map_err(io)?;
        }
        if perms.unshared & bit != 0 {
            lock_byte(file, UNSHARED_BASE + i as i64).map_err(io)?;
        }
    }
    for (i, (bit, name)) in PERMISSIONS.iter().enumerate() {
        if perms.held & bit != 0 && locked_by_others(file, UNSHARED_BASE + i as i64).map_err(io)? {
            return Err(LockError::Taken {
                path: path.into(),
                permission: name,
            });
        }
        if perms.unshared & bit != 0 && locked_by_others(file, HELD_BASE + i as i64).map_err(io)? {
            return Err(LockError::Held {
                path: path.into(),
                permission: name,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn image(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("minnow-lock-{name}-{}", std::process::id()));
        std::fs::write(&path, [0u8; 4096]).unwrap();
        path
    }

    /// Waits up to a second for `ok`: a lock lives as long as its open file description, and a
    /// test's child process between fork and exec (qemu-img) holds every description a moment.
    pub(crate) fn eventually(mut ok: impl FnMut() -> bool) {
        for _ in 0..100 {
            if ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("still locked after a second");
    }

    fn open(path: &Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn two_writers_refuse_each_other_and_readers_share() {
        let path = image("writers");
        let first = open(&path);
        lock(&first, &path, Permissions::for_image(true, false)).unwrap();
        let e = lock(&open(&path), &path, Permissions::for_image(true, false)).unwrap_err();
        assert!(e.to_string().contains("failed to get \"write\" lock"), "{e}");
        let e = lock(&open(&path), &path, Permissions::for_image(false, false)).unwrap_err();
        assert!(
            e.to_string().contains("failed to get shared \"write\" lock"),
            "{e}"
        );
        drop(first);
        let reader = open(&path);
        eventually(|| lock(&reader, &path, Permissions::for_image(false, false)).is_ok());
        lock(&open(&path), &path, Permissions::for_image(false, false)).unwrap();
        std::fs::remove_file(path).unwrap();
    }

    /// The proof of compatibility: qemu-img, which locks as QEMU does, sees minnow's locks.
    #[test]
    fn qemu_img_sees_the_lock() {
        let path = image("qemu-img");
        let held = open(&path);
        lock(&held, &path, Permissions::for_image(true, false)).unwrap();
        let out = std::process::Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "raw"])
            .arg(&path)
            .arg(path.with_extension("copy"))
            .output()
            .expect("qemu-img runs (apt-get install qemu-utils)");
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("Failed to get shared \"write\" lock"), "{said}");
        drop(held);
        let out = std::process::Command::new("qemu-img")
            .args(["info", "-f", "raw"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::remove_file(path).unwrap();
    }
}
