//! `qmp-call SOCKET COMMAND... [--until EVENT]`: a QMP client small enough for the nested KVM
//! host's initramfs, where Python's qemu.qmp is not. Connects to a Unix socket, reads the
//! greeting, negotiates, then sends each COMMAND (a command name, or a whole JSON object) and
//! prints every line the monitor sends until that command's reply, events included. With
//! `--until EVENT` it then waits (up to 60 s) for that event, printing it. Exits 1 on an error
//! reply or a closed connection, 2 on a usage mistake.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn request(command: &str) -> String {
    if command.starts_with('{') {
        command.to_string()
    } else {
        format!("{{\"execute\": \"{command}\"}}")
    }
}

/// How long `--until` waits for its event, in all.
const UNTIL: Duration = Duration::from_secs(60);

struct Monitor {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events already read (while waiting for a reply), for `--until`.
    events: Vec<String>,
}

impl Monitor {
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("the monitor closed the connection".into()),
            Ok(_) => {
                print!("{line}");
                Ok(line)
            }
            Err(e) => Err(format!("reading from the monitor: {e}")),
        }
    }

    /// Sends `command`; prints what comes back up to its reply.
    fn call(&mut self, command: &str) -> Result<(), String> {
        self.writer
            .write_all(request(command).as_bytes())
            .map_err(|e| format!("writing to the monitor: {e}"))?;
        loop {
            let line = self.line()?;
            if line.starts_with("{\"return\"") {
                return Ok(());
            }
            if line.starts_with("{\"error\"") {
                return Err(format!("{command}: {}", line.trim()));
            }
            self.events.push(line);
        }
    }

    /// Waits for `event`, which may have come already, for [`UNTIL`] at most.
    fn until(&mut self, event: &str) -> Result<(), String> {
        let wanted = format!("\"event\": \"{event}\"");
        if self.events.iter().any(|e| e.contains(&wanted)) {
            return Ok(());
        }
        let deadline = Instant::now() + UNTIL;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no {event} event within {} s", UNTIL.as_secs()));
            }
            let timeout = self.writer.set_read_timeout(Some(left));
            timeout.map_err(|e| e.to_string())?;
            if self.line()?.contains(&wanted) {
                return Ok(());
            }
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (path, rest) = args.split_first().ok_or("no socket")?;
    let stream = UnixStream::connect(path).map_err(|e| format!("connecting to {path}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut monitor = Monitor {
        reader,
        writer: stream,
        events: Vec::new(),
    };
    monitor.line()?;
    monitor.call("qmp_capabilities")?;
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--until" => monitor.until(words.next().ok_or(USAGE)?)?,
            command => monitor.call(command)?,
        }
    }
    Ok(())
}

const USAGE: &str = "usage: qmp-call SOCKET COMMAND... [--until EVENT]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.last().is_some_and(|a| a == "--until") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qmp-call: {e}");
            ExitCode::from(1)
        }
    }
}
