//! What a virtio-blk device reads and writes: a disk image behind one small trait, so formats
//! plug in beside the raw file. Images are kept as QEMU keeps them: the cache modes mean what
//! they mean there (O_DIRECT for `none` and `directsync`, every write durable for `writethrough`
//! and `directsync`, the guest's flushes ignored for `unsafe`), every image is locked as QEMU
//! locks it, a block device is as large as the kernel says, and a qcow2 image opens only what
//! the user allows: its backing chain read-only, each link with an explicit format.
mod aligned;
pub mod lock;
mod overlay;
mod qcow2;
mod raw;

pub use qcow2::Qcow2Disk;
pub use raw::RawFile;

use crate::config::{DiskFormat, Drive};
use std::io;
use std::path::PathBuf;
use vm_memory::VolatileSlice;

/// A disk image. Offsets and lengths are in bytes; callers keep them inside `size()`.
pub trait Disk: Send {
    fn size(&self) -> u64;
    /// The logical block size the guest must use: O_DIRECT's alignment, else 512.
    fn block_size(&self) -> u32 {
        512
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// The guest's flush: every completed write durable (a no-op under `cache=unsafe`).
    fn flush(&mut self) -> io::Result<()>;
    /// At exit: what the disk still caches reaches the image file, and the disk under every
    /// cache mode but `unsafe`.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// The range may read back as anything afterwards (the file gives the space back).
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// The range reads back as zeros afterwards.
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Reads `bufs`' total length from `offset` straight into them (guest memory), when the
    /// format can; `Ok(false)` when it cannot, and the caller copies through `read_at`.
    fn read_into(&mut self, _bufs: &[VolatileSlice<'_>], _offset: u64) -> io::Result<bool> {
        Ok(false)
    }
    /// Writes `bufs` (guest memory) at `offset` straight from them, when the format can;
    /// `Ok(false)` when it cannot, and the caller copies through `write_at`.
    fn write_from(&mut self, _bufs: &[VolatileSlice<'_>], _offset: u64) -> io::Result<bool> {
        Ok(false)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source} (check the path and its permissions)")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path}: cache={cache} needs O_DIRECT, which its file system does not offer (tmpfs?): use cache=writeback")]
    NoDirectIo { path: PathBuf, cache: &'static str },
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("{path}: not a qcow2 image minnow can open: {source}")]
    Qcow2 { path: PathBuf, source: io::Error },
    #[error("{image}: the image keeps its data in an external file ({file}); minnow opens no file an image names by itself")]
    ExternalDataFile { image: PathBuf, file: String },
    #[error("{image}: its backing file {backing} has no format in the image, and minnow does not guess one (a guest could have written any header into it): `qemu-img rebase -u -F raw -b {backing} {image}` (or -F qcow2), or give -drive ...,backing.file=PATH,backing.driver=raw|qcow2")]
    BackingWithoutFormat { image: PathBuf, backing: String },
    #[error("{image}: backing format {format:?} is neither raw nor qcow2")]
    BackingFormat { image: PathBuf, format: String },
    #[error("snapshot=on: cannot make the throw-away overlay in {dir} ({source}); set TMPDIR to a writable directory")]
    Overlay { dir: PathBuf, source: io::Error },
    #[error("{image}: its backing chain is more than {max} images deep")]
    ChainTooDeep { image: PathBuf, max: usize },
}

/// The disk `drive` names, in its format.
pub fn open(drive: &Drive) -> Result<Box<dyn Disk>, DiskError> {
    if drive.snapshot {
        return Ok(Box::new(overlay::open(drive)?));
    }
    Ok(match drive.format {
        DiskFormat::Raw => Box::new(RawFile::open(drive)?),
        DiskFormat::Qcow2 => Box::new(Qcow2Disk::open(drive)?),
    })
}

#[cfg(test)]
mod tests;
