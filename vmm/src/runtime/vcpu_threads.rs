//! The vCPU threads, owned as one value: whoever holds it holds their stop and their join, and
//! dropping it stops and joins them (a vCPU stuck in a host call is waited for up to a limit,
//! then left behind with a line that says so: the process's exit ends it).
use super::vcpu_control::{Command, VcpuControl};
use crate::vstate::vcpu::{ExitHandlers, Vcpu};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a vCPU thread gets to leave once told to exit.
pub const EXIT_LIMIT: Duration = Duration::from_secs(5);

pub struct VcpuThreads {
    control: Arc<VcpuControl>,
    threads: Vec<(u8, JoinHandle<()>)>,
}

impl VcpuThreads {
    /// Starts a thread per vCPU; each waits, parked, for the controller's first `Run`.
    pub fn spawn(
        vcpus: Vec<Vcpu>,
        handlers: &ExitHandlers,
        control: &Arc<VcpuControl>,
    ) -> std::io::Result<Self> {
        let mut started = Self {
            control: control.clone(),
            threads: Vec::new(),
        };
        for vcpu in vcpus {
            let id = vcpu.id();
            let (h, c) = (handlers.clone(), control.clone());
            let thread = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn(move || vcpu.run_thread(&h, &c))?;
            started.threads.push((id, thread));
        }
        Ok(started)
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

impl Drop for VcpuThreads {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
