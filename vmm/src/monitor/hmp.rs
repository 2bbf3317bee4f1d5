//! HMP, the human monitor: a banner, the `(qemu) ` prompt, one command per line, QEMU's words
//! for what it says. Typed characters are echoed (a telnet client leaves echo to the server);
//! backspace erases. A line with an unknown command says so and changes nothing.
use super::{Context, Session, PACKAGE, QEMU_VERSION};
use crate::runtime::lifecycle::{LifecycleError, RunState, VmEvent};

pub(crate) const PROMPT: &str = "(qemu) ";
/// Bytes of one line at most; a longer one is cut (a person does not type 4 KiB).
const MAX_LINE: usize = 4096;

const HELP: &str = "\
cont|c  -- resume emulation
help|? [cmd] -- show the help
info [subcommand] -- show various information about the system state
migrate [-d] uri -- migrate to URI (using -d to not wait for completion)
migrate_cancel  -- cancel the current VM migration
migrate_incoming uri -- Continue an incoming migration from an -incoming defer
migrate_set_speed value -- set maximum speed (in bytes) for migrations. Defaults to MB if no size suffix is specified, ie. B/K/M/G/T
quit|q  -- quit the emulator
stop  -- stop emulation
system_powerdown  -- send system power down event
system_reset  -- reset the system
";

const INFO_HELP: &str = "\
info cpus  -- show infos for each CPU
info kvm  -- show KVM information
info migrate  -- show migration status
info name  -- show the current VM name
info status  -- show the current VM status (running|paused)
info version  -- show the version of QEMU
";

/// What a command line printed, and whether it asked to end the VM.
pub struct HmpOutput {
    /// Lines ending in CR LF, as QEMU's monitor writes them.
    pub text: String,
    pub quit: bool,
}

fn lines(text: &str) -> String {
    text.lines().map(|l| format!("{l}\r\n")).collect()
}

fn done(result: Result<(), LifecycleError>) -> String {
    match result {
        Ok(()) => String::new(),
        Err(e) => format!("Error: {e}\r\n"),
    }
}

fn status(state: RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Paused => "paused",
        RunState::Prelaunch => "paused (prelaunch)",
        RunState::InMigrate => "paused (inmigrate)",
        RunState::PostMigrate => "paused (postmigrate)",
        RunState::Shutdown | RunState::Ended => "paused (shutdown)",
    }
}

fn info(what: &str, ctx: &mut Context) -> String {
    match what {
        "" => lines(INFO_HELP),
        "status" => format!("VM status: {}\r\n", status(ctx.controller.state())),
        "version" => {
            let (major, minor, micro) = QEMU_VERSION;
            format!("{major}.{minor}.{micro} ({PACKAGE})\r\n")
        }
        "name" => ctx
            .facts
            .name
            .as_ref()
            .map_or(String::new(), |n| format!("{n}\r\n")),
        "kvm" => "kvm support: enabled\r\n".into(),
        "migrate" => super::migration::info_migrate(ctx.controller.migration_info()),
        "cpus" => ctx
            .controller
            .vcpu_thread_ids()
            .iter()
            .enumerate()
            .map(|(i, tid)| {
                let current = if i == 0 { '*' } else { ' ' };
                format!("{current} CPU #{i}: thread_id={tid}\r\n")
            })
            .collect(),
        other => format!("unknown command: 'info {other}'\r\n"),
    }
}

/// Runs one command line (also `human-monitor-command`'s).
pub fn run_line(line: &str, ctx: &mut Context) -> HmpOutput {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else {
        return HmpOutput {
            text: String::new(),
            quit: false,
        };
    };
    let arg = words.next().unwrap_or("");
    let rest = line.trim_start().get(cmd.len()..).unwrap_or("");
    if let Some(text) = super::migration::hmp(cmd, rest, ctx) {
        return HmpOutput { text, quit: false };
    }
    let text = match cmd {
        "help" | "?" if arg == "info" => lines(INFO_HELP),
        "help" | "?" => lines(HELP),
        "info" => info(arg, ctx),
        "stop" => done(ctx.controller.pause()),
        "cont" | "c" => done(ctx.controller.resume()),
        "system_reset" => done(ctx.controller.reset()),
        "system_powerdown" => done(ctx.controller.powerdown()),
        "quit" | "q" => {
            return HmpOutput {
                text: String::new(),
                quit: true,
            }
        }
        other => format!("unknown command: '{other}'\r\n"),
    };
    HmpOutput { text, quit: false }
}

pub struct HmpSession {
    line: Vec<u8>,
    quit: bool,
    /// The previous byte was a CR: a following LF or NUL (telnet's CR NUL) ends nothing more.
    after_cr: bool,
}

impl HmpSession {
    pub fn new() -> Self {
        Self {
            line: Vec::new(),
            quit: false,
            after_cr: false,
        }
    }

    fn enter(&mut self, ctx: &mut Context, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        let result = run_line(&line, ctx);
        out.extend_from_slice(result.text.as_bytes());
        if result.quit {
            self.quit = true;
            return;
        }
        out.extend_from_slice(PROMPT.as_bytes());
    }
}

impl Session for HmpSession {
    fn greeting(&mut self) -> Vec<u8> {
        let (major, minor, micro) = QEMU_VERSION;
        format!("QEMU {major}.{minor}.{micro} monitor - type 'help' for more information\r\n{PROMPT}")
            .into_bytes()
    }

    fn input(&mut self, bytes: &[u8], ctx: &mut Context) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.quit {
                break;
            }
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                b'\r' => {
                    self.after_cr = true;
                    self.enter(ctx, &mut out);
                }
                b'\n' | 0 if after_cr => {}
                b'\n' => self.enter(ctx, &mut out),
                0x08 | 0x7F if self.line.pop().is_some() => out.extend_from_slice(b"\x08 \x08"),
                b if b >= 0x20 && self.line.len() < MAX_LINE => {
                    self.line.push(b);
                    out.push(b);
                }
                _ => {}
            }
        }
        out
    }

    fn event(&mut self, _event: &VmEvent) -> Vec<u8> {
        Vec::new()
    }

    fn quit_requested(&self) -> bool {
        self.quit
    }
}
