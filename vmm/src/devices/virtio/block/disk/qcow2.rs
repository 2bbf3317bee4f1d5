//! A qcow2 image, through imago: clusters allocated on write, metadata written back and the file
//! synced on flush. Opened as the user allows and no further: the image's backing chain
//! read-only, each link named with its format in the image above it (or on the command line);
//! never an external data file, never a format guessed from a file's contents (a guest can write
//! a qcow2 header into a raw backing file). Each file of the chain is locked as QEMU locks it.
use super::lock::{self, Permissions};
use super::raw::open_file;
use super::{Disk, DiskError};
use crate::config::{CacheMode, DiskFormat, Drive};
use imago::file::File as ImagoFile;
use imago::qcow2::Qcow2;
use imago::raw::Raw;
use imago::{DenyImplicitOpenGate, FormatAccess, StorageOpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Backing images below an overlay, at most (QEMU has no hard limit; a loop must end).
const MAX_CHAIN: usize = 16;

pub(super) type Access = FormatAccess<ImagoFile>;

pub struct Qcow2Disk {
    access: Access,
    cache: CacheMode,
    /// The chain's files, holding their locks (the open file descriptions imago also uses).
    _locked: Vec<std::fs::File>,
}

/// One image of the chain to open: its file and format, read-write only for the top.
pub(super) struct Link {
    pub path: PathBuf,
    pub format: DiskFormat,
    pub writable: bool,
}

/// Opens `link`'s file for imago, locked, with the drive's cache mode.
fn storage(drive: &Drive, link: &Link, locked: &mut Vec<std::fs::File>) -> Result<ImagoFile, DiskError> {
    let at = Drive {
        file: link.path.clone(),
        ..drive.clone()
    };
    let file = open_file(&at, link.writable)?;
    if drive.locking {
        let perms = match link.writable {
            true => Permissions::for_image(true, link.format == DiskFormat::Qcow2),
            false if link.path == drive.file => {
                Permissions::for_image(false, link.format == DiskFormat::Qcow2)
            }
            false => Permissions::for_backing(),
        };
        lock::lock(&file, &link.path, perms)?;
    }
    let keep = file.try_clone().map_err(|source| DiskError::Open {
        path: link.path.clone(),
        source,
    })?;
    locked.push(keep);
    let opts = StorageOpenOptions::new()
        .filename(&link.path)
        .write(link.writable)
        .direct(drive.cache.direct());
    ImagoFile::from_open_file(file, opts).map_err(|source| DiskError::Open {
        path: link.path.clone(),
        source,
    })
}

/// Where the image at `image` says its backing file is, and in what format.
fn backing_of(image: &Path, q: &Qcow2<ImagoFile>) -> Result<Option<Link>, DiskError> {
    let Some(name) = q.implicit_backing_file() else {
        return Ok(None);
    };
    let format = match q.implicit_backing_format().map(String::as_str) {
        Some("raw") | Some("file") => DiskFormat::Raw,
        Some("qcow2") => DiskFormat::Qcow2,
        Some(other) => {
            return Err(DiskError::BackingFormat {
                image: image.into(),
                format: other.into(),
            })
        }
        None => {
            return Err(DiskError::BackingWithoutFormat {
                image: image.into(),
                backing: name.clone(),
            })
        }
    };
    // Relative names are relative to the image's directory, as QEMU resolves them.
    let path = image.parent().unwrap_or(Path::new(".")).join(name);
    Ok(Some(Link {
        path,
        format,
        writable: false,
    }))
}

/// Opens `link` and, below it, the chain it names (or the user's `backing` for the top).
pub(super) fn open_chain(
    drive: &Drive,
    link: Link,
    depth: usize,
    locked: &mut Vec<std::fs::File>,
) -> Result<Access, DiskError> {
    if depth > MAX_CHAIN {
        return Err(DiskError::ChainTooDeep {
            image: drive.file.clone(),
            max: MAX_CHAIN,
        });
    }
    let file = storage(drive, &link, locked)?;
    let qcow2_error = |source| DiskError::Qcow2 {
        path: link.path.clone(),
        source,
    };
    if link.format == DiskFormat::Raw {
        let raw = Raw::open_image(file, link.writable).map_err(qcow2_error)?;
        return Ok(FormatAccess::new(raw));
    }
    let mut q = Qcow2::<ImagoFile>::open_image(file, link.writable).map_err(qcow2_error)?;
    if q.requires_external_data_file() {
        return Err(DiskError::ExternalDataFile {
            image: link.path.clone(),
            file: q.implicit_external_data_file().cloned().unwrap_or_default(),
        });
    }
    q.set_data_file(None);
    let below = match (depth, &drive.backing) {
        (0, Some((path, format))) => Some(Link {
            path: path.clone(),
            format: *format,
            writable: false,
        }),
        _ => backing_of(&link.path, &q)?,
    };
    let backing = match below {
        Some(b) => Some(open_chain(drive, b, depth + 1, locked)?),
        None => None,
    };
    q.set_backing(backing);
    // Everything is set: anything the image would still open by itself is refused.
    q.open_implicit_dependencies_gated(DenyImplicitOpenGate::default())
        .map_err(qcow2_error)?;
    Ok(FormatAccess::new(q))
}

impl Qcow2Disk {
    pub fn open(drive: &Drive) -> Result<Self, DiskError> {
        let mut locked = Vec::new();
        let top = Link {
            path: drive.file.clone(),
            format: DiskFormat::Qcow2,
            writable: !drive.read_only,
        };
        let access = open_chain(drive, top, 0, &mut locked)?;
        Ok(Self::over(access, drive.cache, locked))
    }

    /// A disk over an opened chain (`locked`: its files, holding their locks).
    pub(super) fn over(access: Access, cache: CacheMode, locked: Vec<std::fs::File>) -> Self {
        Qcow2Disk {
            access,
            cache,
            _locked: locked,
        }
    }

    /// Writes imago's cached metadata to the file, and syncs it unless `cache=unsafe`.
    fn write_back(&mut self, sync: bool) -> io::Result<()> {
        self.access.flush()?;
        match sync {
            true => self.access.sync(),
            false => Ok(()),
        }
    }
}

impl Disk for Qcow2Disk {
    fn size(&self) -> u64 {
        self.access.size()
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.access.read(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.access.write(buf, offset)?;
        // writethrough and directsync: the write, its new clusters' metadata included, is on
        // the disk when the guest hears of it.
        match self.cache.flush_each_write() {
            true => self.write_back(true),
            false => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.cache.ignore_flushes() {
            true => Ok(()),
            false => self.write_back(true),
        }
    }

    /// At exit the metadata reaches the file under every cache mode (`unsafe` only skips the
    /// sync): an image left without it would be corrupt, not merely stale.
    fn close(&mut self) -> io::Result<()> {
        self.write_back(!self.cache.ignore_flushes())
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.access.discard_to_any(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.access.write_zeroes(offset, len)
    }
}
