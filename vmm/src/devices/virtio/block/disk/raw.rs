//! A raw image: the file, or block device, is the disk, byte for byte.
use super::aligned::AlignedBuf;
use super::lock::{self, Permissions};
use super::{Disk, DiskError};
use crate::config::{CacheMode, Drive};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use vm_memory::VolatileSlice;

/// BLKGETSIZE64: a block device's size in bytes.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
/// BLKSSZGET: a block device's logical sector size.
const BLKSSZGET: libc::c_ulong = 0x1268;
const STATX_DIOALIGN: u32 = 0x2000;

pub struct RawFile {
    file: File,
    len: u64,
    cache: CacheMode,
    /// O_DIRECT's alignment of offsets, lengths and memory, when the file is open with it.
    direct: Option<u64>,
    bounce: AlignedBuf,
}

/// The open flags of `cache`.
fn cache_flags(cache: CacheMode) -> i32 {
    let mut flags = libc::O_CLOEXEC;
    if cache.direct() {
        flags |= libc::O_DIRECT;
    }
    if cache.flush_each_write() {
        flags |= libc::O_DSYNC;
    }
    flags
}

/// Opens `drive`'s file in its cache mode, saying plainly when the file system cannot do it.
pub(super) fn open_file(drive: &Drive, writable: bool) -> Result<File, DiskError> {
    OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(cache_flags(drive.cache))
        .open(&drive.file)
        .map_err(|source| open_error(drive, source))
}

/// What failing to open `drive`'s file means: EINVAL with O_DIRECT is a file system without it.
pub(super) fn open_error(drive: &Drive, source: io::Error) -> DiskError {
    match source.raw_os_error() {
        Some(libc::EINVAL) if drive.cache.direct() => DiskError::NoDirectIo {
            path: drive.file.clone(),
            cache: drive.cache.name(),
        },
        _ => DiskError::Open {
            path: drive.file.clone(),
            source,
        },
    }
}

/// A file's size; a block device's as the kernel reports it (its inode says 0).
fn size(file: &File) -> io::Result<u64> {
    let meta = file.metadata()?;
    if !meta.file_type().is_block_device() {
        return Ok(meta.len());
    }
    let mut bytes: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 to the live local.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut bytes) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(bytes)
}

/// O_DIRECT's alignment for `file`: statx's, else the device's logical sector, else 512.
fn direct_alignment(file: &File) -> u64 {
    // SAFETY: statx fills the zeroed struct; the empty path with AT_EMPTY_PATH means the fd.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the path is a valid NUL-terminated empty string.
    let r = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_DIOALIGN,
            &mut stx,
        )
    };
    if r == 0 && stx.stx_mask & STATX_DIOALIGN != 0 && stx.stx_dio_offset_align != 0 {
        return u64::from(stx.stx_dio_offset_align.max(stx.stx_dio_mem_align).max(512));
    }
    let mut sector: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int to the live local; on a regular file it fails.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKSSZGET as _, &mut sector) } == 0 && sector > 0 {
        return sector as u64;
    }
    512
}

impl RawFile {
    pub fn open(drive: &Drive) -> Result<Self, DiskError> {
        let file = open_file(drive, !drive.read_only)?;
        let len = size(&file).map_err(|source| DiskError::Open {
            path: drive.file.clone(),
            source,
        })?;
        if drive.locking {
            lock::lock(
                &file,
                &drive.file,
                Permissions::for_image(!drive.read_only, false),
            )?;
        }
        let direct = drive.cache.direct().then(|| direct_alignment(&file));
        Ok(RawFile {
            file,
            len,
            cache: drive.cache,
            direct,
            bounce: AlignedBuf::new(),
        })
    }

    fn fallocate(&self, mode: i32, offset: u64, len: u64) -> io::Result<()> {
        // SAFETY: fallocate on our own descriptor; it touches no memory of ours.
        let r = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, offset as i64, len as i64) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether `len` bytes at `offset` from memory at `ptr` can go to the file as they are.
    fn aligned(&self, ptr: usize, len: usize, offset: u64) -> bool {
        self.direct.is_none_or(|a| {
            (ptr as u64).is_multiple_of(a) && (len as u64).is_multiple_of(a) && offset.is_multiple_of(a)
        })
    }

    /// The aligned span around `len` bytes at `offset`: (start, length).
    fn span(&self, offset: u64, len: usize) -> (u64, usize) {
        let a = self.direct.unwrap_or(1);
        let start = offset - offset % a;
        let end = (offset + len as u64).next_multiple_of(a);
        (start, (end - start) as usize)
    }
}

impl Disk for RawFile {
    fn size(&self) -> u64 {
        self.len
    }

    fn block_size(&self) -> u32 {
        self.direct.map_or(512, |a| a.clamp(512, 4096) as u32)
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if self.aligned(buf.as_ptr() as usize, buf.len(), offset) {
            return self.file.read_exact_at(buf, offset);
        }
        // O_DIRECT on unaligned memory or range: through an aligned buffer.
        let (start, span) = self.span(offset, buf.len());
        let skip = (offset - start) as usize;
        let bounce = self.bounce.get(span)?;
        self.file.read_exact_at(bounce, start)?;
        buf.copy_from_slice(&bounce[skip..skip + buf.len()]);
        Ok(())
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.aligned(buf.as_ptr() as usize, buf.len(), offset) {
            return self.file.write_all_at(buf, offset);
        }
        // O_DIRECT: read the aligned span, change what is written, write it back.
        let (start, span) = self.span(offset, buf.len());
        let skip = (offset - start) as usize;
        let bounce = self.bounce.get(span)?;
        if span != buf.len() {
            self.file.read_exact_at(bounce, start)?;
        }
        bounce[skip..skip + buf.len()].copy_from_slice(buf);
        self.file.write_all_at(bounce, start)
    }

    /// preadv(2) into the guest's buffers: the data crosses memory once, as with QEMU.
    fn read_into(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<bool> {
        let guards: Vec<_> = bufs.iter().map(VolatileSlice::ptr_guard_mut).collect();
        if !guards
            .iter()
            .zip(bufs)
            .all(|(g, b)| self.aligned(g.as_ptr() as usize, b.len(), offset))
        {
            return Ok(false);
        }
        let iov = guards
            .iter()
            .zip(bufs)
            .map(|(g, b)| (g.as_ptr().cast_const(), b.len()));
        vectored(&self.file, iov, offset, Direction::Read)?;
        Ok(true)
    }

    /// pwritev(2) from the guest's buffers.
    fn write_from(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<bool> {
        let guards: Vec<_> = bufs.iter().map(VolatileSlice::ptr_guard).collect();
        if !guards
            .iter()
            .zip(bufs)
            .all(|(g, b)| self.aligned(g.as_ptr() as usize, b.len(), offset))
        {
            return Ok(false);
        }
        let iov = guards.iter().zip(bufs).map(|(g, b)| (g.as_ptr(), b.len()));
        vectored(&self.file, iov, offset, Direction::Write)?;
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.cache.ignore_flushes() {
            true => Ok(()),
            false => self.file.sync_data(),
        }
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.fallocate(
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        // Punching a hole zeroes the range; where the file system cannot, write zeros.
        if self.discard(offset, len).is_ok() {
            return Ok(());
        }
        let chunk = 64 * 1024;
        let mut at = 0;
        while at < len {
            let n = (len - at).min(chunk) as usize;
            let zeros = vec![0u8; n];
            self.write_at(&zeros, offset + at)?;
            at += n as u64;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

/// preadv/pwritev of the whole of `iov` (pointer, length pairs into guest memory, mapped while
/// the caller holds their guards) at `offset`, continuing after short transfers and EINTR.
fn vectored(
    file: &File,
    iov: impl Iterator<Item = (*const u8, usize)>,
    offset: u64,
    direction: Direction,
) -> io::Result<()> {
    let mut iov: Vec<libc::iovec> = iov
        .map(|(base, len)| libc::iovec {
            iov_base: base.cast_mut().cast(),
            iov_len: len,
        })
        .collect();
    let total: usize = iov.iter().map(|v| v.iov_len).sum();
    let (mut done, mut first) = (0usize, 0usize);
    while done < total {
        let at =
            i64::try_from(offset + done as u64).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let rest = &iov[first..];
        let count = libc::c_int::try_from(rest.len()).unwrap_or(libc::c_int::MAX);
        let fd = file.as_raw_fd();
        // SAFETY: every iovec is one guest-memory slice, mapped for its whole length while the
        // caller's guards live; the kernel reads or writes at most those lengths.
        let n = unsafe {
            match direction {
                Direction::Read => libc::preadv(fd, rest.as_ptr(), count, at),
                Direction::Write => libc::pwritev(fd, rest.as_ptr(), count, at),
            }
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(match direction {
                Direction::Read => io::ErrorKind::UnexpectedEof,
                Direction::Write => io::ErrorKind::WriteZero,
            }
            .into());
        }
        done += n as usize;
        // Skip what the transfer covered; a partly done buffer continues where it stopped.
        let mut n = n as usize;
        while n > 0 && first < iov.len() {
            let v = &mut iov[first];
            if n >= v.iov_len {
                n -= v.iov_len;
                first += 1;
            } else {
                // SAFETY: `n` is less than the buffer's length: the pointer stays inside it.
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n) }.cast();
                v.iov_len -= n;
                n = 0;
            }
        }
    }
    Ok(())
}
