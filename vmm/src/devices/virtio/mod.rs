//! virtio devices on QEMU microvm's virtio-mmio transports: the transport (`mmio.rs`, one
//! register block per device) and the devices behind it, one file each. Queues are
//! rust-vmm's `virtio-queue`, which bounds-checks every descriptor against guest memory.
pub mod block;
pub mod console;
pub mod mmio;
pub mod net;
pub mod placement;
pub mod queue;
pub mod rng;
pub mod vsock;

use crate::snapshot::codec::StateError;
use std::os::fd::RawFd;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

/// The feature every device offers: virtio 1.x (the transport adds it).
pub const VIRTIO_F_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;

/// Reads a device's configuration space `config` at `offset` into `data`, in any access width;
/// bytes past its end read as zero.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| config.get(o.checked_add(i)?))
            .copied()
            .unwrap_or(0);
    }
}

/// Why a device could not complete a request: the guest's fault, never the VMM's crash.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("bad descriptor chain: {0}")]
    Chain(#[from] virtio_queue::Error),
    #[error("guest memory: {0}")]
    Memory(String),
    /// The host side of the device failed (a vhost ioctl, say).
    #[error("{0}")]
    Backend(String),
}

/// A device behind a virtio-mmio transport.
pub trait VirtioDevice: Send {
    /// The virtio device ID (4: entropy source, 2: block, ...).
    fn device_type(&self) -> u32;
    /// Its feature bits, without VIRTIO_F_VERSION_1 (the transport offers that).
    fn features(&self) -> u64;
    /// The largest size of each of its queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads its configuration space at `offset` (bytes past its end read as zero).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes its configuration space; most devices' is read-only.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Serves what the driver made available on queue `index`. Returns whether buffers were
    /// used, so the driver may need an interrupt.
    fn process(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError>;
    /// The driver set DRIVER_OK with these features and queues: a device whose work happens
    /// elsewhere (vhost) starts it here.
    fn activate(
        &mut self,
        _features: u64,
        _queues: &[Queue],
        _mem: &GuestMemoryMmap,
    ) -> Result<(), DeviceError> {
        Ok(())
    }
    /// The driver reset the device.
    fn reset(&mut self) {}
    /// Its own state beyond the transport's and the queues', for a snapshot (empty: none).
    /// A device whose rings are served elsewhere (vhost) stops that work here and brings its
    /// place in them back into `queues`. A device that cannot be saved says why.
    fn save_state(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> Result<Vec<u8>, StateError> {
        Ok(Vec::new())
    }
    /// The snapshot is written (or the save failed): work stopped for it starts again.
    fn state_saved(&mut self, _queues: &[Queue], _mem: &GuestMemoryMmap) {}
    /// Restored and running again, before the guest does: what the device tells the driver
    /// about the move (vsock's transport reset). Whether it used buffers (an interrupt is due).
    fn restored(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        Ok(false)
    }
    /// Puts back what [`VirtioDevice::save_state`] gave.
    fn restore_state(&mut self, state: &[u8]) -> Result<(), StateError> {
        match state.is_empty() {
            true => Ok(()),
            false => Err(StateError::refused(
                "virtio device",
                "keeps no state, but the snapshot has some",
            )),
        }
    }
    /// Makes what the device wrote durable on the host (a disk's cache); at exit.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// A host fd whose readiness means work for the device (a TAP's incoming frames, vhost's
    /// used-buffer signal, console input). A device that has one when it is created is watched
    /// by the event loop while the driver runs the device.
    fn io_fd(&self) -> Option<RawFd> {
        None
    }
    /// The `io_fd` is ready: serves it. Returns whether buffers were used.
    fn handle_io(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_space_reads_in_any_access_width_and_zero_past_its_end() {
        let config = 0x1122_3344_5566_7788u64.to_le_bytes();
        let mut q = [0u8; 8];
        read_config_bytes(&config, 0, &mut q);
        assert_eq!(q, config);
        let mut d = [0u8; 4];
        read_config_bytes(&config, 4, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x1122_3344);
        read_config_bytes(&config, 6, &mut d);
        assert_eq!(d, [0x22, 0x11, 0, 0]);
        read_config_bytes(&config, u64::MAX, &mut d);
        assert_eq!(d, [0; 4]);
    }
}
