//! `minnow`: QEMU's microvm command line over the Minnow library. Prints one line on error and
//! exits non-zero; otherwise exits with the status the guest's way of stopping implies.
use minnow_vmm::config::{self, TimelineOutput, HELP};
use minnow_vmm::timeline::{self, Timeline};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

fn main() -> ExitCode {
    // The timeline's "exec": as early as the process gets.
    let timeline = Arc::new(Timeline::new(Instant::now()));
    let config = match config::parse(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("minnow: {e}");
            return ExitCode::from(1);
        }
    };
    // The VM dies with whoever started it: no orphaned guests.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if let Some(path) = &config.pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            eprintln!("minnow: writing the pid file {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    let status = match minnow_vmm::run_with_timeline(&config, &timeline) {
        Ok(reason) => {
            if reason == minnow_vmm::ExitReason::TripleFault {
                eprintln!("minnow: the guest triple-faulted (a vCPU shut down); stopping");
            }
            reason.status()
        }
        Err(e) => {
            eprintln!("minnow: {e}");
            1
        }
    };
    if let Some(path) = &config.pidfile {
        let _ = std::fs::remove_file(path);
    }
    match &config.boot_timeline {
        Some(TimelineOutput::Stderr) => eprint!("{}", timeline::text(&timeline.phases())),
        Some(TimelineOutput::Json(path)) => {
            if let Err(e) = std::fs::write(path, timeline::json(&timeline.phases())) {
                eprintln!("minnow: writing the boot timeline {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
        None => {}
    }
    ExitCode::from(status)
}
