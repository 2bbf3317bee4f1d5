//! The milestone port (see minnow_bootproto::milestone): the guest's "boot done" (Firecracker's
//! 0x3f0 <- 123) and, when the VMM asked for them, the firmware's start and handoff. Every write is
//! recorded with its time, and marks the boot timeline.
use crate::bus::BusDevice;
use crate::timeline::{Event, Timeline};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Milestone {
    pub port: u16,
    pub value: u8,
    pub at: Instant,
}

/// The device on the milestone port.
pub struct MilestonePort {
    port: u16,
    record: Arc<std::sync::Mutex<Vec<Milestone>>>,
    timeline: Arc<Timeline>,
}

impl MilestonePort {
    pub fn new(port: u16, record: Arc<std::sync::Mutex<Vec<Milestone>>>, timeline: Arc<Timeline>) -> Self {
        Self {
            port,
            record,
            timeline,
        }
    }
}

impl BusDevice for MilestonePort {
    fn kind(&self) -> &'static str {
        "milestones"
    }

    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let m = Milestone {
            port: self.port,
            value: data.first().copied().unwrap_or(0),
            at: Instant::now(),
        };
        if let Some(event) = Event::for_milestone(m.value) {
            self.timeline.mark(event);
        }
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        // A guest writing in a loop must not grow the record without bound.
        if record.len() < 64 {
            record.push(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn writes_are_recorded_in_order_and_bounded() {
        let record = Arc::new(Mutex::new(Vec::new()));
        let timeline = Arc::new(Timeline::new(Instant::now()));
        let mut port = MilestonePort::new(0x3F0, record.clone(), timeline.clone());
        port.write(0, &[1]);
        port.write(0, &[4]);
        port.write(0, &[123]);
        let r = record.lock().unwrap().clone();
        assert_eq!((r[0].value, r[1].value, r[2].value), (1, 4, 123));
        assert!(r[0].at <= r[1].at);
        (0..100).for_each(|_| port.write(0, &[1]));
        assert_eq!(record.lock().unwrap().len(), 64);
        let events: Vec<Event> = timeline.phases().iter().map(|p| p.event).collect();
        assert_eq!(
            events,
            [
                Event::Exec,
                Event::FirmwareStart,
                Event::FirmwareHandoff,
                Event::BootDone
            ]
        );
    }
}
