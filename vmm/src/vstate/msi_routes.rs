//! KVM's GSI routing table when the VMM runs the I/O APICs (the split irqchip): one MSI route
//! per unmasked redirection entry, so a device's irqfd on that GSI reaches the local APICs
//! directly. KVM replaces the whole table on each update; the I/O APICs share one.
use crate::devices::ioapic::{Msi, RouteSink};
use kvm_bindings::{kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQ_ROUTING_MSI};
use kvm_ioctls::VmFd;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The routes of every I/O APIC of one VM. Clones share the table.
#[derive(Clone)]
pub struct MsiRoutes {
    vm: Arc<VmFd>,
    table: Arc<Mutex<BTreeMap<u32, Msi>>>,
}

impl MsiRoutes {
    pub fn new(vm: Arc<VmFd>) -> Self {
        MsiRoutes {
            vm,
            table: Arc::default(),
        }
    }
}

/// KVM's form of a route table.
pub fn kvm_table(routes: &BTreeMap<u32, Msi>) -> Option<KvmIrqRouting> {
    let mut table = KvmIrqRouting::new(routes.len()).ok()?;
    for (entry, (&gsi, msi)) in table.as_mut_slice().iter_mut().zip(routes) {
        *entry = kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_MSI,
            ..Default::default()
        };
        entry.u.msi.address_lo = msi.address as u32;
        entry.u.msi.address_hi = (msi.address >> 32) as u32;
        entry.u.msi.data = msi.data;
    }
    Some(table)
}

impl RouteSink for MsiRoutes {
    fn set_route(&mut self, gsi: u32, msi: Option<Msi>) {
        let mut routes = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match msi {
            Some(m) => routes.insert(gsi, m),
            None => routes.remove(&gsi),
        };
        // A failure here is KVM's (out of memory), not the guest's: say so, keep the old routes.
        match kvm_table(&routes).map(|t| self.vm.set_gsi_routing(&t)) {
            Some(Ok(())) => {}
            Some(Err(e)) => crate::report!("updating interrupt routes for GSI {gsi}: {e}"),
            None => crate::report!("updating interrupt routes for GSI {gsi}: table too large"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_become_kvm_msi_entries_in_gsi_order() {
        let mut routes = BTreeMap::new();
        routes.insert(
            9,
            Msi {
                address: 0xFEE0_1000,
                data: 0x8031,
            },
        );
        routes.insert(
            4,
            Msi {
                address: 0xFEE0_0000,
                data: 0x24,
            },
        );
        let table = kvm_table(&routes).unwrap();
        let entries = table.as_slice();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].gsi, entries[0].type_), (4, KVM_IRQ_ROUTING_MSI));
        // SAFETY: the entries were written as MSI routes just above.
        let msi = unsafe { entries[1].u.msi };
        assert_eq!(
            (msi.address_lo, msi.address_hi, msi.data),
            (0xFEE0_1000, 0, 0x8031)
        );
    }
}
