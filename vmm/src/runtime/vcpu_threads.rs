//! The vCPU threads, owned as one value: whoever holds it holds their stop and their join, and
//! dropping it stops and joins them (a vCPU stuck in a host call is waited for up to a limit,
//! then left behind with a line that says so: the process's exit ends it).
use super::vcpu_control::{kick_signal, Command, VcpuControl};
use crate::vstate::vcpu::{ExitHandlers, Vcpu};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::Killable;

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
        let mut all = true;
        self.control.set(Command::Exit);
        let until = Instant::now() + EXIT_LIMIT;
        for (id, thread) in self.threads.drain(..) {
            while !thread.is_finished() && Instant::now() < until {
                // A thread blocked in a host call sees only a fresh signal.
                let _ = thread.kill(kick_signal());
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                all = false;
                eprintln!(
                    "minnow: vCPU {id} did not stop within {} s (blocked in the host, e.g. on a hung disk); leaving it behind",
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
