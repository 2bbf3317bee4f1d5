//! The RTC's interrupts without a thread per tick: one thread sleeps until the CMOS device's next
//! deadline (or until a guest access moves it), then lets the device raise its flags.
use crate::devices::cmos::Cmos;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use vmm_sys_util::eventfd::EventFd;

/// Runs until `stop` is written.
pub fn spawn(cmos: Arc<Mutex<Cmos>>, stop: EventFd) -> std::io::Result<JoinHandle<()>> {
    let changed = cmos
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .deadline_changed()
        .try_clone()?;
    std::thread::Builder::new()
        .name("rtc".into())
        .spawn(move || loop {
            let deadline = cmos.lock().unwrap_or_else(|p| p.into_inner()).next_deadline();
            let timeout_ms = match deadline {
                None => -1,
                // Rounded up: waking a little late is harmless, spinning until the deadline is not.
                Some(at) => at
                    .saturating_duration_since(Instant::now())
                    .as_micros()
                    .div_ceil(1000)
                    .min(i32::MAX as u128) as i32,
            };
            let mut fds = [
                libc::pollfd {
                    fd: changed.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two pollfds for the duration of the call.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
            if fds[1].revents != 0 {
                return;
            }
            if fds[0].revents != 0 {
                let _ = changed.read();
            }
            cmos.lock()
                .unwrap_or_else(|p| p.into_inner())
                .tick(Instant::now());
        })
}
