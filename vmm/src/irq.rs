//! How devices raise their interrupt lines; devices hold these and never see KVM.
//!
//! - [`IrqLine`], an edge: an eventfd that KVM's irqchip turns into a pulse on a GSI (KVM_IRQFD),
//!   for the ISA devices whose interrupts the MADT and MP table declare edge-triggered (COM1,
//!   the RTC, the GED).
//! - [`LevelIrq`], a level: held high while the device has something to report and dropped when
//!   the driver acknowledges it, for the virtio-mmio transports the DSDT declares
//!   level-triggered. A pulse on a level-triggered I/O APIC pin whose last interrupt the guest
//!   has not yet EOId is lost (its remote IRR masks it, and the pulse is gone by the EOI); a line
//!   that stays high is delivered again at the EOI, as on real hardware.
use std::io;
use std::sync::Arc;
use vmm_sys_util::eventfd::EventFd;

pub struct IrqLine {
    gsi: u32,
    event: EventFd,
}

impl IrqLine {
    pub fn new(gsi: u32) -> io::Result<Self> {
        Ok(Self {
            gsi,
            event: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
        })
    }

    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    /// The eventfd to register with KVM for this line.
    pub fn event(&self) -> &EventFd {
        &self.event
    }

    /// Pulses the line. A full eventfd counter means an edge is already pending, which is fine.
    pub fn trigger(&self) {
        let _ = self.event.write(1);
    }

    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            gsi: self.gsi,
            event: self.event.try_clone()?,
        })
    }
}

impl vm_superio::Trigger for IrqLine {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.event.write(1)
    }
}

/// Sets the level of a GSI: KVM_IRQ_LINE on the VM, or a recorder in tests.
pub trait LineLevel: Send + Sync {
    fn set_level(&self, gsi: u32, high: bool) -> io::Result<()>;
}

/// A level-triggered line.
pub struct LevelIrq {
    gsi: u32,
    lines: Arc<dyn LineLevel>,
    high: bool,
}

impl LevelIrq {
    pub fn new(gsi: u32, lines: Arc<dyn LineLevel>) -> Self {
        Self {
            gsi,
            lines,
            high: false,
        }
    }

    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    /// Raises the line for a new interrupt reason. Raised again while already high it stays
    /// high for the I/O APIC (no new interrupt before the EOI), and sends the interrupt again
    /// where the line becomes an MSI (the split irqchip), as an edge would.
    pub fn raise(&mut self) {
        self.high = true;
        if let Err(e) = self.lines.set_level(self.gsi, true) {
            crate::report!("raising GSI {}: {e}", self.gsi);
        }
    }

    /// Lowers the line: the driver acknowledged everything.
    pub fn lower(&mut self) {
        if std::mem::take(&mut self.high) {
            if let Err(e) = self.lines.set_level(self.gsi, false) {
                crate::report!("lowering GSI {}: {e}", self.gsi);
            }
        }
    }

    pub fn is_high(&self) -> bool {
        self.high
    }
}

/// A [`LineLevel`] that records every change, for device tests.
#[derive(Default)]
pub struct RecordedLevels {
    pub changes: std::sync::Mutex<Vec<(u32, bool)>>,
}

impl LineLevel for RecordedLevels {
    fn set_level(&self, gsi: u32, high: bool) -> io::Result<()> {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((gsi, high));
        Ok(())
    }
}

impl RecordedLevels {
    /// The last level set on `gsi`, if any.
    pub fn level(&self, gsi: u32) -> Option<bool> {
        let changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        changes.iter().rev().find(|(g, _)| *g == gsi).map(|(_, h)| *h)
    }
}
