//! A guest's whole view of a virtio-blk queue comes from the input: guest memory holds the
//! descriptor table, the rings, the request headers and the buffers. The device must answer
//! without panicking and never write outside its disk.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::devices::virtio::block::disk::Disk;
use minnow_vmm::devices::virtio::block::Block;
use minnow_vmm::devices::virtio::VirtioDevice;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, VolatileSlice};

const DISK_LEN: usize = 16 * 512;

/// A disk in memory: the fuzzer's iterations stay off the file system. With `direct`, it also
/// reads and writes guest buffers itself, as a raw file does with preadv/pwritev, so both of the
/// device's paths are fuzzed; its slicing panics on any range the device failed to check.
struct MemDisk(Vec<u8>, bool);

impl Disk for MemDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let at = offset as usize;
        buf.copy_from_slice(&self.0[at..at + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        let at = offset as usize;
        self.0[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.write_zeroes(offset, len)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.0[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }
    fn read_into(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> std::io::Result<bool> {
        if !self.1 {
            return Ok(false);
        }
        let mut at = offset as usize;
        for b in bufs {
            b.copy_from(&self.0[at..at + b.len()]);
            at += b.len();
        }
        Ok(true)
    }
    fn write_from(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> std::io::Result<bool> {
        if !self.1 {
            return Ok(false);
        }
        let mut at = offset as usize;
        for b in bufs {
            b.copy_to(&mut self.0[at..at + b.len()]);
            at += b.len();
        }
        Ok(true)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1_0000)]).unwrap();
    let fill: Vec<u8> = data[2..].iter().copied().cycle().take(0x1_0000).collect();
    if !fill.is_empty() {
        mem.write_slice(&fill, GuestAddress(0)).unwrap();
    }
    let mut queue = Queue::new(256).unwrap();
    queue.set_size(1 << (data[0] % 9));
    queue.set_desc_table_address(Some(0), Some(0));
    queue.set_avail_ring_address(Some(0x1000), Some(0));
    queue.set_used_ring_address(Some(0x2000 + u32::from(data[1] & 3) * 4), Some(0));
    queue.set_ready(true);
    let mut dev = Block::new(
        Box::new(MemDisk(vec![0; DISK_LEN], data[1] & 8 != 0)),
        data[1] & 4 != 0,
        "fuzz",
    );
    let _ = dev.process(0, &mut queue, &mem);
});
