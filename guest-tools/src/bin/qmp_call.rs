//! `qmp-call SOCKET COMMAND... [--until EVENT]`: a QMP client small enough for the nested KVM
//! host's initramfs, where Python's qemu.qmp is not. Connects to a Unix socket, reads the
//! greeting, negotiates, then sends each COMMAND (a command name, or a whole JSON object) and
//! prints every line the monitor sends until that command's reply, events included. With
//! `--until EVENT` it then waits (up to 60 s) for that event, printing it. Exits 1 on an error
//! reply or a closed connection, 2 on a usage mistake.
use minnow_guest_tools::qmp::Qmp;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long each read, and `--until`, waits.
const WAIT: Duration = Duration::from_secs(60);

fn run(args: &[String]) -> Result<(), String> {
    let (path, rest) = args.split_first().ok_or("no socket")?;
    let mut monitor = Qmp::connect(Path::new(path), Duration::ZERO, WAIT, || false, |l| print!("{l}"))?;
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--until" => monitor.until(words.next().ok_or(USAGE)?, WAIT)?,
            command => monitor.reply(command).map(drop)?,
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
