//! A monitor on the event loop: a listening socket (Unix or TCP, plain or telnet) or stdio, one
//! client at a time as QEMU serves them (the next one waits in the kernel's backlog until the
//! first leaves), and the session (QMP or HMP) that speaks to it. A client that stops reading is
//! cut off once a megabyte waits for it; one that sends garbage gets QEMU's error; one that
//! leaves in the middle of a command changes nothing for the VM or the others.
use super::hmp::HmpSession;
use super::qmp::QmpSession;
use super::telnet::{TelnetFilter, NEGOTIATION};
use super::{Context, Session, VmFacts};
use crate::config::{Monitor, MonitorChannel, MonitorMode, ServerSocket, SocketAddress};
use crate::exit::ExitReason;
use crate::runtime::lifecycle::{Controller, EventListener, VmEvent};
use crate::runtime::output::GuestOutput;
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use vmm_sys_util::eventfd::EventFd;

/// Bytes that may wait for a client that does not read before it is cut off.
const MAX_PENDING: usize = 1 << 20;
/// How long the last words (a `quit`'s reply, a SHUTDOWN event) may wait for a slow client.
const LAST_WORDS: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{monitor}: {source}")]
    Bind { monitor: String, source: io::Error },
    #[error("{monitor}: waiting for its first client: {source}")]
    Accept { monitor: String, source: io::Error },
}

enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

impl Listener {
    fn bind(address: &SocketAddress) -> io::Result<Self> {
        Ok(match address {
            SocketAddress::Unix(path) => {
                // As QEMU: a socket file left by an earlier run is replaced.
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(path);
                }
                Listener::Unix(UnixListener::bind(path)?, path.clone())
            }
            SocketAddress::Tcp { host, port } => Listener::Tcp(TcpListener::bind((host.as_str(), *port))?),
        })
    }

    fn accept(&self) -> io::Result<Conn> {
        Ok(match self {
            Listener::Unix(l, _) => Conn::Unix(l.accept()?.0),
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }
        })
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Listener::Unix(l, _) => l.set_nonblocking(on),
            Listener::Tcp(l) => l.set_nonblocking(on),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Listener::Unix(l, _) => l.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A client's connection.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
    /// stdin, and stdout through a non-blocking output of minnow's own.
    Stdio {
        input: File,
        output: GuestOutput,
    },
}

impl Conn {
    fn read_fd(&self) -> RawFd {
        match self {
            Conn::Unix(s) => s.as_raw_fd(),
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Stdio { input, .. } => input.as_raw_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
            Conn::Stdio { input, .. } => input.read(buf),
        }
    }

    /// Writes what the client takes now.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(bytes),
            Conn::Tcp(s) => s.write(bytes),
            Conn::Stdio { output, .. } => {
                output.push(bytes);
                Ok(bytes.len())
            }
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_nonblocking(true),
            Conn::Tcp(s) => s.set_nonblocking(true),
            Conn::Stdio { .. } => Ok(()),
        }
    }
}

struct Client {
    conn: Conn,
    session: Box<dyn Session>,
    telnet: Option<TelnetFilter>,
    pending: VecDeque<u8>,
    /// Whether the loop waits for room to write `pending`.
    waiting_to_write: bool,
}

/// Events the controller emits, waiting for the monitor.
struct EventQueue {
    events: Mutex<VecDeque<VmEvent>>,
    ready: EventFd,
}

impl EventQueue {
    fn take(&self) -> Vec<VmEvent> {
        let _ = self.ready.read();
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect()
    }
}

impl EventListener for EventQueue {
    fn on_event(&self, event: &VmEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(event.clone());
        let _ = self.ready.write(1);
    }
}

/// A monitor's socket or stdio, bound at start-up (so a taken address is an error before the
/// guest runs).
pub struct MonitorServer {
    config: Monitor,
    listener: Option<Listener>,
    client: Option<Client>,
    /// Whether the listener is in the loop's interest list.
    listening: bool,
    events: Arc<EventQueue>,
    controller: Option<Arc<Mutex<Controller>>>,
    facts: Arc<VmFacts>,
    /// `mon:stdio`: the monitor's end of the pair to the stdio multiplexer, and the
    /// multiplexer's end until the VM takes it.
    mux: Option<(UnixStream, Option<UnixStream>)>,
    /// `stdio`: the monitor's output to stdout, which the event loop drains when stdout is slow.
    stdout: Option<GuestOutput>,
}

impl MonitorServer {
    /// Binds `config`'s socket (or takes stdio).
    pub fn bind(config: &Monitor) -> Result<Self, MonitorError> {
        let bind_error = |source| MonitorError::Bind {
            monitor: describe(config),
            source,
        };
        let listener = match &config.channel {
            MonitorChannel::Socket(s) => Some(Listener::bind(&s.address).map_err(bind_error)?),
            MonitorChannel::Stdio | MonitorChannel::SerialMux => None,
        };
        let mux = match config.channel {
            MonitorChannel::SerialMux => {
                let (ours, theirs) = UnixStream::pair().map_err(bind_error)?;
                Some((ours, Some(theirs)))
            }
            _ => None,
        };
        let stdout = match config.channel {
            MonitorChannel::Stdio => Some(GuestOutput::stdout("the stdio monitor").map_err(bind_error)?),
            _ => None,
        };
        let ready = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(bind_error)?;
        Ok(Self {
            config: config.clone(),
            listener,
            client: None,
            listening: false,
            events: Arc::new(EventQueue {
                events: Mutex::new(VecDeque::new()),
                ready,
            }),
            controller: None,
            facts: Arc::new(VmFacts::default()),
            mux,
            stdout,
        })
    }

    /// `stdio`: the output the event loop must drain (an [`OutputDrain`](crate::runtime::output::OutputDrain)).
    pub fn stdout(&self) -> Option<&GuestOutput> {
        self.stdout.as_ref()
    }

    /// `mon:stdio`: the stdio multiplexer's end of the monitor's connection (once).
    pub fn take_mux_peer(&mut self) -> Option<UnixStream> {
        self.mux.as_mut().and_then(|(_, theirs)| theirs.take())
    }

    /// `wait=on`: blocks until the first client connects, as QEMU holds its guest.
    pub fn wait_for_client(&mut self) -> Result<(), MonitorError> {
        let waits = matches!(
            &self.config.channel,
            MonitorChannel::Socket(ServerSocket { wait: true, .. })
        );
        let Some(listener) = self.listener.as_ref().filter(|_| waits) else {
            return Ok(());
        };
        crate::report!("waiting for a connection on {}", describe(&self.config));
        let conn = listener.accept().map_err(|source| MonitorError::Accept {
            monitor: describe(&self.config),
            source,
        })?;
        self.start_client(conn);
        Ok(())
    }

    /// Connects the monitor to the VM; events from `controller` reach its clients from now on.
    pub fn attach(&mut self, controller: Arc<Mutex<Controller>>, facts: Arc<VmFacts>) {
        lock(&controller).listen(self.events.clone());
        self.controller = Some(controller);
        self.facts = facts;
    }

    /// Whether this is `-serial mon:stdio`'s monitor (which has no chardev label of its own).
    pub fn is_serial_mux(&self) -> bool {
        self.config.channel == MonitorChannel::SerialMux
    }

    /// What `query-chardev` says of this monitor: (label, filename).
    pub fn chardev(&self, index: usize) -> (String, String) {
        (format!("compat_monitor{index}"), describe(&self.config))
    }

    fn session(&self) -> Box<dyn Session> {
        match self.config.mode {
            MonitorMode::Control => Box::new(QmpSession::new(self.config.pretty)),
            MonitorMode::Readline => Box::new(HmpSession::new()),
        }
    }

    fn telnet(&self) -> bool {
        matches!(
            &self.config.channel,
            MonitorChannel::Socket(ServerSocket { telnet: true, .. })
        )
    }

    fn start_client(&mut self, conn: Conn) {
        if let Err(e) = conn.set_nonblocking() {
            crate::report!("{}: a client: {e}", describe(&self.config));
            return;
        }
        let mut session = self.session();
        let mut client = Client {
            conn,
            session: Box::new(NoSession),
            telnet: self.telnet().then(TelnetFilter::default),
            pending: VecDeque::new(),
            waiting_to_write: false,
        };
        if client.telnet.is_some() {
            client.pending.extend(NEGOTIATION);
        }
        client.pending.extend(session.greeting());
        client.session = session;
        self.client = Some(client);
    }

    fn stdio_client(&mut self) -> io::Result<Conn> {
        if let Some((ours, _)) = &self.mux {
            return Ok(Conn::Unix(ours.try_clone()?));
        }
        let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let output = match &self.stdout {
            Some(o) => o.clone(),
            None => GuestOutput::stdout("the stdio monitor")?,
        };
        Ok(Conn::Stdio { input, output })
    }

    /// Writes what waits for the client, as far as it takes it now; cuts off a client that
    /// lets too much wait. Returns false when the client is gone.
    fn flush(&mut self) -> bool {
        let Some(c) = self.client.as_mut() else {
            return false;
        };
        while !c.pending.is_empty() {
            let (front, _) = c.pending.as_slices();
            match c.conn.write(front) {
                Ok(0) => return false,
                Ok(n) => {
                    c.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        c.pending.len() <= MAX_PENDING
    }

    fn queue(&mut self, bytes: &[u8]) {
        if let Some(c) = self.client.as_mut() {
            c.pending.extend(bytes);
        }
    }

    /// The events the controller emitted, as this session tells them.
    fn take_events(&mut self) -> Vec<u8> {
        let events = self.events.take();
        let Some(c) = self.client.as_mut() else {
            return Vec::new();
        };
        events.iter().flat_map(|e| c.session.event(e)).collect()
    }

    /// Reads what the client sent and answers it. Returns false when the client left.
    fn serve_input(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let Some(c) = self.client.as_mut() else {
            return false;
        };
        let n = match c.conn.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => return true,
            Err(_) => return false,
        };
        let data = match c.telnet.as_mut() {
            Some(f) => f.data(&buf[..n]),
            None => buf[..n].to_vec(),
        };
        let Some(controller) = self.controller.clone() else {
            return true;
        };
        let reply = {
            let mut guard = lock(&controller);
            let mut ctx = Context {
                controller: &mut guard,
                facts: &self.facts,
            };
            match self.client.as_mut() {
                Some(c) => c.session.input(&data, &mut ctx),
                None => Vec::new(),
            }
        };
        // Events a command caused come before its reply, as in QEMU.
        let events = self.take_events();
        self.queue(&events);
        self.queue(&reply);
        if self.client.as_ref().is_some_and(|c| c.session.quit_requested()) {
            self.last_words();
            lock(&controller).finish(ExitReason::Quit);
            let events = self.take_events();
            self.queue(&events);
            self.last_words();
        }
        true
    }

    /// Writes what waits, waiting up to [`LAST_WORDS`] for the client (the VM ends next).
    fn last_words(&mut self) {
        let until = std::time::Instant::now() + LAST_WORDS;
        while self.client.as_ref().is_some_and(|c| !c.pending.is_empty()) && std::time::Instant::now() < until
        {
            if !self.flush() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn drop_client(&mut self, ops: &mut EventOps) {
        if let Some(c) = self.client.take() {
            let fd = c.conn.read_fd();
            let _ = ops.remove(Events::empty_raw(fd));
        }
    }

    /// Watches the listener when no client is connected, and the client's fd (for reading, and
    /// for room to write while bytes wait) when one is.
    fn settle(&mut self, ops: &mut EventOps) {
        let want_listener = self.client.is_none() && self.listener.is_some();
        if want_listener != self.listening {
            if let Some(l) = &self.listener {
                let ev = Events::new_raw(l.fd(), EventSet::IN);
                let _ = if want_listener {
                    ops.add(ev)
                } else {
                    ops.remove(ev)
                };
            }
            self.listening = want_listener;
        }
        if let Some(c) = self.client.as_mut() {
            let want_out = !c.pending.is_empty() && !matches!(c.conn, Conn::Stdio { .. });
            if want_out != c.waiting_to_write {
                let mut set = EventSet::IN;
                if want_out {
                    set |= EventSet::OUT;
                }
                let _ = ops.modify(Events::new_raw(c.conn.read_fd(), set));
                c.waiting_to_write = want_out;
            }
        }
    }

    fn add_client_fd(&mut self, ops: &mut EventOps) {
        if let Some(c) = self.client.as_mut() {
            if ops.add(Events::new_raw(c.conn.read_fd(), EventSet::IN)).is_err() {
                // stdin that epoll cannot watch (a file, /dev/null): no client.
                self.client = None;
            }
            if let Some(c) = self.client.as_mut() {
                c.waiting_to_write = false;
            }
        }
    }
}

/// A placeholder while a session is being set up.
struct NoSession;

impl Session for NoSession {
    fn greeting(&mut self) -> Vec<u8> {
        Vec::new()
    }
    fn input(&mut self, _: &[u8], _: &mut Context) -> Vec<u8> {
        Vec::new()
    }
    fn event(&mut self, _: &VmEvent) -> Vec<u8> {
        Vec::new()
    }
    fn quit_requested(&self) -> bool {
        false
    }
}

fn lock(c: &Mutex<Controller>) -> MutexGuard<'_, Controller> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// The monitor as QEMU names its chardev: `unix:PATH,server=on`, `telnet:HOST:PORT,server=on`.
fn describe(config: &Monitor) -> String {
    match &config.channel {
        MonitorChannel::Stdio | MonitorChannel::SerialMux => "stdio".into(),
        MonitorChannel::Socket(s) => {
            let kind = if s.telnet { "telnet" } else { "tcp" };
            match &s.address {
                SocketAddress::Unix(p) => format!("unix:{},server=on", p.display()),
                SocketAddress::Tcp { host, port } => format!("{kind}:{host}:{port},server=on"),
            }
        }
    }
}

impl Drop for MonitorServer {
    /// `stdio`: what the reader has not taken yet goes out before minnow ends (briefly, as the
    /// guest's output does).
    fn drop(&mut self) {
        if let Some(out) = &self.stdout {
            out.finish(LAST_WORDS);
        }
    }
}

impl MutEventSubscriber for MonitorServer {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.events.ready, EventSet::IN)) {
            crate::report!("{}: {e:?}", describe(&self.config));
        }
        if let Some(l) = &self.listener {
            let _ = l.set_nonblocking(true);
        } else if self.client.is_none() {
            match self.stdio_client() {
                Ok(conn) => self.start_client(conn),
                Err(e) => crate::report!("the stdio monitor: {e}"),
            }
        }
        self.add_client_fd(ops);
        let alive = self.flush();
        if !alive {
            self.drop_client(ops);
        }
        self.settle(ops);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        let mut alive = true;
        if fd == self.events.ready.as_raw_fd() {
            let bytes = self.take_events();
            self.queue(&bytes);
        } else if self.listener.as_ref().is_some_and(|l| l.fd() == fd) {
            if let Some(conn) = self.listener.as_ref().and_then(|l| l.accept().ok()) {
                self.start_client(conn);
                self.add_client_fd(ops);
            }
        } else if events.event_set().contains(EventSet::IN) {
            alive = self.serve_input();
        } else if events.event_set().intersects(EventSet::ERROR | EventSet::HANG_UP) {
            alive = false;
        }
        if alive && self.client.is_some() {
            alive = self.flush();
        }
        if !alive {
            self.drop_client(ops);
        }
        self.settle(ops);
    }
}
