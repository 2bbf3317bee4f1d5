//! The VM's one event loop: every host fd a VM waits on (its taps and vhost signals, stdin,
//! guest output that waits for its reader, the RTC's timer, the lifecycle's requests, the
//! monitors' sockets) is registered here, on rust-vmm's `event-manager` (epoll), and served on one
//! thread, as Firecracker serves all device I/O. The vCPU threads are the only others.
use event_manager::{EventManager, MutEventSubscriber, SubscriberId, SubscriberOps};
use std::sync::{Arc, Mutex};

/// A subscriber as the loop holds it: shared, so its owner can reach it from other threads.
pub type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum EventLoopError {
    #[error("creating the event loop: {0:?}")]
    Create(event_manager::Error),
    #[error("waiting for events: {0:?}")]
    Wait(event_manager::Error),
}

pub struct EventLoop {
    manager: EventManager<Subscriber>,
}

impl EventLoop {
    pub fn new() -> Result<Self, EventLoopError> {
        Ok(Self {
            manager: EventManager::new().map_err(EventLoopError::Create)?,
        })
    }

    /// Registers `subscriber`, which adds its fds in its `init`.
    pub fn add(&mut self, subscriber: Subscriber) -> SubscriberId {
        self.manager.add_subscriber(subscriber)
    }

    /// Registers a subscriber nobody else holds.
    pub fn add_owned(&mut self, subscriber: impl MutEventSubscriber + Send + 'static) -> SubscriberId {
        self.add(Arc::new(Mutex::new(subscriber)))
    }

    /// Waits up to `timeout_ms` (-1: without limit) and dispatches what is ready.
    pub fn run_once(&mut self, timeout_ms: i32) -> Result<usize, EventLoopError> {
        match self.manager.run_with_timeout(timeout_ms) {
            Ok(n) => Ok(n),
            // A signal (a vCPU kick aimed at another thread, SIGWINCH) interrupted the wait.
            Err(event_manager::Error::Epoll(e)) if e.errno() == libc::EINTR => Ok(0),
            Err(e) => Err(EventLoopError::Wait(e)),
        }
    }
}

/// A monotonic timerfd that never blocks a read: two events dispatched together may re-arm it
/// between its readiness and the read, which would then wait for the new expiry.
pub fn nonblocking_timer() -> std::io::Result<vmm_sys_util::timerfd::TimerFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: timerfd_create takes flags only; the result is checked.
    let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new timerfd that nothing else owns.
    Ok(unsafe { vmm_sys_util::timerfd::TimerFd::from_raw_fd(fd) })
}
