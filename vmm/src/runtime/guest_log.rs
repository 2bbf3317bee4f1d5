//! What a guest does wrong, or too much, reported in one place: each kind of message is printed
//! [`BURST`] times, then at most once per [`INTERVAL`] with the number held back meanwhile, so a
//! guest in a loop cannot flood the host's log; and every occurrence is counted, for the user to
//! read (the boot timeline's summary prints the counts).
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages of one kind printed before the rate limit starts.
pub const BURST: u32 = 5;
/// Past the burst, one message of a kind per this long.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Where the messages go: stderr, or a `-D` log file.
pub type Sink = Box<dyn Write + Send>;

struct Kind {
    count: u64,
    printed: u32,
    held_back: u64,
    last_printed: Option<Instant>,
}

struct Inner {
    kinds: BTreeMap<&'static str, Kind>,
    sink: Sink,
}

/// One VM's guest-triggered messages and their counts. Cheap to clone: every device holds one.
#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<Mutex<Inner>>,
}

impl Default for GuestLog {
    fn default() -> Self {
        Self::new(Box::new(std::io::stderr()))
    }
}

impl GuestLog {
    pub fn new(sink: Sink) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                kinds: BTreeMap::new(),
                sink,
            })),
        }
    }

    /// Counts one occurrence of `kind` (a short name: "virtio-net short frame") and prints
    /// `message` unless the kind is over its rate.
    pub fn report(&self, kind: &'static str, message: fmt::Arguments) {
        self.report_at(kind, message, Instant::now());
    }

    fn report_at(&self, kind: &'static str, message: fmt::Arguments, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let k = inner.kinds.entry(kind).or_insert(Kind {
            count: 0,
            printed: 0,
            held_back: 0,
            last_printed: None,
        });
        k.count += 1;
        let due = k.printed < BURST || k.last_printed.is_none_or(|at| now.duration_since(at) >= INTERVAL);
        if !due {
            k.held_back += 1;
            return;
        }
        let held_back = std::mem::take(&mut k.held_back);
        k.printed = k.printed.saturating_add(1);
        k.last_printed = Some(now);
        let suffix = match (held_back, k.printed) {
            (0, p) if p == BURST => format!(" (more of these: at most one per {} s)", INTERVAL.as_secs()),
            (0, _) => String::new(),
            (n, _) => format!(" ({n} more since the last one)"),
        };
        // Reporting must never fail the device: a closed stderr loses the line.
        let _ = writeln!(inner.sink, "minnow: {message}{suffix}");
    }

    /// How often each kind happened, by kind.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.kinds.iter().map(|(k, v)| (*k, v.count)).collect()
    }
}

/// `guest_log!(log, "kind", "format", args...)`: [`GuestLog::report`] with `format_args!`.
#[macro_export]
macro_rules! guest_log {
    ($log:expr, $kind:expr, $($arg:tt)+) => {
        $log.report($kind, format_args!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn a_flood_prints_a_burst_then_one_line_per_interval_and_counts_everything() {
        let lines = Lines::default();
        let log = GuestLog::new(Box::new(lines.clone()));
        let t0 = Instant::now();
        for i in 0..10_000 {
            log.report_at("bad frame", format_args!("frame {i} too short"), t0);
        }
        assert_eq!(lines.text().lines().count(), BURST as usize);
        assert!(lines.text().contains("at most one per 10 s"), "{}", lines.text());
        log.report_at("bad frame", format_args!("frame again"), t0 + INTERVAL);
        let text = lines.text();
        assert_eq!(text.lines().count(), BURST as usize + 1);
        assert!(
            text.ends_with("minnow: frame again (9995 more since the last one)\n"),
            "{text}"
        );
        log.report_at("other", format_args!("x"), t0);
        assert_eq!(log.counts(), vec![("bad frame", 10_001), ("other", 1)]);
    }
}
