//! `-drive ...,snapshot=on` (and `-snapshot`): QEMU's throw-away overlay. The image is opened
//! read-only, and a new qcow2 image on top of it, in an already-unlinked file in `$TMPDIR` (else
//! /var/tmp, as QEMU), takes every write. Nothing reaches the image; the overlay is gone when
//! the VM ends. This is how many clones of one snapshot share one base disk.
//!
//! The overlay is a [`Qcow2Disk`] under `cache=unsafe`: it dies with the VM, so nothing in it
//! needs to be durable, and the guest's flushes are ignored (a save still writes its metadata).
use super::qcow2::{open_chain, Link};
use super::{DiskError, Qcow2Disk};
use crate::config::{CacheMode, Drive};
use imago::file::File as ImagoFile;
use imago::qcow2::Qcow2;
use imago::{
    DenyImplicitOpenGate, FormatAccess, FormatCreateBuilder, FormatDriverBuilder, StorageOpenOptions,
};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where QEMU puts its temporary overlays: `$TMPDIR`, else /var/tmp.
fn temp_dir() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

/// A new file in `dir` that no name reaches: O_TMPFILE, or, where the file system has none, a
/// fresh name removed at once.
fn unnamed_file(dir: &Path) -> io::Result<File> {
    let tmpfile = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir);
    match tmpfile {
        Ok(f) => return Ok(f),
        Err(e) if e.raw_os_error() != Some(libc::EOPNOTSUPP) => return Err(e),
        Err(_) => {}
    }
    for attempt in 0..100u32 {
        let path = dir.join(format!("minnow-overlay-{}-{attempt}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from(io::ErrorKind::AlreadyExists))
}

/// `drive`'s image, read-only, under a new throw-away overlay.
pub fn open(drive: &Drive) -> Result<Qcow2Disk, DiskError> {
    let mut locked = Vec::new();
    let top = Link {
        path: drive.file.clone(),
        format: drive.format,
        writable: false,
    };
    let base = open_chain(drive, top, 0, &mut locked)?;
    let dir = temp_dir();
    let overlay_error = |source| DiskError::Overlay {
        dir: dir.clone(),
        source,
    };
    let file = unnamed_file(&dir).map_err(overlay_error)?;
    let opts = StorageOpenOptions::new().write(true);
    let storage = ImagoFile::from_open_file(file, opts).map_err(overlay_error)?;
    let mut q = Qcow2::<ImagoFile>::create_builder(storage)
        .size(base.size())
        .create_open(DenyImplicitOpenGate::default(), |image| {
            Ok(Qcow2::<ImagoFile>::builder(image).write(true))
        })
        .map_err(overlay_error)?;
    q.set_backing(Some(base));
    Ok(Qcow2Disk::over(FormatAccess::new(q), CacheMode::Unsafe, locked))
}
