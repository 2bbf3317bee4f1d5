//! The vCPU threads, owned as one value: whoever holds it holds their stop and their join, and
//! dropping it stops and joins them (a vCPU stuck in a host call is waited for up to a limit,
//! then left behind with a line that says so: the process's exit ends it).
use super::vcpu_control::{Command, VcpuControl};
use crate::sandbox::{Filters, SandboxError, ThreadKind};
use crate::vstate::vcpu::{ExitHandlers, Vcpu};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a vCPU thread gets to leave once told to exit.
pub const EXIT_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("starting a vCPU thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Sandbox(SandboxError),
}

pub struct VcpuThreads {
    control: Arc<VcpuControl>,
    threads: Vec<(u8, JoinHandle<()>)>,
}

impl VcpuThreads {
    /// Starts a thread per vCPU; each puts its seccomp filter on (with `filters`), says so, and
    /// waits, parked, for the controller's first `Run`. Returns at once, with what says when
    /// every thread is confined: the caller may start other threads meanwhile (a filter takes
    /// a while to install), and must wait for it before the first `Run`.
    pub fn spawn(
        vcpus: Vec<Vcpu>,
        handlers: &ExitHandlers,
        control: &Arc<VcpuControl>,
        filters: Option<&Filters>,
    ) -> Result<(Self, Confined), SpawnError> {
        let mut started = Self {
            control: control.clone(),
            threads: Vec::new(),
        };
        let (ready, confined) = mpsc::channel();
        for vcpu in vcpus {
            let id = vcpu.id();
            let (h, c) = (handlers.clone(), control.clone());
            let (filters, ready) = (filters.cloned(), ready.clone());
            let name = format!("vcpu{id}");
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let entered = filters.map_or(Ok(()), |f| f.enter(ThreadKind::Vcpu, &name));
                    let failed = entered.is_err();
                    let _ = ready.send(entered);
                    if !failed {
                        vcpu.run_thread(&h, &c);
                    }
                })
                .map_err(SpawnError::Thread)?;
            started.threads.push((id, thread));
        }
        drop(ready);
        let count = started.threads.len();
        Ok((started, Confined { confined, count }))
    }

    /// Tells every thread to exit and joins each within [`EXIT_LIMIT`]. Returns whether all
    /// were joined: one left behind may still touch guest memory, which must then outlive it.
    pub fn stop_and_join(&mut self) -> bool {
        self.control.set(Command::Exit);
        // Each thread says when it leaves: no polling.
        let all = self.control.wait_left(EXIT_LIMIT);
        for (id, thread) in self.threads.drain(..) {
            if thread.is_finished() || all {
                let _ = thread.join();
            } else {
                crate::report!(
                    "vCPU {id} did not stop within {} s (blocked in the host, e.g. on a hung disk); leaving it behind",
                    EXIT_LIMIT.as_secs()
                );
            }
        }
        all
    }
}

/// Says when every vCPU thread has its filter on.
pub struct Confined {
    confined: mpsc::Receiver<Result<(), SandboxError>>,
    count: usize,
}

impl Confined {
    /// Waits until every vCPU thread is confined; the first refusal is the error.
    pub fn wait(self) -> Result<(), SpawnError> {
        for _ in 0..self.count {
            // A thread that ends without a word counts as refused.
            self.confined
                .recv()
                .unwrap_or_else(|_| Err(SandboxError::Install("vcpu".into(), "the thread ended".into())))
                .map_err(SpawnError::Sandbox)?;
        }
        Ok(())
    }
}

impl Drop for VcpuThreads {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
