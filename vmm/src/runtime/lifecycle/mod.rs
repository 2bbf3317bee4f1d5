//! The lifecycle controller: the one place that decides what a VM does next. It runs on the
//! event loop thread and takes, in order, what the guest asked for (power off, reset, ...: the
//! vCPUs are already parked when it looks), what the embedding application or a monitor asks for
//! (pause, resume, reset, power button, quit), and the process's termination signals.
//!
//! Every end goes through [`Controller::finish`]: the vCPU threads stop and are joined, every
//! writable disk is flushed and synced, and guest output still waiting for its reader is written
//! out (for up to [`OUTPUT_LIMIT`]).
use super::output::GuestOutput;
use super::signals::Termination;
use super::vcpu_control::{Command, JobError, VcpuControl};
use super::vcpu_threads::VcpuThreads;
use crate::exit::{ExitReason, ExitSignal};
use crate::machine::MachineCore;
use crate::sandbox::broker::Broker;
use crate::timeline::{Event, Timeline};
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod migration;
pub use migration::{MigrationInfo, Restored};
use vmm_sys_util::eventfd::EventFd;

/// How long the vCPUs get to park when the VM is paused or reset.
pub const PARK_LIMIT: Duration = Duration::from_secs(5);
/// How long guest output may wait for a slow reader when the VM ends.
pub const OUTPUT_LIMIT: Duration = Duration::from_secs(2);

/// Where a VM is in its life, with QEMU's names (`query-status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Built, not started yet (`-S`).
    Prelaunch,
    Running,
    /// Stopped by a request (`stop`).
    Paused,
    /// The guest shut down and the VM waits (`-no-shutdown`).
    Shutdown,
    /// `-incoming defer`: waiting for its state (`migrate-incoming`).
    InMigrate,
    /// Stopped by `migrate`, which saved it; `cont` runs it again.
    PostMigrate,
    /// Over: the VM stopped for good.
    Ended,
}

impl RunState {
    /// QEMU's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prelaunch => "prelaunch",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
            Self::InMigrate => "inmigrate",
            Self::PostMigrate => "postmigrate",
            Self::Ended => "shutdown",
        }
    }
}

/// What happened to a VM, as QEMU's QMP events say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmEvent {
    /// The vCPUs stopped (`stop`, or a guest shut down under `-no-shutdown`).
    Stop,
    /// They run again (`cont`).
    Resume,
    /// The machine was reset: by the guest, or by a request (`reason`, QEMU's words).
    Reset { guest: bool, reason: &'static str },
    /// Someone pressed the ACPI power button.
    Powerdown,
    /// The VM shut down: the guest did, or the host ended it.
    Shutdown { guest: bool, reason: &'static str },
    /// A save or restore changed status (QEMU's names: setup, active, completed, failed).
    Migration { status: &'static str },
    /// A pass over guest RAM began (a snapshot makes one).
    MigrationPass { pass: u32 },
}

/// Hears a VM's events (the monitors do).
pub trait EventListener: Send + Sync {
    fn on_event(&self, event: &VmEvent);
}

/// What an application or a monitor asks a VM to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Pause,
    Resume,
    Reset,
    /// Press the ACPI power button.
    Powerdown,
    Quit,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LifecycleError {
    #[error("the VM has ended")]
    Ended,
    #[error("{0}")]
    Stuck(String),
    #[error("resetting the machine: {0}")]
    Reset(String),
    #[error("this machine has no ACPI power button (acpi=off): nothing can ask the guest to power off")]
    NoPowerButton,
    /// QEMU's words for `cont` after the guest shut down under `-no-shutdown`.
    #[error("Resetting the Virtual Machine is required")]
    NeedsReset,
    #[error("the VM is waiting for its incoming state (migrate-incoming)")]
    InMigrate,
}

/// QEMU's SHUTDOWN event for an end: (guest, reason); none for an isa-debug-exit write, which
/// ends QEMU without one.
fn shutdown_reason(reason: ExitReason) -> Option<(bool, &'static str)> {
    Some(match reason {
        ExitReason::PowerOff => (true, "guest-shutdown"),
        ExitReason::Reset | ExitReason::TripleFault => (true, "guest-reset"),
        ExitReason::Quit => (false, "host-qmp-quit"),
        ExitReason::Signal(_) => (false, "host-signal"),
        ExitReason::Failure | ExitReason::VmFailed => (false, "host-error"),
        ExitReason::DebugExit(_) => return None,
    })
}

/// Where a request's answer goes.
pub type Answer = Sender<Result<(), LifecycleError>>;

/// Requests waiting for the controller, and whether it still takes any.
struct Queue {
    waiting: VecDeque<(Request, Answer)>,
    closed: bool,
}

/// Requests from other threads, each with the channel its answer goes back on.
pub struct Requests {
    queue: Mutex<Queue>,
    event: EventFd,
}

impl Requests {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                closed: false,
            }),
            event: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `request`; a VM that has ended answers at once.
    pub fn send(&self, request: Request, answer: Answer) {
        let mut q = self.queue();
        if q.closed {
            let _ = answer.send(Err(LifecycleError::Ended));
            return;
        }
        q.waiting.push_back((request, answer));
        let _ = self.event.write(1);
    }

    fn take(&self) -> Option<(Request, Answer)> {
        self.queue().waiting.pop_front()
    }

    /// The VM ended: what waits is answered so, and nothing more is taken.
    fn close(&self) {
        let mut q = self.queue();
        q.closed = true;
        for (_, answer) in q.waiting.drain(..) {
            let _ = answer.send(Err(LifecycleError::Ended));
        }
    }
}

pub struct Controller {
    // Field order is drop order: the threads stop before the machine they run goes.
    threads: VcpuThreads,
    core: Option<MachineCore>,
    control: Arc<VcpuControl>,
    exit: ExitSignal,
    requests: Arc<Requests>,
    termination: Option<Termination>,
    state: Arc<Mutex<RunState>>,
    ended: Option<ExitReason>,
    no_reboot: bool,
    no_shutdown: bool,
    timeline: Arc<Timeline>,
    listeners: Vec<Arc<dyn EventListener>>,
    /// Opens files and runs commands for `migrate`, which the filters forbid this thread.
    broker: Option<Broker>,
    migration: migration::MigrationInfo,
    /// The `events` migration capability: `MIGRATION` events are sent.
    migration_events: bool,
    /// `-S`: a VM restored by `migrate-incoming` waits for `cont`.
    start_paused: bool,
}

/// What the controller is built from.
pub struct ControllerParts {
    pub threads: VcpuThreads,
    pub core: MachineCore,
    pub control: Arc<VcpuControl>,
    pub exit: ExitSignal,
    pub requests: Arc<Requests>,
    pub termination: Option<Termination>,
    pub state: Arc<Mutex<RunState>>,
    pub no_reboot: bool,
    pub no_shutdown: bool,
    pub timeline: Arc<Timeline>,
    pub broker: Option<Broker>,
    pub start_paused: bool,
}

impl Controller {
    pub fn new(p: ControllerParts) -> Self {
        Self {
            threads: p.threads,
            core: Some(p.core),
            control: p.control,
            exit: p.exit,
            requests: p.requests,
            termination: p.termination,
            state: p.state,
            ended: None,
            no_reboot: p.no_reboot,
            no_shutdown: p.no_shutdown,
            timeline: p.timeline,
            listeners: Vec::new(),
            broker: p.broker,
            migration: migration::MigrationInfo::default(),
            migration_events: false,
            start_paused: p.start_paused,
        }
    }

    /// Tells `listener` of every event from now on.
    pub fn listen(&mut self, listener: Arc<dyn EventListener>) {
        self.listeners.push(listener);
    }

    fn emit(&self, event: VmEvent) {
        for l in &self.listeners {
            l.on_event(&event);
        }
    }

    /// The VM generation ID's bytes, if the machine has one (`query-vm-generation-id`).
    pub fn generation_id(&self) -> Option<[u8; 16]> {
        self.core.as_ref().and_then(MachineCore::generation_id)
    }

    /// The vCPU threads' ids, in vCPU order (`query-cpus-fast`).
    pub fn vcpu_thread_ids(&self) -> Vec<i32> {
        self.control.thread_ids()
    }

    pub fn state(&self) -> RunState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: RunState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// Why the VM ended, once it has.
    pub fn ended(&self) -> Option<ExitReason> {
        self.ended
    }

    fn park(&self) -> Result<(), LifecycleError> {
        self.control.set(Command::Park);
        self.control
            .wait_parked(PARK_LIMIT)
            .map_err(|e| LifecycleError::Stuck(e.to_string()))
    }

    fn set_devices_paused(&self, paused: bool) {
        if let Some(core) = &self.core {
            core.set_devices_paused(paused);
        }
    }

    fn set_clock_paused(&self, paused: bool) {
        if let Some(core) = &self.core {
            core.set_clock_paused(paused);
        }
    }

    /// Stops every vCPU (`stop`): no guest instruction runs, and the devices take nothing from
    /// the host until [`Controller::resume`].
    pub fn pause(&mut self) -> Result<(), LifecycleError> {
        match self.state() {
            RunState::Running => {
                self.park()?;
                self.set_devices_paused(true);
                self.set_clock_paused(true);
                self.set_state(RunState::Paused);
                self.emit(VmEvent::Stop);
                Ok(())
            }
            RunState::Ended => Err(LifecycleError::Ended),
            _ => Ok(()),
        }
    }

    /// Runs the vCPUs again (`cont`), or for the first time.
    pub fn resume(&mut self) -> Result<(), LifecycleError> {
        match self.state() {
            RunState::Ended => Err(LifecycleError::Ended),
            RunState::Shutdown => Err(LifecycleError::NeedsReset),
            RunState::InMigrate => Err(LifecycleError::InMigrate),
            RunState::Running => Ok(()),
            _ => {
                self.set_devices_paused(false);
                self.set_clock_paused(false);
                self.set_state(RunState::Running);
                self.emit(VmEvent::Resume);
                self.control.set(Command::Run);
                Ok(())
            }
        }
    }

    /// Resets the machine in place (`system_reset`, or the guest's own reset): devices and
    /// vCPUs to their power-on state, the firmware's ROM (or `-bios none`'s kernel) loaded
    /// again from memory, nothing reopened. A running VM runs on; a paused one stays paused.
    pub fn reset(&mut self) -> Result<(), LifecycleError> {
        self.reset_for(false)
    }

    /// [`Controller::reset`], for the guest or for a request (the RESET event says which).
    fn reset_for(&mut self, guest: bool) -> Result<(), LifecycleError> {
        let state = self.state();
        if state == RunState::Ended {
            return Err(LifecycleError::Ended);
        }
        self.park()?;
        let core = self.core.as_ref().ok_or(LifecycleError::Ended)?;
        let bsp_entry = core
            .reset_devices_and_memory()
            .map_err(|e| LifecycleError::Reset(e.to_string()))?;
        self.control
            .run_on_each(
                move |vcpu| {
                    vcpu.reset_to_power_on(bsp_entry.as_ref())
                        .map_err(|e| e.to_string())
                },
                PARK_LIMIT,
            )
            .map_err(|e: JobError| LifecycleError::Reset(e.to_string()))?;
        let reason = if guest {
            "guest-reset"
        } else {
            "host-qmp-system-reset"
        };
        self.emit(VmEvent::Reset { guest, reason });
        match state {
            RunState::Running => self.control.set(Command::Run),
            // As QEMU: a reset after a shutdown leaves the VM ready for `cont`.
            RunState::Shutdown => self.set_state(RunState::Prelaunch),
            _ => {}
        }
        Ok(())
    }

    /// Presses the ACPI power button (`system_powerdown`): the guest decides what to do.
    pub fn powerdown(&mut self) -> Result<(), LifecycleError> {
        if self.state() == RunState::Ended {
            return Err(LifecycleError::Ended);
        }
        match self.core.as_ref().and_then(MachineCore::ged) {
            Some(ged) => {
                ged.lock().unwrap_or_else(|p| p.into_inner()).power_button();
                self.emit(VmEvent::Powerdown);
                Ok(())
            }
            None => Err(LifecycleError::NoPowerButton),
        }
    }

    /// Ends the VM: stops and joins the vCPU threads, flushes and syncs the disks, writes out
    /// what the guest said. Idempotent: the first reason stays.
    pub fn finish(&mut self, reason: ExitReason) {
        if self.ended.is_some() {
            return;
        }
        if let Some((guest, reason)) = shutdown_reason(reason) {
            self.emit(VmEvent::Shutdown { guest, reason });
        }
        let all_joined = self.threads.stop_and_join();
        if let Some(core) = self.core.take() {
            core.shutdown(OUTPUT_LIMIT);
            if all_joined {
                drop(core);
            } else {
                // A vCPU thread still blocked in the host may touch guest memory when it wakes:
                // the memory must outlive it. The process's exit frees it.
                std::mem::forget(core);
            }
        }
        self.timeline.mark(Event::Exit);
        self.ended = Some(reason);
        self.set_state(RunState::Ended);
        self.requests.close();
    }

    /// What the guest asked for, the vCPUs already parked.
    fn on_guest(&mut self, reason: ExitReason) {
        if self.ended.is_some() {
            return;
        }
        match reason {
            ExitReason::Reset if !self.no_reboot => {
                if let Err(e) = self.reset_for(true) {
                    crate::report!("the guest reset the machine, but {e}");
                    self.finish(ExitReason::VmFailed);
                }
            }
            // -no-shutdown: the guest's end stops the VM, which waits for its monitors.
            ExitReason::PowerOff | ExitReason::Reset if self.no_shutdown => {
                let reason = if reason == ExitReason::Reset {
                    "guest-reset"
                } else {
                    "guest-shutdown"
                };
                self.set_devices_paused(true);
                self.set_state(RunState::Shutdown);
                self.emit(VmEvent::Shutdown { guest: true, reason });
                self.emit(VmEvent::Stop);
            }
            other => self.finish(other),
        }
    }

    /// Carries out `request`.
    pub fn handle(&mut self, request: Request) -> Result<(), LifecycleError> {
        match request {
            Request::Pause => self.pause(),
            Request::Resume => self.resume(),
            Request::Reset => self.reset(),
            Request::Powerdown => self.powerdown(),
            Request::Quit => {
                self.finish(ExitReason::Quit);
                Ok(())
            }
        }
    }

    /// The outputs, for their drains on the event loop.
    pub fn outputs(&self) -> Vec<GuestOutput> {
        self.core.as_ref().map(|c| c.outputs.clone()).unwrap_or_default()
    }
}

impl MutEventSubscriber for Controller {
    fn init(&mut self, ops: &mut EventOps) {
        let mut fds = vec![self.exit.event().as_raw_fd(), self.requests.event.as_raw_fd()];
        fds.extend(self.termination.as_ref().map(|t| t.event().as_raw_fd()));
        for fd in fds {
            if let Err(e) = ops.add(Events::new_raw(fd, EventSet::IN)) {
                crate::report!("the VM's controller cannot wait on its events: {e:?}");
                self.finish(ExitReason::Failure);
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.exit.event().as_raw_fd() {
            let _ = self.exit.event().read();
            while let Some(reason) = self.exit.take() {
                self.on_guest(reason);
            }
        } else if fd == self.requests.event.as_raw_fd() {
            let _ = self.requests.event.read();
            while let Some((request, answer)) = self.requests.take() {
                let _ = answer.send(self.handle(request));
            }
            // A request that ended the VM leaves the rest to `close`'s answer.
        } else if let Some(sig) = self.termination.as_ref().and_then(Termination::take) {
            self.finish(ExitReason::Signal(sig));
        }
    }
}
