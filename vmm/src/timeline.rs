//! The boot timeline (`-boot-timeline`): when each phase of a boot was reached, in host time
//! since exec, and which VM exits happened during each phase.
//!
//! Phases, each marked the first time it happens: exec, VM created, first guest instruction
//! (vCPU 0 enters KVM_RUN), firmware start and handoff (minnow.rom's milestones on port 0x3f0, which
//! it writes only when `Config::firmware_milestones` asks), first byte on COM1, boot done (a guest
//! writes 123 to port 0x3f0, Firecracker's convention: an init or a payload marks the end of its
//! boot), exit. Recording is always on: a mark is one mutex lock, an exit count one relaxed
//! atomic add, both negligible next to a VM exit.
use crate::layout::{self, port};
use minnow_bootproto::milestone;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Exec,
    VmCreated,
    FirstInstruction,
    FirmwareStart,
    FirmwareHandoff,
    FirstSerialByte,
    BootDone,
    Exit,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Exec => "exec",
            Event::VmCreated => "vm created",
            Event::FirstInstruction => "first guest instruction",
            Event::FirmwareStart => "firmware start",
            Event::FirmwareHandoff => "firmware handoff",
            Event::FirstSerialByte => "first serial byte",
            Event::BootDone => "boot done",
            Event::Exit => "exit",
        }
    }

    /// The event a write of `value` to the milestone port stands for.
    pub fn for_milestone(value: u8) -> Option<Event> {
        match value {
            milestone::FIRMWARE_START => Some(Event::FirmwareStart),
            milestone::KERNEL_MULTIBOOT..=milestone::KERNEL_MULTIBOOT2 => Some(Event::FirmwareHandoff),
            milestone::BOOT_DONE => Some(Event::BootDone),
            _ => None,
        }
    }
}

/// VM exits by kind: port I/O by device, MMIO by device, HLT, the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    PioSerial,
    PioFwCfg,
    PioRtc,
    PioI8042,
    PioMilestone,
    PioOther,
    MmioIoapic,
    MmioGed,
    MmioOther,
    Hlt,
    Other,
}

/// Every [`ExitKind`], in the order [`ExitCounts`] holds their counts.
pub const KINDS: [ExitKind; 11] = [
    ExitKind::PioSerial,
    ExitKind::PioFwCfg,
    ExitKind::PioRtc,
    ExitKind::PioI8042,
    ExitKind::PioMilestone,
    ExitKind::PioOther,
    ExitKind::MmioIoapic,
    ExitKind::MmioGed,
    ExitKind::MmioOther,
    ExitKind::Hlt,
    ExitKind::Other,
];

impl ExitKind {
    pub fn name(self) -> &'static str {
        match self {
            ExitKind::PioSerial => "pio_serial",
            ExitKind::PioFwCfg => "pio_fw_cfg",
            ExitKind::PioRtc => "pio_rtc",
            ExitKind::PioI8042 => "pio_i8042",
            ExitKind::PioMilestone => "pio_milestone",
            ExitKind::PioOther => "pio_other",
            ExitKind::MmioIoapic => "mmio_ioapic",
            ExitKind::MmioGed => "mmio_ged",
            ExitKind::MmioOther => "mmio_other",
            ExitKind::Hlt => "hlt",
            ExitKind::Other => "other",
        }
    }

    pub fn for_port(p: u16) -> ExitKind {
        match p {
            _ if (port::COM1..port::COM1 + 8).contains(&p) => ExitKind::PioSerial,
            _ if (port::FW_CFG..port::FW_CFG + 12).contains(&p) => ExitKind::PioFwCfg,
            port::RTC | 0x71 => ExitKind::PioRtc,
            port::I8042_DATA | port::I8042_COMMAND => ExitKind::PioI8042,
            port::MILESTONES => ExitKind::PioMilestone,
            _ => ExitKind::PioOther,
        }
    }

    pub fn for_mmio(addr: u64) -> ExitKind {
        match addr {
            _ if (layout::IOAPIC..layout::IOAPIC2 + 0x100).contains(&addr) => ExitKind::MmioIoapic,
            _ if (layout::GED_EVENT..layout::GED_REGS + 0x100).contains(&addr) => ExitKind::MmioGed,
            _ => ExitKind::MmioOther,
        }
    }
}

/// Exit counts by kind, indexed as [`KINDS`].
pub type ExitCounts = [u64; KINDS.len()];

#[derive(Clone, Copy, Debug)]
struct Mark {
    event: Event,
    at: Duration,
    exits: ExitCounts,
}

/// One VM's timeline. Shared by the vCPU threads and the devices that mark it.
pub struct Timeline {
    exec: Instant,
    marks: Mutex<Vec<Mark>>,
    exits: [AtomicU64; KINDS.len()],
    /// What the guest did wrong or too much, by kind, as the VM ended (`GuestLog::counts`).
    guest_events: Mutex<Vec<(&'static str, u64)>>,
}

impl Timeline {
    /// A timeline whose "exec" is `exec` (the process's start, as the caller measured it).
    pub fn new(exec: Instant) -> Self {
        let t = Timeline {
            exec,
            marks: Mutex::new(Vec::new()),
            exits: Default::default(),
            guest_events: Mutex::new(Vec::new()),
        };
        t.mark_at(Event::Exec, exec);
        t
    }

    pub fn count(&self, kind: ExitKind) {
        let i = KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len() - 1);
        self.exits[i].fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> ExitCounts {
        std::array::from_fn(|i| self.exits[i].load(Ordering::Relaxed))
    }

    /// Marks `event` now, unless it was marked before.
    pub fn mark(&self, event: Event) {
        self.mark_at(event, Instant::now());
    }

    fn mark_at(&self, event: Event, at: Instant) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        if marks.iter().all(|m| m.event != event) {
            marks.push(Mark {
                event,
                at: at.saturating_duration_since(self.exec),
                exits: self.counts(),
            });
        }
    }

    /// Records how often the guest did each thing it was refused or rate-limited for.
    pub fn set_guest_events(&self, counts: Vec<(&'static str, u64)>) {
        *self.guest_events.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }

    /// What [`Timeline::set_guest_events`] recorded.
    pub fn guest_events(&self) -> Vec<(&'static str, u64)> {
        self.guest_events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The phases in time order: each event with its time, the time since the one before, and
    /// the exits in between.
    pub fn phases(&self) -> Vec<Phase> {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        marks.sort_by_key(|m| m.at);
        let mut prev: Option<Mark> = None;
        marks
            .into_iter()
            .map(|m| {
                let (since, before) = prev.map_or((Duration::ZERO, [0; KINDS.len()]), |p| (p.at, p.exits));
                prev = Some(m);
                Phase {
                    event: m.event,
                    at: m.at,
                    delta: m.at.saturating_sub(since),
                    exits: KINDS
                        .iter()
                        .enumerate()
                        .map(|(i, k)| (*k, m.exits[i].saturating_sub(before[i])))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                }
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub event: Event,
    /// Since exec.
    pub at: Duration,
    /// Since the phase before.
    pub delta: Duration,
    /// Exits since the phase before, by kind; kinds with none are left out.
    pub exits: Vec<(ExitKind, u64)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What the guest was refused or rate-limited for, one line, for the timeline's summary.
pub fn guest_events_text(events: &[(&'static str, u64)]) -> String {
    if events.is_empty() {
        return "guest events: none refused\n".into();
    }
    let list: Vec<String> = events.iter().map(|(k, n)| format!("{k}={n}")).collect();
    format!("guest events: {}\n", list.join(", "))
}

/// The timeline as a table, for stderr.
pub fn text(phases: &[Phase]) -> String {
    let mut s = String::from("minnow boot timeline (ms since exec; VM exits during each phase):\n");
    for p in phases {
        let exits: Vec<String> = p.exits.iter().map(|(k, n)| format!("{}={n}", k.name())).collect();
        let _ = writeln!(
            s,
            "  {:<24} {:>9.3} {:>+9.3}  {}",
            p.event.name(),
            ms(p.at),
            ms(p.delta),
            exits.join(" ")
        );
    }
    s
}

/// The same as JSON: `{"phases": [{"event", "at_ms", "delta_ms", "exits": {kind: n}}]}`.
pub fn json(phases: &[Phase]) -> String {
    let rows: Vec<String> = phases
        .iter()
        .map(|p| {
            let exits: Vec<String> = p
                .exits
                .iter()
                .map(|(k, n)| format!("\"{}\": {n}", k.name()))
                .collect();
            format!(
                "    {{\"event\": \"{}\", \"at_ms\": {:.3}, \"delta_ms\": {:.3}, \"exits\": {{{}}}}}",
                p.event.name(),
                ms(p.at),
                ms(p.delta),
                exits.join(", ")
            )
        })
        .collect();
    format!("{{\n  \"phases\": [\n{}\n  ]\n}}\n", rows.join(",\n"))
}

/// A writer that marks [`Event::FirstSerialByte`] on its first byte (COM1's output goes through it).
#[derive(Clone)]
pub struct FirstByte<W> {
    inner: W,
    timeline: std::sync::Arc<Timeline>,
    seen: bool,
}

impl<W> FirstByte<W> {
    pub fn new(inner: W, timeline: std::sync::Arc<Timeline>) -> Self {
        FirstByte {
            inner,
            timeline,
            seen: false,
        }
    }
}

impl<W: std::io::Write> std::io::Write for FirstByte<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.seen && !buf.is_empty() {
            self.seen = true;
            self.timeline.mark(Event::FirstSerialByte);
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn phases_are_ordered_first_marks_with_the_exits_between_them() {
        let t = Arc::new(Timeline::new(Instant::now()));
        t.count(ExitKind::PioFwCfg);
        t.mark(Event::VmCreated);
        t.count(ExitKind::for_port(0x510));
        t.count(ExitKind::for_port(0x511));
        t.count(ExitKind::for_port(0x3F9));
        t.mark(Event::FirmwareStart);
        t.mark(Event::VmCreated);
        t.count(ExitKind::Hlt);
        t.mark(Event::Exit);
        let p = t.phases();
        let events: Vec<Event> = p.iter().map(|p| p.event).collect();
        assert_eq!(
            events,
            [Event::Exec, Event::VmCreated, Event::FirmwareStart, Event::Exit]
        );
        assert_eq!(p[1].exits, [(ExitKind::PioFwCfg, 1)]);
        assert_eq!(p[2].exits, [(ExitKind::PioSerial, 1), (ExitKind::PioFwCfg, 2)]);
        assert_eq!(p[3].exits, [(ExitKind::Hlt, 1)]);
        assert!(p.windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(p[3].at, p[1].delta + p[2].delta + p[3].delta);
    }

    #[test]
    fn milestones_and_devices_map_to_events_and_kinds() {
        assert_eq!(Event::for_milestone(1), Some(Event::FirmwareStart));
        assert_eq!(Event::for_milestone(2), Some(Event::FirmwareHandoff));
        assert_eq!(Event::for_milestone(5), Some(Event::FirmwareHandoff));
        assert_eq!(Event::for_milestone(123), Some(Event::BootDone));
        assert_eq!(Event::for_milestone(0), None);
        assert_eq!(Event::for_milestone(9), None);
        assert_eq!(ExitKind::for_port(0x71), ExitKind::PioRtc);
        assert_eq!(ExitKind::for_port(0x3F0), ExitKind::PioMilestone);
        assert_eq!(ExitKind::for_port(0xF4), ExitKind::PioOther);
        assert_eq!(ExitKind::for_port(0x80), ExitKind::PioOther);
        assert_eq!(ExitKind::for_mmio(0xFEC1_0010), ExitKind::MmioIoapic);
        assert_eq!(ExitKind::for_mmio(0xFEA0_0202), ExitKind::MmioGed);
        assert_eq!(ExitKind::for_mmio(0xFEB0_0000), ExitKind::MmioOther);
    }

    #[test]
    fn the_first_serial_byte_is_marked_once_and_reports_render() {
        let t = Arc::new(Timeline::new(Instant::now()));
        let mut w = FirstByte::new(Vec::new(), t.clone());
        w.write_all(b"").unwrap();
        assert_eq!(t.phases().len(), 1);
        w.write_all(b"hi").unwrap();
        w.write_all(b"!").unwrap();
        let p = t.phases();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].event, Event::FirstSerialByte);
        let text = text(&p);
        assert!(text.contains("first serial byte"), "{text}");
        let json = json(&p);
        assert!(
            json.starts_with("{\n  \"phases\": [\n    {\"event\": \"exec\", \"at_ms\": 0.000"),
            "{json}"
        );
        assert!(json.contains("\"event\": \"first serial byte\""), "{json}");
    }
}
