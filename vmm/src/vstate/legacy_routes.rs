//! KVM's GSI routing for the in-kernel irqchip, laid out as QEMU does for PC machines: the ISA
//! IRQs go to the 8259s, and GSIs 0-23 to the I/O APIC's pins, except that GSI 0 (where KVM's
//! PIT raises its tick) goes to pin 2 and nothing else does. The ACPI MADT and the MP table both
//! say "ISA IRQ 0 is GSI 2" (the interrupt source override every PC has); KVM's default table
//! wires GSI 0 to pin 0 instead, so a kernel that checks its timer through the I/O APIC (Xen
//! panics: "IO-APIC + timer doesn't work!") found it silent.
use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    KVM_IRQ_ROUTING_IRQCHIP,
};

/// The in-kernel I/O APIC's pins.
const IOAPIC_PINS: u32 = 24;
/// The 8259 cascade: the master's pin 2 carries the slave, no device's IRQ.
const CASCADE: u32 = 2;

/// Every route, as (GSI, irqchip, pin).
pub fn routes() -> Vec<(u32, u32, u32)> {
    let pic = (0..16).filter(|&irq| irq != CASCADE).map(|irq| match irq {
        0..8 => (irq, KVM_IRQCHIP_PIC_MASTER, irq),
        _ => (irq, KVM_IRQCHIP_PIC_SLAVE, irq - 8),
    });
    let ioapic = (0..IOAPIC_PINS)
        .filter(|&gsi| gsi != CASCADE)
        .map(|gsi| (gsi, KVM_IRQCHIP_IOAPIC, if gsi == 0 { CASCADE } else { gsi }));
    pic.chain(ioapic).collect()
}

/// [`routes`] in KVM's form.
pub fn table() -> Option<KvmIrqRouting> {
    let routes = routes();
    let mut table = KvmIrqRouting::new(routes.len()).ok()?;
    for (entry, &(gsi, irqchip, pin)) in table.as_mut_slice().iter_mut().zip(&routes) {
        *entry = kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_IRQCHIP,
            ..Default::default()
        };
        entry.u.irqchip.irqchip = irqchip;
        entry.u.irqchip.pin = pin;
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(gsi: u32) -> Vec<(u32, u32)> {
        routes()
            .into_iter()
            .filter(|r| r.0 == gsi)
            .map(|r| (r.1, r.2))
            .collect()
    }

    #[test]
    fn the_pit_tick_reaches_ioapic_pin_2_as_the_madt_says() {
        assert_eq!(targets(0), [(KVM_IRQCHIP_PIC_MASTER, 0), (KVM_IRQCHIP_IOAPIC, 2)]);
        // Nothing else may share pin 2, and GSI 2 itself (the cascade) goes nowhere.
        let on_pin_2: Vec<u32> = routes()
            .into_iter()
            .filter(|r| r.1 == KVM_IRQCHIP_IOAPIC && r.2 == 2)
            .map(|r| r.0)
            .collect();
        assert_eq!(on_pin_2, [0]);
        assert!(targets(2).is_empty());
    }

    #[test]
    fn other_isa_irqs_reach_both_chips_and_pci_gsis_the_ioapic() {
        assert_eq!(targets(4), [(KVM_IRQCHIP_PIC_MASTER, 4), (KVM_IRQCHIP_IOAPIC, 4)]);
        assert_eq!(targets(8), [(KVM_IRQCHIP_PIC_SLAVE, 0), (KVM_IRQCHIP_IOAPIC, 8)]);
        assert_eq!(targets(23), [(KVM_IRQCHIP_IOAPIC, 23)]);
        assert_eq!(table().map(|t| t.as_slice().len()), Some(15 + 23));
    }
}
