//! virtio-console, the simplest form QEMU's guests know (`-device virtio-serial-device
//! -device virtconsole,chardev=ID`): one port without multiport, which Linux names hvc0. What the
//! guest writes goes to the chardev (stdio or a file); with a stdio chardev, what arrives on
//! stdin goes to the guest, read by the device's I/O thread into the receive queue.
use super::{DeviceError, VirtioDevice};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

const DEVICE_TYPE: u32 = 3;
const QUEUE_SIZES: [u16; 2] = [64, 64];
const RX: usize = 0;
const TX: usize = 1;
/// Bytes taken from one transmit buffer at most.
const MAX_CHUNK: usize = 64 * 1024;
/// Bytes read from the input at once.
const INPUT_CHUNK: usize = 4096;

pub struct Console {
    out: Box<dyn Write + Send>,
    /// Where the guest's input comes from (stdin), if anywhere.
    input: Option<File>,
    /// Input read but not yet in a receive buffer: the guest has none free.
    pending: Vec<u8>,
    /// The input ended (or failed): it is not polled again.
    input_done: bool,
}

impl Console {
    pub fn new(out: Box<dyn Write + Send>, input: Option<File>) -> Self {
        Console {
            out,
            input,
            pending: Vec::new(),
            input_done: false,
        }
    }

    /// Moves pending input into the guest's receive buffers, as far as they go.
    fn deliver(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        let mut used = false;
        while !self.pending.is_empty() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
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
            queue.add_used(mem, head, written as u32)?;
            used = true;
        }
        Ok(used)
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
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

    /// The input, while it has not ended and nothing read waits for a buffer (polling it then
    /// would only spin).
    fn io_fd(&self) -> Option<RawFd> {
        let idle = self.pending.is_empty() && !self.input_done;
        self.input.as_ref().filter(|_| idle).map(File::as_raw_fd)
    }

    fn handle_io(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        // The I/O thread holds the transport's lock here, and a vCPU may be waiting for it: read
        // only what is there now, never wait for input (stdin is usually a blocking fd, and
        // someone else may have drained it since the thread's poll).
        if let Some(input) = self.input.as_mut().filter(|i| readable_now(i)) {
            let mut buf = [0u8; INPUT_CHUNK];
            match input.read(&mut buf) {
                Ok(0) => self.input_done = true,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                // A non-blocking stdin (the caller's choice) may have nothing after all.
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                Err(e) => {
                    eprintln!("minnow: virtio console input: {e}; no more input to the guest");
                    self.input_done = true;
                }
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

/// Whether a read of `f` would return at once (data, end of file or an error).
fn readable_now(f: &File) -> bool {
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;
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
        let mut console = Console::new(Box::new(sink.clone()), None);
        assert!(console.process(TX, &mut queue, &mem).unwrap());
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"hello hvc0\n");
        assert!(!console.process(0, &mut queue, &mem).unwrap());
    }

    /// A pipe standing in for stdin.
    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills the two-element array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both fds were just created and are owned by nothing else.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn no_input_yet_never_blocks_the_io_thread() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let (reader, _writer) = pipe();
        let mut console = Console::new(Box::new(Sink::default()), Some(reader));
        // A blocking pipe with nothing in it: a read would wait forever, under the lock.
        assert!(!console.handle_io(&mut [], &mem).unwrap());
        assert!(console.io_fd().is_some(), "still waiting for input");
    }

    #[test]
    fn input_waits_for_receive_buffers_then_fills_them_in_order() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let (reader, mut writer) = pipe();
        let mut console = Console::new(Box::new(Sink::default()), Some(reader));
        assert!(console.io_fd().is_some());
        writer.write_all(b"typed by the user\n").unwrap();

        // No receive buffer yet: the input is held, and the fd is not polled meanwhile.
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

        // The input ends: it is never polled again.
        console.pending.clear();
        drop(writer);
        console.handle_io(&mut [], &mem).unwrap();
        assert!(console.io_fd().is_none());
    }
}
