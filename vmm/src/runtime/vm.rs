//! A running VM as a value: [`Vm::start`] builds the machine, starts its vCPU threads and its
//! event-loop thread, and returns; [`VmHandle`] pauses, resumes, resets, powers down or stops it
//! from any thread; [`Vm::wait`] returns why it ended. Dropping a `Vm` stops it: the VM lives and
//! dies with whoever holds it, and every path out (guest power-off, reset under `-no-reboot`,
//! a signal, a request, an error, the drop) stops and joins its threads and flushes its disks.
use super::event_loop::{EventLoop, EventLoopError};
use super::lifecycle::Restored;
use super::lifecycle::{Controller, ControllerParts, LifecycleError, Request, Requests, RunState};
use super::output::OutputDrain;
use super::rtc_timer::RtcTimer;
use super::signals::Termination;
use super::stdin::{InputSink, StdinRouter};
use super::stdio_mux;
use super::terminal::RawTerminal;
use super::vcpu_control::install_kick_handler;
use super::vcpu_threads::VcpuThreads;
use super::virtio_io::VirtioIo;
use crate::config::Config;
use crate::exit::ExitReason;
use crate::machine::{self, Machine, MachineCore, MachineError, MachineIo};
use crate::monitor::{MonitorError, MonitorServer, VmFacts};
use crate::sandbox::broker::Broker;
use crate::sandbox::{Filters, ThreadKind};
use crate::snapshot::uri::{Incoming, MigrationUri};
use crate::snapshot::{load, MigrateError};
use crate::timeline::Timeline;
use crate::vstate::vcpu::Vcpu;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// How a VM is started, beyond its [`Config`].
pub struct StartOptions {
    /// Where the boot's phases are recorded; create it as early as the process starts.
    pub timeline: Arc<Timeline>,
    /// Stop the VM cleanly on SIGTERM, SIGINT and SIGHUP (the `minnow` binary installs them).
    pub termination: Option<Termination>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            timeline: Arc::new(Timeline::new(std::time::Instant::now())),
            termination: None,
        }
    }
}

/// Controls a VM from any thread. Cheap to clone.
#[derive(Clone)]
pub struct VmHandle {
    requests: Arc<Requests>,
    state: Arc<Mutex<RunState>>,
}

impl VmHandle {
    fn call(&self, request: Request) -> Result<(), LifecycleError> {
        if self.status() == RunState::Ended {
            return Err(LifecycleError::Ended);
        }
        let (answer, answered) = mpsc::channel();
        self.requests.send(request, answer);
        // A VM that ended meanwhile drops the request, and with it the channel.
        answered.recv().unwrap_or(Err(LifecycleError::Ended))
    }

    /// Stops every vCPU; returns once none runs (QEMU's `stop`).
    pub fn pause(&self) -> Result<(), LifecycleError> {
        self.call(Request::Pause)
    }

    /// Runs the vCPUs again (`cont`).
    pub fn resume(&self) -> Result<(), LifecycleError> {
        self.call(Request::Resume)
    }

    /// Resets the machine (`system_reset`).
    pub fn reset(&self) -> Result<(), LifecycleError> {
        self.call(Request::Reset)
    }

    /// Presses the ACPI power button (`system_powerdown`).
    pub fn powerdown(&self) -> Result<(), LifecycleError> {
        self.call(Request::Powerdown)
    }

    /// Ends the VM (`quit`); returns once it has ended, disks flushed.
    pub fn quit(&self) -> Result<(), LifecycleError> {
        self.call(Request::Quit)
    }

    pub fn status(&self) -> RunState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Machine(#[from] MachineError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error(transparent)]
    EventLoop(#[from] EventLoopError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Privileges(#[from] crate::privileges::PrivilegeError),
    #[error(transparent)]
    VcpuThreads(#[from] super::vcpu_threads::SpawnError),
    #[error("-incoming: {0}")]
    Incoming(#[from] MigrateError),
    #[error(transparent)]
    Broker(#[from] crate::sandbox::broker::BrokerError),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> VmError {
    move |source| VmError::Io { what, source }
}

/// A running VM.
pub struct Vm {
    handle: VmHandle,
    thread: Option<JoinHandle<ExitReason>>,
    filters: Option<Filters>,
}

impl Vm {
    /// Builds the VM `config` describes and starts it.
    pub fn start(config: &Config) -> Result<Vm, VmError> {
        Self::start_with(config, StartOptions::default())
    }

    pub fn start_with(config: &Config, options: StartOptions) -> Result<Vm, VmError> {
        install_kick_handler().map_err(io("installing the vCPU kick signal"))?;
        for note in &config.notes {
            crate::report!("warning: {note}");
        }
        // Monitors first: an address in use is an error before anything runs.
        let mut monitors = config
            .monitors
            .iter()
            .map(MonitorServer::bind)
            .collect::<Result<Vec<_>, _>>()?;
        // The seccomp filters compile here, on this thread: about 50 us, less than a helper
        // thread would cost (its stack, and a TLB shootdown on the other CPU for every later
        // munmap while it lives).
        let filters = config.sandbox.then(|| confinement(config)).transpose();
        let built = machine::build(config, options.timeline.clone());
        let Machine {
            vcpus,
            handlers,
            control,
            core,
            io: machine_io,
        } = built?;
        let filters = filters?;
        // -incoming URI: the machine takes the snapshot's state before any thread runs it.
        let restored = match &config.incoming {
            Some(Incoming::Now(uri)) => Some(restore_at_start(&core, &vcpus, uri)?),
            _ => None,
        };
        let mut events = EventLoop::new()?;
        for output in &core.outputs {
            events.add_owned(OutputDrain::new(output));
        }
        for output in monitors.iter().filter_map(MonitorServer::stdout) {
            events.add_owned(OutputDrain::new(output));
        }
        let requests = Arc::new(Requests::new().map_err(io("creating the request queue"))?);
        let mux_peer = monitors.iter_mut().find_map(MonitorServer::take_mux_peer);
        add_io(&mut events, machine_io, mux_peer, &requests)?;
        let terminal = config.uses_stdio().then(RawTerminal::enter).flatten();
        // Every file, device and socket is open: give up what -run-with asks, before any of
        // the VM's threads exists.
        crate::privileges::apply(&config.run_with)?;
        // A monitor may ask for `migrate` or `migrate-incoming`: the broker opens and spawns
        // for the confined threads, as who the VMM now is.
        let broker = match config.monitors.is_empty() {
            true => None,
            false => Some(Broker::start()?),
        };
        let state = Arc::new(Mutex::new(RunState::Prelaunch));
        let (threads, vcpus_confined) = VcpuThreads::spawn(vcpus, &handlers, &control, filters.as_ref())?;
        let controller = Arc::new(Mutex::new(Controller::new(ControllerParts {
            threads,
            core,
            control,
            exit: handlers.exit.clone(),
            requests: requests.clone(),
            termination: options.termination,
            state: state.clone(),
            no_reboot: config.no_reboot,
            no_shutdown: config.no_shutdown,
            timeline: options.timeline,
            broker,
            start_paused: config.start_paused,
        })));
        events.add(controller.clone());
        let facts = Arc::new(facts(config, &monitors));
        for m in &mut monitors {
            m.wait_for_client()?;
        }
        for mut m in monitors {
            m.attach(controller.clone(), facts.clone());
            events.add_owned(m);
        }
        // The event thread installs its filter while the vCPU threads install theirs.
        let (go, started) = mpsc::channel();
        let thread = spawn_event_thread(events, controller.clone(), terminal, filters.clone(), started)?;
        let vm = Vm {
            handle: VmHandle { requests, state },
            thread: Some(thread),
            filters,
        };
        // A vCPU thread that could not confine itself ends the VM before any guest instruction
        // (dropping `vm` quits and joins, once the event thread serves: `go` goes first).
        if let Err(e) = vcpus_confined.wait() {
            drop(go);
            drop(vm);
            return Err(e.into());
        }
        // The vCPUs run from here, every thread confined, unless -S leaves that to a monitor's
        // `cont`, as does a snapshot of a paused VM; `-incoming defer` waits for its state.
        let mut c = lock(&controller);
        match (&config.incoming, restored) {
            (Some(Incoming::Defer), _) => c.wait_for_incoming(),
            (_, Some(restored)) => c.restored_at_start(restored),
            _ => {}
        }
        let paused = restored.is_some_and(|r| r.paused);
        if !config.start_paused && !paused && config.incoming != Some(Incoming::Defer) {
            let _ = c.resume();
        }
        drop(c);
        // Only now do the monitors greet their clients: the first `query-status` sees the
        // state the VM starts in.
        let _ = go.send(());
        Ok(vm)
    }

    /// Puts the `Main` seccomp filter on the calling thread (unless `-sandbox off`): from here
    /// it may wait for the VM, write to descriptors it has and remove files, nothing more. The
    /// `minnow` binary calls this once started; an application embedding a VM may, for a
    /// thread it gives the VM for good. Named `name` in reports.
    pub fn confine_caller(&self, name: &str) -> Result<(), VmError> {
        match &self.filters {
            Some(f) => Ok(f.enter(ThreadKind::Main, name)?),
            None => Ok(()),
        }
    }

    pub fn handle(&self) -> VmHandle {
        self.handle.clone()
    }

    /// Waits for the VM to end; returns why.
    pub fn wait(mut self) -> ExitReason {
        self.thread
            .take()
            .map_or(ExitReason::Failure, |t| t.join().unwrap_or(ExitReason::VmFailed))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.handle.quit();
            let _ = thread.join();
        }
    }
}

fn lock(c: &Mutex<Controller>) -> std::sync::MutexGuard<'_, Controller> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// The devices' host fds on the loop: virtio devices' (TAP, vhost, console input), the RTC's
/// timer, and stdin, which `mon:stdio` shares between COM1 and the monitor at `mux_peer`.
fn add_io(
    events: &mut EventLoop,
    machine_io: MachineIo,
    mux_peer: Option<UnixStream>,
    requests: &Arc<Requests>,
) -> Result<(), VmError> {
    for transport in machine_io.virtio {
        events.add_owned(VirtioIo::new(transport).map_err(io("watching a virtio device"))?);
    }
    if let Some(rtc) = machine_io.rtc {
        events.add_owned(RtcTimer::new(rtc).map_err(io("creating the RTC's timer"))?);
    }
    let stdin = match mux_peer {
        Some(peer) => {
            let requests = requests.clone();
            let quit = Box::new(move || requests.send(Request::Quit, mpsc::channel().0));
            let (input, output, drain) =
                stdio_mux::build(machine_io.stdin, machine_io.serial_stdout, peer, quit)
                    .map_err(io("sharing stdio (mon:stdio)"))?;
            events.add_owned(output);
            if let Some(drain) = drain {
                events.add_owned(drain);
            }
            Some(Box::new(input) as Box<dyn InputSink>)
        }
        None => machine_io.stdin,
    };
    if let Some(sink) = stdin {
        events.add_owned(StdinRouter::new(sink).map_err(io("reading stdin"))?);
    }
    Ok(())
}

/// `-incoming URI`: the snapshot's state into the machine and its vCPUs, before any of their
/// threads exists (this thread may still open files and spawn).
fn restore_at_start(core: &MachineCore, vcpus: &[Vcpu], uri: &MigrationUri) -> Result<Restored, VmError> {
    let started = std::time::Instant::now();
    let snapshot = load::load(core, uri, None)?;
    for vcpu in vcpus {
        let state = load::vcpu_state(&snapshot, usize::from(vcpu.id()))?;
        vcpu.restore(&state)
            .map_err(|e| MigrateError::Vcpu(e.to_string()))?;
    }
    core.after_restore();
    Ok(Restored {
        paused: snapshot.paused,
        ram: snapshot.ram_bytes(),
        took: started.elapsed(),
    })
}

/// The filters `config` asks for.
fn confinement(config: &Config) -> Result<Filters, VmError> {
    let filters = Filters::new(super::vcpu_control::kick_signal())?;
    #[cfg(feature = "sandbox-test")]
    let filters = filters.violating(config.sandbox_violate);
    #[cfg(not(feature = "sandbox-test"))]
    let _ = config;
    Ok(filters)
}

/// Starts the event loop's thread, which puts its seccomp filter on first; returns once it has.
fn spawn_event_thread(
    events: EventLoop,
    controller: Arc<Mutex<Controller>>,
    terminal: Option<RawTerminal>,
    filters: Option<Filters>,
    started: mpsc::Receiver<()>,
) -> Result<JoinHandle<ExitReason>, VmError> {
    let (ready, confined) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(EVENT_THREAD.into())
        .spawn(move || {
            let entered = filters.map_or(Ok(()), |f| f.enter(ThreadKind::Events, EVENT_THREAD));
            let failed = entered.is_err();
            let _ = ready.send(entered);
            if failed {
                // No guest instruction ran: stop the vCPU threads and flush, as for any end.
                lock(&controller).finish(ExitReason::Failure);
                return ExitReason::Failure;
            }
            // Serves once the VM's first state is set (or its start failed: then to end it).
            let _ = started.recv();
            let reason = serve(events, controller);
            drop(terminal);
            reason
        })
        .map_err(io("starting the event loop thread"))?;
    match confined.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e.into())
        }
        Err(_) => {
            let _ = thread.join();
            Err(VmError::Io {
                what: "starting the event loop thread",
                source: std::io::Error::other("it ended before it started"),
            })
        }
    }
}

/// The event loop thread's name, in `ps` and in sandbox reports.
const EVENT_THREAD: &str = "minnow-events";

/// What the monitors say of the VM: its name, and its character devices as QEMU labels them.
/// With `-serial mon:stdio`, as QEMU's: `serial0` is the mux, the monitor has no label of its
/// own, and stdio itself is `serial0-base`, listed last.
fn facts(config: &Config, monitors: &[MonitorServer]) -> VmFacts {
    let muxed = config
        .monitors
        .iter()
        .any(|m| m.channel == crate::config::MonitorChannel::SerialMux);
    let mut chardevs = Vec::new();
    if config.machine.isa_serial || muxed {
        let filename = match &config.serial {
            _ if muxed => "mux".to_string(),
            crate::config::Serial::Stdio => "stdio".to_string(),
            crate::config::Serial::File(p) => format!("file:{}", p.display()),
            crate::config::Serial::None => "null".to_string(),
        };
        chardevs.push(("serial0".to_string(), filename));
    }
    chardevs.extend(
        monitors
            .iter()
            .filter(|m| !m.is_serial_mux())
            .enumerate()
            .map(|(i, m)| m.chardev(i)),
    );
    if muxed {
        chardevs.push(("serial0-base".to_string(), "stdio".to_string()));
    }
    VmFacts {
        name: config.name.clone(),
        chardevs,
    }
}

/// Once the VM ended: lets the monitors write their last words (a SHUTDOWN event), briefly.
fn drain(events: &mut EventLoop) {
    for _ in 0..4 {
        if events.run_once(50).unwrap_or(0) == 0 {
            break;
        }
    }
}

/// The event loop thread: serves every fd until the controller says the VM ended.
fn serve(mut events: EventLoop, controller: Arc<Mutex<Controller>>) -> ExitReason {
    loop {
        let ended = lock(&controller).ended();
        if let Some(reason) = ended {
            drain(&mut events);
            return reason;
        }
        if let Err(e) = events.run_once(-1) {
            crate::report!("{e}");
            lock(&controller).finish(ExitReason::VmFailed);
        }
    }
}
