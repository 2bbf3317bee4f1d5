//! What a virtio-blk device reads and writes: a disk image behind one small trait, so formats
//! plug in beside the raw file.
use crate::config::{CacheMode, DiskFormat, Drive};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use vm_memory::VolatileSlice;

/// A disk image. Offsets and lengths are in bytes; callers keep them inside `len()`.
pub trait Disk: Send {
    fn size(&self) -> u64;
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> io::Result<()>;
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

/// A raw image: the file is the disk, byte for byte.
pub struct RawFile {
    file: File,
    len: u64,
    /// `cache=unsafe`: flushes are skipped.
    flush: bool,
}

impl RawFile {
    pub fn open(drive: &Drive) -> io::Result<Self> {
        let mut options = OpenOptions::new();
        options.read(true).write(!drive.read_only);
        // writethrough/directsync: every write is durable when it completes.
        if matches!(drive.cache, CacheMode::Writethrough | CacheMode::Directsync) {
            options.custom_flags(libc::O_DSYNC);
        }
        let file = options.open(&drive.file)?;
        let len = file.metadata()?.len();
        Ok(RawFile {
            file,
            len,
            flush: drive.cache != CacheMode::Unsafe,
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

impl Disk for RawFile {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    /// preadv(2) into the guest's buffers: the data crosses memory once, as with QEMU.
    fn read_into(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> io::Result<bool> {
        let guards: Vec<_> = bufs.iter().map(VolatileSlice::ptr_guard_mut).collect();
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
        let iov = guards.iter().zip(bufs).map(|(g, b)| (g.as_ptr(), b.len()));
        vectored(&self.file, iov, offset, Direction::Write)?;
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.flush {
            self.file.sync_data()
        } else {
            Ok(())
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
        let zeros = vec![0u8; 64 * 1024];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(zeros.len() as u64) as usize;
            self.write_at(&zeros[..n], offset + at)?;
            at += n as u64;
        }
        Ok(())
    }
}

/// A qcow2 image, through imago: clusters allocated on write, backing files opened as QEMU
/// would open them, metadata written back and the file synced on flush.
pub struct Qcow2Disk {
    access: imago::FormatAccess<imago::file::File>,
    flush: bool,
}

impl Qcow2Disk {
    pub fn open(drive: &Drive) -> io::Result<Self> {
        use imago::{FormatDriverBuilder, PermissiveImplicitOpenGate};
        let image = imago::qcow2::Qcow2::<imago::file::File>::builder_path(&drive.file)
            .write(!drive.read_only)
            .open(PermissiveImplicitOpenGate::default())?;
        Ok(Qcow2Disk {
            access: imago::FormatAccess::new(image),
            flush: drive.cache != CacheMode::Unsafe,
        })
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
        // writethrough: durable when the write completes.
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.flush {
            return Ok(());
        }
        self.access.flush()?;
        self.access.sync()
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.access.discard_to_any(offset, len)
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.access.write_zeroes(offset, len)
    }
}

/// The disk `drive` names, in its format.
pub fn open(drive: &Drive) -> io::Result<Box<dyn Disk>> {
    Ok(match drive.format {
        DiskFormat::Raw => Box::new(RawFile::open(drive)?),
        DiskFormat::Qcow2 => Box::new(Qcow2Disk::open(drive)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    pub fn temp_image(name: &str, bytes: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("minnow-disk-{name}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_raw_file_reads_writes_discards_and_zeroes() {
        let path = temp_image("raw", &[0xAB; 8192]);
        let drive = Drive {
            file: path.clone(),
            ..Drive::default()
        };
        let mut d = RawFile::open(&drive).unwrap();
        assert_eq!(d.size(), 8192);
        d.write_at(b"minnow", 4096).unwrap();
        d.flush().unwrap();
        let mut buf = [0u8; 6];
        d.read_at(&mut buf, 4096).unwrap();
        assert_eq!(&buf, b"minnow");
        d.write_zeroes(0, 4096).unwrap();
        let mut head = [1u8; 16];
        d.read_at(&mut head, 0).unwrap();
        assert_eq!(head, [0; 16]);
        assert!(d.read_at(&mut [0u8; 16], 8190).is_err(), "past the end");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[4096..4102], b"minnow");
        std::fs::remove_file(path).unwrap();
    }

    /// Interoperates with QEMU's own tools: an image qemu-img made, written here, reads back
    /// through `qemu-img convert` with what was written.
    #[test]
    fn a_qcow2_image_is_read_and_written_as_qemu_img_sees_it() {
        let path = std::env::temp_dir().join(format!("minnow-disk-q-{}.qcow2", std::process::id()));
        let status = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&path)
            .arg("1M")
            .status()
            .expect("qemu-img runs (apt-get install qemu-utils)");
        assert!(status.success());
        let drive = Drive {
            file: path.clone(),
            format: DiskFormat::Qcow2,
            ..Drive::default()
        };
        let mut d = open(&drive).unwrap();
        assert_eq!(d.size(), 1 << 20);
        let mut fresh = [1u8; 512];
        d.read_at(&mut fresh, 65536).unwrap();
        assert_eq!(fresh, [0; 512]);
        d.write_at(&[0x42; 4096], 131072).unwrap();
        d.flush().unwrap();
        drop(d);
        let raw = path.with_extension("raw");
        let status = std::process::Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&path)
            .arg(&raw)
            .status()
            .unwrap();
        assert!(status.success());
        let bytes = std::fs::read(&raw).unwrap();
        assert!(bytes[131072..135168].iter().all(|&b| b == 0x42));
        assert!(bytes[..131072].iter().all(|&b| b == 0));
        std::fs::remove_file(path).unwrap();
        std::fs::remove_file(raw).unwrap();
    }
}
