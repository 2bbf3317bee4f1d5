//! virtio-rng (`-device virtio-rng-device`): one queue of buffers the device fills with bytes
//! from the host's getrandom(2).
use super::queue::{serve_chains, Served};
use super::{DeviceError, VirtioDevice};
use std::io::Write;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use virtio_bindings::virtio_ids::VIRTIO_ID_RNG as DEVICE_TYPE;
const QUEUE_SIZES: [u16; 1] = [256];
/// Bytes served per request at most: a driver asking for more gets this much, as the spec allows.
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Default)]
pub struct Rng;

/// Fills `buf` from getrandom(2) (the VM generation ID takes its bytes here too).
pub fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let len = buf.len();
    let mut filled = 0;
    while filled < len {
        // SAFETY: getrandom writes at most `len - filled` bytes into the live buffer's tail.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), len - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// `len` bytes from getrandom(2).
fn random_bytes(len: usize) -> Result<Vec<u8>, DeviceError> {
    let mut buf = vec![0u8; len];
    fill_random(&mut buf).map_err(|e| DeviceError::Memory(format!("getrandom: {e}")))?;
    Ok(buf)
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn process(
        &mut self,
        _index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        serve_chains(queue, mem, |chain| {
            // A chain that leaves guest memory or has no writable buffer gets nothing written.
            let written = match chain.writer(mem) {
                Ok(mut w) => {
                    let bytes = random_bytes(w.available_bytes().min(MAX_REQUEST))?;
                    w.write_all(&bytes).map(|()| bytes.len()).unwrap_or(0)
                }
                Err(_) => 0,
            };
            Ok(Served::Used(written as u32))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::{split::Descriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn buffers_come_back_full_of_random_bytes_and_bad_ones_empty() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let descs = [
            RawDescriptor::from(Descriptor::new(0x8000, 64, 2 /* WRITE */, 0)),
            // Outside guest memory.
            RawDescriptor::from(Descriptor::new(0x1_0000_0000, 64, 2, 0)),
        ];
        vq.add_desc_chains(&descs, 0).unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        assert!(Rng.process(0, &mut queue, &mem).unwrap());
        let used = vq.used();
        assert_eq!(used.idx().load(), 2);
        let len = |i| used.ring().ref_at(i).unwrap().load().len();
        assert_eq!((len(0), len(1)), (64, 0));
        let mut bytes = [0u8; 64];
        mem.read_slice(&mut bytes, GuestAddress(0x8000)).unwrap();
        assert!(bytes.iter().any(|&b| b != 0));
        assert!(!Rng.process(0, &mut queue, &mem).unwrap());
    }
}
