//! How the lifecycle controller stops and starts the vCPU threads.
//!
//! Each vCPU thread runs the guest while the command is `Run`, parks while it is `Park`, and
//! returns when it is `Exit`. The controller changes the command and kicks the threads: a
//! real-time signal whose handler sets the thread's `kvm_run.immediate_exit`, so a vCPU in
//! KVM_RUN leaves it, and one about to enter it returns at once. A thread clears that flag before
//! it reads the command, so no kick is lost between the two. While parked, a thread runs the jobs
//! the controller hands it (saving or restoring its registers), because a vCPU's fd belongs to
//! its thread.
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::vstate::vcpu::Vcpu;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    Run = 0,
    Park = 1,
    Exit = 2,
}

/// A job a parked vCPU thread runs on its own vCPU.
pub type Job = Box<dyn FnOnce(&mut Vcpu) + Send>;

/// What a job ran on every vCPU may fail with.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    NotParked(#[from] NotParked),
    #[error("vCPU {vcpu}: {message}")]
    Failed { vcpu: usize, message: String },
}

/// A vCPU thread's pthread id, for pthread_kill.
#[derive(Clone, Copy)]
struct ThreadId(libc::pthread_t);

// SAFETY: a pthread_t is an opaque id (a pointer on musl), only ever passed to pthread_kill
// while the thread is registered; it is never dereferenced here.
unsafe impl Send for ThreadId {}

struct Slots {
    /// Per vCPU: whether its thread is parked (or gone), and the jobs waiting for it.
    parked: Vec<bool>,
    jobs: Vec<VecDeque<Job>>,
    /// The threads to kick, once they run.
    threads: Vec<Option<ThreadId>>,
    /// The threads' kernel ids (as `ps` and QEMU's `query-cpus-fast` show them).
    tids: Vec<i32>,
}

pub struct VcpuControl {
    command: AtomicU8,
    slots: Mutex<Slots>,
    changed: Condvar,
}

#[derive(Debug, thiserror::Error)]
#[error("vCPU {vcpu} did not stop within {waited:?} (it is blocked outside the guest, e.g. in a host I/O)")]
pub struct NotParked {
    pub vcpu: usize,
    pub waited: Duration,
}

thread_local! {
    /// The running vCPU's `kvm_run.immediate_exit`, for the kick handler.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let flag = IMMEDIATE_EXIT.with(Cell::get);
    if !flag.is_null() {
        // SAFETY: the pointer is this thread's vCPU's kvm_run field, mapped for as long as the
        // vCPU lives; the thread clears it (`forget_kick_target`) before the vCPU is dropped.
        unsafe { std::ptr::write_volatile(flag, 1) };
    }
}

/// The signal that kicks vCPU threads out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

/// Installs the kick handler (idempotent). Errors only if the kernel refuses it.
pub fn install_kick_handler() -> std::io::Result<()> {
    register_signal_handler(kick_signal(), on_kick).map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

/// Points this thread's kick at `flag` (its vCPU's `immediate_exit`).
pub fn set_kick_target(flag: *mut u8) {
    IMMEDIATE_EXIT.with(|c| c.set(flag));
}

pub fn forget_kick_target() {
    IMMEDIATE_EXIT.with(|c| c.set(std::ptr::null_mut()));
}

impl VcpuControl {
    /// Control of `count` vCPUs, parked until the first `Run`.
    pub fn new(count: usize) -> Self {
        Self {
            command: AtomicU8::new(Command::Park as u8),
            slots: Mutex::new(Slots {
                parked: vec![false; count],
                jobs: (0..count).map(|_| VecDeque::new()).collect(),
                threads: vec![None; count],
                tids: vec![0; count],
            }),
            changed: Condvar::new(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn command(&self) -> Command {
        match self.command.load(Ordering::Acquire) {
            0 => Command::Run,
            1 => Command::Park,
            _ => Command::Exit,
        }
    }

    /// Sets the command and kicks every thread that may be in the guest. `Exit` is final.
    pub fn set(&self, command: Command) {
        let slots = self.slots();
        if self.command() == Command::Exit {
            return;
        }
        self.command.store(command as u8, Ordering::Release);
        self.changed.notify_all();
        if command != Command::Run {
            for t in slots.threads.iter().flatten() {
                // SAFETY: pthread_kill on a thread of ours that is registered until it leaves
                // (`leave` removes it under the same lock).
                unsafe { libc::pthread_kill(t.0, kick_signal()) };
            }
        }
    }

    /// Called by vCPU thread `id` when it starts.
    pub fn enter(&self, id: usize) {
        let mut slots = self.slots();
        if let Some(t) = slots.threads.get_mut(id) {
            // SAFETY: pthread_self has no preconditions.
            *t = Some(ThreadId(unsafe { libc::pthread_self() }));
        }
        if let Some(tid) = slots.tids.get_mut(id) {
            // SAFETY: gettid has no preconditions.
            *tid = unsafe { libc::gettid() };
        }
    }

    /// The vCPU threads' kernel ids, in vCPU order (0 for one not started).
    pub fn thread_ids(&self) -> Vec<i32> {
        self.slots().tids.clone()
    }

    /// Called by vCPU thread `id` when it ends, however it ends.
    pub fn leave(&self, id: usize) {
        let mut slots = self.slots();
        if let Some(t) = slots.threads.get_mut(id) {
            *t = None;
        }
        if let Some(p) = slots.parked.get_mut(id) {
            *p = true;
        }
        self.changed.notify_all();
    }

    /// For vCPU thread `id`: waits while the command is `Park`, running the jobs handed to it,
    /// and returns the command that ended the wait (`Run` or `Exit`).
    pub fn wait_to_run(&self, id: usize, vcpu: &mut Vcpu) -> Command {
        let mut slots = self.slots();
        loop {
            if let Some(job) = slots.jobs.get_mut(id).and_then(VecDeque::pop_front) {
                drop(slots);
                job(vcpu);
                slots = self.slots();
                continue;
            }
            match self.command() {
                Command::Park => {
                    if let Some(p) = slots.parked.get_mut(id) {
                        if !*p {
                            *p = true;
                            self.changed.notify_all();
                        }
                    }
                    slots = self.changed.wait(slots).unwrap_or_else(|p| p.into_inner());
                }
                other => {
                    if let Some(p) = slots.parked.get_mut(id) {
                        *p = false;
                    }
                    return other;
                }
            }
        }
    }

    /// Waits until every vCPU thread is parked (or gone), up to `limit`.
    pub fn wait_parked(&self, limit: Duration) -> Result<(), NotParked> {
        let until = Instant::now() + limit;
        let mut slots = self.slots();
        loop {
            let Some(vcpu) = slots.parked.iter().position(|p| !p) else {
                return Ok(());
            };
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NotParked { vcpu, waited: limit });
            }
            // Kick again: a thread that was between its check and KVM_RUN has the flag set, but
            // one blocked in a host call only sees a fresh signal.
            if let Some(Some(t)) = slots.threads.get(vcpu) {
                // SAFETY: as in `set`.
                unsafe { libc::pthread_kill(t.0, kick_signal()) };
            }
            let wait = left.min(Duration::from_millis(20));
            slots = self
                .changed
                .wait_timeout(slots, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until every vCPU thread has left (after `Exit`), up to `limit`, kicking the ones
    /// still inside so a blocked host call sees a fresh signal. Returns whether all left.
    pub fn wait_left(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        let mut slots = self.slots();
        loop {
            let inside: Vec<ThreadId> = slots.threads.iter().flatten().copied().collect();
            if inside.is_empty() {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            for t in inside {
                // SAFETY: as in `set`.
                unsafe { libc::pthread_kill(t.0, kick_signal()) };
            }
            slots = self
                .changed
                .wait_timeout(slots, left.min(Duration::from_millis(20)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Runs `job` on every parked vCPU thread, each on its own vCPU, and waits for all of them.
    pub fn run_on_each(
        &self,
        job: impl Fn(&mut Vcpu) -> Result<(), String> + Send + Sync + Clone + 'static,
        limit: Duration,
    ) -> Result<(), JobError> {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let mut expected = 0;
        {
            let mut slots = self.slots();
            let live: Vec<usize> = (0..slots.jobs.len())
                .filter(|&id| slots.threads.get(id).is_some_and(Option::is_some))
                .collect();
            for id in live {
                let job = job.clone();
                let done = done_tx.clone();
                if let Some(q) = slots.jobs.get_mut(id) {
                    q.push_back(Box::new(move |v| {
                        let _ = done.send((id, job(v)));
                    }));
                    expected += 1;
                }
            }
            self.changed.notify_all();
        }
        drop(done_tx);
        let until = Instant::now() + limit;
        for _ in 0..expected {
            let left = until.saturating_duration_since(Instant::now());
            match done_rx.recv_timeout(left) {
                Ok((_, Ok(()))) => {}
                Ok((vcpu, Err(message))) => return Err(JobError::Failed { vcpu, message }),
                Err(_) => {
                    let vcpu = self.slots().jobs.iter().position(|q| !q.is_empty()).unwrap_or(0);
                    return Err(NotParked { vcpu, waited: limit }.into());
                }
            }
        }
        Ok(())
    }
}
