//! The RTC's interrupts on the event loop: a timerfd armed for the CMOS device's next deadline,
//! re-armed whenever a guest access moves it.
use crate::devices::cmos::Cmos;
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

pub struct RtcTimer {
    cmos: Arc<Mutex<Cmos>>,
    changed: EventFd,
    timer: TimerFd,
}

impl RtcTimer {
    pub fn new(cmos: Arc<Mutex<Cmos>>) -> std::io::Result<Self> {
        let changed = cmos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deadline_changed()
            .try_clone()?;
        Ok(Self {
            cmos,
            changed,
            timer: super::event_loop::nonblocking_timer()?,
        })
    }

    fn arm(&mut self) {
        let deadline = self
            .cmos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_deadline();
        let armed = match deadline {
            // A timerfd of zero disarms it: wake a microsecond from now instead.
            Some(at) => self.timer.reset(
                at.saturating_duration_since(Instant::now())
                    .max(Duration::from_micros(1)),
                None,
            ),
            None => self.timer.clear(),
        };
        if let Err(e) = armed {
            crate::report!("RTC timer: {e}");
        }
    }
}

impl MutEventSubscriber for RtcTimer {
    fn init(&mut self, ops: &mut EventOps) {
        for fd in [self.changed.as_raw_fd(), self.timer.as_raw_fd()] {
            if let Err(e) = ops.add(Events::new_raw(fd, EventSet::IN)) {
                crate::report!("RTC timer: {e:?}");
            }
        }
        self.arm();
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.fd() == self.changed.as_raw_fd() {
            let _ = self.changed.read();
        } else {
            // The expiration count; the timerfd is readable, so this does not wait.
            let _ = self.timer.wait();
        }
        self.cmos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tick(Instant::now());
        self.arm();
    }
}
