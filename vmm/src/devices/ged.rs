//! The ACPI Generic Event Device of QEMU's microvm (hw/acpi/generic_event_device.c): how a
//! hardware-reduced ACPI guest powers off and resets, and how it learns of a power-button press.
//!
//! One MMIO range from the event selector (0xFEA00000) to the reset register (0xFEA00202):
//!
//! | offset | register       | access                                                          |
//! |--------|----------------|-----------------------------------------------------------------|
//! | 0      | event selector | read: the pending events (power button = bit 1), which clears them |
//! | 0x200  | sleep control  | write SLP_EN (0x20) with SLP_TYP 5 (bits 2-4): power off (S5)   |
//! | 0x201  | sleep status   | reads 0, writes ignored                                         |
//! | 0x202  | reset          | write 0x42: reset                                               |
//!
//! Everything else in the range reads 0 and ignores writes, as QEMU's GED does. The DSDT's GED
//! and the FADT's sleep and reset registers (minnow-acpi) describe exactly these registers.
use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitSignal};
use crate::irq::IrqLine;
use crate::layout;
use crate::snapshot::codec::{self, StateError};
use minnow_acpi::layout::{
    GED_EVENT_LEN, GED_EVENT_POWER_DOWN, GED_RESET_VALUE, SLP_EN, SLP_TYP_S5, SLP_TYP_SHIFT,
};

/// Offsets in the device's range.
const SLEEP_CONTROL: u64 = layout::GED_REGS - layout::GED_EVENT;
const SLEEP_STATUS: u64 = SLEEP_CONTROL + 1;
const RESET: u64 = SLEEP_CONTROL + 2;
/// The range, event selector to reset register.
pub const RANGE_LEN: u64 = RESET + 1;

pub struct Ged {
    exit: ExitSignal,
    irq: IrqLine,
    /// Events the guest has not read yet.
    pending: u32,
}

impl Ged {
    pub fn new(exit: ExitSignal, irq: IrqLine) -> Self {
        Self {
            exit,
            irq,
            pending: 0,
        }
    }

    /// Presses the power button (QEMU's system_powerdown): the guest's `_EVT` reads the event and
    /// notifies `PWRB`, and the OS shuts down through the sleep control register.
    pub fn power_button(&mut self) {
        self.signal(GED_EVENT_POWER_DOWN);
    }

    /// Raises `event` (a GED_EVENT_* bit): the guest's `_EVT` reads it and acts.
    pub fn signal(&mut self, event: u32) {
        self.pending |= event;
        self.irq.trigger();
    }

    fn write_register(&mut self, offset: u64, value: u8) {
        match offset {
            SLEEP_CONTROL => {
                let slp_typ = (value >> SLP_TYP_SHIFT) & 0x7;
                if value & SLP_EN != 0 && slp_typ == SLP_TYP_S5 {
                    self.exit.request(ExitReason::PowerOff);
                }
            }
            // Wake status: nothing to clear, the machine never wakes from a sleep state.
            SLEEP_STATUS => {}
            RESET if value == GED_RESET_VALUE => self.exit.request(ExitReason::Reset),
            _ => {}
        }
    }
}

impl BusDevice for Ged {
    /// A read at the event selector returns the pending events (little-endian, as many bytes as
    /// read) and clears them; the guest's AML reads it as one 32-bit field.
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == 0 {
            let events = self.pending.to_le_bytes();
            let n = data.len().min(usize::from(GED_EVENT_LEN));
            data[..n].copy_from_slice(&events[..n]);
            self.pending = 0;
        }
    }

    /// The registers are bytes: a wider write writes each byte to its own offset.
    fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, &byte) in data.iter().enumerate() {
            self.write_register(offset + i as u64, byte);
        }
    }

    fn reset(&mut self) {
        self.pending = 0;
    }

    fn kind(&self) -> &'static str {
        "acpi-ged"
    }

    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        codec::encode("acpi-ged", &self.pending)
    }

    /// Events the guest had not read yet are signalled again.
    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        self.pending = codec::decode("acpi-ged", bytes)?;
        if self.pending != 0 {
            self.irq.trigger();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ged() -> (Ged, ExitSignal, IrqLine) {
        let exit = ExitSignal::default();
        let irq = IrqLine::new(layout::gsi::GED).unwrap();
        let probe = irq.try_clone().unwrap();
        (Ged::new(exit.clone(), irq), exit, probe)
    }

    fn write(value: u8, offset: u64) -> Option<ExitReason> {
        let (mut dev, exit, _) = ged();
        dev.write(offset, &[value]);
        exit.requested()
    }

    #[test]
    fn s5_with_slp_en_powers_off() {
        // SLP_TYP 5 << 2 | SLP_EN: what Linux writes for poweroff (the \_S5 package says 5).
        assert_eq!(write(0x34, SLEEP_CONTROL), Some(ExitReason::PowerOff));
        assert_eq!(write(0x14, SLEEP_CONTROL), None, "no SLP_EN");
        assert_eq!(write(0x20 | (3 << 2), SLEEP_CONTROL), None, "S3 is not offered");
        assert_eq!(write(0x34, SLEEP_STATUS), None);
        assert_eq!(write(0x34, 0), None, "the event selector is read-only");
    }

    #[test]
    fn writing_0x42_to_the_reset_register_resets() {
        assert_eq!(write(0x42, RESET), Some(ExitReason::Reset));
        assert_eq!(write(0x41, RESET), None);
        // A 2-byte write of sleep status and reset reaches both registers.
        let (mut dev, exit, _) = ged();
        dev.write(SLEEP_STATUS, &[0, 0x42]);
        assert_eq!(exit.requested(), Some(ExitReason::Reset));
    }

    #[test]
    fn the_power_button_raises_the_line_and_the_selector_clears_when_read() {
        let (mut dev, exit, irq) = ged();
        let mut sel = [0u8; 4];
        dev.read(0, &mut sel);
        assert_eq!(sel, [0; 4]);
        assert!(irq.event().read().is_err(), "no edge yet");
        dev.power_button();
        assert!(irq.event().read().is_ok(), "the GED's GSI fired");
        dev.read(0, &mut sel);
        assert_eq!(u32::from_le_bytes(sel), GED_EVENT_POWER_DOWN);
        dev.read(0, &mut sel);
        assert_eq!(sel, [0; 4], "reading clears the events");
        let mut status = [0xFFu8];
        dev.read(SLEEP_STATUS, &mut status);
        assert_eq!(status, [0]);
        assert_eq!(exit.requested(), None, "the button only asks the guest");
    }

    /// The tables (minnow-acpi) and the VMM place the devices at the same addresses.
    #[test]
    fn the_tables_and_the_machine_agree_on_the_map() {
        use minnow_acpi::layout as acpi;
        assert_eq!(acpi::GED_EVENT, layout::GED_EVENT);
        assert_eq!(acpi::GED_REGS, layout::GED_REGS);
        assert_eq!(acpi::GED_SLEEP_CONTROL - acpi::GED_EVENT, SLEEP_CONTROL);
        assert_eq!(acpi::GED_RESET - acpi::GED_EVENT, RESET);
        assert_eq!(acpi::GED_GSI, layout::gsi::GED);
        assert_eq!(u32::from(acpi::COM1_IRQ), layout::gsi::COM1);
        assert_eq!(u32::from(acpi::RTC_IRQ), layout::gsi::RTC);
        assert_eq!(acpi::COM1_PORT, layout::port::COM1);
        assert_eq!(acpi::RTC_PORT, layout::port::RTC);
        assert_eq!(acpi::FW_CFG_PORT, layout::port::FW_CFG);
        assert_eq!(u64::from(acpi::IOAPIC), layout::IOAPIC);
        assert_eq!(u64::from(acpi::IOAPIC2), layout::IOAPIC2);
        assert_eq!(u64::from(acpi::LAPIC), layout::LAPIC);
        assert_eq!(acpi::VIRTIO_MMIO_BASE, layout::VIRTIO_MMIO_BASE);
        assert_eq!(u64::from(acpi::VIRTIO_MMIO_SIZE), layout::VIRTIO_MMIO_STRIDE);
    }
}
