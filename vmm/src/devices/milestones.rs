//! The milestone ports (see minnow_bootproto::milestone): the firmware's start and handoff
//! (qboot's benchmark ports) and the guest's "boot done". Every write is recorded with its time,
//! and marks the boot timeline.
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

/// One device per port; both share the record.
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
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let m = Milestone {
            port: self.port,
            value: data.first().copied().unwrap_or(0),
            at: Instant::now(),
        };
        if let Some(event) = Event::for_milestone(self.port, m.value) {
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
        let (mut start, mut kernel) = (
            MilestonePort::new(0xF5, record.clone(), timeline.clone()),
            MilestonePort::new(0xF4, record.clone(), timeline.clone()),
        );
        start.write(0, &[1]);
        kernel.write(0, &[4]);
        let r = record.lock().unwrap().clone();
        assert_eq!((r[0].port, r[0].value, r[1].port, r[1].value), (0xF5, 1, 0xF4, 4));
        assert!(r[0].at <= r[1].at);
        (0..100).for_each(|_| start.write(0, &[1]));
        assert_eq!(record.lock().unwrap().len(), 64);
        let events: Vec<Event> = timeline.phases().iter().map(|p| p.event).collect();
        assert_eq!(
            events,
            [Event::Exec, Event::FirmwareStart, Event::FirmwareHandoff]
        );
    }
}
