//! vhost-vsock (`-device vhost-vsock-device,guest-cid=N`): the host kernel's vhost_vsock module
//! moves the packets; minnow only hands it the guest's memory map and the queues, and turns its
//! "used buffers" signal into the transport's interrupt.
//!
//! Kicks go through minnow: a QueueNotify write reaches `process`, which writes the queue's kick
//! eventfd (no KVM ioeventfd, so the transport stays the one place that decodes its registers).
//! vhost signals one call eventfd for both data queues; the event loop watches it.
//!
//! A snapshot stops vhost and reads its place in each ring back (GET_VRING_BASE) into the
//! queues; vhost starts again from there once the state is written, or in the restored VM. The
//! event queue is minnow's: a restored VM gets a transport reset on it, so the guest drops its
//! connections (their peers are gone) and reads its CID again (a clone may have another).
mod backend;

pub use backend::Backend;

use super::queue::{serve_chains, Served};
use super::{DeviceError, VirtioDevice};
use crate::snapshot::codec::StateError;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK as DEVICE_TYPE;
/// rx, tx and event, as the spec orders them; vhost serves the first two.
const QUEUE_SIZES: [u16; 3] = [256, 256, 256];
const DATA_QUEUES: usize = 2;
const EVENT_QUEUE: usize = 2;
/// `struct virtio_vsock_event`'s id for a transport reset (virtio 1.2, 5.10.6.7).
const EVENT_TRANSPORT_RESET: u32 = 0;
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
    /// kick and call eventfds, and starts it at `bases` (each ring's next available entry).
    fn start(
        &mut self,
        features: u64,
        mem: &GuestMemoryMmap,
        rings: &[(VringConfigData, u16)],
        kicks: &[EventFd],
        call: &EventFd,
    ) -> Result<(), VsockError>;
    /// Stops it (a reset): it lets go of the rings.
    fn stop(&mut self) -> std::io::Result<()>;
    /// Where vhost is in ring `index` (its next available entry), once stopped.
    fn ring_base(&mut self, index: usize) -> Result<u16, VsockError>;
}

impl VsockHost for Backend {
    fn start(
        &mut self,
        features: u64,
        mem: &GuestMemoryMmap,
        rings: &[(VringConfigData, u16)],
        kicks: &[EventFd],
        call: &EventFd,
    ) -> Result<(), VsockError> {
        self.set_features(features).map_err(vhost("set_features"))?;
        self.set_mem_table(&memory_table(mem))
            .map_err(vhost("set_mem_table"))?;
        for (i, ((ring, base), kick)) in rings.iter().zip(kicks).enumerate() {
            self.set_vring_num(i, ring.queue_size)
                .map_err(vhost("set_vring_num"))?;
            self.set_vring_addr(i, ring).map_err(vhost("set_vring_addr"))?;
            self.set_vring_base(i, *base).map_err(vhost("set_vring_base"))?;
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

    fn ring_base(&mut self, index: usize) -> Result<u16, VsockError> {
        let base = self.get_vring_base(index).map_err(vhost("get_vring_base"))?;
        // vhost keeps the index in 16 bits for a split ring.
        Ok(base as u16)
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
    /// The features vhost runs with, while it runs.
    running: Option<u64>,
    /// The features vhost ran with before a snapshot stopped it.
    stopped_for_save: Option<u64>,
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
            running: None,
            stopped_for_save: None,
        })
    }

    /// Hands vhost the memory map and the two data queues, then starts it.
    fn start(&mut self, features: u64, queues: &[Queue], mem: &GuestMemoryMmap) -> Result<(), VsockError> {
        // A driver that cleared DRIVER_OK without a reset and sets it again: vhost takes new
        // rings only while stopped.
        self.reset();
        let rings: Vec<(VringConfigData, u16)> = queues
            .iter()
            .take(DATA_QUEUES)
            .map(|q| {
                let ring = VringConfigData {
                    queue_max_size: q.max_size(),
                    queue_size: q.size(),
                    flags: 0,
                    desc_table_addr: q.desc_table(),
                    used_ring_addr: q.used_ring(),
                    avail_ring_addr: q.avail_ring(),
                    log_addr: None,
                };
                (ring, q.next_avail())
            })
            .collect();
        self.host.start(features, mem, &rings, &self.kicks, &self.call)?;
        self.running = Some(features);
        Ok(())
    }

    /// Stops vhost and brings its place in each data ring into `queues`: the next available
    /// entry from vhost, the next used one from the ring in guest memory (vhost wrote it there).
    fn stop_for_save(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> Result<(), VsockError> {
        let Some(features) = self.running else {
            return Ok(());
        };
        self.host.stop().map_err(|source| VsockError::Io {
            what: "stopping it for the snapshot",
            source,
        })?;
        self.running = None;
        self.stopped_for_save = Some(features);
        for (i, q) in queues.iter_mut().take(DATA_QUEUES).enumerate() {
            q.set_next_avail(self.host.ring_base(i)?);
            let used_idx = GuestAddress(q.used_ring()).checked_add(2);
            let used: u16 = used_idx
                .and_then(|a| mem.read_obj(a).ok())
                .ok_or(VsockError::Io {
                    what: "reading a used ring's index",
                    source: std::io::ErrorKind::InvalidData.into(),
                })?;
            q.set_next_used(used);
        }
        Ok(())
    }
}

/// Puts one transport-reset event in the event queue's next buffer; whether there was one.
fn send_transport_reset(queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
    let mut sent = false;
    serve_chains(queue, mem, |chain| {
        if sent {
            return Ok(Served::NotNow);
        }
        sent = true;
        let written = match chain.writer(mem) {
            Ok(mut w) => w
                .write_all(&EVENT_TRANSPORT_RESET.to_le_bytes())
                .map(|()| 4)
                .unwrap_or(0),
            Err(_) => 0,
        };
        Ok(Served::Used(written))
    })
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

    /// vhost stops for the capture (and starts again in [`VirtioDevice::state_saved`]); the
    /// rest of the device is its command line (the CID), so it adds nothing to the state.
    fn save_state(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> Result<Vec<u8>, StateError> {
        self.stop_for_save(queues, mem)
            .map_err(|e| StateError::refused("vhost-vsock-device", e.to_string()))?;
        Ok(Vec::new())
    }

    fn state_saved(&mut self, queues: &[Queue], mem: &GuestMemoryMmap) {
        if let Some(features) = self.stopped_for_save.take() {
            if let Err(e) = self.start(features, queues, mem) {
                crate::report!("vhost-vsock: starting it again after the snapshot: {e}");
            }
        }
    }

    /// vhost already runs from the restored rings (`activate`); the guest hears of the move.
    fn restored(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        match queues.get_mut(EVENT_QUEUE) {
            Some(q) if q.ready() => send_transport_reset(q, mem),
            _ => Ok(false),
        }
    }

    fn reset(&mut self) {
        self.stopped_for_save = None;
        if self.running.take().is_some() {
            if let Err(e) = self.host.stop() {
                crate::report!("vhost-vsock: stopping it on reset: {e}");
            }
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

    /// Stands in for vhost: records each start's ring bases, and says it stopped at `at`.
    struct Recorder {
        starts: std::sync::Arc<std::sync::Mutex<Vec<Vec<u16>>>>,
        at: [u16; 2],
    }

    impl VsockHost for Recorder {
        fn start(
            &mut self,
            _: u64,
            _: &GuestMemoryMmap,
            rings: &[(VringConfigData, u16)],
            _: &[EventFd],
            _: &EventFd,
        ) -> Result<(), VsockError> {
            let bases = rings.iter().map(|(_, b)| *b).collect();
            self.starts.lock().unwrap().push(bases);
            Ok(())
        }
        fn stop(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn ring_base(&mut self, index: usize) -> Result<u16, VsockError> {
            Ok(self.at[index])
        }
    }

    /// A snapshot stops vhost, takes its place in the rings (and the used index vhost wrote to
    /// memory), and starts it again from there; a restored VM's driver gets a transport reset.
    #[test]
    fn a_snapshot_takes_vhosts_place_in_the_rings_and_a_restore_resets_the_transport() {
        use virtio_queue::desc::{split::Descriptor, RawDescriptor};
        use virtio_queue::mock::MockSplitQueue;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let starts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let host = Recorder {
            starts: starts.clone(),
            at: [7, 3],
        };
        let mut dev = Vsock::with_host(3, Box::new(host)).unwrap();
        let mocks = [0x1_0000, 0x2_0000, 0x3_0000].map(|a| MockSplitQueue::create(&mem, GuestAddress(a), 16));
        let mut queues: Vec<Queue> = mocks.iter().map(|m| m.create_queue().unwrap()).collect();
        dev.activate(0, &queues, &mem).unwrap();
        // vhost used 5 of the tx ring's buffers.
        mem.write_obj(5u16, GuestAddress(queues[1].used_ring() + 2))
            .unwrap();
        assert!(dev.save_state(&mut queues, &mem).unwrap().is_empty());
        assert_eq!((queues[0].next_avail(), queues[1].next_avail()), (7, 3));
        assert_eq!((queues[0].next_used(), queues[1].next_used()), (0, 5));
        dev.state_saved(&queues, &mem);
        assert_eq!(*starts.lock().unwrap(), [vec![0, 0], vec![7, 3]]);

        // The event queue holds one 4-byte buffer for the device to fill.
        let event = RawDescriptor::from(Descriptor::new(0x8000, 4, 2 /* WRITE */, 0));
        mocks[2].add_desc_chains(&[event], 0).unwrap();
        mem.write_obj(0xFFFF_FFFFu32, GuestAddress(0x8000)).unwrap();
        queues[2] = mocks[2].create_queue().unwrap();
        assert!(dev.restored(&mut queues, &mem).unwrap(), "an interrupt is due");
        assert_eq!(
            mem.read_obj::<u32>(GuestAddress(0x8000)).unwrap(),
            EVENT_TRANSPORT_RESET
        );
        assert_eq!(queues[2].next_used(), 1);
        assert!(
            !dev.restored(&mut queues, &mem).unwrap(),
            "no buffer left: nothing sent"
        );
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
