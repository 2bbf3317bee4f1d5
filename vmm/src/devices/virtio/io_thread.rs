//! One thread per virtio device with a host fd (a TAP): it sleeps in poll(2) until the fd, the
//! transport's wake eventfd or the machine's stop eventfd is ready, then lets the device work
//! under the transport's lock.
use super::mmio::MmioTransport;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use vmm_sys_util::eventfd::EventFd;

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Runs until `stop` is written.
pub fn spawn(transport: Arc<Mutex<MmioTransport>>, stop: EventFd) -> std::io::Result<JoinHandle<()>> {
    fn lock(t: &Mutex<MmioTransport>) -> std::sync::MutexGuard<'_, MmioTransport> {
        t.lock().unwrap_or_else(|p| p.into_inner())
    }
    let wake = lock(&transport).wake().try_clone()?;
    std::thread::Builder::new()
        .name("virtio-io".into())
        .spawn(move || loop {
            let io = lock(&transport).io_fd();
            let mut fds = vec![pollfd(stop.as_raw_fd()), pollfd(wake.as_raw_fd())];
            if let Some(fd) = io {
                fds.push(pollfd(fd));
            }
            // SAFETY: `fds` is a valid array of pollfds for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                return;
            }
            if fds[1].revents != 0 {
                let _ = wake.read();
            }
            if fds.get(2).is_some_and(|f| f.revents != 0) {
                lock(&transport).handle_io();
            }
        })
}
