//! vhost-vsock (`-device vhost-vsock-device,guest-cid=N`): the host kernel's vhost_vsock module
//! moves the packets; minnow only hands it the guest's memory map and the queues, and turns its
//! "used buffers" signal into the transport's interrupt.
//!
//! Kicks go through minnow: a QueueNotify write reaches `process`, which writes the queue's kick
//! eventfd (no KVM ioeventfd, so the transport stays the one place that decodes its registers).
//! vhost signals one call eventfd for both data queues; the event loop watches it.
//! The event queue (transport resets after migration) is never used: minnow does not migrate.
mod backend;

pub use backend::Backend;

use super::{DeviceError, VirtioDevice};
use crate::snapshot::codec::StateError;
use std::os::fd::{AsRawFd, RawFd};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK as DEVICE_TYPE;
/// rx, tx and event, as the spec orders them; vhost serves the first two.
const QUEUE_SIZES: [u16; 3] = [256, 256, 256];
const DATA_QUEUES: usize = 2;
/// CIDs 0-2 are the hypervisor, local and host; u32::MAX is VMADDR_CID_ANY.
pub const MIN_GUEST_CID: u64 = 3;
pub const MAX_GUEST_CID: u64 = u32::MAX as u64 - 1;

/// Why the host's vhost-vsock could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    #[error("/dev/vhost-vsock: {0} (load the host's vhost_vsock module: `modprobe vhost_vsock`)")]
    Open(std::io::Error),
    #[error("vhostfd={fd}: {source} (it must be an open /dev/vhost-vsock)")]
    Fd { fd: RawFd, source: std::io::Error },
    #[error("guest CID {cid}: {source} (is another VM using it?)")]
    Cid { cid: u64, source: std::io::Error },
    #[error("vhost-vsock {what}: {source}")]
    Vhost {
        what: &'static str,
        source: vhost::Error,
    },
    #[error("vhost-vsock {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the host's vhost-vsock offers features {0:#x}, without virtio 1.0, which minnow needs")]
    NoVersion1(u64),
    #[error("an eventfd for vhost-vsock: {0}")]
    EventFd(std::io::Error),
}

/// What the device asks of the host's vhost-vsock: the real one ([`Backend`]), or a stand-in in
/// tests and fuzzing.
pub trait VsockHost: Send {
    /// Hands over the negotiated features, the memory map and the two data rings with their
    /// kick and call eventfds, and starts it.
    fn start(
        &mut self,
        features: u64,
        mem: &GuestMemoryMmap,
        rings: &[VringConfigData],
        kicks: &[EventFd],
        call: &EventFd,
    ) -> Result<(), VsockError>;
    /// Stops it (a reset): it lets go of the rings.
    fn stop(&mut self) -> std::io::Result<()>;
}

impl VsockHost for Backend {
    fn start(
        &mut self,
        features: u64,
        mem: &GuestMemoryMmap,
        rings: &[VringConfigData],
        kicks: &[EventFd],
        call: &EventFd,
    ) -> Result<(), VsockError> {
        self.set_features(features).map_err(vhost("set_features"))?;
        self.set_mem_table(&memory_table(mem))
            .map_err(vhost("set_mem_table"))?;
        for (i, (ring, kick)) in rings.iter().zip(kicks).enumerate() {
            self.set_vring_num(i, ring.queue_size)
                .map_err(vhost("set_vring_num"))?;
            self.set_vring_addr(i, ring).map_err(vhost("set_vring_addr"))?;
            self.set_vring_base(i, 0).map_err(vhost("set_vring_base"))?;
            self.set_vring_call(i, call).map_err(vhost("set_vring_call"))?;
            self.set_vring_kick(i, kick).map_err(vhost("set_vring_kick"))?;
        }
        self.set_running(true).map_err(|source| VsockError::Io {
            what: "start",
            source,
        })
    }

    fn stop(&mut self) -> std::io::Result<()> {
        self.set_running(false)
    }
}

fn memory_table(mem: &GuestMemoryMmap) -> Vec<VhostUserMemoryRegionInfo> {
    mem.iter()
        .map(|r| VhostUserMemoryRegionInfo {
            guest_phys_addr: r.start_addr().raw_value(),
            memory_size: r.len(),
            userspace_addr: r.as_ptr() as u64,
            mmap_offset: 0,
            mmap_handle: -1,
        })
        .collect()
}

pub struct Vsock {
    host: Box<dyn VsockHost>,
    cid: u64,
    kicks: [EventFd; DATA_QUEUES],
    call: EventFd,
    running: bool,
}

fn vhost(what: &'static str) -> impl FnOnce(vhost::Error) -> VsockError {
    move |source| VsockError::Vhost { what, source }
}

impl Vsock {
    /// Opens /dev/vhost-vsock (or takes the caller's `vhostfd`), claims it and registers `cid`,
    /// so a missing module or a CID in use is an error at start-up, not a silent guest without a
    /// socket.
    pub fn new(cid: u64, vhostfd: Option<RawFd>, mem: &GuestMemoryMmap) -> Result<Self, VsockError> {
        let backend = match vhostfd {
            None => Backend::open(mem).map_err(VsockError::Open)?,
            Some(fd) => Backend::adopt(fd, mem).map_err(|source| VsockError::Fd { fd, source })?,
        };
        backend.set_owner().map_err(vhost("set_owner"))?;
        backend
            .set_guest_cid(cid)
            .map_err(|source| VsockError::Cid { cid, source })?;
        // minnow's transport is virtio 1.x only: a vhost without it could not serve the rings.
        let offered = backend.get_features().map_err(vhost("get_features"))?;
        if offered & super::VIRTIO_F_VERSION_1 == 0 {
            return Err(VsockError::NoVersion1(offered));
        }
        Self::with_host(cid, Box::new(backend))
    }

    /// The device over any [`VsockHost`] (tests and fuzzing use a stand-in).
    pub fn with_host(cid: u64, host: Box<dyn VsockHost>) -> Result<Self, VsockError> {
        let eventfd = || EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(VsockError::EventFd);
        Ok(Vsock {
            host,
            cid,
            kicks: [eventfd()?, eventfd()?],
            call: eventfd()?,
            running: false,
        })
    }

    /// Hands vhost the memory map and the two data queues, then starts it.
    fn start(&mut self, features: u64, queues: &[Queue], mem: &GuestMemoryMmap) -> Result<(), VsockError> {
        // A driver that cleared DRIVER_OK without a reset and sets it again: vhost takes new
        // rings only while stopped.
        self.reset();
        let rings: Vec<VringConfigData> = queues
            .iter()
            .take(DATA_QUEUES)
            .map(|q| VringConfigData {
                queue_max_size: q.max_size(),
                queue_size: q.size(),
                flags: 0,
                desc_table_addr: q.desc_table(),
                used_ring_addr: q.used_ring(),
                avail_ring_addr: q.avail_ring(),
                log_addr: None,
            })
            .collect();
        self.host.start(features, mem, &rings, &self.kicks, &self.call)?;
        self.running = true;
        Ok(())
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }

    /// Only virtio 1 (the transport adds it): vhost's own extras (event index, indirect
    /// descriptors, logging) are not needed for a control channel.
    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    /// The configuration space is the guest's CID, a little-endian u64.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.cid.to_le_bytes(), offset, data);
    }

    fn activate(
        &mut self,
        features: u64,
        queues: &[Queue],
        mem: &GuestMemoryMmap,
    ) -> Result<(), DeviceError> {
        let data = queues.get(..DATA_QUEUES).unwrap_or_default();
        if data.len() < DATA_QUEUES
            || data
                .iter()
                .any(|q| !q.is_valid(mem) || !rings_in_one_region(q, mem))
        {
            return Err(DeviceError::Backend(
                "vhost-vsock: the driver's rx and tx rings are not set up within guest RAM".into(),
            ));
        }
        // Only what was offered, whatever the driver wrote: vhost must not run in a mode
        // (IOTLB, dirty logging) that minnow does not serve.
        let features = features & super::VIRTIO_F_VERSION_1;
        self.start(features, queues, mem)
            .map_err(|e| DeviceError::Backend(e.to_string()))
    }

    /// A kick on rx or tx is for vhost; the event queue only holds buffers minnow never fills.
    fn process(
        &mut self,
        index: usize,
        _queue: &mut Queue,
        _mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        if let Some(kick) = self.kicks.get(index) {
            let _ = kick.write(1);
        }
        Ok(false)
    }

    /// vhost's rings would have to be stopped and read back, and the guest told of a transport
    /// reset on restore: not built yet, so a snapshot of a VM with vsock is refused.
    fn save_state(&mut self, _queues: &mut [Queue]) -> Result<Vec<u8>, StateError> {
        Err(StateError::refused(
            "vhost-vsock-device",
            "a VM with vsock cannot be saved yet (remove the device to take snapshots)",
        ))
    }

    fn reset(&mut self) {
        if self.running {
            if let Err(e) = self.host.stop() {
                crate::report!("vhost-vsock: stopping it on reset: {e}");
            }
            self.running = false;
        }
    }

    /// Always there, so the event loop watches it for the device; the transport offers it
    /// only while the driver runs the device.
    fn io_fd(&self) -> Option<RawFd> {
        Some(self.call.as_raw_fd())
    }

    /// vhost used buffers: the transport raises the interrupt.
    fn handle_io(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        Ok(self.call.read().is_ok())
    }
}

/// Whether each of the queue's rings lies inside one guest memory region. vhost reads and
/// writes the rings at the host addresses it is given, unchecked against its memory table, and
/// regions adjacent for the guest (RAM and the ROM's windows) are separate host mappings: a ring
/// across such a seam would have vhost touch whatever the VMM has mapped past the first one.
fn rings_in_one_region(q: &Queue, mem: &GuestMemoryMmap) -> bool {
    let n = usize::from(q.size());
    [
        (q.desc_table(), 16 * n),
        (q.avail_ring(), 6 + 2 * n),
        (q.used_ring(), 6 + 8 * n),
    ]
    .into_iter()
    .all(|(addr, len)| mem.get_slice(GuestAddress(addr), len).is_ok())
}

impl Drop for Vsock {
    fn drop(&mut self) {
        self.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_across_two_memory_regions_is_refused() {
        // Two regions adjacent for the guest, as RAM and the ROM's low window are.
        let mem =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1_0000), (GuestAddress(0x1_0000), 0x1_0000)])
                .unwrap();
        let mut q = Queue::new(256).unwrap();
        q.set_size(256);
        q.set_desc_table_address(Some(0x1000), Some(0));
        q.set_avail_ring_address(Some(0x3000), Some(0));
        q.set_used_ring_address(Some(0x4000), Some(0));
        assert!(rings_in_one_region(&q, &mem));
        // The used ring (6 + 8 * 256 bytes) from 0xFFFC runs into the second region.
        q.set_used_ring_address(Some(0xFFFC), Some(0));
        assert!(!rings_in_one_region(&q, &mem));
        q.set_used_ring_address(Some(0x1_0000), Some(0));
        assert!(rings_in_one_region(&q, &mem));
    }

    /// The nested suite proves the device with a real vhost_vsock; this machine has none.
    #[test]
    fn a_missing_vhost_module_says_what_to_load() {
        if std::path::Path::new("/dev/vhost-vsock").exists() {
            eprintln!("not supported here: /dev/vhost-vsock exists, so it cannot be missing");
            return;
        }
        let mem = GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), 0x10000)]).unwrap();
        let err = Vsock::new(3, None, &mem).err().expect("no /dev/vhost-vsock here");
        assert!(err.to_string().contains("modprobe vhost_vsock"), "{err}");
    }
}
