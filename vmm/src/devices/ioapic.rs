//! An 82093AA-style I/O APIC in the VMM, for when KVM runs only the local APICs (the split
//! irqchip that `pic=off` and `ioapic2` need). The guest programs the redirection table here;
//! each unmasked entry becomes an MSI route that KVM delivers straight from the device's irqfd,
//! so an interrupt never passes through this thread.
//!
//! Registers: IOREGSEL at +0x00, IOWIN at +0x10, EOI at +0x40 (version 0x20). Indirect
//! registers: 0x00 ID, 0x01 version, 0x02 arbitration, 0x10 + 2n / 0x11 + 2n redirection entry n.
use crate::bus::BusDevice;
use crate::snapshot::codec::{self, StateError};

/// Pins per I/O APIC.
pub const PINS: u32 = 24;
/// The MMIO window each I/O APIC decodes.
pub const MMIO_LEN: u64 = 0x100;
const VERSION: u32 = 0x20;

const REG_SELECT: u64 = 0x00;
const REG_WINDOW: u64 = 0x10;
const REG_EOI: u64 = 0x40;
const IND_ID: u32 = 0x00;
const IND_VERSION: u32 = 0x01;
const IND_ARBITRATION: u32 = 0x02;
const IND_TABLE: u32 = 0x10;

const RTE_MASKED: u64 = 1 << 16;
/// Delivery status and remote IRR: the I/O APIC's, never the guest's to write.
const RTE_READ_ONLY: u64 = (1 << 12) | (1 << 14);

/// What a redirection entry asks for, as the MSI the local APICs understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msi {
    pub address: u64,
    pub data: u32,
}

impl Msi {
    /// The MSI for an unmasked entry; None when masked.
    pub fn from_entry(rte: u64) -> Option<Msi> {
        if rte & RTE_MASKED != 0 {
            return None;
        }
        let vector = (rte & 0xFF) as u32;
        let delivery_mode = ((rte >> 8) & 0x7) as u32;
        let dest_mode = (rte >> 11) & 1;
        let trigger_mode = ((rte >> 15) & 1) as u32;
        let dest = (rte >> 56) & 0xFF;
        Some(Msi {
            address: 0xFEE0_0000 | (dest << 12) | (dest_mode << 2),
            data: vector | (delivery_mode << 8) | (trigger_mode << 15),
        })
    }
}

/// Where redirection-table changes go: the VMM turns them into KVM's GSI routes.
pub trait RouteSink: Send {
    /// `gsi` now delivers `msi`, or nothing when None (masked).
    fn set_route(&mut self, gsi: u32, msi: Option<Msi>);
}

pub struct IoApic {
    id: u8,
    gsi_base: u32,
    select: u32,
    table: [u64; PINS as usize],
    routes: Box<dyn RouteSink>,
}

impl IoApic {
    /// An I/O APIC with APIC id `id` whose pin 0 is `gsi_base`, all pins masked, as at reset.
    pub fn new(id: u8, gsi_base: u32, routes: Box<dyn RouteSink>) -> Self {
        IoApic {
            id,
            gsi_base,
            select: 0,
            table: [RTE_MASKED; PINS as usize],
            routes,
        }
    }

    fn read_indirect(&self) -> u32 {
        match self.select {
            IND_ID | IND_ARBITRATION => u32::from(self.id & 0xF) << 24,
            IND_VERSION => ((PINS - 1) << 16) | VERSION,
            r if (IND_TABLE..IND_TABLE + 2 * PINS).contains(&r) => {
                let rte = self.table[((r - IND_TABLE) / 2) as usize];
                if r % 2 == 0 {
                    rte as u32
                } else {
                    (rte >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_indirect(&mut self, value: u32) {
        match self.select {
            IND_ID => self.id = ((value >> 24) & 0xF) as u8,
            r if (IND_TABLE..IND_TABLE + 2 * PINS).contains(&r) => {
                let pin = ((r - IND_TABLE) / 2) as usize;
                let old = self.table[pin];
                let new = if r % 2 == 0 {
                    (old & !0xFFFF_FFFF) | u64::from(value)
                } else {
                    (old & 0xFFFF_FFFF) | (u64::from(value) << 32)
                };
                let new = (new & !RTE_READ_ONLY) | (old & RTE_READ_ONLY);
                self.table[pin] = new;
                if Msi::from_entry(new) != Msi::from_entry(old) {
                    self.routes
                        .set_route(self.gsi_base + pin as u32, Msi::from_entry(new));
                }
            }
            // Version and arbitration are read-only; other indices do not exist.
            _ => {}
        }
    }
}

impl BusDevice for IoApic {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = match offset {
            REG_SELECT => self.select,
            REG_WINDOW => self.read_indirect(),
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut bytes = [0u8; 4];
        let n = data.len().min(4);
        bytes[..n].copy_from_slice(&data[..n]);
        let value = u32::from_le_bytes(bytes);
        match offset {
            REG_SELECT => self.select = value & 0xFF,
            REG_WINDOW => self.write_indirect(value),
            // Interrupts arrive as edges through KVM, so no entry ever holds a remote IRR to
            // clear: the EOI register has nothing to do.
            REG_EOI => {}
            _ => {}
        }
    }

    /// Every pin masked again, as at power-on (their routes go with them).
    fn reset(&mut self) {
        for (pin, rte) in self.table.iter_mut().enumerate() {
            if Msi::from_entry(std::mem::replace(rte, RTE_MASKED)).is_some() {
                self.routes.set_route(self.gsi_base + pin as u32, None);
            }
        }
        self.select = 0;
    }

    fn kind(&self) -> &'static str {
        "ioapic"
    }

    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        codec::encode("ioapic", &(self.id, self.select, self.table.to_vec()))
    }

    /// The table, with each unmasked pin's route given to KVM again.
    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (id, select, table): (u8, u32, Vec<u64>) = codec::decode("ioapic", bytes)?;
        let table: [u64; PINS as usize] = table
            .as_slice()
            .try_into()
            .map_err(|_| StateError::refused("ioapic", format!("{} pins, not {PINS}", table.len())))?;
        self.id = id;
        self.select = select;
        for (pin, (old, new)) in self.table.iter_mut().zip(table).enumerate() {
            if Msi::from_entry(*old) != Msi::from_entry(new) {
                self.routes
                    .set_route(self.gsi_base + pin as u32, Msi::from_entry(new));
            }
            *old = new;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Routes = Vec<(u32, Option<Msi>)>;

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Routes>>);

    impl RouteSink for Recorder {
        fn set_route(&mut self, gsi: u32, msi: Option<Msi>) {
            self.0.lock().unwrap().push((gsi, msi));
        }
    }

    fn reg_write(a: &mut IoApic, index: u32, value: u32) {
        a.write(REG_SELECT, &index.to_le_bytes());
        a.write(REG_WINDOW, &value.to_le_bytes());
    }

    fn reg_read(a: &mut IoApic, index: u32) -> u32 {
        a.write(REG_SELECT, &index.to_le_bytes());
        let mut v = [0u8; 4];
        a.read(REG_WINDOW, &mut v);
        u32::from_le_bytes(v)
    }

    #[test]
    fn identifies_itself_as_linux_expects() {
        let mut a = IoApic::new(1, 24, Box::new(Recorder::default()));
        assert_eq!(reg_read(&mut a, IND_VERSION), 0x0017_0020);
        assert_eq!(reg_read(&mut a, IND_ID), 1 << 24);
        reg_write(&mut a, IND_ID, 5 << 24);
        assert_eq!(reg_read(&mut a, IND_ARBITRATION), 5 << 24);
        reg_write(&mut a, IND_VERSION, 0);
        assert_eq!(reg_read(&mut a, IND_VERSION), 0x0017_0020);
        // Every pin is masked at reset.
        assert_eq!(reg_read(&mut a, IND_TABLE + 2 * 23), 1 << 16);
        assert_eq!(reg_read(&mut a, 0x7F), 0);
    }

    #[test]
    fn unmasking_an_entry_routes_its_gsi_as_an_msi() {
        let rec = Recorder::default();
        let mut a = IoApic::new(0, 0, Box::new(rec.clone()));
        // Pin 4: vector 0x24, fixed, physical destination 1, edge; then level-triggered.
        reg_write(&mut a, IND_TABLE + 2 * 4 + 1, 1 << 24);
        reg_write(&mut a, IND_TABLE + 2 * 4, 0x24);
        reg_write(
            &mut a,
            IND_TABLE + 2 * 4,
            0x24 | (1 << 15) | (1 << 14) | (1 << 12),
        );
        reg_write(&mut a, IND_TABLE + 2 * 4, 0x24 | RTE_MASKED as u32);
        let routes = rec.0.lock().unwrap().clone();
        let edge = Msi {
            address: 0xFEE0_1000,
            data: 0x24,
        };
        let level = Msi {
            data: 0x24 | (1 << 15),
            ..edge
        };
        // Writing the destination of a masked pin changes no route.
        assert_eq!(routes, [(4, Some(edge)), (4, Some(level)), (4, None)]);
        // The guest cannot set delivery status or remote IRR.
        assert_eq!(reg_read(&mut a, IND_TABLE + 2 * 4) & RTE_READ_ONLY as u32, 0);
    }

    #[test]
    fn a_second_ioapic_routes_from_its_gsi_base_and_odd_accesses_are_harmless() {
        let rec = Recorder::default();
        let mut a = IoApic::new(1, 24, Box::new(rec.clone()));
        reg_write(&mut a, IND_TABLE + 2 * 23, 0x41 | (1 << 11));
        assert_eq!(
            rec.0.lock().unwrap()[0],
            (
                47,
                Some(Msi {
                    address: 0xFEE0_0004,
                    data: 0x41
                })
            )
        );
        a.write(0x20, &[1, 2, 3, 4, 5, 6, 7, 8]);
        a.write(REG_SELECT, &[]);
        let mut wide = [0xAAu8; 8];
        a.read(REG_WINDOW, &mut wide);
        assert_eq!(&wide[4..], &[0, 0, 0, 0]);
    }
}
