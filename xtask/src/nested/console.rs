//! The L2 host's console, as the L2 script writes it, split back into one output per case.
//!
//! For each case the script prints `NESTED-CASE-BEGIN <name>`, then the L3 serial lines that
//! matter (`NESTED-SERIAL `), the last lines of the L3 serial log (`NESTED-TAIL `), minnow's
//! stderr (`NESTED-STDERR `), and `NESTED-CASE-END <name> rc=<n> start=<s> end=<s>`.
use std::collections::HashMap;

pub const BEGIN: &str = "NESTED-CASE-BEGIN ";
pub const SERIAL: &str = "NESTED-SERIAL ";
pub const TAIL: &str = "NESTED-TAIL ";
pub const STDERR: &str = "NESTED-STDERR ";
/// What the case's after-commands printed in L2 (e.g. a disk image read back).
pub const AFTER: &str = "NESTED-AFTER ";
pub const END: &str = "NESTED-CASE-END ";
/// L2's own progress lines (module loading, /dev/kvm, done).
pub const L2: &str = "NESTED-L2 ";

#[derive(Debug, Default)]
pub struct CaseOutput {
    /// minnow's exit status (137 when the L2 script's timeout killed it).
    pub rc: i32,
    /// Wall time of the minnow run, in L2's clock.
    pub seconds: f64,
    /// L2's uptime when the run ended.
    pub ended_at: f64,
    /// The host's Unix time when the run ended (set by whoever knows when L2 booted).
    pub host_time: i64,
    pub serial: Vec<String>,
    pub tail: Vec<String>,
    pub stderr: Vec<String>,
    pub after: Vec<String>,
}

/// An END line: (name, rc, seconds).
pub fn parse_end(line: &str) -> Option<(&str, i32, f64)> {
    parse_end_times(line).map(|(name, rc, start, end)| (name, rc, end - start))
}

/// An END line: (name, rc, L2's uptime at the start, at the end).
fn parse_end_times(line: &str) -> Option<(&str, i32, f64, f64)> {
    let rest = line.strip_prefix(END)?;
    let mut words = rest.split_whitespace();
    let name = words.next()?;
    let mut rc = None;
    let (mut start, mut end) = (None, None);
    for w in words {
        match w.split_once('=') {
            Some(("rc", v)) => rc = v.parse().ok(),
            Some(("start", v)) => start = v.parse::<f64>().ok(),
            Some(("end", v)) => end = v.parse::<f64>().ok(),
            _ => {}
        }
    }
    Some((name, rc?, start?, end?))
}

/// Splits the console into the cases that finished. A case with a BEGIN but no END (L2 died
/// in the middle of it) is absent.
pub fn split(console: &str) -> HashMap<String, CaseOutput> {
    let mut done = HashMap::new();
    let mut current: Option<(String, CaseOutput)> = None;
    for raw in console.lines() {
        // The console may start a line with kernel noise or end it with '\r'.
        let line = raw.trim_end_matches('\r');
        let Some(at) = line.find("NESTED-") else {
            continue;
        };
        let line = &line[at..];
        if let Some(name) = line.strip_prefix(BEGIN) {
            current = Some((name.trim().to_string(), CaseOutput::default()));
        } else if let Some((name, rc, start, end)) = parse_end_times(line) {
            if let Some((open, mut out)) = current.take() {
                if open == name {
                    out.rc = rc;
                    out.seconds = end - start;
                    out.ended_at = end;
                    done.insert(open, out);
                }
            }
        } else if let Some((_, out)) = current.as_mut() {
            if let Some(l) = line.strip_prefix(SERIAL) {
                out.serial.push(l.to_string());
            } else if let Some(l) = line.strip_prefix(TAIL) {
                out.tail.push(l.to_string());
            } else if let Some(l) = line.strip_prefix(STDERR) {
                out.stderr.push(l.to_string());
            } else if let Some(l) = line.strip_prefix(AFTER) {
                out.after.push(l.to_string());
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_split_and_unfinished_ones_dropped() {
        let console = "noise\r\n\
            NESTED-L2 kvm ready\n\
            NESTED-CASE-BEGIN a\n\
            NESTED-SERIAL MINNOW-INIT cpus=2\r\n\
            NESTED-TAIL [ 1.0] reboot: Power down\n\
            NESTED-STDERR minnow: warning\n\
            NESTED-CASE-END a rc=0 start=10.50 end=13.00\n\
            NESTED-CASE-BEGIN b\n\
            NESTED-SERIAL half\n";
        let cases = split(console);
        assert_eq!(cases.len(), 1);
        let a = &cases["a"];
        assert_eq!(a.rc, 0);
        assert!((a.seconds - 2.5).abs() < 1e-9);
        assert!((a.ended_at - 13.0).abs() < 1e-9);
        assert_eq!(a.serial, ["MINNOW-INIT cpus=2"]);
        assert_eq!(a.tail, ["[ 1.0] reboot: Power down"]);
        assert_eq!(a.stderr, ["minnow: warning"]);
    }

    #[test]
    fn end_lines_need_every_field() {
        assert_eq!(
            parse_end("NESTED-CASE-END x rc=33 start=1 end=2"),
            Some(("x", 33, 1.0))
        );
        assert_eq!(parse_end("NESTED-CASE-END x rc=33"), None);
    }
}
