//! `-netdev stream`: Ethernet frames on a byte stream (a Unix or TCP socket), each after its
//! length as 4 bytes big-endian: QEMU's framing, and passt's. The socket is non-blocking and
//! nothing here waits: a frame the socket has no room for is dropped whole, as a busy link drops
//! it, and the rest of one it took in part goes out before anything else, at the next send or
//! receive, so the stream never loses its place. Received bytes are framed here; a length no
//! frame can have means the peer does not speak this framing, and the link goes down with one
//! line.
use super::tap::FrameIo;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

/// The largest frame either side may send: 64 KiB and an Ethernet header, as QEMU allows.
pub const MAX_FRAME: usize = 65_536 + 14;
const LENGTH_BYTES: usize = 4;
/// How much one read takes: a largest frame and its length, or many small ones.
const READ_CHUNK: usize = MAX_FRAME + LENGTH_BYTES;

/// A connected stream socket, framed.
pub struct StreamFrames<S: Read + Write + AsRawFd + Send> {
    socket: S,
    /// Bytes received; those from `start` on are not yet handed out as frames.
    received: Vec<u8>,
    start: usize,
    /// The rest of a frame the socket took in part: it goes first.
    unsent: Vec<u8>,
    /// What the link is called in messages (`-netdev ID`).
    name: String,
    /// Set once the peer has gone or broke the framing: nothing more is sent or polled.
    closed: bool,
}

impl<S: Read + Write + AsRawFd + Send> StreamFrames<S> {
    /// Frames `socket`, which must be connected; it is made non-blocking.
    pub fn new(socket: S, name: &str) -> io::Result<Self> {
        crate::host_fd::set_nonblocking(socket.as_raw_fd())?;
        Ok(Self {
            socket,
            received: Vec::with_capacity(2 * READ_CHUNK),
            start: 0,
            unsent: Vec::new(),
            name: name.into(),
            closed: false,
        })
    }

    /// Shuts the socket down both ways: the peer sees the end even while a copy of it lives.
    pub fn shut_down(&mut self) {
        self.closed = true;
        // SAFETY: shutdown on a socket this value owns; it touches no memory.
        unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RDWR) };
    }

    fn close(&mut self, why: &str) {
        if !self.closed {
            crate::report!("{}: {why}; the link is down", self.name);
            self.closed = true;
        }
    }

    /// A whole frame from `received`, if one is there.
    fn take_frame(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let waiting = &self.received[self.start..];
        let header: [u8; LENGTH_BYTES] = waiting.get(..LENGTH_BYTES)?.try_into().ok()?;
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME {
            self.close(&format!("the peer sent a {len}-byte frame (at most {MAX_FRAME}): it does not speak QEMU's stream framing"));
            return Some(Err(io::ErrorKind::InvalidData.into()));
        }
        let frame = waiting.get(LENGTH_BYTES..LENGTH_BYTES + len)?;
        let n = len.min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        // Handed-out bytes are skipped, not moved: a read brings many frames.
        self.start += LENGTH_BYTES + len;
        if self.start == self.received.len() {
            self.received.clear();
            self.start = 0;
        }
        Some(Ok(n))
    }

    /// Reads what the socket has, up to READ_CHUNK bytes, after what is still waiting (moved to
    /// the front first: at most one partial frame).
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.received.drain(..self.start);
            self.start = 0;
        }
        let have = self.received.len();
        self.received.resize(have + READ_CHUNK, 0);
        let read = self.socket.read(&mut self.received[have..]);
        self.received.truncate(have + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => {
                self.close("the peer closed the connection");
                Err(io::ErrorKind::UnexpectedEof.into())
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
            Err(e) => {
                self.close(&format!("reading: {e}"));
                Err(e)
            }
        }
    }

    /// Sends what is left of a frame the socket took in part; whether all of it went.
    fn flush_unsent(&mut self) -> io::Result<bool> {
        while !self.unsent.is_empty() {
            match self.socket.write(&self.unsent) {
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => {
                    self.close(&format!("sending: {e}"));
                    return Err(e);
                }
            }
        }
        Ok(true)
    }
}

impl<S: Read + Write + AsRawFd + Send> FrameIo for StreamFrames<S> {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if self.closed || !self.flush_unsent()? {
            return Ok(());
        }
        let header = (frame.len() as u32).to_be_bytes();
        let total = header.len() + frame.len();
        match self
            .socket
            .write_vectored(&[IoSlice::new(&header), IoSlice::new(frame)])
        {
            Ok(n) if n == total => Ok(()),
            Ok(n) => {
                self.unsent.extend_from_slice(&header[n.min(header.len())..]);
                self.unsent
                    .extend_from_slice(&frame[n.saturating_sub(header.len())..]);
                Ok(())
            }
            // No room at all: the frame is dropped whole, and the stream stays in step.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => {
                self.close(&format!("sending: {e}"));
                Err(e)
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.closed {
                return Err(io::ErrorKind::NotConnected.into());
            }
            // The peer may have made room since a send left part of a frame behind.
            let _ = self.flush_unsent();
            if let Some(frame) = self.take_frame(buf) {
                return frame;
            }
            self.fill()?;
        }
    }

    fn fd(&self) -> Option<RawFd> {
        (!self.closed).then(|| self.socket.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn pair() -> (StreamFrames<UnixStream>, UnixStream) {
        let (ours, peer) = UnixStream::pair().unwrap();
        (StreamFrames::new(ours, "-netdev n0").unwrap(), peer)
    }

    #[test]
    fn frames_go_out_after_their_length() {
        let (mut frames, mut peer) = pair();
        frames.send(b"abc").unwrap();
        let mut got = [0u8; 7];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, [0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn frames_come_in_whole_however_the_bytes_arrive() {
        let (mut frames, mut peer) = pair();
        let mut buf = [0u8; 64];
        // A frame in three pieces, then two frames in one write.
        for piece in [
            &[0u8, 0][..],
            &[0, 2, b'h'],
            &[b'i', 0, 0, 0, 1, b'x', 0, 0, 0, 0],
        ] {
            peer.write_all(piece).unwrap();
        }
        assert_eq!(frames.recv(&mut buf).ok(), Some(2));
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(frames.recv(&mut buf).ok(), Some(1));
        assert_eq!(buf[0], b'x');
        assert_eq!(frames.recv(&mut buf).ok(), Some(0));
        assert_eq!(
            frames.recv(&mut buf).err().map(|e| e.kind()),
            Some(io::ErrorKind::WouldBlock)
        );
        assert!(frames.fd().is_some());
    }

    #[test]
    fn a_length_no_frame_has_or_a_peer_gone_takes_the_link_down() {
        let (mut frames, mut peer) = pair();
        peer.write_all(&u32::MAX.to_be_bytes()).unwrap();
        let mut buf = [0u8; 64];
        assert!(frames.recv(&mut buf).is_err());
        assert!(frames.fd().is_none(), "a broken stream is not polled again");
        frames.send(b"ignored").unwrap();

        let (mut frames, peer) = pair();
        drop(peer);
        assert!(frames.recv(&mut buf).is_err());
        assert!(frames.fd().is_none());
    }

    #[test]
    fn a_full_socket_drops_whole_frames_and_the_stream_stays_in_step() {
        let (mut frames, mut peer) = pair();
        let frame = vec![7u8; 1500];
        for _ in 0..2000 {
            frames.send(&frame).unwrap();
        }
        assert!(frames.fd().is_some(), "dropping is no error");
        // Whatever arrives, once the reader catches up and one more frame is sent, is a run of
        // whole frames.
        peer.set_nonblocking(true).unwrap();
        let mut bytes = Vec::new();
        let _ = peer.read_to_end(&mut bytes);
        assert!(!bytes.is_empty());
        frames.send(&frame).unwrap();
        let _ = peer.read_to_end(&mut bytes);
        let mut at = 0;
        while at < bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(len, 1500);
            at += 4 + len;
        }
        assert_eq!(at, bytes.len());
    }
}
