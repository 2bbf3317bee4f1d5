//! How a device raises its interrupt line: an eventfd that KVM's in-kernel irqchip turns into an
//! edge on a GSI (KVM_IRQFD). Devices hold an `IrqLine` and never see KVM.
use std::io;
use vmm_sys_util::eventfd::EventFd;

pub struct IrqLine {
    gsi: u32,
    event: EventFd,
}

impl IrqLine {
    pub fn new(gsi: u32) -> io::Result<Self> {
        Ok(Self {
            gsi,
            event: EventFd::new(libc::EFD_NONBLOCK)?,
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
