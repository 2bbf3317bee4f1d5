//! One VMM process under the benchmark: its console (stdin and stdout as pipes, a thread
//! collecting what it prints), what it costs in memory, and its end.
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much of the console's last output an error shows.
const TAIL: usize = 300;

pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Receiver<Vec<u8>>,
    /// What the console printed since the last text waited for.
    seen: Vec<u8>,
    /// The last bytes the console printed, for errors.
    tail: Vec<u8>,
    /// Owned here: it ends when the process's stdout closes, and [`Running::stop`] joins it.
    reader: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts `cmd` with its stdin and stdout as pipes (its serial console on `-serial stdio`).
    pub fn spawn(mut cmd: Command, stderr: Stdio) -> Result<Running, String> {
        let what = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {what}: {e}"))?;
        let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (send, output) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if send.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(Running {
            stdin: child.stdin.take(),
            child,
            output,
            seen: Vec::new(),
            tail: Vec::new(),
            reader: Some(reader),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Types `line` and a newline into the console.
    pub fn type_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin is closed")?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("typing into the console: {e}"))
    }

    /// Waits until the console has printed `text`, typing `ask` (unless empty) now and again
    /// every `again` until then: a VMM may drop what it read before its restore finished.
    /// What was printed up to the text is consumed.
    pub fn wait_for(
        &mut self,
        ask: &str,
        text: &str,
        within: Duration,
        again: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut next_ask = Instant::now();
        loop {
            if !ask.is_empty() && Instant::now() >= next_ask {
                self.type_line(ask)?;
                next_ask = Instant::now() + again;
            }
            if let Some(at) = find(&self.seen, text.as_bytes()) {
                self.seen.drain(..at + text.len());
                return Ok(());
            }
            // Keep only what could still be the start of the text.
            let keep = self.seen.len().saturating_sub(text.len());
            self.seen.drain(..keep);
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no {text:?} on the console within {} s; it ends: {:?}",
                    within.as_secs(),
                    String::from_utf8_lossy(&self.tail)
                ));
            }
            let wake = match ask.is_empty() {
                true => deadline,
                false => next_ask.min(deadline),
            };
            match self.output.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(bytes) => {
                    self.tail.extend(&bytes);
                    let old = self.tail.len().saturating_sub(TAIL);
                    self.tail.drain(..old);
                    self.seen.extend(bytes);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!(
                        "the VMM ended ({status}) before {text:?} was on its console"
                    ));
                }
            }
        }
    }

    /// Ends the process (SIGTERM, then SIGKILL after 10 s) and joins its console's reader.
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.stdin = None;
        if self.alive() {
            // SAFETY: signals our own child, not yet waited for, so the pid is still ours.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.end();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A field of /proc/PID/smaps_rollup or /proc/PID/status, in KiB (0 when unreadable).
fn proc_kib(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|t| parse_kib(&t, field))
        .unwrap_or(0)
}

fn parse_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The process's proportional set size: its share of every page it maps.
pub fn pss_kib(pid: u32) -> u64 {
    proc_kib(pid, "smaps_rollup", "Pss")
}

/// The process's resident set size.
pub fn rss_kib(pid: u32) -> u64 {
    proc_kib(pid, "status", "VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_read_by_exact_name() {
        let text = "Rss:  2048 kB\nPss:  1024 kB\nPss_Anon:  12 kB\n";
        assert_eq!(parse_kib(text, "Pss"), Some(1024));
        assert_eq!(parse_kib(text, "Pss_Anon"), Some(12));
        assert_eq!(parse_kib(text, "Swap"), None);
    }

    #[test]
    fn a_text_is_found_across_reads_and_asked_again_until_it_comes() {
        // A "guest" that answers only the second time it is asked.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read a; read b; echo AN''SWER-$b; read c"]);
        let mut vm = Running::spawn(cmd, Stdio::null()).unwrap();
        vm.wait_for("x", "ANSWER-x", Duration::from_secs(5), Duration::from_millis(10))
            .unwrap();
        assert!(pss_kib(vm.pid()) > 0);
        vm.stop();
    }

    #[test]
    fn a_process_that_ends_first_is_an_error_not_a_wait() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        let mut vm = Running::spawn(cmd, Stdio::null()).unwrap();
        let err = vm
            .wait_for("", "never", Duration::from_secs(30), Duration::from_secs(1))
            .unwrap_err();
        assert!(err.contains("ended"), "{err}");
    }
}
