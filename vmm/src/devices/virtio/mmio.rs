//! The virtio-mmio transport, version 2 (virtio 1.x, section 4.2.2), one per device, at QEMU
//! microvm's addresses (0xFEB00000 + i * 0x200). The driver's queue notification runs the device
//! on the vCPU that wrote it. The interrupt is a level, as the DSDT declares it: high while
//! INTERRUPT_STATUS is not zero, lowered when the driver acknowledges the last reason.
//!
//! A guest gets the spec's behaviour and nothing more: unknown registers read zero, writes to
//! them are dropped, a queue that is not set up is not processed, and a request the device
//! cannot parse marks the device DEVICE_NEEDS_RESET instead of touching anything else.
use super::{VirtioDevice, VIRTIO_F_VERSION_1};
use crate::bus::BusDevice;
use crate::irq::LevelIrq;
use crate::runtime::guest_log::GuestLog;
use crate::snapshot::codec::{self, StateError};
use std::os::fd::RawFd;
use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// Bytes of MMIO each transport decodes.
pub const MMIO_LEN: u64 = 0x200;

use virtio_bindings::virtio_config as status;
use virtio_bindings::virtio_mmio as reg;

/// Register offsets (virtio 1.x, 4.2.2), as Linux's virtio_mmio.h names them.
const MAGIC_VALUE: u64 = reg::VIRTIO_MMIO_MAGIC_VALUE as u64;
const VERSION_REG: u64 = reg::VIRTIO_MMIO_VERSION as u64;
const DEVICE_ID: u64 = reg::VIRTIO_MMIO_DEVICE_ID as u64;
const VENDOR_ID: u64 = reg::VIRTIO_MMIO_VENDOR_ID as u64;
const DEVICE_FEATURES: u64 = reg::VIRTIO_MMIO_DEVICE_FEATURES as u64;
const DEVICE_FEATURES_SEL: u64 = reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL as u64;
const DRIVER_FEATURES: u64 = reg::VIRTIO_MMIO_DRIVER_FEATURES as u64;
const DRIVER_FEATURES_SEL: u64 = reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL as u64;
const QUEUE_SEL: u64 = reg::VIRTIO_MMIO_QUEUE_SEL as u64;
const QUEUE_NUM_MAX: u64 = reg::VIRTIO_MMIO_QUEUE_NUM_MAX as u64;
const QUEUE_NUM: u64 = reg::VIRTIO_MMIO_QUEUE_NUM as u64;
const QUEUE_READY: u64 = reg::VIRTIO_MMIO_QUEUE_READY as u64;
const QUEUE_NOTIFY: u64 = reg::VIRTIO_MMIO_QUEUE_NOTIFY as u64;
const INTERRUPT_STATUS: u64 = reg::VIRTIO_MMIO_INTERRUPT_STATUS as u64;
const INTERRUPT_ACK: u64 = reg::VIRTIO_MMIO_INTERRUPT_ACK as u64;
const STATUS: u64 = reg::VIRTIO_MMIO_STATUS as u64;
const QUEUE_DESC_LOW: u64 = reg::VIRTIO_MMIO_QUEUE_DESC_LOW as u64;
const QUEUE_DESC_HIGH: u64 = reg::VIRTIO_MMIO_QUEUE_DESC_HIGH as u64;
const QUEUE_AVAIL_LOW: u64 = reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW as u64;
const QUEUE_AVAIL_HIGH: u64 = reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH as u64;
const QUEUE_USED_LOW: u64 = reg::VIRTIO_MMIO_QUEUE_USED_LOW as u64;
const QUEUE_USED_HIGH: u64 = reg::VIRTIO_MMIO_QUEUE_USED_HIGH as u64;
const CONFIG_GENERATION: u64 = reg::VIRTIO_MMIO_CONFIG_GENERATION as u64;
const CONFIG: u64 = reg::VIRTIO_MMIO_CONFIG as u64;
const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
/// QEMU's vendor ID, "QEMU", as its microvm reports it.
const VENDOR: u32 = 0x554D_4551;

/// Device status bits (virtio 1.x, 2.1).
const STATUS_FEATURES_OK: u32 = status::VIRTIO_CONFIG_S_FEATURES_OK;
const STATUS_DRIVER_OK: u32 = status::VIRTIO_CONFIG_S_DRIVER_OK;
const STATUS_NEEDS_RESET: u32 = status::VIRTIO_CONFIG_S_NEEDS_RESET;
/// Interrupt status bits: a used buffer, a configuration change.
const INT_VRING: u32 = reg::VIRTIO_MMIO_INT_VRING;
const INT_CONFIG: u32 = reg::VIRTIO_MMIO_INT_CONFIG;

pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    irq: LevelIrq,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    interrupt_status: u32,
    config_generation: u32,
    /// Written on every notification and status change, so the event loop looks at `io_fd`
    /// again.
    wake: EventFd,
    /// The VM is stopped: the device takes nothing from its host fd.
    paused: bool,
    log: GuestLog,
}

impl MmioTransport {
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        irq: LevelIrq,
        log: GuestLog,
    ) -> std::io::Result<Self> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .filter_map(|&max| Queue::new(max).ok())
            .collect();
        Ok(MmioTransport {
            device,
            mem,
            irq,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
            wake: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
            paused: false,
            log,
        })
    }

    /// Whether the device has a host fd for the event loop to watch.
    pub fn has_io(&self) -> bool {
        self.device.io_fd().is_some()
    }

    /// The device's name, for messages.
    pub fn name(&self) -> &'static str {
        use virtio_bindings::virtio_ids as id;
        match self.device.device_type() {
            id::VIRTIO_ID_NET => "virtio-net",
            id::VIRTIO_ID_BLOCK => "virtio-blk",
            id::VIRTIO_ID_CONSOLE => "virtio-console",
            id::VIRTIO_ID_RNG => "virtio-rng",
            id::VIRTIO_ID_VSOCK => "vhost-vsock",
            _ => "virtio device",
        }
    }

    /// Stops (or restarts) taking input from the device's host fd while the VM is stopped.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        let _ = self.wake.write(1);
    }

    /// Makes every completed write durable (at exit): what a disk has cached goes to the host.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.device.flush()
    }

    pub fn wake(&self) -> &EventFd {
        &self.wake
    }

    /// The driver set DRIVER_OK and the device has not failed since.
    fn driver_runs(&self) -> bool {
        self.status & STATUS_DRIVER_OK != 0 && self.status & STATUS_NEEDS_RESET == 0
    }

    /// The fd the event loop should watch now: only for a running device.
    pub fn io_fd(&self) -> Option<RawFd> {
        let running = self.driver_runs() && !self.paused;
        running.then(|| self.device.io_fd()).flatten()
    }

    /// The device's fd is ready.
    pub fn handle_io(&mut self) {
        if self.io_fd().is_none() {
            return;
        }
        let result = self.device.handle_io(&mut self.queues, &self.mem);
        self.complete(result);
    }

    /// Interrupts the driver for used buffers, or marks the device broken.
    fn complete(&mut self, result: Result<bool, super::DeviceError>) {
        match result {
            Ok(true) => {
                self.interrupt_status |= INT_VRING;
                self.irq.raise();
            }
            Ok(false) => {}
            Err(e) => {
                crate::guest_log!(
                    self.log,
                    GuestError,
                    "virtio device error",
                    "{}: {e}; it needs a reset",
                    self.name()
                );
                self.status |= STATUS_NEEDS_RESET;
                self.interrupt_status |= INT_CONFIG;
                self.irq.raise();
            }
        }
    }

    fn device_features(&self) -> u64 {
        self.device.features() | VIRTIO_F_VERSION_1
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset();
        }
        self.device.reset();
        self.driver_features = 0;
        self.status = 0;
        self.interrupt_status = 0;
        self.irq.lower();
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value;
        // Only a driver that speaks virtio 1.x and takes no feature we did not offer gets
        // FEATURES_OK: the driver reads it back to learn that.
        let offered = self.device_features();
        if value & STATUS_FEATURES_OK != 0
            && (self.driver_features & VIRTIO_F_VERSION_1 == 0 || self.driver_features & !offered != 0)
        {
            value &= !STATUS_FEATURES_OK;
        }
        // A device starts once the driver has both accepted features and said DRIVER_OK.
        let starting = value & STATUS_DRIVER_OK != 0
            && value & STATUS_FEATURES_OK != 0
            && self.status & STATUS_DRIVER_OK == 0;
        self.status = value | (self.status & STATUS_NEEDS_RESET);
        if starting {
            let result = self
                .device
                .activate(self.driver_features, &self.queues, &self.mem)
                .map(|()| false);
            self.complete(result);
        }
        let _ = self.wake.write(1);
    }

    fn notify(&mut self, index: u32) {
        let _ = self.wake.write(1);
        if !self.driver_runs() {
            return;
        }
        let Some(queue) = self.queues.get_mut(index as usize) else {
            return;
        };
        if !queue.ready() {
            return;
        }
        let result = self
            .device
            .process(index as usize, queue, &self.mem)
            .map(|used| used && queue.needs_notification(&self.mem).unwrap_or(true));
        self.complete(result);
    }

    fn read_reg(&self, offset: u64) -> u32 {
        let sel = self.queues.get(self.queue_sel as usize);
        match offset {
            MAGIC_VALUE => MAGIC,
            VERSION_REG => VERSION,
            DEVICE_ID => self.device.device_type(),
            VENDOR_ID => VENDOR,
            DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            QUEUE_NUM_MAX => sel.map_or(0, |q| u32::from(q.max_size())),
            QUEUE_READY => sel.map_or(0, |q| u32::from(q.ready())),
            INTERRUPT_STATUS => self.interrupt_status,
            STATUS => self.status,
            CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        let split = |q: &mut Queue, low: bool, f: fn(&mut Queue, Option<u32>, Option<u32>)| {
            if low {
                f(q, Some(v), None)
            } else {
                f(q, None, Some(v))
            }
        };
        match offset {
            DEVICE_FEATURES_SEL => self.device_features_sel = v,
            DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            DRIVER_FEATURES => match self.driver_features_sel {
                0 => self.driver_features = (self.driver_features & !0xFFFF_FFFF) | u64::from(v),
                1 => self.driver_features = (self.driver_features & 0xFFFF_FFFF) | (u64::from(v) << 32),
                _ => {}
            },
            QUEUE_SEL => self.queue_sel = v,
            QUEUE_NUM => {
                if let Some(q) = self.queue() {
                    // An invalid size (not a power of two, too large) leaves the queue unusable.
                    q.set_size(v.min(u32::from(u16::MAX)) as u16);
                }
            }
            QUEUE_READY => {
                if let Some(q) = self.queue() {
                    q.set_ready(v == 1);
                }
            }
            QUEUE_NOTIFY => self.notify(v & 0xFFFF),
            INTERRUPT_ACK => {
                self.interrupt_status &= !v;
                if self.interrupt_status == 0 {
                    self.irq.lower();
                }
            }
            STATUS => self.set_status(v),
            QUEUE_DESC_LOW | QUEUE_DESC_HIGH => {
                if let Some(q) = self.queue() {
                    split(q, offset == QUEUE_DESC_LOW, Queue::set_desc_table_address);
                }
            }
            QUEUE_AVAIL_LOW | QUEUE_AVAIL_HIGH => {
                if let Some(q) = self.queue() {
                    split(q, offset == QUEUE_AVAIL_LOW, Queue::set_avail_ring_address);
                }
            }
            QUEUE_USED_LOW | QUEUE_USED_HIGH => {
                if let Some(q) = self.queue() {
                    split(q, offset == QUEUE_USED_LOW, Queue::set_used_ring_address);
                }
            }
            _ => {}
        }
    }
}

/// A transport's registers and queues, as a snapshot holds them.
#[derive(serde::Serialize, serde::Deserialize)]
struct TransportState {
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    interrupt_status: u32,
    config_generation: u32,
    queues: Vec<SavedQueue>,
    device: Vec<u8>,
}

/// virtio-queue's `QueueState`.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedQueue {
    max_size: u16,
    next_avail: u16,
    next_used: u16,
    event_idx: bool,
    size: u16,
    ready: bool,
    rings: [u64; 3],
}

impl From<QueueState> for SavedQueue {
    fn from(q: QueueState) -> Self {
        Self {
            max_size: q.max_size,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx: q.event_idx_enabled,
            size: q.size,
            ready: q.ready,
            rings: [q.desc_table, q.avail_ring, q.used_ring],
        }
    }
}

impl From<&SavedQueue> for QueueState {
    fn from(q: &SavedQueue) -> Self {
        Self {
            max_size: q.max_size,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx_enabled: q.event_idx,
            size: q.size,
            ready: q.ready,
            desc_table: q.rings[0],
            avail_ring: q.rings[1],
            used_ring: q.rings[2],
        }
    }
}

impl MmioTransport {
    fn save(&mut self) -> Result<TransportState, StateError> {
        // As QEMU at the end of a migration: what the device wrote reaches the host (a disk's
        // cache its image), so a clone that opens the same image reads what this VM wrote.
        self.device
            .flush()
            .map_err(|e| StateError::refused(self.name(), format!("flushing it: {e}")))?;
        let device = self.device.save_state(&mut self.queues, &self.mem)?;
        Ok(TransportState {
            queue_sel: self.queue_sel,
            device_features_sel: self.device_features_sel,
            driver_features_sel: self.driver_features_sel,
            driver_features: self.driver_features,
            status: self.status,
            interrupt_status: self.interrupt_status,
            config_generation: self.config_generation,
            queues: self.queues.iter().map(|q| q.state().into()).collect(),
            device,
        })
    }

    fn restore(&mut self, s: TransportState) -> Result<(), StateError> {
        let what = self.name();
        if s.queues.len() != self.queues.len() {
            return Err(StateError::refused(
                what,
                format!(
                    "{} queues saved, this device has {}",
                    s.queues.len(),
                    self.queues.len()
                ),
            ));
        }
        let queues = s
            .queues
            .iter()
            .map(|q| Queue::try_from(QueueState::from(q)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StateError::refused(what, format!("a saved queue: {e}")))?;
        self.device.restore_state(&s.device)?;
        self.queues = queues;
        self.queue_sel = s.queue_sel;
        self.device_features_sel = s.device_features_sel;
        self.driver_features_sel = s.driver_features_sel;
        self.driver_features = s.driver_features;
        self.status = s.status;
        self.interrupt_status = s.interrupt_status;
        self.config_generation = s.config_generation;
        match self.interrupt_status {
            0 => self.irq.lower(),
            _ => self.irq.raise(),
        }
        if self.driver_runs() {
            self.device
                .activate(self.driver_features, &self.queues, &self.mem)
                .map_err(|e| StateError::refused(what, e.to_string()))?;
        }
        let _ = self.wake.write(1);
        Ok(())
    }
}

impl BusDevice for MmioTransport {
    fn kind(&self) -> &'static str {
        self.name()
    }

    /// Taken with the vCPUs parked and the device paused: what a device has in flight on the
    /// host side (vhost's rings) is brought back into the queues first.
    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        let state = self.save()?;
        codec::encode(self.name(), &state)
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let state: TransportState = codec::decode(self.name(), bytes)?;
        self.restore(state)
    }

    fn state_saved(&mut self) {
        self.device.state_saved(&self.queues, &self.mem);
    }

    fn after_restore(&mut self) {
        if self.driver_runs() {
            let told = self.device.restored(&mut self.queues, &self.mem);
            self.complete(told);
        }
    }

    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG {
            self.device.read_config(offset - CONFIG, data);
            return;
        }
        // Registers are 32-bit; narrower or misaligned reads get zeros, as on QEMU.
        let value = if data.len() == 4 && offset.is_multiple_of(4) {
            self.read_reg(offset)
        } else {
            0
        };
        let bytes = value.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG {
            self.device.write_config(offset - CONFIG, data);
            self.config_generation = self.config_generation.wrapping_add(1);
            return;
        }
        if let (Ok(bytes), true) = (<[u8; 4]>::try_from(data), offset.is_multiple_of(4)) {
            self.write_reg(offset, u32::from_le_bytes(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rng::Rng;
    use super::*;
    use crate::irq::RecordedLevels;
    use std::sync::Arc;
    use virtio_queue::desc::{split::Descriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::GuestAddress;

    fn read(t: &mut MmioTransport, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn write(t: &mut MmioTransport, offset: u64, v: u32) {
        t.write(offset, &v.to_le_bytes());
    }

    fn transport_with(mem: &GuestMemoryMmap, lines: &Arc<RecordedLevels>) -> MmioTransport {
        let irq = LevelIrq::new(5, lines.clone());
        MmioTransport::new(Box::new(Rng), mem.clone(), irq, GuestLog::default()).unwrap()
    }

    fn transport(mem: &GuestMemoryMmap) -> MmioTransport {
        transport_with(mem, &Arc::new(RecordedLevels::default()))
    }

    /// The Linux driver's sequence: identify, negotiate, set up queue 0, DRIVER_OK, notify.
    #[test]
    fn a_driver_sets_up_a_queue_and_gets_a_used_buffer_and_an_interrupt() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let mut t = transport(&mem);
        assert_eq!((read(&mut t, MAGIC_VALUE), read(&mut t, VERSION_REG)), (MAGIC, 2));
        assert_eq!(read(&mut t, DEVICE_ID), 4);
        write(&mut t, DEVICE_FEATURES_SEL, 1);
        assert_eq!(read(&mut t, DEVICE_FEATURES), 1, "VERSION_1 is offered");
        write(&mut t, STATUS, 1 | 2);
        write(&mut t, DRIVER_FEATURES_SEL, 1);
        write(&mut t, DRIVER_FEATURES, 1);
        write(&mut t, STATUS, 1 | 2 | STATUS_FEATURES_OK);
        assert_ne!(read(&mut t, STATUS) & STATUS_FEATURES_OK, 0);

        let vq = MockSplitQueue::new(&mem, 16);
        vq.add_desc_chains(&[RawDescriptor::from(Descriptor::new(0x8000, 32, 2, 0))], 0)
            .unwrap();
        write(&mut t, QUEUE_SEL, 0);
        assert_eq!(read(&mut t, QUEUE_NUM_MAX), 256);
        write(&mut t, QUEUE_NUM, 16);
        write(&mut t, QUEUE_DESC_LOW, vq.desc_table_addr().0 as u32);
        write(&mut t, QUEUE_AVAIL_LOW, vq.avail_addr().0 as u32);
        write(&mut t, QUEUE_USED_LOW, vq.used_addr().0 as u32);
        write(&mut t, QUEUE_READY, 1);
        // Before DRIVER_OK a notification does nothing.
        write(&mut t, QUEUE_NOTIFY, 0);
        assert_eq!(vq.used().idx().load(), 0);
        write(&mut t, STATUS, 1 | 2 | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        write(&mut t, QUEUE_NOTIFY, 0);
        assert_eq!(vq.used().idx().load(), 1);
        assert_eq!(read(&mut t, INTERRUPT_STATUS), INT_VRING);
        assert!(t.irq.is_high());
        write(&mut t, INTERRUPT_ACK, INT_VRING);
        assert_eq!(read(&mut t, INTERRUPT_STATUS), 0);
        assert!(!t.irq.is_high());
        write(&mut t, STATUS, 0);
        assert_eq!((read(&mut t, STATUS), read(&mut t, QUEUE_READY)), (0, 0));
    }

    /// Linux's handler reads INTERRUPT_STATUS, acknowledges what it read, then walks the used
    /// rings. A buffer used after the walk but before the handler's EOI must leave the line high,
    /// so the I/O APIC delivers again at the EOI: a pulse there is lost to the pin's remote IRR.
    #[test]
    fn the_interrupt_stays_high_until_the_driver_acknowledges_every_reason() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let lines = Arc::new(RecordedLevels::default());
        let mut t = transport_with(&mem, &lines);
        write(&mut t, STATUS, 1 | 2);
        write(&mut t, DRIVER_FEATURES_SEL, 1);
        write(&mut t, DRIVER_FEATURES, 1);
        write(&mut t, STATUS, 1 | 2 | STATUS_FEATURES_OK);
        let vq = MockSplitQueue::new(&mem, 16);
        let buffer = |at: u64| RawDescriptor::from(Descriptor::new(at, 32, 2, 0));
        vq.add_desc_chains(&[buffer(0x8000)], 0).unwrap();
        write(&mut t, QUEUE_NUM, 16);
        write(&mut t, QUEUE_DESC_LOW, vq.desc_table_addr().0 as u32);
        write(&mut t, QUEUE_AVAIL_LOW, vq.avail_addr().0 as u32);
        write(&mut t, QUEUE_USED_LOW, vq.used_addr().0 as u32);
        write(&mut t, QUEUE_READY, 1);
        write(&mut t, STATUS, 1 | 2 | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        write(&mut t, QUEUE_NOTIFY, 0);
        assert_eq!(lines.level(5), Some(true));
        // The handler reads and acknowledges; the line drops with the last reason.
        let status = read(&mut t, INTERRUPT_STATUS);
        write(&mut t, INTERRUPT_ACK, status);
        assert_eq!(lines.level(5), Some(false));
        // More buffers used before the EOI: the line is high again and stays so.
        vq.add_desc_chains(&[buffer(0x9000)], 1).unwrap();
        write(&mut t, QUEUE_NOTIFY, 0);
        assert_eq!(lines.level(5), Some(true));
        write(&mut t, INTERRUPT_ACK, INT_CONFIG);
        assert_eq!(
            lines.level(5),
            Some(true),
            "an unrelated ack leaves the used-buffer reason"
        );
        write(&mut t, STATUS, 0);
        assert_eq!(lines.level(5), Some(false), "a reset lowers the line");
    }

    #[test]
    fn a_legacy_driver_is_refused_and_garbage_is_harmless() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let mut t = transport(&mem);
        // No VERSION_1: FEATURES_OK does not stick.
        write(&mut t, STATUS, 1 | 2 | STATUS_FEATURES_OK);
        assert_eq!(read(&mut t, STATUS) & STATUS_FEATURES_OK, 0);
        // A queue that does not exist, a queue never set up, odd widths, the config space.
        write(&mut t, QUEUE_SEL, 7);
        assert_eq!(read(&mut t, QUEUE_NUM_MAX), 0);
        write(&mut t, QUEUE_NUM, 99);
        write(&mut t, QUEUE_NOTIFY, 7);
        write(&mut t, STATUS, STATUS_DRIVER_OK);
        write(&mut t, QUEUE_SEL, 0);
        write(&mut t, QUEUE_NUM, 3);
        write(&mut t, QUEUE_DESC_LOW, 0xFFFF_FFF0);
        write(&mut t, QUEUE_READY, 1);
        write(&mut t, QUEUE_NOTIFY, 0);
        t.write(QUEUE_NOTIFY + 1, &[1, 2]);
        let mut odd = [0xAAu8; 2];
        t.read(MAGIC_VALUE, &mut odd);
        assert_eq!(odd, [0, 0]);
        t.write(CONFIG + 4, &[1; 8]);
        assert_eq!(read(&mut t, CONFIG_GENERATION), 1);
    }
}
