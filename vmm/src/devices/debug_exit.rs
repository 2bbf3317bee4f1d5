//! QEMU's `isa-debug-exit`: a guest write of `value` ends the VM with status `(value << 1) | 1`.
//! Test guests and firmware use it to report pass/fail without a shutdown path (QEMU
//! hw/misc/debugexit.c). The status arithmetic lives in [`ExitReason::status`].
use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitSignal};

pub struct DebugExit {
    exit: ExitSignal,
}

impl DebugExit {
    pub fn new(exit: ExitSignal) -> Self {
        Self { exit }
    }
}

impl BusDevice for DebugExit {
    fn kind(&self) -> &'static str {
        "isa-debug-exit"
    }

    /// Write-only: reads float high.
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }

    /// Any write, at any offset, of 1, 2 or 4 bytes (little-endian) requests the exit; bytes past
    /// the fourth are ignored.
    fn write(&mut self, _offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let value = data
            .iter()
            .take(4)
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        self.exit.request(ExitReason::DebugExit(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(data: &[u8]) -> Option<ExitReason> {
        let exit = ExitSignal::default();
        DebugExit::new(exit.clone()).write(0, data);
        exit.requested()
    }

    #[test]
    fn a_write_requests_the_exit_with_its_little_endian_value() {
        assert_eq!(write(&[0x31]), Some(ExitReason::DebugExit(0x31)));
        assert_eq!(write(&[0x34, 0x12]), Some(ExitReason::DebugExit(0x1234)));
        assert_eq!(
            write(&[0x78, 0x56, 0x34, 0x12]),
            Some(ExitReason::DebugExit(0x1234_5678))
        );
        assert_eq!(write(&[]), None);
    }

    #[test]
    fn the_exit_status_is_qemus() {
        assert_eq!(write(&[0x10]).map(ExitReason::status), Some(0x21));
        assert_eq!(write(&[0]).map(ExitReason::status), Some(1));
        // QEMU keeps the low 8 bits of (value << 1) | 1, whatever the access width: a 4-byte
        // 0x40000000 fails with 1 rather than reading as a pass, and 0x80 gives 1 as well.
        assert_eq!(write(&[0, 0, 0, 0x40]).map(ExitReason::status), Some(1));
        assert_eq!(write(&[0x80]).map(ExitReason::status), Some(1));
        assert_eq!(write(&[0x7f, 0x01]).map(ExitReason::status), Some(0xff));
        assert_eq!(write(&[0x42, 0, 0, 0x80]).map(ExitReason::status), Some(0x85));
    }

    #[test]
    fn the_first_write_wins_and_reads_float_high() {
        let exit = ExitSignal::default();
        let mut dev = DebugExit::new(exit.clone());
        dev.write(1, &[3]);
        dev.write(0, &[5]);
        assert_eq!(exit.requested(), Some(ExitReason::DebugExit(3)));
        let mut b = [0u8; 2];
        dev.read(0, &mut b);
        assert_eq!(b, [0xFF, 0xFF]);
    }
}
