//! virtio-console, the simplest form QEMU's guests know (`-device virtio-serial-device
//! -device virtconsole,chardev=ID`): one port without multiport, which Linux names hvc0. What the
//! guest writes goes to the chardev (stdio or a file). Input to the guest is not built yet: its
//! receive queue stays empty.
use super::{DeviceError, VirtioDevice};
use std::io::{Read, Write};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

const DEVICE_TYPE: u32 = 3;
const QUEUE_SIZES: [u16; 2] = [64, 64];
const TX: usize = 1;
/// Bytes taken from one transmit buffer at most.
const MAX_CHUNK: usize = 64 * 1024;

pub struct Console {
    out: Box<dyn Write + Send>,
}

impl Console {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Console { out }
    }
}

impl VirtioDevice for Console {
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
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        if index != TX {
            return Ok(false);
        }
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            if let Ok(mut r) = chain.reader(mem) {
                let mut bytes = vec![0u8; r.available_bytes().min(MAX_CHUNK)];
                if r.read_exact(&mut bytes).is_ok() {
                    // The console's reader going away must not stop the guest.
                    let _ = self.out.write_all(&bytes).and_then(|()| self.out.flush());
                }
            }
            queue.add_used(mem, head, 0)?;
            used = true;
        }
        Ok(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use virtio_queue::desc::{split::Descriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn what_the_guest_transmits_reaches_the_chardev() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        mem.write_slice(b"hello hvc0\n", GuestAddress(0x4000)).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        vq.build_desc_chain(&[
            RawDescriptor::from(Descriptor::new(0x4000, 6, 1, 1)),
            RawDescriptor::from(Descriptor::new(0x4006, 5, 0, 0)),
        ])
        .unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        let sink = Sink::default();
        let mut console = Console::new(Box::new(sink.clone()));
        assert!(console.process(TX, &mut queue, &mem).unwrap());
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"hello hvc0\n");
        assert!(!console.process(0, &mut queue, &mem).unwrap());
    }
}
