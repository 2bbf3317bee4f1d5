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
                    crate::report!(
                        "{}: cannot wait on its host fd: {e:?}",
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
            crate::report!("{}: {e:?}", lock(&self.transport).name());
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
            crate::report!(
                "{}: its host side went away (a TAP whose interface was deleted?); the guest gets no more input from it",
                lock(&self.transport).name()
            );
        } else {
            lock(&self.transport).handle_io();
        }
        self.settle(ops);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::{DeviceError, VirtioDevice};
    use crate::irq::{LevelIrq, RecordedLevels};
    use crate::runtime::event_loop::EventLoop;
    use crate::runtime::guest_log::GuestLog;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use virtio_queue::Queue;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    /// A device whose host fd is a pipe's read end, counting how often it is called to serve it.
    struct PipeDevice {
        fd: OwnedFd,
        served: Arc<AtomicUsize>,
    }

    impl VirtioDevice for PipeDevice {
        fn device_type(&self) -> u32 {
            1
        }
        fn features(&self) -> u64 {
            0
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16]
        }
        fn read_config(&self, _offset: u64, data: &mut [u8]) {
            data.fill(0);
        }
        fn process(&mut self, _: usize, _: &mut Queue, _: &GuestMemoryMmap) -> Result<bool, DeviceError> {
            Ok(false)
        }
        fn io_fd(&self) -> Option<RawFd> {
            Some(self.fd.as_raw_fd())
        }
        fn handle_io(&mut self, _: &mut [Queue], _: &GuestMemoryMmap) -> Result<bool, DeviceError> {
            self.served.fetch_add(1, Ordering::Relaxed);
            Ok(false)
        }
    }

    /// The host side of a device goes away (a TAP's interface deleted): its fd reports a
    /// hang-up forever. The loop drops it once and goes quiet; it used to read the hang-up as
    /// "readable" and spin at 100% of a CPU.
    #[test]
    fn a_host_fd_that_hangs_up_is_dropped_not_spun_on() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-element array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds were just created and are owned by nothing else.
        let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let served = Arc::new(AtomicUsize::new(0));
        let device = PipeDevice {
            fd: reader,
            served: served.clone(),
        };
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1_0000)]).unwrap();
        let irq = LevelIrq::new(5, Arc::new(RecordedLevels::default()));
        let mut transport = MmioTransport::new(Box::new(device), mem, irq, GuestLog::default()).unwrap();
        // The driver's steps to DRIVER_OK, as the transport's own tests take them.
        for (reg, v) in [(0x70u64, 3u32), (0x24, 1), (0x20, 1), (0x70, 11), (0x70, 15)] {
            crate::bus::BusDevice::write(&mut transport, reg, &v.to_le_bytes());
        }
        let transport = Arc::new(Mutex::new(transport));
        let mut events = EventLoop::new().unwrap();
        events.add_owned(VirtioIo::new(transport.clone()).unwrap());
        drop(writer);
        let mut dispatched = 0;
        for _ in 0..50 {
            dispatched += events.run_once(10).unwrap();
        }
        assert!(dispatched <= 3, "the loop woke {dispatched} times for a dead fd");
        assert!(served.load(Ordering::Relaxed) <= 1);
    }
}
