//! A QMP client for the tests: one message per CR LF line.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn connect(path: &Path) -> UnixStream {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(path) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                return s;
            }
            Err(e) if Instant::now() > until => panic!("connecting to {}: {e}", path.display()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A QMP client: one message per CR LF line.
pub struct Qmp {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

impl Qmp {
    pub fn connect(path: &Path) -> (Qmp, String) {
        let stream = connect(path);
        let mut q = Qmp {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        };
        let greeting = q.line();
        (q, greeting)
    }

    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("a line from the monitor");
        assert!(l.ends_with("\r\n"), "QMP lines end in CR LF: {l:?}");
        l.trim_end().to_string()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("writing to the monitor");
    }

    /// Sends `request`, returns every line up to and including its reply (events first).
    pub fn call(&mut self, request: &str) -> Vec<String> {
        self.send(request.as_bytes());
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            let done = l.starts_with("{\"return\"") || l.starts_with("{\"error\"");
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    pub fn negotiated(path: &Path) -> Qmp {
        let (mut q, _) = Qmp::connect(path);
        assert_eq!(q.call(r#"{"execute":"qmp_capabilities"}"#), [r#"{"return": {}}"#]);
        q
    }
}

/// An event line without its timestamp: `{"event": ..., "data": ...}` as text after it.
pub fn event(line: &str) -> String {
    let at = line.find("\"event\"").expect("an event");
    assert!(line.starts_with("{\"timestamp\": {\"seconds\": "), "{line}");
    line[at..].to_string()
}
