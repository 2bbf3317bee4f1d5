//! virtio-blk (`-drive ...,id=D -device virtio-blk-device,drive=D`): reads, writes, flush,
//! discard, write-zeroes and the device ID, served on the vCPU that notified.
//!
//! Every request is checked before the disk is touched: a header that is not there, a sector
//! range past the end, a write to a read-only drive, or a chain outside guest memory completes
//! with VIRTIO_BLK_S_IOERR (or, when there is no status byte to write, with nothing), never with
//! a panic or an access outside the guest's buffers.
pub mod disk;

use super::queue::{serve_chains, Served};
use super::{DeviceError, VirtioDevice};
use disk::Disk;
use std::io::{Read, Write};
use virtio_queue::{DescriptorChain, Queue, Reader, Writer};
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

use virtio_bindings::virtio_blk as spec;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK as DEVICE_TYPE;
const QUEUE_SIZES: [u16; 1] = [256];
const SECTOR: u64 = 512;
/// The request header: le32 type, le32 reserved, le64 sector.
const HEADER_LEN: usize = 16;

/// Request types (virtio 1.x, 5.2.6).
const T_IN: u32 = spec::VIRTIO_BLK_T_IN;
const T_OUT: u32 = spec::VIRTIO_BLK_T_OUT;
const T_FLUSH: u32 = spec::VIRTIO_BLK_T_FLUSH;
const T_GET_ID: u32 = spec::VIRTIO_BLK_T_GET_ID;
const T_DISCARD: u32 = spec::VIRTIO_BLK_T_DISCARD;
const T_WRITE_ZEROES: u32 = spec::VIRTIO_BLK_T_WRITE_ZEROES;
/// Request status.
const S_OK: u8 = spec::VIRTIO_BLK_S_OK as u8;
const S_IOERR: u8 = spec::VIRTIO_BLK_S_IOERR as u8;
const S_UNSUPP: u8 = spec::VIRTIO_BLK_S_UNSUPP as u8;

/// Feature bits.
const F_SEG_MAX: u64 = 1 << spec::VIRTIO_BLK_F_SEG_MAX;
const F_RO: u64 = 1 << spec::VIRTIO_BLK_F_RO;
const F_BLK_SIZE: u64 = 1 << spec::VIRTIO_BLK_F_BLK_SIZE;
const F_FLUSH: u64 = 1 << spec::VIRTIO_BLK_F_FLUSH;
const F_DISCARD: u64 = 1 << spec::VIRTIO_BLK_F_DISCARD;
const F_WRITE_ZEROES: u64 = 1 << spec::VIRTIO_BLK_F_WRITE_ZEROES;

/// Segments per request the driver may use: the queue size, less the header and status.
const SEG_MAX: u32 = 254;
/// Sectors per discard or write-zeroes request, and segments per such request.
const MAX_DISCARD_SECTORS: u32 = u32::MAX / SECTOR as u32;
const MAX_DISCARD_SEG: u32 = 1;
/// Bytes the device reads or writes per request at most (the driver's segments bound it too).
const MAX_TRANSFER: usize = 16 << 20;
/// The device ID (serial) reply length.
const ID_LEN: usize = spec::VIRTIO_BLK_ID_BYTES as usize;

/// The guest memory of `len` bytes of `chain`'s writable (or readable) buffers, after the first
/// `skip` of them; `None` when a buffer is not inside one memory region or the chain has fewer
/// such bytes.
fn chain_bufs<'m>(
    chain: DescriptorChain<&'m GuestMemoryMmap>,
    mem: &'m GuestMemoryMmap,
    writable: bool,
    mut skip: usize,
    len: usize,
) -> Option<Vec<VolatileSlice<'m>>> {
    let mut left = len;
    let mut bufs = Vec::new();
    for d in chain.filter(|d| d.is_write_only() == writable) {
        if left == 0 {
            break;
        }
        let d_len = d.len() as usize;
        if skip >= d_len {
            skip -= d_len;
            continue;
        }
        let n = (d_len - skip).min(left);
        let addr = d.addr().checked_add(skip as u64)?;
        bufs.push(mem.get_slice(addr, n).ok()?);
        left -= n;
        skip = 0;
    }
    (left == 0).then_some(bufs)
}

/// A direct transfer's status: `None` when the disk could not do it, for the copying path.
fn direct_status(done: std::io::Result<bool>) -> Option<u8> {
    match done {
        Ok(true) => Some(S_OK),
        Ok(false) => None,
        Err(_) => Some(S_IOERR),
    }
}

/// The first `len` bytes of `buf`, grown when needed (never shrunk: at most MAX_TRANSFER).
fn scratch(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

pub struct Block {
    disk: Box<dyn Disk>,
    read_only: bool,
    id: [u8; ID_LEN],
    /// Data on its way between the disk and guest memory, kept across requests: a fresh buffer
    /// per request costs a page fault per 4 KiB (large allocations are fresh mmaps).
    scratch: Vec<u8>,
}

impl Block {
    /// `id`: what VIRTIO_BLK_T_GET_ID returns (QEMU's `serial=`), cut to 20 bytes.
    pub fn new(disk: Box<dyn Disk>, read_only: bool, id: &str) -> Self {
        let mut serial = [0u8; ID_LEN];
        let n = id.len().min(ID_LEN);
        serial[..n].copy_from_slice(&id.as_bytes()[..n]);
        Block {
            disk,
            read_only,
            id: serial,
            scratch: Vec::new(),
        }
    }

    fn capacity_sectors(&self) -> u64 {
        self.disk.size() / SECTOR
    }

    /// struct virtio_blk_config, little-endian.
    fn config(&self) -> [u8; 60] {
        let mut c = [0u8; 60];
        c[0..8].copy_from_slice(&self.capacity_sectors().to_le_bytes());
        c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        // The logical block size: O_DIRECT's alignment, so the guest's requests keep it.
        c[20..24].copy_from_slice(&self.disk.block_size().to_le_bytes());
        c[34..36].copy_from_slice(&1u16.to_le_bytes()); // num_queues
        c[36..40].copy_from_slice(&MAX_DISCARD_SECTORS.to_le_bytes());
        c[40..44].copy_from_slice(&MAX_DISCARD_SEG.to_le_bytes());
        c[44..48].copy_from_slice(&1u32.to_le_bytes()); // discard_sector_alignment
        c[48..52].copy_from_slice(&MAX_DISCARD_SECTORS.to_le_bytes());
        c[52..56].copy_from_slice(&MAX_DISCARD_SEG.to_le_bytes());
        c[56] = 1; // write_zeroes_may_unmap
        c
    }

    /// Whether `len` bytes from `sector` are on the disk.
    fn in_range(&self, sector: u64, len: u64) -> bool {
        sector
            .checked_mul(SECTOR)
            .and_then(|start| start.checked_add(len))
            .is_some_and(|end| end <= self.disk.size())
    }

    /// A read of `len` bytes from `sector` straight into the chain's writable buffers, when the
    /// disk can and the buffers allow (each within one memory region). Returns its status, or
    /// `None` for the copying path (which also answers every malformed request).
    fn read_direct(
        &mut self,
        chain: &DescriptorChain<&GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
        sector: u64,
        len: usize,
    ) -> Option<u8> {
        if len == 0 || len > MAX_TRANSFER || !self.in_range(sector, len as u64) {
            return None;
        }
        let bufs = chain_bufs(chain.clone(), mem, true, 0, len)?;
        direct_status(self.disk.read_into(&bufs, sector * SECTOR))
    }

    /// A write of `len` bytes at `sector` straight from the chain's readable buffers after the
    /// request header, when the disk can and the buffers allow. As [`Self::read_direct`].
    fn write_direct(
        &mut self,
        chain: &DescriptorChain<&GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
        sector: u64,
        len: usize,
    ) -> Option<u8> {
        if self.read_only || len == 0 || len > MAX_TRANSFER || !self.in_range(sector, len as u64) {
            return None;
        }
        let bufs = chain_bufs(chain.clone(), mem, false, HEADER_LEN, len)?;
        direct_status(self.disk.write_from(&bufs, sector * SECTOR))
    }

    /// Serves one request; returns its status. `data` is the writable part before the status
    /// byte (for reads and GET_ID), `req` the readable part after the header.
    fn serve(&mut self, kind: u32, sector: u64, req: &mut Reader, data: &mut Writer) -> u8 {
        let ok = |r: std::io::Result<()>| if r.is_ok() { S_OK } else { S_IOERR };
        match kind {
            T_IN => {
                let len = data.available_bytes();
                // Larger than the device serves: refused whole, never cut short.
                if len > MAX_TRANSFER || !self.in_range(sector, len as u64) {
                    return S_IOERR;
                }
                let buf = scratch(&mut self.scratch, len);
                ok(self
                    .disk
                    .read_at(buf, sector * SECTOR)
                    .and_then(|()| data.write_all(buf)))
            }
            T_OUT => {
                let len = req.available_bytes();
                if self.read_only || len > MAX_TRANSFER || !self.in_range(sector, len as u64) {
                    return S_IOERR;
                }
                let buf = scratch(&mut self.scratch, len);
                ok(req
                    .read_exact(buf)
                    .and_then(|()| self.disk.write_at(buf, sector * SECTOR)))
            }
            T_FLUSH => ok(self.disk.flush()),
            T_GET_ID => ok(data.write_all(&self.id[..data.available_bytes().min(ID_LEN)])),
            T_DISCARD | T_WRITE_ZEROES => {
                if self.read_only {
                    return S_IOERR;
                }
                // One segment: le64 sector, le32 num_sectors, le32 flags.
                let mut seg = [0u8; 16];
                if req.read_exact(&mut seg).is_err() {
                    return S_IOERR;
                }
                let start = u64::from_le_bytes(seg[0..8].try_into().unwrap_or_default());
                let count = u64::from(u32::from_le_bytes(seg[8..12].try_into().unwrap_or_default()));
                let len = count * SECTOR;
                if !self.in_range(start, len) {
                    return S_IOERR;
                }
                match kind {
                    T_DISCARD => ok(self.disk.discard(start * SECTOR, len)),
                    _ => ok(self.disk.write_zeroes(start * SECTOR, len)),
                }
            }
            _ => S_UNSUPP,
        }
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }

    fn features(&self) -> u64 {
        let base = F_SEG_MAX | F_BLK_SIZE | F_FLUSH;
        if self.read_only {
            base | F_RO
        } else {
            base | F_DISCARD | F_WRITE_ZEROES
        }
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config(), offset, data);
    }

    /// At exit: what the disk caches reaches the image, and the disk (unless cache=unsafe).
    fn flush(&mut self) -> std::io::Result<()> {
        self.disk.close()
    }

    fn process(
        &mut self,
        _index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        serve_chains(queue, mem, |chain| {
            Ok(Served::Used(self.serve_chain(chain, mem)? as u32))
        })
    }
}

impl Block {
    /// One request: header, data, status byte. Returns the bytes written into the chain.
    fn serve_chain(
        &mut self,
        chain: DescriptorChain<&GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
    ) -> Result<usize, DeviceError> {
        let desc_chain = chain.clone();
        let mut direct = 0;
        Ok(match (chain.clone().reader(mem), chain.writer(mem)) {
            (Ok(mut req), Ok(mut resp)) if resp.available_bytes() >= 1 => {
                // The status byte is the last writable byte; what precedes it is data.
                let mut status_w = resp
                    .split_at(resp.available_bytes() - 1)
                    .map_err(DeviceError::Chain)?;
                let status = match (
                    req.read_obj::<u32>(),
                    req.read_obj::<u32>(),
                    req.read_obj::<u64>(),
                ) {
                    (Ok(T_IN), Ok(_reserved), Ok(sector)) => {
                        match self.read_direct(&desc_chain, mem, sector, resp.available_bytes()) {
                            Some(status) => {
                                direct = resp.available_bytes();
                                status
                            }
                            None => self.serve(T_IN, sector, &mut req, &mut resp),
                        }
                    }
                    (Ok(T_OUT), Ok(_reserved), Ok(sector)) => {
                        match self.write_direct(&desc_chain, mem, sector, req.available_bytes()) {
                            Some(status) => status,
                            None => self.serve(T_OUT, sector, &mut req, &mut resp),
                        }
                    }
                    (Ok(kind), Ok(_reserved), Ok(sector)) => self.serve(kind, sector, &mut req, &mut resp),
                    _ => S_IOERR,
                };
                let data = resp.bytes_written() + direct;
                status_w.write_all(&[status]).map(|()| data + 1).unwrap_or(data)
            }
            // No status byte to write, or buffers outside guest memory: nothing to say.
            _ => 0,
        })
    }
}

#[cfg(test)]
mod tests;
