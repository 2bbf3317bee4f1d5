//! Guest RAM in a snapshot, in the file format's two layouts (see `format.rs`):
//!
//! - **raw**: each range byte for byte, page-aligned in the file, so a restore maps it
//!   copy-on-write. Written to a file, pages of zeros are holes (`lseek` over them): a file is as
//!   large as the memory the guest used, and reads back as zeros where it did not.
//! - **sparse**: for a stream (`exec:`), which cannot have holes: per range, a bitmap of the
//!   pages that hold data (a bit per page, LSB first), then those pages in order. A restore
//!   zeroes the range first (`MADV_DONTNEED`) and reads in only the pages that hold data.
use super::format::{MemoryRange, PAGE};
use std::io::{self, Read, Seek, SeekFrom, Write};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Bytes moved at a time.
const CHUNK: usize = 1 << 20;
const PAGE_BYTES: usize = PAGE as usize;

fn mem_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn is_zero(page: &[u8]) -> bool {
    page.chunks_exact(8)
        .all(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) == 0)
}

/// Calls `each(addr, chunk)` over `range` in chunks of up to [`CHUNK`] bytes, copied out of
/// guest memory.
fn chunks(
    mem: &GuestMemoryMmap,
    range: &MemoryRange,
    mut each: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let end = range.guest_addr + range.len;
    let mut addr = range.guest_addr;
    while addr < end {
        let n = CHUNK.min((end - addr) as usize);
        mem.read_slice(&mut buf[..n], GuestAddress(addr))
            .map_err(mem_err)?;
        each(addr, &buf[..n])?;
        addr += n as u64;
    }
    Ok(())
}

/// The raw layout into a file: data pages written, zero pages left as holes; the file ends
/// where the memory does.
pub fn write_raw(mem: &GuestMemoryMmap, out: &mut std::fs::File, ranges: &[MemoryRange]) -> io::Result<()> {
    for r in ranges {
        chunks(mem, r, |_, chunk| {
            for page in chunk.chunks(PAGE_BYTES) {
                match is_zero(page) {
                    true => out.seek(SeekFrom::Current(page.len() as i64)).map(|_| ())?,
                    false => out.write_all(page)?,
                }
            }
            Ok(())
        })?;
    }
    let end = out.stream_position()?;
    out.set_len(end)
}

/// The sparse layout into a stream.
pub fn write_sparse(mem: &GuestMemoryMmap, out: &mut impl Write, ranges: &[MemoryRange]) -> io::Result<()> {
    for r in ranges {
        let pages = (r.len / PAGE) as usize;
        let mut bitmap = vec![0u8; pages.div_ceil(8)];
        let mut index = 0;
        chunks(mem, r, |_, chunk| {
            for page in chunk.chunks(PAGE_BYTES) {
                if !is_zero(page) {
                    bitmap[index / 8] |= 1 << (index % 8);
                }
                index += 1;
            }
            Ok(())
        })?;
        out.write_all(&bitmap)?;
        let mut index = 0;
        chunks(mem, r, |_, chunk| {
            for page in chunk.chunks(PAGE_BYTES) {
                if bitmap[index / 8] & (1 << (index % 8)) != 0 {
                    out.write_all(page)?;
                }
                index += 1;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Zeroes guest RAM in `range` by giving its pages back to the kernel.
fn zero(mem: &GuestMemoryMmap, range: &MemoryRange) -> io::Result<()> {
    let host = mem
        .get_host_address(GuestAddress(range.guest_addr))
        .map_err(mem_err)?;
    // SAFETY: `host` starts `range.len` bytes of private guest RAM (checked against the machine);
    // MADV_DONTNEED only drops its contents, which read back as zeros. The vCPUs are parked.
    let r = unsafe { libc::madvise(host.cast(), range.len as usize, libc::MADV_DONTNEED) };
    match r {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The sparse layout from a stream.
pub fn read_sparse(mem: &GuestMemoryMmap, input: &mut impl Read, ranges: &[MemoryRange]) -> io::Result<()> {
    let mut page = vec![0u8; PAGE_BYTES];
    for r in ranges {
        let pages = (r.len / PAGE) as usize;
        let mut bitmap = vec![0u8; pages.div_ceil(8)];
        input.read_exact(&mut bitmap)?;
        zero(mem, r)?;
        for index in (0..pages).filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0) {
            input.read_exact(&mut page)?;
            let addr = r.guest_addr + index as u64 * PAGE;
            mem.write_slice(&page, GuestAddress(addr)).map_err(mem_err)?;
        }
    }
    Ok(())
}

/// The raw layout from a stream.
pub fn read_raw(mem: &GuestMemoryMmap, input: &mut impl Read, ranges: &[MemoryRange]) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    for r in ranges {
        let end = r.guest_addr + r.len;
        let mut addr = r.guest_addr;
        while addr < end {
            let n = CHUNK.min((end - addr) as usize);
            input.read_exact(&mut buf[..n])?;
            mem.write_slice(&buf[..n], GuestAddress(addr)).map_err(mem_err)?;
            addr += n as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> (GuestMemoryMmap, Vec<MemoryRange>) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 * PAGE_BYTES)]).unwrap();
        mem.write_slice(&[7u8; 100], GuestAddress(3 * PAGE)).unwrap();
        mem.write_slice(&[9u8; PAGE_BYTES], GuestAddress(63 * PAGE))
            .unwrap();
        let ranges = vec![MemoryRange {
            guest_addr: 0,
            len: 64 * PAGE,
        }];
        (mem, ranges)
    }

    fn contents(mem: &GuestMemoryMmap) -> Vec<u8> {
        let mut all = vec![0u8; 64 * PAGE_BYTES];
        mem.read_slice(&mut all, GuestAddress(0)).unwrap();
        all
    }

    #[test]
    fn sparse_streams_carry_only_the_pages_with_data() {
        let (mem, ranges) = memory();
        let mut stream = Vec::new();
        write_sparse(&mem, &mut stream, &ranges).unwrap();
        assert_eq!(stream.len(), 8 + 2 * PAGE_BYTES, "a bitmap and two pages");
        let (other, _) = memory();
        other.write_slice(&[1u8; 10], GuestAddress(10 * PAGE)).unwrap();
        read_sparse(&other, &mut stream.as_slice(), &ranges).unwrap();
        assert_eq!(contents(&other), contents(&mem), "stale pages are zeroed");
        assert!(read_sparse(&other, &mut &stream[..100], &ranges).is_err());
    }

    #[test]
    fn raw_files_have_holes_where_memory_is_zero() {
        let (mem, ranges) = memory();
        let path = std::env::temp_dir().join(format!("minnow-raw-{}", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        write_raw(&mem, &mut file, &ranges).unwrap();
        drop(file);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 64 * PAGE_BYTES);
        let fresh = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 * PAGE_BYTES)]).unwrap();
        read_raw(&fresh, &mut bytes.as_slice(), &ranges).unwrap();
        assert_eq!(contents(&fresh), contents(&mem));
        let _ = std::fs::remove_file(path);
    }
}
