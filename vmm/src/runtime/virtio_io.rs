//! A virtio device's host fd on the event loop: a TAP's incoming frames, vhost's used-buffer
//! signal, the console's input. The fd is watched only while the driver runs the device and the
//! device can take more (a frame waiting for a receive buffer would otherwise wake the loop for
//! nothing); the transport's wake eventfd says when that may have changed. An fd that reports an
//! error or hang-up (a TAP whose interface was deleted) is dropped for good, with one line:
//! polling it again would spin.
use crate::devices::virtio::mmio::MmioTransport;
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use vmm_sys_util::eventfd::EventFd;

pub struct VirtioIo {
    transport: Arc<Mutex<MmioTransport>>,
    wake: EventFd,
    /// The device fd in the loop's interest list.
    watched: Option<RawFd>,
    /// A device fd that failed: never watched again.
    dead: Option<RawFd>,
}

impl VirtioIo {
    pub fn new(transport: Arc<Mutex<MmioTransport>>) -> std::io::Result<Self> {
        let wake = lock(&transport).wake().try_clone()?;
        Ok(Self {
            transport,
            wake,
            watched: None,
            dead: None,
        })
    }

    fn settle(&mut self, ops: &mut EventOps) {
        let want = lock(&self.transport).io_fd().filter(|fd| Some(*fd) != self.dead);
        if want == self.watched {
            return;
        }
        if let Some(fd) = self.watched.take() {
            let _ = ops.remove(Events::empty_raw(fd));
        }
        if let Some(fd) = want {
            match ops.add(Events::new_raw(fd, EventSet::IN)) {
                Ok(()) => self.watched = Some(fd),
                Err(e) => {
                    eprintln!(
                        "minnow: {}: cannot wait on its host fd: {e:?}",
                        lock(&self.transport).name()
                    );
                    self.dead = Some(fd);
                }
            }
        }
    }
}

fn lock(t: &Mutex<MmioTransport>) -> MutexGuard<'_, MmioTransport> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

impl MutEventSubscriber for VirtioIo {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.wake, EventSet::IN)) {
            eprintln!("minnow: {}: {e:?}", lock(&self.transport).name());
        }
        self.settle(ops);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.fd() == self.wake.as_raw_fd() {
            let _ = self.wake.read();
        } else if events.event_set().intersects(EventSet::ERROR | EventSet::HANG_UP) {
            let fd = events.fd();
            let _ = ops.remove(Events::empty_raw(fd));
            self.watched = None;
            self.dead = Some(fd);
            eprintln!(
                "minnow: {}: its host side went away (a TAP whose interface was deleted?); the guest gets no more input from it",
                lock(&self.transport).name()
            );
        } else {
            lock(&self.transport).handle_io();
        }
        self.settle(ops);
    }
}
