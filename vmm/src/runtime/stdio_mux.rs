//! `-serial mon:stdio`: COM1 and an HMP monitor share stdin and stdout, as in QEMU. What is
//! typed goes to one of them, COM1 first. Ctrl-A is the escape: Ctrl-A c switches, Ctrl-A x
//! ends the VM, Ctrl-A h lists the keys, Ctrl-A Ctrl-A sends a Ctrl-A. COM1's output always
//! shows; the monitor's shows while it has the focus and waits meanwhile, as QEMU's does.
//!
//! The monitor is an ordinary client of its [`MonitorServer`](crate::monitor::MonitorServer),
//! connected through a socket pair: this module only switches bytes.
use super::output::{GuestOutput, OutputDrain};
use super::stdin::InputSink;
use crate::monitor::HMP_PROMPT;
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};

/// Ctrl-A.
const ESCAPE: u8 = 0x01;
/// QEMU's list of the escape keys, byte for byte.
const HELP: &str = "\n\rC-a h    print this help\n\r\
C-a x    exit emulator\n\r\
C-a s    save disk data back to file (if -snapshot)\n\r\
C-a t    toggle console timestamps\n\r\
C-a b    send break (magic sysrq)\n\r\
C-a c    switch between console and monitor\n\r\
C-a C-a  sends C-a\n\r";
/// What QEMU prints for Ctrl-A x.
const TERMINATED: &str = "QEMU: Terminated\n\r";
/// Monitor output held while COM1 has the focus; past this it is dropped.
const HELD_MAX: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Focus {
    Serial,
    Monitor,
}

/// What stdout shows.
struct Screen {
    focus: Focus,
    /// Whether the monitor has had the focus before (its banner shown).
    monitor_shown: bool,
    /// The monitor's output while COM1 has the focus.
    held: Vec<u8>,
    stdout: GuestOutput,
}

impl Screen {
    fn monitor_output(&mut self, bytes: &[u8]) {
        match self.focus {
            Focus::Monitor => self.stdout.push(bytes),
            Focus::Serial => {
                let room = HELD_MAX.saturating_sub(self.held.len());
                self.held.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
    }

    /// Ctrl-A c. As QEMU's monitor: leaving it ends its line at once; coming back shows what it
    /// said meanwhile (the first time, its banner) and, after the first time, a fresh prompt.
    fn switch(&mut self) {
        match self.focus {
            Focus::Serial => {
                self.focus = Focus::Monitor;
                let mut out = std::mem::take(&mut self.held);
                if self.monitor_shown {
                    out.extend_from_slice(HMP_PROMPT.as_bytes());
                }
                self.monitor_shown = true;
                self.stdout.push(&out);
            }
            Focus::Monitor => {
                self.focus = Focus::Serial;
                self.stdout.push(b"\r\n");
            }
        }
    }
}

fn lock(screen: &Mutex<Screen>) -> MutexGuard<'_, Screen> {
    screen.lock().unwrap_or_else(|p| p.into_inner())
}

/// stdin's side: routes what is typed, and acts on the escape keys.
pub struct MuxInput {
    serial: Option<Box<dyn InputSink>>,
    to_monitor: UnixStream,
    screen: Arc<Mutex<Screen>>,
    escaped: bool,
    quit: Option<Box<dyn FnOnce() + Send>>,
}

impl MuxInput {
    fn command(&mut self, key: u8) {
        match key {
            b'h' | b'?' => lock(&self.screen).stdout.push(HELP.as_bytes()),
            b'x' => {
                lock(&self.screen).stdout.push(TERMINATED.as_bytes());
                if let Some(quit) = self.quit.take() {
                    quit();
                }
            }
            b'c' => lock(&self.screen).switch(),
            // s (commit -snapshot disks), t (timestamps), b (break): not built; ignored, as
            // QEMU ignores keys it does not know.
            _ => {}
        }
    }

    /// Hands `bytes` to the device with the focus; returns how many it took.
    fn send(&mut self, bytes: &[u8]) -> usize {
        let focus = lock(&self.screen).focus;
        match (focus, self.serial.as_mut()) {
            (Focus::Serial, Some(serial)) => serial.offer(bytes),
            (Focus::Serial, None) => bytes.len(),
            (Focus::Monitor, _) => match self.to_monitor.write(bytes) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => 0,
                // The monitor is gone: what is typed to it is lost.
                Err(_) => bytes.len(),
            },
        }
    }
}

impl InputSink for MuxInput {
    fn offer(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            let literal_escape = self.escaped && bytes[i] == ESCAPE;
            if self.escaped && !literal_escape {
                self.escaped = false;
                self.command(bytes[i]);
                i += 1;
                continue;
            }
            if !self.escaped && bytes[i] == ESCAPE {
                self.escaped = true;
                i += 1;
                continue;
            }
            self.escaped = false;
            let end = match literal_escape {
                true => i + 1,
                false => bytes[i..]
                    .iter()
                    .position(|&b| b == ESCAPE)
                    .map_or(bytes.len(), |p| i + p),
            };
            let taken = self.send(&bytes[i..end]).min(end - i);
            if taken < end - i {
                // The device is full: the rest waits; a Ctrl-A Ctrl-A not yet sent stays pending.
                self.escaped = literal_escape && taken == 0;
                return i + taken;
            }
            i = end;
        }
        bytes.len()
    }
}

/// The monitor's side: what it says, shown or held.
pub struct MuxMonitorOutput {
    from_monitor: UnixStream,
    screen: Arc<Mutex<Screen>>,
}

impl Drop for MuxMonitorOutput {
    /// What the reader has not taken yet goes out before minnow ends, briefly (with COM1 on
    /// stdout, COM1's own end does this too).
    fn drop(&mut self) {
        let stdout = lock(&self.screen).stdout.clone();
        stdout.finish(std::time::Duration::from_secs(1));
    }
}

impl MutEventSubscriber for MuxMonitorOutput {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.from_monitor, EventSet::IN)) {
            crate::report!("mon:stdio: {e:?}");
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut buf = [0u8; 4096];
        match self.from_monitor.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                lock(&self.screen).monitor_output(&buf[..n]);
                return;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => return,
            Err(_) => {}
        }
        let _ = ops.remove(Events::empty_raw(events.fd()));
        debug_assert_eq!(events.fd(), self.from_monitor.as_raw_fd());
    }
}

/// The multiplexer's parts: the stdin sink, the subscriber for the monitor's output, and, when
/// COM1 is not on stdout (`isa-serial=off`), the drain of an output of its own. `serial` and
/// `serial_stdout` are COM1's input and output; `peer` is the monitor server's mux end; `quit`
/// ends the VM (Ctrl-A x).
pub fn build(
    serial: Option<Box<dyn InputSink>>,
    serial_stdout: Option<GuestOutput>,
    peer: UnixStream,
    quit: Box<dyn FnOnce() + Send>,
) -> std::io::Result<(MuxInput, MuxMonitorOutput, Option<OutputDrain>)> {
    peer.set_nonblocking(true)?;
    let (stdout, drain) = match serial_stdout {
        Some(out) => (out, None),
        None => {
            let out = GuestOutput::stdout("mon:stdio")?;
            let drain = OutputDrain::new(&out);
            (out, Some(drain))
        }
    };
    let screen = Arc::new(Mutex::new(Screen {
        focus: Focus::Serial,
        monitor_shown: false,
        held: Vec::new(),
        stdout,
    }));
    let input = MuxInput {
        serial,
        to_monitor: peer.try_clone()?,
        screen: screen.clone(),
        escaped: false,
        quit: Some(quit),
    };
    let output = MuxMonitorOutput {
        from_monitor: peer,
        screen,
    };
    Ok((input, output, drain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A COM1 that takes at most `room` bytes more.
    struct Serial {
        got: Arc<Mutex<Vec<u8>>>,
        room: Arc<Mutex<usize>>,
    }

    impl InputSink for Serial {
        fn offer(&mut self, bytes: &[u8]) -> usize {
            let mut room = self.room.lock().unwrap();
            let n = bytes.len().min(*room);
            *room -= n;
            self.got.lock().unwrap().extend_from_slice(&bytes[..n]);
            n
        }
    }

    struct Rig {
        input: MuxInput,
        serial: Arc<Mutex<Vec<u8>>>,
        room: Arc<Mutex<usize>>,
        monitor: UnixStream,
        quit: Arc<AtomicBool>,
    }

    fn rig() -> Rig {
        let (monitor, peer) = UnixStream::pair().unwrap();
        monitor.set_nonblocking(true).unwrap();
        let serial = Arc::new(Mutex::new(Vec::new()));
        let room = Arc::new(Mutex::new(usize::MAX));
        let quit = Arc::new(AtomicBool::new(false));
        let q = quit.clone();
        let sink = Serial {
            got: serial.clone(),
            room: room.clone(),
        };
        let out = GuestOutput::null("test").unwrap();
        let on_quit: Box<dyn FnOnce() + Send> = Box::new(move || q.store(true, Ordering::SeqCst));
        let (input, _, _) = build(Some(Box::new(sink)), Some(out), peer, on_quit).unwrap();
        Rig {
            input,
            serial,
            room,
            monitor,
            quit,
        }
    }

    fn monitor_got(m: &mut UnixStream) -> Vec<u8> {
        let mut buf = [0u8; 256];
        match m.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    #[test]
    fn ctrl_a_c_switches_and_ctrl_a_ctrl_a_sends_one() {
        let mut r = rig();
        assert_eq!(r.input.offer(b"ab\x01\x01c\x01cinfo\n\x01c!"), 15);
        assert_eq!(*r.serial.lock().unwrap(), b"ab\x01c!");
        assert_eq!(monitor_got(&mut r.monitor), b"info\n");
        assert!(!r.quit.load(Ordering::SeqCst));
    }

    #[test]
    fn an_escape_split_over_reads_still_counts_and_x_quits() {
        let mut r = rig();
        assert_eq!(r.input.offer(b"a\x01"), 2);
        assert_eq!(r.input.offer(b"x"), 1);
        assert!(r.quit.load(Ordering::SeqCst));
        assert_eq!(*r.serial.lock().unwrap(), b"a");
    }

    #[test]
    fn a_full_serial_leaves_the_rest_and_a_pending_ctrl_a_for_later() {
        let mut r = rig();
        *r.room.lock().unwrap() = 2;
        assert_eq!(r.input.offer(b"abcd"), 2);
        *r.room.lock().unwrap() = 0;
        assert_eq!(
            r.input.offer(b"\x01\x01z"),
            1,
            "the first Ctrl-A is taken, the second waits"
        );
        *r.room.lock().unwrap() = 5;
        assert_eq!(r.input.offer(b"\x01z"), 2);
        assert_eq!(*r.serial.lock().unwrap(), b"ab\x01z");
    }

    #[test]
    fn the_monitor_speaks_only_with_the_focus() {
        let stdout = GuestOutput::null("test").unwrap();
        let mut s = Screen {
            focus: Focus::Serial,
            monitor_shown: false,
            held: Vec::new(),
            stdout,
        };
        s.monitor_output(b"banner\r\n(qemu) ");
        assert_eq!(s.held, b"banner\r\n(qemu) ");
        s.switch();
        assert!(s.held.is_empty() && s.focus == Focus::Monitor);
        s.switch();
        assert!(s.held.is_empty() && s.focus == Focus::Serial);
        s.monitor_output(&vec![b'x'; HELD_MAX * 2]);
        assert_eq!(s.held.len(), HELD_MAX);
    }
}
