//! `-netdev dgram`: an Ethernet frame per datagram, on a Unix or UDP socket bound to the local
//! address and sending to the remote one, or on a connected socket the caller passes
//! (`local.type=fd`). A datagram the host has no room for is dropped, as a busy link drops it.
use super::tap::FrameIo;
use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

enum Socket {
    Unix(UnixDatagram, Option<PathBuf>),
    Udp(UdpSocket, Option<std::net::SocketAddr>),
}

/// A datagram socket that carries frames.
pub struct DgramFrames {
    socket: Socket,
}

fn dropped_if_full(sent: io::Result<usize>) -> io::Result<()> {
    match sent {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

impl DgramFrames {
    /// A connected Unix (or any family's, adopted) datagram socket: frames go to its peer.
    pub fn connected(socket: UnixDatagram) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: Socket::Unix(socket, None),
        })
    }

    /// A Unix datagram socket bound at `local` (an old socket file there is replaced), sending
    /// to `remote`.
    pub fn unix(local: &std::path::Path, remote: PathBuf) -> io::Result<Self> {
        let _ = std::fs::remove_file(local);
        let socket = UnixDatagram::bind(local)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: Socket::Unix(socket, Some(remote)),
        })
    }

    /// A UDP socket bound at `local`, sending to `remote`.
    pub fn udp(local: &str, remote: &str) -> io::Result<Self> {
        use std::net::ToSocketAddrs;
        let remote = remote
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{remote} has no address")))?;
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: Socket::Udp(socket, Some(remote)),
        })
    }
}

impl FrameIo for DgramFrames {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        dropped_if_full(match &self.socket {
            Socket::Unix(s, Some(to)) => s.send_to(frame, to),
            Socket::Unix(s, None) => s.send(frame),
            Socket::Udp(s, Some(to)) => s.send_to(frame, to),
            Socket::Udp(s, None) => s.send(frame),
        })
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.socket {
            Socket::Unix(s, _) => s.recv(buf),
            Socket::Udp(s, _) => s.recv(buf),
        }
    }

    fn fd(&self) -> Option<RawFd> {
        Some(match &self.socket {
            Socket::Unix(s, _) => s.as_raw_fd(),
            Socket::Udp(s, _) => s.as_raw_fd(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_a_unix_pair_of_bound_sockets_and_a_full_peer_drops_them() {
        let dir = std::env::temp_dir().join(format!("minnow-dgram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        let mut left = DgramFrames::unix(&a, b.clone()).unwrap();
        let mut right = DgramFrames::unix(&b, a.clone()).unwrap();
        left.send(b"hello frame").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(right.recv(&mut buf).ok(), Some(11));
        assert_eq!(&buf[..11], b"hello frame");
        assert_eq!(
            right.recv(&mut buf).err().map(|e| e.kind()),
            Some(io::ErrorKind::WouldBlock)
        );
        // Nobody reads `right`: sending on until its queue is full drops frames without error.
        for _ in 0..10_000 {
            left.send(&[0u8; 1500]).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn frames_cross_udp() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port_b = probe.local_addr().unwrap().port();
        drop(probe);
        let mut left = DgramFrames::udp("127.0.0.1:0", &format!("127.0.0.1:{port_b}")).unwrap();
        let mut right = DgramFrames::udp(&format!("127.0.0.1:{port_b}"), "127.0.0.1:9").unwrap();
        left.send(b"over udp").unwrap();
        let mut buf = [0u8; 64];
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let n = loop {
            match right.recv(&mut buf) {
                Ok(n) => break n,
                Err(_) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"over udp");
    }
}
