//! COM1, a 16550A UART. The register model is vm-superio's `Serial`; this file is only the bus
//! adapter around it, as Firecracker wraps it (src/vmm/src/devices/legacy/serial.rs).
//!
//! Output goes to any `Write` (the VMM passes a [`GuestOutput`](crate::runtime::output), which
//! never blocks). Input arrives through [`Serial::enqueue_input`], called by the event loop's
//! stdin reader.
use std::io::Write;

use vm_superio::serial::{Error as UartError, NoEvents, SerialState};

use crate::bus::BusDevice;
use crate::irq::IrqLine;
use crate::runtime::guest_log::GuestLog;
use crate::runtime::stdin::InputSink;
use crate::snapshot::codec::{self, StateError};

/// The UART's eight registers, offsets 0-7 of its range.
const REGISTERS: u64 = 8;
/// The interrupt identification register and its values this file needs.
const IIR: u8 = 2;
const IIR_NONE: u8 = 0x01;
const IIR_RDA: u8 = 0x04;
const IIR_FIFO_ENABLED: u8 = 0xC0;
const IER_RDA: u8 = 0x01;

pub struct Serial<W: Write + Send + Clone> {
    uart: vm_superio::Serial<IrqLine, NoEvents, W>,
    log: GuestLog,
}

impl<W: Write + Send + Clone> Serial<W> {
    /// A UART that interrupts through `irq` and sends what the guest transmits to `out`.
    pub fn new(irq: IrqLine, out: W, log: GuestLog) -> Self {
        Self {
            uart: vm_superio::Serial::new(irq, out),
            log,
        }
    }

    /// Queues bytes for the guest to receive, raising the data-ready interrupt if it is enabled.
    /// Returns how many were taken: fewer than `bytes.len()` (maybe 0) when the 64-byte receive
    /// FIFO fills up; the caller keeps the rest and retries once the guest has read some (see
    /// [`Serial::input_capacity`]). Input is dropped while the guest has the UART in loopback.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        let room = bytes.len().min(self.uart.fifo_capacity());
        match self.uart.enqueue_raw_bytes(bytes) {
            Ok(taken) => taken,
            Err(UartError::FullFifo) => 0,
            Err(e) => {
                // Only the interrupt failed: the bytes are queued.
                self.report(&e);
                room
            }
        }
    }

    /// Free space in the receive FIFO.
    pub fn input_capacity(&self) -> usize {
        self.uart.fifo_capacity()
    }

    /// Logs a UART failure, rate-limited: output errors would otherwise repeat for every byte
    /// the guest sends.
    fn report(&mut self, error: &UartError<std::io::Error>) {
        if !matches!(error, UartError::FullFifo) {
            crate::guest_log!(self.log, Host, "serial failure", "serial: {error}");
        }
    }

    /// The IIR as a 16550A shows it: its received-data interrupt stays pending while the FIFO
    /// holds data. vm-superio clears it at every RBR read, so a driver that reads a bounded
    /// number of bytes per interrupt (Linux's 8250 takes 256) and then asks the IIR again
    /// found nothing pending and left the rest of a long line in the FIFO until more input came.
    fn identification(&mut self) -> u8 {
        let iir = self.uart.read(IIR);
        if iir & IIR_NONE == 0 {
            return iir;
        }
        let state = self.uart.state();
        match state.interrupt_enable & IER_RDA != 0 && !state.in_buffer.is_empty() {
            true => IIR_FIFO_ENABLED | IIR_RDA,
            false => iir,
        }
    }

    fn report_offset(&self, offset: u64) {
        crate::guest_log!(
            self.log,
            GuestError,
            "serial bad access",
            "serial: access at offset {offset:#x} ignored"
        );
    }
}

impl<W: Write + Send + Clone> BusDevice for Serial<W> {
    /// One register per access: a wider access reads the register at `offset` into the first
    /// byte and all-ones into the rest.
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        let Some(first) = data.first_mut() else { return };
        match u8::try_from(offset) {
            Ok(IIR) => *first = self.identification(),
            Ok(reg) if offset < REGISTERS => *first = self.uart.read(reg),
            _ => self.report_offset(offset),
        }
    }

    /// One register per access: a wider access writes its first byte.
    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match u8::try_from(offset) {
            Ok(reg) if offset < REGISTERS => {
                if let Err(e) = self.uart.write(reg, value) {
                    self.report(&e);
                }
            }
            _ => self.report_offset(offset),
        }
    }

    /// A machine reset: the UART's registers as at power-on, the same output and line.
    fn reset(&mut self) {
        match self.uart.interrupt_evt().try_clone() {
            Ok(irq) => self.uart = vm_superio::Serial::new(irq, self.uart.writer().clone()),
            Err(e) => crate::report!("serial: resetting: {e}"),
        }
    }

    fn kind(&self) -> &'static str {
        "serial"
    }

    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        codec::encode("serial", &UartState::from(self.uart.state()))
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let state: UartState = codec::decode("serial", bytes)?;
        let irq = self
            .uart
            .interrupt_evt()
            .try_clone()
            .map_err(|e| StateError::refused("serial", e.to_string()))?;
        let out = self.uart.writer().clone();
        self.uart = vm_superio::Serial::from_state(&state.into(), irq, NoEvents, out)
            .map_err(|e| StateError::refused("serial", format!("{e:?}")))?;
        Ok(())
    }
}

/// vm-superio's `SerialState`, as a snapshot holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct UartState {
    registers: [u8; 9],
    input: Vec<u8>,
}

impl From<SerialState> for UartState {
    fn from(s: SerialState) -> Self {
        Self {
            registers: [
                s.baud_divisor_low,
                s.baud_divisor_high,
                s.interrupt_enable,
                s.interrupt_identification,
                s.line_control,
                s.line_status,
                s.modem_control,
                s.modem_status,
                s.scratch,
            ],
            input: s.in_buffer,
        }
    }
}

impl From<UartState> for SerialState {
    fn from(s: UartState) -> Self {
        let [baud_divisor_low, baud_divisor_high, interrupt_enable, interrupt_identification, line_control, line_status, modem_control, modem_status, scratch] =
            s.registers;
        SerialState {
            baud_divisor_low,
            baud_divisor_high,
            interrupt_enable,
            interrupt_identification,
            line_control,
            line_status,
            modem_control,
            modem_status,
            scratch,
            in_buffer: s.input,
        }
    }
}

/// The stdin reader's way into a shared COM1.
impl<W: Write + Send + Clone> InputSink for std::sync::Arc<std::sync::Mutex<Serial<W>>> {
    fn offer(&mut self, bytes: &[u8]) -> usize {
        self.lock()
            .unwrap_or_else(|p| p.into_inner())
            .enqueue_input(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Register offsets and bits, as a guest driver names them.
    const THR: u64 = 0;
    const RBR: u64 = 0;
    const IER: u64 = 1;
    const IIR: u64 = 2;
    const LSR: u64 = 5;
    const IER_THRE: u8 = 0x02;
    const IER_RDA: u8 = 0x01;
    const IIR_THRE: u8 = 0x02;
    const IIR_RDA: u8 = 0x04;
    const LSR_DR: u8 = 0x01;
    const LSR_THRE: u8 = 0x20;

    fn uart() -> (Serial<Vec<u8>>, IrqLine) {
        let irq = IrqLine::new(4).unwrap();
        let probe = irq.try_clone().unwrap();
        (Serial::new(irq, Vec::new(), GuestLog::default()), probe)
    }

    fn read(dev: &mut Serial<Vec<u8>>, offset: u64) -> u8 {
        let mut b = [0u8];
        dev.read(offset, &mut b);
        b[0]
    }

    fn fired(irq: &IrqLine) -> bool {
        irq.event().read().is_ok()
    }

    #[test]
    fn transmitted_bytes_reach_the_output() {
        let (mut dev, _) = uart();
        assert_ne!(read(&mut dev, LSR) & LSR_THRE, 0);
        dev.write(THR, b"h");
        dev.write(THR, b"i!"); // a wide write sends its first byte only
        assert_eq!(dev.uart.writer(), b"hi");
    }

    #[test]
    fn enabling_the_thr_empty_interrupt_raises_the_line() {
        let (mut dev, irq) = uart();
        assert!(!fired(&irq));
        dev.write(IER, &[IER_THRE]);
        assert!(fired(&irq));
        assert_eq!(read(&mut dev, IIR) & 0x0F, IIR_THRE);
        dev.write(THR, b"x");
        assert!(fired(&irq), "each transmitted byte empties THR again");
    }

    #[test]
    fn input_is_readable_from_rbr_with_data_ready() {
        let (mut dev, irq) = uart();
        dev.write(IER, &[IER_RDA]);
        assert_eq!(read(&mut dev, LSR) & LSR_DR, 0);
        assert_eq!(dev.enqueue_input(b"ok"), 2);
        assert!(fired(&irq));
        assert_eq!(read(&mut dev, IIR) & 0x0F, IIR_RDA);
        assert_ne!(read(&mut dev, LSR) & LSR_DR, 0);
        assert_eq!(read(&mut dev, RBR), b'o');
        assert_eq!(read(&mut dev, RBR), b'k');
        assert_eq!(read(&mut dev, LSR) & LSR_DR, 0);
    }

    /// Linux's 8250 driver reads at most 256 bytes per pass, then asks the IIR whether more is
    /// pending: while the FIFO holds data, it is (a 16550A's received-data interrupt is level).
    #[test]
    fn received_data_stays_pending_in_the_iir_until_the_fifo_is_empty() {
        let (mut dev, _) = uart();
        dev.write(IER, &[IER_RDA]);
        assert_eq!(dev.enqueue_input(b"abc"), 3);
        assert_eq!(read(&mut dev, IIR), 0xC0 | IIR_RDA);
        assert_eq!(read(&mut dev, RBR), b'a');
        assert_eq!(read(&mut dev, IIR), 0xC0 | IIR_RDA, "two bytes are still waiting");
        read(&mut dev, RBR);
        read(&mut dev, RBR);
        assert_eq!(
            read(&mut dev, IIR) & 0x0F,
            0x01,
            "nothing pending once it is empty"
        );
        dev.write(IER, &[0]);
        assert_eq!(dev.enqueue_input(b"d"), 1);
        assert_eq!(
            read(&mut dev, IIR) & 0x0F,
            0x01,
            "not with the interrupt disabled"
        );
    }

    #[test]
    fn input_beyond_the_fifo_is_left_to_the_caller() {
        let (mut dev, _) = uart();
        let capacity = dev.input_capacity();
        assert_eq!(dev.enqueue_input(&vec![b'a'; capacity + 10]), capacity);
        assert_eq!(dev.enqueue_input(b"b"), 0);
        read(&mut dev, RBR);
        assert_eq!(dev.enqueue_input(b"bc"), 1);
    }

    #[test]
    fn a_restored_uart_has_the_saved_registers_and_input() {
        let (mut dev, _) = uart();
        dev.write(IER, &[IER_RDA]);
        dev.write(7, &[0x5A]);
        dev.enqueue_input(b"xy");
        let saved = dev.save_state().unwrap();
        let (mut other, _) = uart();
        other.restore_state(&saved).unwrap();
        assert_eq!((read(&mut other, IER), read(&mut other, 7)), (IER_RDA, 0x5A));
        assert_eq!((read(&mut other, RBR), read(&mut other, RBR)), (b'x', b'y'));
        assert!(other.restore_state(&saved[..3]).is_err());
    }

    #[test]
    fn out_of_range_accesses_are_harmless() {
        let (mut dev, _) = uart();
        let mut b = [0u8; 2];
        dev.read(8, &mut b);
        assert_eq!(b, [0xFF, 0xFF]);
        dev.read(LSR, &mut b);
        assert_eq!(b[1], 0xFF);
        dev.write(9, &[0x41]);
        dev.write(THR, &[]);
        assert!(dev.uart.writer().is_empty());
    }
}
