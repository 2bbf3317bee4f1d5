//! What a guest does wrong, or too much, reported in one place: each kind of message is printed
//! [`BURST`] times, then at most once per [`INTERVAL`] with the number held back meanwhile, so a
//! guest in a loop cannot flood the host's log; and every occurrence is counted, for the user to
//! read (the boot timeline's summary prints the counts). `-d` chooses which categories are
//! printed (host failures always are); `-D FILE` sends them to a file instead of stderr.
use crate::config::{LogConfig, LogItems};
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

/// What a message reports, as QEMU's `-d` items divide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// The guest did something wrong (`-d guest_errors`).
    GuestError,
    /// The guest touched what no device implements (`-d unimp`).
    Unimp,
    /// Something on the host failed while serving the guest: always printed.
    Host,
}

struct Kind {
    count: u64,
    printed: u32,
    held_back: u64,
    last_printed: Option<Instant>,
}

struct Inner {
    kinds: BTreeMap<&'static str, Kind>,
    sink: Sink,
    items: LogItems,
}

/// One VM's guest-triggered messages and their counts. Cheap to clone: every device holds one.
#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<Mutex<Inner>>,
}

impl Default for GuestLog {
    fn default() -> Self {
        Self::new(Box::new(std::io::stderr()), LogItems::default())
    }
}

impl GuestLog {
    pub fn new(sink: Sink, items: LogItems) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                kinds: BTreeMap::new(),
                sink,
                items,
            })),
        }
    }

    /// The log `-d` and `-D` ask for: the file is created or truncated now, as QEMU's is (but never
    /// through a symbolic link).
    pub fn for_config(log: &LogConfig) -> std::io::Result<Self> {
        let sink: Sink = match &log.file {
            Some(path) => Box::new(crate::output_file::create(
                path,
                crate::output_file::Existing::Truncate,
                0o644,
            )?),
            None => Box::new(std::io::stderr()),
        };
        Ok(Self::new(sink, log.items))
    }

    /// Whether messages of `category` are printed: a caller may skip building one that is not.
    pub fn wants(&self, category: Category) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.wants(category)
    }

    /// Counts one occurrence of `kind` (a short name: "virtio-net short frame") and prints
    /// `message` if `-d` asks for its category and the kind is not over its rate.
    pub fn report(&self, category: Category, kind: &'static str, message: fmt::Arguments) {
        self.report_at(category, kind, message, Instant::now());
    }

    fn report_at(&self, category: Category, kind: &'static str, message: fmt::Arguments, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = inner.wants(category);
        let k = inner.kinds.entry(kind).or_insert(Kind {
            count: 0,
            printed: 0,
            held_back: 0,
            last_printed: None,
        });
        k.count += 1;
        if !wanted {
            return;
        }
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
        let prefix = crate::messages::prefix();
        let _ = writeln!(inner.sink, "{prefix}{message}{suffix}");
        let _ = inner.sink.flush();
    }

    /// How often each kind happened, by kind.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.kinds.iter().map(|(k, v)| (*k, v.count)).collect()
    }
}

impl Inner {
    fn wants(&self, category: Category) -> bool {
        match category {
            Category::GuestError => self.items.guest_errors,
            Category::Unimp => self.items.unimp,
            Category::Host => true,
        }
    }
}

/// `guest_log!(log, GuestError, "kind", "format", args...)`: [`GuestLog::report`] with
/// `format_args!`.
#[macro_export]
macro_rules! guest_log {
    ($log:expr, $category:ident, $kind:expr, $($arg:tt)+) => {
        $log.report(
            $crate::runtime::guest_log::Category::$category,
            $kind,
            format_args!($($arg)+),
        )
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
        let log = GuestLog::new(Box::new(lines.clone()), LogItems::default());
        let t0 = Instant::now();
        for i in 0..10_000 {
            log.report_at(
                Category::GuestError,
                "bad frame",
                format_args!("frame {i} too short"),
                t0,
            );
        }
        assert_eq!(lines.text().lines().count(), BURST as usize);
        assert!(lines.text().contains("at most one per 10 s"), "{}", lines.text());
        log.report_at(
            Category::GuestError,
            "bad frame",
            format_args!("frame again"),
            t0 + INTERVAL,
        );
        let text = lines.text();
        assert_eq!(text.lines().count(), BURST as usize + 1);
        assert!(
            text.ends_with("minnow: frame again (9995 more since the last one)\n"),
            "{text}"
        );
        log.report_at(Category::GuestError, "other", format_args!("x"), t0);
        assert_eq!(log.counts(), vec![("bad frame", 10_001), ("other", 1)]);
    }

    #[test]
    fn d_chooses_what_is_printed_and_everything_is_counted() {
        let lines = Lines::default();
        let items = LogItems {
            guest_errors: false,
            unimp: true,
        };
        let log = GuestLog::new(Box::new(lines.clone()), items);
        let t0 = Instant::now();
        log.report_at(Category::GuestError, "bad", format_args!("bad access"), t0);
        log.report_at(Category::Unimp, "nothing there", format_args!("port 0x80"), t0);
        log.report_at(Category::Host, "host", format_args!("disk gone"), t0);
        assert_eq!(lines.text(), "minnow: port 0x80\nminnow: disk gone\n");
        assert_eq!(log.counts(), vec![("bad", 1), ("host", 1), ("nothing there", 1)]);
        assert!(!log.wants(Category::GuestError) && log.wants(Category::Unimp));
    }
}
