//! The process's stdin, read once for the VM's whole life (reboots included) on the event loop,
//! and handed to the one device that takes it: COM1 on `-serial stdio`, or the virtio console on
//! a stdio chardev. Bytes the device has no room for wait here, and stdin is not read again
//! until they are taken; a timer retries, as a guest says nothing when it drains its FIFO.
use super::event_loop::nonblocking_timer;
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;
use vmm_sys_util::timerfd::TimerFd;

/// Bytes read from stdin at once.
const CHUNK: usize = 4096;
/// How soon to offer waiting bytes again when the device was full.
const RETRY: Duration = Duration::from_millis(5);

/// A device that takes input.
pub trait InputSink: Send {
    /// Takes what it has room for from `bytes`; returns how many it took.
    fn offer(&mut self, bytes: &[u8]) -> usize;
}

pub struct StdinRouter {
    input: File,
    sink: Box<dyn InputSink>,
    /// Read but not yet taken.
    held: Vec<u8>,
    retry: TimerFd,
    /// Whether stdin is in the loop's interest list.
    watching: bool,
    /// Whether epoll can wait on stdin: a regular file or /dev/null cannot, and is simply read.
    pollable: bool,
    ended: bool,
}

impl StdinRouter {
    /// Reads from a duplicate of the process's stdin (so closing it leaves fd 0 alone).
    pub fn new(sink: Box<dyn InputSink>) -> std::io::Result<Self> {
        Self::with_input(File::from(std::io::stdin().as_fd().try_clone_to_owned()?), sink)
    }

    pub fn with_input(input: File, sink: Box<dyn InputSink>) -> std::io::Result<Self> {
        Ok(Self {
            input,
            sink,
            held: Vec::new(),
            retry: nonblocking_timer()?,
            watching: false,
            pollable: true,
            ended: false,
        })
    }

    fn read_some(&mut self) {
        let mut buf = [0u8; CHUNK];
        match self.input.read(&mut buf) {
            Ok(0) => self.ended = true,
            Ok(n) => self.held.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
            Err(e) => {
                crate::report!("reading stdin: {e}; no more input to the guest");
                self.ended = true;
            }
        }
    }

    fn deliver(&mut self) {
        if !self.held.is_empty() {
            let taken = self.sink.offer(&self.held).min(self.held.len());
            self.held.drain(..taken);
        }
    }

    /// Watches stdin only while nothing waits (and it has not ended); otherwise retries soon.
    fn settle(&mut self, ops: &mut EventOps) {
        let want = self.held.is_empty() && !self.ended && self.pollable;
        if want != self.watching {
            let events = Events::new(&self.input, EventSet::IN);
            let changed = if want { ops.add(events) } else { ops.remove(events) };
            match changed {
                Ok(()) => self.watching = want,
                // epoll refuses regular files and /dev/null: read them as the device takes it.
                Err(_) if want => self.pollable = false,
                Err(_) => self.watching = false,
            }
        }
        let busy = !self.held.is_empty() || (!self.pollable && !self.ended);
        if busy {
            let _ = self.retry.reset(RETRY, None);
        }
    }

    fn step(&mut self, stdin_ready: bool, ops: &mut EventOps) {
        self.deliver();
        if self.held.is_empty() && !self.ended && (stdin_ready || !self.pollable) {
            self.read_some();
            self.deliver();
        }
        self.settle(ops);
    }
}

impl MutEventSubscriber for StdinRouter {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.retry, EventSet::IN)) {
            crate::report!("stdin: {e:?}");
        }
        self.settle(ops);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let from_stdin = events.fd() == self.input.as_raw_fd();
        if !from_stdin {
            let _ = self.retry.wait();
        }
        if from_stdin
            && events.event_set().intersects(EventSet::HANG_UP | EventSet::ERROR)
            && !events.event_set().contains(EventSet::IN)
        {
            self.ended = true;
        }
        self.step(from_stdin, ops);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::event_loop::EventLoop;
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::sync::{Arc, Mutex};

    /// A device with room for `room` bytes at a time.
    struct Fifo {
        got: Arc<Mutex<Vec<u8>>>,
        room: usize,
    }

    impl InputSink for Fifo {
        fn offer(&mut self, bytes: &[u8]) -> usize {
            let n = bytes.len().min(self.room);
            self.got.lock().unwrap().extend_from_slice(&bytes[..n]);
            n
        }
    }

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-element array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds were just created and are owned by nothing else.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn input_reaches_a_small_fifo_in_order_and_the_end_stops_reading() {
        let (reader, mut writer) = pipe();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Fifo {
            got: got.clone(),
            room: 16,
        };
        let mut ev = EventLoop::new().unwrap();
        ev.add_owned(StdinRouter::with_input(reader, Box::new(sink)).unwrap());
        let text: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        writer.write_all(&text).unwrap();
        drop(writer);
        for _ in 0..10_000 {
            if got.lock().unwrap().len() == text.len() {
                break;
            }
            ev.run_once(50).unwrap();
        }
        assert_eq!(*got.lock().unwrap(), text);
    }

    #[test]
    fn a_regular_file_on_stdin_is_read_though_epoll_refuses_it() {
        let path = std::env::temp_dir().join(format!("minnow-stdin-{}", std::process::id()));
        std::fs::write(&path, b"typed ahead\n").unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Fifo {
            got: got.clone(),
            room: 4,
        };
        let mut ev = EventLoop::new().unwrap();
        ev.add_owned(StdinRouter::with_input(File::open(&path).unwrap(), Box::new(sink)).unwrap());
        for _ in 0..100 {
            if got.lock().unwrap().len() == 12 {
                break;
            }
            ev.run_once(50).unwrap();
        }
        assert_eq!(got.lock().unwrap().as_slice(), b"typed ahead\n");
        std::fs::remove_file(path).unwrap();
    }
}
