//! seccomp filters, one per kind of thread, on by default (`-sandbox off` is the only way
//! without). Each thread puts its own filter on before the first guest instruction and tells
//! whoever started it; from then on it can make only the calls its kind makes, with the
//! arguments that matter checked. A refused call ends the process with one line (`report`).
//! Filters are per thread, never process-wide: an application that embeds a VM keeps its own
//! threads unfiltered.
mod allow;
pub mod broker;
mod ioctls;
mod names;
mod report;

pub use report::remember_terminal;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The kinds of thread a VM runs, each with its own allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// A vCPU: KVM_RUN, and the devices it serves on its exits (block I/O, net transmit, rng,
    /// vhost activation), and its state put back on a reset.
    Vcpu,
    /// The event loop: host descriptors, monitors, output drains, the RTC's timer, lifecycle.
    Events,
    /// The thread that started the VM, when it asks to be confined (the `minnow` binary's main
    /// thread does): it waits for the end, joins, writes reports and removes the pid file.
    Main,
}

impl ThreadKind {
    pub const ALL: [ThreadKind; 3] = [ThreadKind::Vcpu, ThreadKind::Events, ThreadKind::Main];
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("building the {0:?} thread's seccomp filter: {1}")]
    Build(ThreadKind, String),
    #[error("installing the seccomp filter of thread {0}: {1}")]
    Install(String, String),
    #[error("installing the SIGSYS handler that reports refused calls: {0}")]
    Handler(std::io::Error),
}

/// The compiled filters, shared by the threads that install them.
#[derive(Clone)]
pub struct Filters {
    vcpu: Arc<BpfProgram>,
    events: Arc<BpfProgram>,
    main: Arc<BpfProgram>,
    no_open: Arc<BpfProgram>,
    /// Tests only: the kind of thread that makes a forbidden call once confined.
    #[cfg(feature = "sandbox-test")]
    violate: Option<ThreadKind>,
}

impl Filters {
    /// Compiles every kind's filter and installs the handler that reports refusals. `kick` is
    /// the vCPU kick signal.
    pub fn new(kick: i32) -> Result<Self, SandboxError> {
        report::install_handler().map_err(SandboxError::Handler)?;
        Ok(Self {
            vcpu: Arc::new(compile(ThreadKind::Vcpu, kick)?),
            events: Arc::new(compile(ThreadKind::Events, kick)?),
            main: Arc::new(compile(ThreadKind::Main, kick)?),
            no_open: Arc::new(no_open_program()?),
            #[cfg(feature = "sandbox-test")]
            violate: None,
        })
    }

    /// Tests only: once confined, threads of `kind` call getppid, which no filter allows.
    #[cfg(feature = "sandbox-test")]
    pub fn violating(mut self, kind: Option<ThreadKind>) -> Self {
        self.violate = kind;
        self
    }

    /// Puts `kind`'s filter on the calling thread, named `name` in reports. Sets
    /// NO_NEW_PRIVS (seccompiler does, as the kernel requires for an unprivileged filter).
    pub fn enter(&self, kind: ThreadKind, name: &str) -> Result<(), SandboxError> {
        report::name_this_thread(name);
        let program = match kind {
            ThreadKind::Vcpu => &self.vcpu,
            ThreadKind::Events => &self.events,
            ThreadKind::Main => &self.main,
        };
        let install = |p: &BpfProgram| {
            seccompiler::apply_filter(p).map_err(|e| SandboxError::Install(name.into(), e.to_string()))
        };
        // The answer-EACCES filter first: filters stack, the strictest action wins, so an open
        // allowed by the list below is answered EACCES, and anything the list refuses traps.
        install(&self.no_open)?;
        install(program)?;
        #[cfg(feature = "sandbox-test")]
        if self.violate == Some(kind) {
            // SAFETY: getppid has no arguments and touches no memory; the filter refuses it.
            unsafe { libc::getppid() };
        }
        Ok(())
    }
}

fn arch() -> TargetArch {
    TargetArch::x86_64
}

fn compile(kind: ThreadKind, kick: i32) -> Result<BpfProgram, SandboxError> {
    let build = |e: seccompiler::BackendError| SandboxError::Build(kind, e.to_string());
    let filter = SeccompFilter::new(
        allow::allow_list(kind, kick).into_rules(),
        SeccompAction::Trap,
        SeccompAction::Allow,
        arch(),
    )
    .map_err(build)?;
    BpfProgram::try_from(filter).map_err(build)
}

/// A filter that answers `open` and `openat` with EACCES and lets everything else through to
/// the allow-list: nothing opens a file once the guest runs (glibc's allocator may try to read
/// a /proc file once, and copes).
fn no_open_program() -> Result<BpfProgram, SandboxError> {
    let rules = BTreeMap::from([(libc::SYS_open, vec![]), (libc::SYS_openat, vec![])]);
    let build = |e: seccompiler::BackendError| SandboxError::Build(ThreadKind::Events, e.to_string());
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch(),
    )
    .map_err(build)?;
    BpfProgram::try_from(filter).map_err(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_compiles() {
        let kick = libc::SIGRTMIN();
        for kind in ThreadKind::ALL {
            let program = compile(kind, kick).expect("compiles");
            // A classic BPF program holds at most 4096 instructions.
            assert!(program.len() < 4096, "{kind:?}: {} instructions", program.len());
        }
        assert!(!no_open_program().expect("compiles").is_empty());
    }

    /// A thread under the events filter can still do what it must, and an open is answered
    /// EACCES instead of ending the process.
    #[test]
    fn a_filtered_thread_keeps_working_and_cannot_open_files() {
        let filters = Filters::new(libc::SIGRTMIN()).expect("filters");
        let seen = std::thread::spawn(move || {
            filters
                .enter(ThreadKind::Events, "test-events")
                .expect("installed");
            let opened = std::fs::File::open("/etc/hostname").map_err(|e| e.raw_os_error());
            let mut buf = vec![0u8; 1 << 20];
            buf[12345] = 1;
            (opened.err(), buf.iter().map(|b| u64::from(*b)).sum::<u64>())
        })
        .join()
        .expect("the thread ends");
        assert_eq!(seen, (Some(Some(libc::EACCES)), 1));
    }
}
