//! Guest output (COM1, virtio consoles) to a host file, pipe, terminal or socket, without ever
//! blocking the vCPU that writes it. Bytes are written at once when the host side takes them;
//! otherwise they wait in a bounded buffer that the event loop writes out as the reader makes
//! room. When nobody reads and the buffer is full, further bytes are dropped and counted, as a
//! serial line drops what nobody listens to; the VM keeps running and stops when asked.
//!
//! Non-blocking writes need an open file description of our own: setting O_NONBLOCK on the
//! process's stdout would change it for the shell that shares it. A pipe or terminal is opened
//! again through /proc/self/fd; a socket is written with MSG_DONTWAIT; a regular file never
//! blocks.
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;

/// Bytes held for a slow reader before output is dropped.
pub const CAPACITY: usize = 1 << 20;

/// How the bytes reach the host side.
enum Sink {
    /// A regular file or /dev/null: a write completes without waiting for a reader.
    File(File),
    /// A pipe, FIFO or terminal, through a non-blocking description of its own.
    NonBlocking(File),
    /// A socket, written with MSG_DONTWAIT.
    Socket(OwnedFd),
    /// Nowhere (`-serial none`).
    Null,
}

impl Sink {
    /// The sink for the caller's open `fd` (which keeps its own flags).
    fn for_fd(fd: BorrowedFd) -> io::Result<Sink> {
        let file = File::from(fd.try_clone_to_owned()?);
        let kind = file.metadata()?.file_type();
        if kind.is_file() {
            return Ok(Sink::File(file));
        }
        if kind.is_socket() {
            return Ok(Sink::Socket(file.into()));
        }
        let again = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()));
        match again {
            Ok(own) => Ok(Sink::NonBlocking(own)),
            // No /proc (or a node that cannot be opened again): blocking writes, as before.
            Err(_) => Ok(Sink::File(file)),
        }
    }

    /// Writes what the host side takes now; `WouldBlock` when it takes nothing.
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) | Sink::NonBlocking(f) => f.write(bytes),
            Sink::Socket(s) => {
                // SAFETY: send reads `bytes.len()` bytes from the live slice.
                let n = unsafe {
                    libc::send(
                        s.as_raw_fd(),
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }
            Sink::Null => Ok(bytes.len()),
        }
    }

    /// The fd to wait on for room, for sinks that can be full.
    fn pollable_fd(&self) -> Option<RawFd> {
        match self {
            Sink::NonBlocking(f) => Some(f.as_raw_fd()),
            Sink::Socket(s) => Some(s.as_raw_fd()),
            Sink::File(_) | Sink::Null => None,
        }
    }
}

struct State {
    sink: Sink,
    pending: VecDeque<u8>,
    dropped: u64,
    /// Why the host side stopped taking bytes for good (its reader went away).
    broken: Option<io::ErrorKind>,
}

struct Shared {
    /// What the output is, for messages: "COM1", "virtio console con0".
    name: String,
    state: Mutex<State>,
    /// Written when bytes start waiting, for the event loop to wait for room.
    backlog: EventFd,
}

/// One guest output stream. Clones write to the same stream, in order.
#[derive(Clone)]
pub struct GuestOutput {
    shared: Arc<Shared>,
}

impl GuestOutput {
    fn with_sink(name: &str, sink: Sink) -> io::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                name: name.into(),
                state: Mutex::new(State {
                    sink,
                    pending: VecDeque::new(),
                    dropped: 0,
                    broken: None,
                }),
                backlog: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
            }),
        })
    }

    /// Output to the process's stdout.
    pub fn stdout(name: &str) -> io::Result<Self> {
        Self::with_sink(name, Sink::for_fd(io::stdout().as_fd())?)
    }

    /// Output appended to `file` (already open).
    pub fn file(name: &str, file: File) -> io::Result<Self> {
        Self::with_sink(name, Sink::for_fd(file.as_fd())?)
    }

    /// Output to an open fd of any kind (a file, a pipe, a socket).
    pub fn fd(name: &str, fd: BorrowedFd) -> io::Result<Self> {
        Self::with_sink(name, Sink::for_fd(fd)?)
    }

    /// Output that goes nowhere.
    pub fn null(name: &str) -> io::Result<Self> {
        Self::with_sink(name, Sink::Null)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes dropped so far because nobody read them.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }

    /// Bytes waiting for the reader.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }

    /// Sends `bytes` on, never waiting: what the host side does not take now waits, up to
    /// [`CAPACITY`]; the rest is dropped.
    pub fn push(&self, bytes: &[u8]) {
        let mut s = self.state();
        if s.broken.is_some() {
            s.dropped += bytes.len() as u64;
            return;
        }
        let mut rest = bytes;
        if s.pending.is_empty() {
            match write_some(&mut s, rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) => return self.break_off(&mut s, e, rest.len()),
            }
            if rest.is_empty() {
                return;
            }
            // Bytes start waiting: the event loop waits for room.
            let _ = self.shared.backlog.write(1);
        }
        let room = CAPACITY.saturating_sub(s.pending.len());
        let taken = rest.len().min(room);
        s.pending.extend(&rest[..taken]);
        s.dropped += (rest.len() - taken) as u64;
    }

    /// The host side failed for good (its reader is gone): everything from now on is dropped.
    fn break_off(&self, s: &mut State, e: io::Error, lost: usize) {
        s.dropped += (lost + s.pending.len()) as u64;
        s.pending.clear();
        if s.broken.is_none() {
            crate::report!("{}: {e}; its output is dropped from now on", self.shared.name);
            s.broken = Some(e.kind());
        }
    }

    /// Writes out what waits, as far as the host side takes it now. Returns whether bytes still
    /// wait.
    fn drain(&self) -> bool {
        let mut s = self.state();
        while !s.pending.is_empty() {
            let (front, _) = s.pending.as_slices();
            let chunk = front.to_vec();
            match write_some(&mut s, &chunk) {
                Ok(0) => break,
                Ok(n) => {
                    s.pending.drain(..n);
                }
                Err(e) => {
                    self.break_off(&mut s, e, 0);
                    break;
                }
            }
        }
        !s.pending.is_empty()
    }

    /// Writes out what waits, waiting up to `limit` for the reader (at exit, so the guest's last
    /// words are not lost to a reader that is merely slow). Returns the bytes dropped in all.
    pub fn finish(&self, limit: Duration) -> u64 {
        let until = Instant::now() + limit;
        while self.drain() {
            let left = until.saturating_duration_since(Instant::now());
            let Some(fd) = self.state().sink.pollable_fd() else {
                break;
            };
            if left.is_zero() || !wait_writable(fd, left) {
                break;
            }
        }
        let mut s = self.state();
        s.dropped += s.pending.len() as u64;
        s.pending.clear();
        s.dropped
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }
}

/// Writes what the sink takes now: 0 when it is full.
fn write_some(s: &mut State, bytes: &[u8]) -> io::Result<usize> {
    loop {
        return match s.sink.try_write(bytes) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// Waits up to `limit` for room on `fd`; false on timeout or when the reader is gone.
fn wait_writable(fd: RawFd, limit: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = limit.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n == 1 && pfd.revents & libc::POLLOUT != 0
}

impl Write for GuestOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The event loop's side of a [`GuestOutput`]: waits for room on the host side while bytes wait.
pub struct OutputDrain {
    output: GuestOutput,
    /// The sink's fd while it is in the event loop's interest list.
    watching: Option<RawFd>,
}

impl OutputDrain {
    pub fn new(output: &GuestOutput) -> Self {
        Self {
            output: output.clone(),
            watching: None,
        }
    }

    fn stop_watching(&mut self, ops: &mut EventOps) {
        if let Some(fd) = self.watching.take() {
            let _ = ops.remove(Events::empty_raw(fd));
        }
    }
}

impl MutEventSubscriber for OutputDrain {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.output.shared.backlog, EventSet::IN)) {
            crate::report!("{}: cannot wait for its reader: {e:?}", self.output.name());
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.fd() == self.output.shared.backlog.as_raw_fd() {
            let _ = self.output.shared.backlog.read();
        } else if events.event_set().intersects(EventSet::ERROR | EventSet::HANG_UP) {
            let mut s = self.output.state();
            let e = io::Error::from(io::ErrorKind::BrokenPipe);
            self.output.break_off(&mut s, e, 0);
            drop(s);
            self.stop_watching(ops);
            return;
        }
        if !self.output.drain() {
            self.stop_watching(ops);
            return;
        }
        if self.watching.is_none() {
            let fd = self.output.state().sink.pollable_fd();
            if let Some(fd) = fd {
                if ops.add(Events::new_raw(fd, EventSet::OUT)).is_ok() {
                    self.watching = Some(fd);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-element array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds were just created and are owned by nothing else.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    fn is_nonblocking(f: &File) -> bool {
        // SAFETY: F_GETFL only reads the descriptor's flags.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) & libc::O_NONBLOCK != 0 }
    }

    #[test]
    fn a_reader_that_never_reads_never_blocks_the_writer_and_loses_only_the_excess() {
        let (mut reader, writer) = pipe();
        let out = GuestOutput::fd("COM1", writer.as_fd()).unwrap();
        assert!(
            !is_nonblocking(&writer),
            "the caller's description keeps its flags"
        );
        let started = Instant::now();
        let chunk = [b'x'; 4096];
        let total = 8 * CAPACITY;
        for _ in 0..total / chunk.len() {
            out.push(&chunk);
        }
        assert!(started.elapsed() < Duration::from_secs(5), "pushing waited");
        assert_eq!(out.pending(), CAPACITY);
        let pipe_took = total as u64 - CAPACITY as u64 - out.dropped();
        assert!((4096..=1 << 20).contains(&pipe_took), "{pipe_took}");
        // The reader comes back: what waited arrives, in order, complete.
        let reading = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).unwrap();
            got.len()
        });
        let dropped = out.finish(Duration::from_secs(10));
        drop(out);
        drop(writer);
        assert_eq!(reading.join().unwrap() as u64, total as u64 - dropped);
    }

    #[test]
    fn a_reader_that_went_away_breaks_the_output_once_and_nothing_blocks() {
        let (reader, writer) = pipe();
        let out = GuestOutput::fd("console", writer.as_fd()).unwrap();
        drop(reader);
        drop(writer);
        out.push(b"hello");
        out.push(b"again");
        assert_eq!(out.dropped(), 10);
        assert_eq!(out.finish(Duration::from_millis(10)), 10);
    }

    #[test]
    fn a_regular_file_gets_every_byte() {
        let path = std::env::temp_dir().join(format!("minnow-output-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        let out = GuestOutput::file("log", file).unwrap();
        for _ in 0..1000 {
            out.push(b"0123456789");
        }
        assert_eq!(out.finish(Duration::ZERO), 0);
        assert_eq!(std::fs::read(&path).unwrap().len(), 10_000);
        std::fs::remove_file(path).unwrap();
    }
}
