//! A QMP client small enough for the nested KVM host's initramfs, where Python's qemu.qmp is
//! not: one request at a time, each line the monitor sends handed to an observer.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events read while waiting for a reply, for [`Qmp::until`].
    events: Vec<String>,
    /// Each line the monitor sends (`qmp-call` prints them).
    observe: fn(&str),
}

/// `{"execute": "NAME"}` for a bare command name; a JSON object as it is.
pub fn request(command: &str) -> String {
    if command.starts_with('{') {
        command.to_string()
    } else {
        format!("{{\"execute\": \"{command}\"}}")
    }
}

impl Qmp {
    /// Connects to the socket at `path`, retrying for `wait` while `alive` says the VMM that
    /// will listen there still runs; reads the greeting and negotiates capabilities. Each read
    /// waits `timeout` at most.
    pub fn connect(
        path: &Path,
        wait: Duration,
        timeout: Duration,
        mut alive: impl FnMut() -> bool,
        observe: fn(&str),
    ) -> Result<Qmp, String> {
        let until = Instant::now() + wait;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < until && alive() => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("connecting to {}: {e}", path.display())),
            }
        };
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let mut qmp = Qmp {
            reader,
            writer: stream,
            events: Vec::new(),
            observe,
        };
        qmp.line()?;
        qmp.reply("qmp_capabilities")?;
        Ok(qmp)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("the monitor closed the connection".into()),
            Ok(_) => {
                (self.observe)(&line);
                Ok(line)
            }
            Err(e) => Err(format!("reading from the monitor: {e}")),
        }
    }

    /// Sends `command` (see [`request`]); its reply line. An error reply is an error.
    pub fn reply(&mut self, command: &str) -> Result<String, String> {
        self.writer
            .write_all(request(command).as_bytes())
            .map_err(|e| format!("writing to the monitor: {e}"))?;
        loop {
            let line = self.line()?;
            if line.starts_with("{\"return\"") {
                return Ok(line);
            }
            if line.starts_with("{\"error\"") {
                return Err(format!("{command}: {}", line.trim()));
            }
            self.events.push(line);
        }
    }

    /// Waits for `event`, which may have come already, for `within` at most.
    pub fn until(&mut self, event: &str, within: Duration) -> Result<(), String> {
        let wanted = format!("\"event\": \"{event}\"");
        if self.events.iter().any(|e| e.contains(&wanted)) {
            return Ok(());
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no {event} event within {} s", within.as_secs()));
            }
            self.writer
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            if self.line()?.contains(&wanted) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_bare_name_becomes_an_execute_and_json_passes_through() {
        assert_eq!(request("stop"), r#"{"execute": "stop"}"#);
        let json = r#"{"execute": "migrate", "arguments": {"uri": "file:/x"}}"#;
        assert_eq!(request(json), json);
    }

    #[test]
    fn events_before_a_reply_are_kept_for_until_and_errors_fail() {
        let dir = std::env::temp_dir().join(format!("qmp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            s.write_all(b"{\"QMP\": {}}\n").unwrap();
            let next = |r: &mut BufReader<UnixStream>| {
                // The client writes requests without a newline: read one JSON object's bytes.
                let mut buf = [0u8; 256];
                let n = std::io::Read::read(r, &mut buf).unwrap();
                String::from_utf8_lossy(&buf[..n]).into_owned()
            };
            assert!(next(&mut r).contains("qmp_capabilities"));
            s.write_all(b"{\"return\": {}}\n").unwrap();
            assert!(next(&mut r).contains("stop"));
            s.write_all(b"{\"event\": \"STOP\"}\n{\"return\": {}}\n").unwrap();
            assert!(next(&mut r).contains("cont"));
            s.write_all(b"{\"error\": {\"desc\": \"no\"}}\n").unwrap();
        });
        let mut qmp = Qmp::connect(
            &path,
            Duration::from_secs(5),
            Duration::from_secs(5),
            || true,
            |_| {},
        )
        .unwrap();
        qmp.reply("stop").unwrap();
        qmp.until("STOP", Duration::from_secs(1)).unwrap();
        assert!(qmp.reply("cont").unwrap_err().contains("no"));
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
