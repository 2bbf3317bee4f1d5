//! KVM's in-kernel PICs, I/O APIC and PIT as a reset finds them: their state right after the VM
//! was created, put back on every reset (the split irqchip has none of these in KVM: minnow's own
//! I/O APICs reset with the other devices).
use kvm_bindings::{
    kvm_irqchip, kvm_pit_state2, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
};
use kvm_ioctls::VmFd;

#[derive(Debug, thiserror::Error)]
#[error("KVM's {what}: {source}")]
pub struct IrqchipStateError {
    pub what: &'static str,
    pub source: kvm_ioctls::Error,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct IrqchipState {
    chips: Vec<kvm_irqchip>,
    pit: Option<kvm_pit_state2>,
}

impl IrqchipState {
    /// Reads the three interrupt controllers, and the PIT when there is one.
    pub fn save(vm: &VmFd, pit: bool) -> Result<Self, IrqchipStateError> {
        let mut chips = Vec::new();
        for id in [KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC] {
            let mut chip = kvm_irqchip {
                chip_id: id,
                ..Default::default()
            };
            vm.get_irqchip(&mut chip).map_err(|source| IrqchipStateError {
                what: "interrupt controller state",
                source,
            })?;
            chips.push(chip);
        }
        let pit = match pit {
            true => Some(vm.get_pit2().map_err(|source| IrqchipStateError {
                what: "PIT state",
                source,
            })?),
            false => None,
        };
        Ok(Self { chips, pit })
    }

    pub fn restore(&self, vm: &VmFd) -> Result<(), IrqchipStateError> {
        for chip in &self.chips {
            vm.set_irqchip(chip).map_err(|source| IrqchipStateError {
                what: "interrupt controller state",
                source,
            })?;
        }
        if let Some(pit) = &self.pit {
            vm.set_pit2(pit).map_err(|source| IrqchipStateError {
                what: "PIT state",
                source,
            })?;
        }
        Ok(())
    }
}
