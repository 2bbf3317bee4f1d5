//! virtio-net (`-netdev tap,id=N,ifname=T -device virtio-net-device,netdev=N[,mac=...]`):
//! queue 0 receives, queue 1 transmits, no offloads. Transmit runs on the vCPU that notified;
//! receive runs on the event loop when the TAP fd has a frame, and a frame that finds
//! no receive buffer waits (the loop stops watching the TAP) until the driver adds some.
pub mod dgram;
pub mod passt;
pub mod stream;
pub mod tap;

use super::queue::{serve_chains, Served};
use super::{DeviceError, VirtioDevice};
use crate::runtime::guest_log::GuestLog;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use tap::FrameIo;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use virtio_bindings::virtio_ids::VIRTIO_ID_NET as DEVICE_TYPE;
const QUEUE_SIZES: [u16; 2] = [256, 256];
const RX: usize = 0;
const TX: usize = 1;
const F_MAC: u64 = 1 << virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
/// struct virtio_net_hdr_v1 (virtio 1.x always has num_buffers).
const HEADER_LEN: usize = 12;
/// The largest frame without offloads: 64 KiB of TSO is not offered, so an MTU-sized frame.
const MAX_FRAME: usize = 65_550;

pub struct Net {
    io: Box<dyn FrameIo>,
    mac: [u8; 6],
    /// A received frame that found no receive buffer yet.
    pending: Option<Vec<u8>>,
    /// Where frames are received into, kept across frames (a frame is copied out at its size).
    scratch: Vec<u8>,
    log: GuestLog,
}

impl Net {
    pub fn new(io: Box<dyn FrameIo>, mac: [u8; 6], log: GuestLog) -> Self {
        Net {
            io,
            mac,
            pending: None,
            scratch: vec![0u8; MAX_FRAME],
            log,
        }
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        serve_chains(queue, mem, |chain| {
            if let Ok(mut r) = chain.reader(mem) {
                let len = r.available_bytes().min(HEADER_LEN + MAX_FRAME);
                let mut packet = vec![0u8; len];
                if r.read_exact(&mut packet).is_err() || len <= HEADER_LEN {
                    crate::guest_log!(
                        self.log,
                        GuestError,
                        "virtio-net short frame",
                        "virtio-net: a {len}-byte transmit buffer holds no frame after its header; dropped"
                    );
                } else if let Err(e) = self.io.send(&packet[HEADER_LEN..]) {
                    crate::guest_log!(
                        self.log,
                        Host,
                        "virtio-net send failure",
                        "virtio-net: sending a frame: {e}"
                    );
                }
            }
            Ok(Served::Used(0))
        })
    }

    /// The next frame from the host, if one is waiting (or was already read).
    fn next_frame(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_none() {
            let n = self.io.recv(&mut self.scratch).ok()?;
            self.pending = Some(self.scratch[..n].to_vec());
        }
        self.pending.take()
    }

    /// Moves frames from the host into receive buffers while both exist.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        let used = self.fill(queue, mem)?;
        // Out of buffers with a frame waiting: hold it, so its fd is not watched meanwhile.
        if self.pending.is_none() {
            self.pending = self.next_frame();
        }
        Ok(used)
    }

    fn fill(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        serve_chains(queue, mem, |chain| {
            let Some(frame) = self.next_frame() else {
                return Ok(Served::NotNow);
            };
            let written = match chain.writer(mem) {
                Ok(mut w) => {
                    let mut header = [0u8; HEADER_LEN];
                    header[10] = 1; // num_buffers
                    let room = w.available_bytes().saturating_sub(HEADER_LEN);
                    let n = frame.len().min(room);
                    match w.write_all(&header).and_then(|()| w.write_all(&frame[..n])) {
                        Ok(()) => HEADER_LEN + n,
                        Err(_) => 0,
                    }
                }
                Err(_) => 0,
            };
            Ok(Served::Used(written as u32))
        })
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }

    fn features(&self) -> u64 {
        F_MAC
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.mac, offset, data);
    }

    fn process(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        match index {
            TX => self.transmit(queue, mem),
            // New receive buffers: a waiting frame may go in now.
            RX => self.receive(queue, mem),
            _ => Ok(false),
        }
    }

    fn io_fd(&self) -> Option<RawFd> {
        // While a frame waits for a buffer, polling the fd again would only spin.
        self.pending.is_none().then(|| self.io.fd()).flatten()
    }

    fn handle_io(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        match queues.get_mut(RX) {
            Some(q) if q.ready() => self.receive(q, mem),
            _ => Ok(false),
        }
    }

    fn reset(&mut self) {
        self.pending = None;
    }
}

/// QEMU's default MAC for the first NIC, 52:54:00:12:34:56.
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

#[cfg(test)]
mod tests;
