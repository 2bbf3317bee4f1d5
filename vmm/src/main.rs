//! `minnow`: QEMU's microvm command line over the Minnow library. Prints one line on error and
//! exits non-zero; otherwise exits with the status the guest's way of stopping implies.
use minnow_vmm::config::{self, Config, Parsed, TimelineOutput};
use minnow_vmm::daemon::{self, Daemon, Forked};
use minnow_vmm::messages::{self, Style};
use minnow_vmm::output_file::{self, Existing};
use minnow_vmm::pidfile::PidFile;
use minnow_vmm::runtime::signals::Termination;
use minnow_vmm::timeline::{self, Timeline};
use minnow_vmm::{report, ExitReason, StartOptions, Vm};
use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

fn main() -> ExitCode {
    // The timeline's "exec": as early as the process gets.
    let timeline = Arc::new(Timeline::new(Instant::now()));
    let config = match config::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(c)) => *c,
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("minnow: {e}");
            return ExitCode::from(1);
        }
    };
    messages::set_style(Style {
        timestamps: config.log.timestamps,
        guest_name: config.name.clone().filter(|_| config.log.guest_name),
    });
    let daemon = match detach(&config) {
        Ok(Some(Forked::Parent { ready })) => return ExitCode::from(u8::from(!ready)),
        Ok(Some(Forked::Child(d))) => Some(d),
        Ok(None) => None,
        Err(e) => {
            report!("-daemonize: {e}");
            return ExitCode::from(1);
        }
    };
    let pidfile = match config.pidfile.as_deref().map(PidFile::create).transpose() {
        Ok(p) => p,
        Err(e) => {
            report!("{e}");
            return ExitCode::from(1);
        }
    };
    // Opened now: once the VM runs, this thread may not open files.
    let timeline_file = match open_timeline(&config) {
        Ok(f) => f,
        Err(e) => {
            report!("{e}");
            return ExitCode::from(1);
        }
    };
    let status = run(&config, &timeline, daemon);
    drop(pidfile);
    if let Err(e) = report_timeline(&timeline, timeline_file) {
        report!("{e}");
        return ExitCode::from(1);
    }
    ExitCode::from(status)
}

/// With `-daemonize`, forks (the process has one thread yet). Without, ties the VM's life to
/// whoever started it: no orphaned guests.
fn detach(config: &Config) -> std::io::Result<Option<Forked>> {
    if config.daemonize {
        // SAFETY: nothing has started a thread yet: the command line is parsed, nothing else.
        return unsafe { daemon::daemonize() }.map(Some);
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    Ok(None)
}

/// Runs the VM to its end; returns the exit status.
fn run(config: &Config, timeline: &Arc<Timeline>, daemon: Option<Daemon>) -> u8 {
    let termination = match Termination::install() {
        Ok(t) => t,
        Err(e) => {
            report!("installing the SIGTERM, SIGINT and SIGHUP handlers: {e}");
            return 1;
        }
    };
    let options = StartOptions {
        timeline: timeline.clone(),
        termination: Some(termination),
    };
    match Vm::start_with(config, options) {
        Ok(vm) => {
            if let Some(Err(e)) = daemon.map(Daemon::ready) {
                report!("-daemonize: detaching: {e}; stopping the VM");
                drop(vm);
                return 1;
            }
            if let Err(e) = vm.confine_caller("main") {
                report!("{e}; stopping the VM");
                drop(vm);
                return 1;
            }
            let reason = vm.wait();
            if reason == ExitReason::TripleFault {
                report!("the guest triple-faulted (a vCPU shut down); stopping");
            }
            reason.status()
        }
        Err(e) => {
            report!("{e}");
            1
        }
    }
}

/// Where `-boot-timeline` writes: stderr (`None` here) or a file opened before the VM runs.
fn open_timeline(config: &Config) -> Result<Option<Option<File>>, String> {
    match &config.boot_timeline {
        None => Ok(None),
        Some(TimelineOutput::Stderr) => Ok(Some(None)),
        Some(TimelineOutput::Json(path)) => output_file::create(path, Existing::Truncate, 0o644)
            .map(|f| Some(Some(f)))
            .map_err(|e| format!("opening the boot timeline {}: {e}", path.display())),
    }
}

fn report_timeline(timeline: &Timeline, output: Option<Option<File>>) -> Result<(), String> {
    match output {
        Some(None) => {
            eprint!("{}", timeline::text(&timeline.phases()));
            eprint!("{}", timeline::guest_events_text(&timeline.guest_events()));
        }
        Some(Some(mut file)) => file
            .write_all(timeline::json(&timeline.phases()).as_bytes())
            .map_err(|e| format!("writing the boot timeline: {e}"))?,
        None => {}
    }
    Ok(())
}
