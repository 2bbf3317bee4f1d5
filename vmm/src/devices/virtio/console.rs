//! virtio-console, the simplest form QEMU's guests know (`-device virtio-serial-device
//! -device virtconsole,chardev=ID`): one port without multiport, which Linux names hvc0. What the
//! guest writes goes to the chardev (stdio or a file), never waiting for its reader; with a stdio
//! chardev, what arrives on stdin goes to the guest: the event loop's stdin reader queues it
//! ([`ConsoleInput`]) and the device moves it into the receive queue.
use super::queue::{serve_chains, Served};
use super::{DeviceError, VirtioDevice};
use crate::runtime::output::GuestOutput;
use crate::runtime::stdin::InputSink;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE as DEVICE_TYPE;
const QUEUE_SIZES: [u16; 2] = [64, 64];
const RX: usize = 0;
const TX: usize = 1;
/// Bytes taken from one transmit buffer at most.
const MAX_CHUNK: usize = 64 * 1024;
/// Input bytes queued for the guest at most: the stdin reader waits while the queue is full.
const INPUT_CAPACITY: usize = 64 * 1024;

struct InputQueue {
    bytes: Mutex<VecDeque<u8>>,
    /// Written when bytes arrive, for the device to move them on.
    ready: EventFd,
}

/// The console's input, as the stdin reader feeds it.
#[derive(Clone)]
pub struct ConsoleInput {
    queue: Arc<InputQueue>,
}

impl ConsoleInput {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            queue: Arc::new(InputQueue {
                bytes: Mutex::new(VecDeque::new()),
                ready: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
            }),
        })
    }

    fn take(&self, max: usize) -> Vec<u8> {
        let mut q = self.queue.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.len().min(max);
        q.drain(..n).collect()
    }
}

impl InputSink for ConsoleInput {
    fn offer(&mut self, bytes: &[u8]) -> usize {
        let mut q = self.queue.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let n = bytes.len().min(INPUT_CAPACITY.saturating_sub(q.len()));
        q.extend(&bytes[..n]);
        if n > 0 {
            let _ = self.queue.ready.write(1);
        }
        n
    }
}

pub struct Console {
    out: GuestOutput,
    /// Where the guest's input comes from (stdin), if anywhere.
    input: Option<ConsoleInput>,
    /// Input taken from the queue but not yet in a receive buffer: the guest has none free.
    pending: Vec<u8>,
}

impl Console {
    pub fn new(out: GuestOutput, input: Option<ConsoleInput>) -> Self {
        Console {
            out,
            input,
            pending: Vec::new(),
        }
    }

    /// Moves pending input into the guest's receive buffers, as far as they go.
    fn deliver(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        serve_chains(queue, mem, |chain| {
            if self.pending.is_empty() {
                return Ok(Served::NotNow);
            }
            let written = match chain.writer(mem) {
                Ok(mut w) => {
                    let n = self.pending.len().min(w.available_bytes());
                    if w.write_all(&self.pending[..n]).is_ok() {
                        self.pending.drain(..n);
                        n
                    } else {
                        0
                    }
                }
                Err(_) => 0,
            };
            Ok(Served::Used(written as u32))
        })
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        serve_chains(queue, mem, |chain| {
            if let Ok(mut r) = chain.reader(mem) {
                let mut bytes = vec![0u8; r.available_bytes().min(MAX_CHUNK)];
                if r.read_exact(&mut bytes).is_ok() {
                    self.out.push(&bytes);
                }
            }
            Ok(Served::Used(0))
        })
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
        match index {
            TX => self.transmit(queue, mem),
            // New receive buffers: pending input may go in now.
            RX => self.deliver(queue, mem),
            _ => Ok(false),
        }
    }

    /// The input's eventfd, while nothing taken waits for a receive buffer (watching it then
    /// would only spin).
    fn io_fd(&self) -> Option<RawFd> {
        let idle = self.pending.is_empty();
        self.input
            .as_ref()
            .filter(|_| idle)
            .map(|i| i.queue.ready.as_raw_fd())
    }

    fn handle_io(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        if let Some(input) = &self.input {
            let _ = input.queue.ready.read();
            if self.pending.is_empty() {
                self.pending = input.take(INPUT_CAPACITY);
            }
        }
        match queues.get_mut(RX) {
            Some(q) if q.ready() => self.deliver(q, mem),
            _ => Ok(false),
        }
    }

    /// Input the guest had not taken yet (at most a few KiB) goes with the reset, as it would
    /// on a terminal.
    fn reset(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::{split::Descriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    /// A file standing in for the chardev, and its path.
    fn chardev(name: &str) -> (GuestOutput, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("minnow-console-{name}-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        (GuestOutput::file("console", file).unwrap(), path)
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
        let (out, path) = chardev("tx");
        let mut console = Console::new(out, None);
        assert!(console.process(TX, &mut queue, &mem).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"hello hvc0\n");
        assert!(!console.process(0, &mut queue, &mem).unwrap());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn input_waits_for_receive_buffers_then_fills_them_in_order() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let mut input = ConsoleInput::new().unwrap();
        let (out, path) = chardev("rx");
        let mut console = Console::new(out, Some(input.clone()));
        assert!(console.io_fd().is_some());
        assert!(
            !console.handle_io(&mut [], &mem).unwrap(),
            "no input yet: nothing to do"
        );
        assert_eq!(input.offer(b"typed by the user\n"), 18);

        // No receive buffer yet: the input is held, and the queue is not watched meanwhile.
        let vq = MockSplitQueue::new(&mem, 16);
        let mut queues = vec![vq.create_queue::<Queue>().unwrap()];
        queues[0].set_ready(false);
        assert!(!console.handle_io(&mut queues, &mem).unwrap());
        assert!(console.io_fd().is_none());

        // Two 8-byte buffers arrive: the guest's kick delivers what fits, in order.
        vq.build_multiple_desc_chains(&[
            RawDescriptor::from(Descriptor::new(0x4000, 8, 2, 0)),
            RawDescriptor::from(Descriptor::new(0x5000, 8, 2, 0)),
        ])
        .unwrap();
        let mut rx: Queue = vq.create_queue().unwrap();
        assert!(console.process(RX, &mut rx, &mem).unwrap());
        let mut got = [0u8; 16];
        mem.read_slice(&mut got[..8], GuestAddress(0x4000)).unwrap();
        mem.read_slice(&mut got[8..], GuestAddress(0x5000)).unwrap();
        assert_eq!(&got, b"typed by the use");
        assert_eq!(console.pending, b"r\n");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_full_input_queue_takes_no_more_until_the_guest_reads() {
        let mut input = ConsoleInput::new().unwrap();
        assert_eq!(input.offer(&vec![b'x'; INPUT_CAPACITY + 10]), INPUT_CAPACITY);
        assert_eq!(input.offer(b"more"), 0);
        assert_eq!(input.take(10).len(), 10);
        assert_eq!(input.offer(b"more"), 4);
    }
}
