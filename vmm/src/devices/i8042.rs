//! The i8042 PS/2 controller, without keyboard or mouse: enough for a guest to reset the machine
//! (command 0xFE, Linux `reboot=k`) and for Linux's i8042 probe to finish at once instead of
//! timing out (500 ms per unanswered command) or spinning on an all-ones status.
//!
//! The range covers the data port (offset 0) to the command/status port (offset 4). There is
//! no interrupt line: nothing here ever produces input on its own.
//!
//! There is no AUX (mouse) port, and the probe is told so quickly: the AUX loopback command
//! answers without the "AUX data" status bit, which Linux takes as a loopback failure, and the
//! AUX interface test then reports a stuck clock line. (Had the test passed, Linux would test
//! AUX interrupt delivery and wait 250 ms for an IRQ 12 this machine does not have.)
//!
//! vm-superio's `I8042Device` is not used: it decodes only the reset command, reads 0 for
//! every register and has no output buffer, so the self-test and command byte could not be
//! built on it; and it signals reset through an eventfd where this VMM has an [`ExitSignal`].
use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitSignal};
use crate::runtime::guest_log::GuestLog;
use crate::snapshot::codec::{self, StateError};

/// Offsets in the device's range.
const DATA: u64 = 0;
const COMMAND: u64 = 4;

// Status register (read at COMMAND).
const STATUS_OUTPUT_FULL: u8 = 1 << 0;
const STATUS_SYSTEM: u8 = 1 << 2;
/// The last write went to the command port.
const STATUS_COMMAND: u8 = 1 << 3;
/// Keyboard not inhibited (the keylock switch is "unlocked").
const STATUS_UNLOCKED: u8 = 1 << 4;
const STATUS_AUX_DATA: u8 = 1 << 5;

// Controller command byte ("CTR").
const CTR_KBD_INT: u8 = 1 << 0;
const CTR_SYSTEM: u8 = 1 << 2;
const CTR_KBD_DISABLED: u8 = 1 << 4;
const CTR_AUX_DISABLED: u8 = 1 << 5;
const CTR_TRANSLATE: u8 = 1 << 6;
/// As a BIOS leaves it: keyboard interrupt and translation on, POST passed, AUX off.
const CTR_DEFAULT: u8 = CTR_KBD_INT | CTR_SYSTEM | CTR_AUX_DISABLED | CTR_TRANSLATE;

// Output port (commands 0xD0/0xD1).
/// Bit 0 drives the CPU reset line, active low.
const OUTPUT_NOT_RESET: u8 = 1 << 0;
const OUTPUT_A20: u8 = 1 << 1;

// Controller commands.
const CMD_READ_CTR: u8 = 0x20;
const CMD_WRITE_CTR: u8 = 0x60;
const CMD_AUX_DISABLE: u8 = 0xA7;
const CMD_AUX_ENABLE: u8 = 0xA8;
const CMD_AUX_TEST: u8 = 0xA9;
const CMD_SELF_TEST: u8 = 0xAA;
const CMD_KBD_TEST: u8 = 0xAB;
const CMD_KBD_DISABLE: u8 = 0xAD;
const CMD_KBD_ENABLE: u8 = 0xAE;
const CMD_READ_OUTPUT: u8 = 0xD0;
const CMD_WRITE_OUTPUT: u8 = 0xD1;
const CMD_WRITE_KBD_BUFFER: u8 = 0xD2;
const CMD_WRITE_AUX_BUFFER: u8 = 0xD3;
const CMD_WRITE_AUX: u8 = 0xD4;
/// 0xF0-0xFF pulse the low output-port lines whose bits are clear: 0xFE pulses reset.
const CMD_PULSE_FIRST: u8 = 0xF0;
/// HP Vectra A20 commands, which some OSes send blindly: accepted, A20 stays on.
const CMD_A20_OFF: u8 = 0xDD;
const CMD_A20_ON: u8 = 0xDF;

const SELF_TEST_PASSED: u8 = 0x55;
const PORT_TEST_PASSED: u8 = 0x00;
/// "Clock line stuck high": the answer for the AUX port that is not there.
const PORT_TEST_CLOCK_HIGH: u8 = 0x02;

#[derive(serde::Serialize, serde::Deserialize)]
struct KbcState {
    ctr: u8,
    output: Option<(u8, bool)>,
    last_output: u8,
    pending: Option<u8>,
    last_was_command: bool,
}

pub struct I8042 {
    exit: ExitSignal,
    ctr: u8,
    /// The byte the guest reads from DATA, and whether it is marked as from the AUX port.
    output: Option<(u8, bool)>,
    /// What DATA reads once the output buffer is empty: the last byte, as on hardware.
    last_output: u8,
    /// A command waiting for its parameter byte on DATA.
    pending: Option<u8>,
    last_was_command: bool,
    log: GuestLog,
}

impl I8042 {
    pub fn new(exit: ExitSignal, log: GuestLog) -> Self {
        Self {
            exit,
            ctr: CTR_DEFAULT,
            output: None,
            last_output: 0,
            pending: None,
            last_was_command: true,
            log,
        }
    }

    fn status(&self) -> u8 {
        let mut status = STATUS_UNLOCKED;
        if self.ctr & CTR_SYSTEM != 0 {
            status |= STATUS_SYSTEM;
        }
        if self.last_was_command {
            status |= STATUS_COMMAND;
        }
        match self.output {
            Some((_, true)) => status | STATUS_OUTPUT_FULL | STATUS_AUX_DATA,
            Some((_, false)) => status | STATUS_OUTPUT_FULL,
            None => status,
        }
    }

    fn read_data(&mut self) -> u8 {
        if let Some((byte, _)) = self.output.take() {
            self.last_output = byte;
        }
        self.last_output
    }

    /// Places a controller reply in the output buffer, replacing any unread byte.
    fn reply(&mut self, byte: u8) {
        self.output = Some((byte, false));
    }

    fn request_reset(&self) {
        self.exit.request(ExitReason::Reset);
    }

    fn command(&mut self, cmd: u8) {
        self.pending = None;
        match cmd {
            CMD_READ_CTR => self.reply(self.ctr),
            CMD_WRITE_CTR | CMD_WRITE_OUTPUT | CMD_WRITE_KBD_BUFFER | CMD_WRITE_AUX_BUFFER
            | CMD_WRITE_AUX => self.pending = Some(cmd),
            CMD_AUX_DISABLE => self.ctr |= CTR_AUX_DISABLED,
            CMD_AUX_ENABLE => self.ctr &= !CTR_AUX_DISABLED,
            CMD_AUX_TEST => self.reply(PORT_TEST_CLOCK_HIGH),
            CMD_SELF_TEST => {
                self.ctr |= CTR_SYSTEM;
                self.reply(SELF_TEST_PASSED);
            }
            CMD_KBD_TEST => self.reply(PORT_TEST_PASSED),
            CMD_KBD_DISABLE => self.ctr |= CTR_KBD_DISABLED,
            CMD_KBD_ENABLE => self.ctr &= !CTR_KBD_DISABLED,
            CMD_READ_OUTPUT => self.reply(OUTPUT_NOT_RESET | OUTPUT_A20),
            CMD_A20_OFF | CMD_A20_ON => {}
            CMD_PULSE_FIRST..=0xFF if cmd & OUTPUT_NOT_RESET == 0 => self.request_reset(),
            CMD_PULSE_FIRST..=0xFF => {}
            _ => self.warn_command(cmd),
        }
    }

    fn write_data(&mut self, byte: u8) {
        match self.pending.take() {
            Some(CMD_WRITE_CTR) => self.ctr = byte,
            Some(CMD_WRITE_OUTPUT) if byte & OUTPUT_NOT_RESET == 0 => self.request_reset(),
            Some(CMD_WRITE_KBD_BUFFER) => self.output = Some((byte, false)),
            // The loopback comes back unmarked as AUX data: there is no AUX port (module doc).
            Some(CMD_WRITE_AUX_BUFFER) => self.output = Some((byte, false)),
            // Bytes for the absent mouse (CMD_WRITE_AUX) or keyboard (no command) go nowhere.
            _ => {}
        }
    }

    fn warn_command(&mut self, cmd: u8) {
        crate::guest_log!(
            self.log,
            Unimp,
            "i8042 unknown command",
            "i8042: command {cmd:#04x} ignored"
        );
    }

    /// Offsets 1-3 (ports 0x61-0x63) are not the controller's: port 0x61 belongs to KVM's
    /// in-kernel PIT when there is one.
    fn warn_offset(&mut self, offset: u64) {
        crate::guest_log!(
            self.log,
            GuestError,
            "i8042 bad access",
            "i8042: access at offset {offset:#x} ignored"
        );
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        let Some(first) = data.first_mut() else { return };
        match offset {
            DATA => *first = self.read_data(),
            COMMAND => *first = self.status(),
            _ => self.warn_offset(offset),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&byte) = data.first() else { return };
        match offset {
            DATA => {
                self.last_was_command = false;
                self.write_data(byte);
            }
            COMMAND => {
                self.last_was_command = true;
                self.command(byte);
            }
            _ => self.warn_offset(offset),
        }
    }

    fn kind(&self) -> &'static str {
        "i8042"
    }

    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        let state = KbcState {
            ctr: self.ctr,
            output: self.output,
            last_output: self.last_output,
            pending: self.pending,
            last_was_command: self.last_was_command,
        };
        codec::encode("i8042", &state)
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let s: KbcState = codec::decode("i8042", bytes)?;
        self.ctr = s.ctr;
        self.output = s.output;
        self.last_output = s.last_output;
        self.pending = s.pending;
        self.last_was_command = s.last_was_command;
        Ok(())
    }

    fn reset(&mut self) {
        *self = Self::new(self.exit.clone(), self.log.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> (I8042, ExitSignal) {
        let exit = ExitSignal::default();
        (I8042::new(exit.clone(), GuestLog::default()), exit)
    }

    fn inb(dev: &mut I8042, offset: u64) -> u8 {
        let mut b = [0u8];
        dev.read(offset, &mut b);
        b[0]
    }

    /// Sends a command as Linux's i8042_command does: parameters to DATA, then the replies.
    fn command(dev: &mut I8042, cmd: u8, params: &[u8], replies: usize) -> Vec<u8> {
        dev.write(COMMAND, &[cmd]);
        for &p in params {
            assert_eq!(inb(dev, COMMAND) & 0x02, 0, "input buffer never fills");
            dev.write(DATA, &[p]);
        }
        (0..replies)
            .map(|_| {
                assert_ne!(
                    inb(dev, COMMAND) & STATUS_OUTPUT_FULL,
                    0,
                    "reply to {cmd:#x} missing"
                );
                inb(dev, DATA)
            })
            .collect()
    }

    #[test]
    fn status_is_idle_with_the_output_buffer_empty() {
        let (mut dev, _) = controller();
        assert_eq!(inb(&mut dev, COMMAND), 0x1C);
        let mut wide = [0u8; 2];
        dev.read(COMMAND, &mut wide);
        assert_eq!(wide, [0x1C, 0xFF]);
        dev.write(DATA, &[0xF2]); // a keyboard command: no keyboard, no reply
        assert_eq!(inb(&mut dev, COMMAND), 0x14);
    }

    #[test]
    fn command_0xfe_resets_the_machine() {
        let (mut dev, exit) = controller();
        dev.write(COMMAND, &[0xFF]); // pulses no line
        assert_eq!(exit.requested(), None);
        dev.write(COMMAND, &[0xFE]);
        assert_eq!(exit.requested(), Some(ExitReason::Reset));
    }

    #[test]
    fn clearing_the_reset_bit_of_the_output_port_resets_the_machine() {
        let (mut dev, exit) = controller();
        assert_eq!(command(&mut dev, CMD_READ_OUTPUT, &[], 1), [0x03]);
        command(&mut dev, CMD_WRITE_OUTPUT, &[0x03], 0);
        assert_eq!(exit.requested(), None);
        command(&mut dev, CMD_WRITE_OUTPUT, &[0x02], 0);
        assert_eq!(exit.requested(), Some(ExitReason::Reset));
    }

    #[test]
    fn self_test_and_keyboard_test_pass() {
        let (mut dev, exit) = controller();
        assert_eq!(command(&mut dev, CMD_SELF_TEST, &[], 1), [0x55]);
        assert_eq!(command(&mut dev, CMD_KBD_TEST, &[], 1), [0x00]);
        assert_eq!(inb(&mut dev, COMMAND) & STATUS_OUTPUT_FULL, 0);
        assert_eq!(inb(&mut dev, DATA), 0x00, "an empty buffer reads its last byte");
        assert_eq!(exit.requested(), None);
    }

    #[test]
    fn the_command_byte_reads_back_and_tracks_port_enables() {
        let (mut dev, _) = controller();
        assert_eq!(command(&mut dev, CMD_READ_CTR, &[], 1), [CTR_DEFAULT]);
        command(&mut dev, CMD_WRITE_CTR, &[0x47], 0);
        assert_eq!(command(&mut dev, CMD_READ_CTR, &[], 1), [0x47]);
        command(&mut dev, CMD_AUX_DISABLE, &[], 0);
        command(&mut dev, CMD_KBD_DISABLE, &[], 0);
        assert_eq!(command(&mut dev, CMD_READ_CTR, &[], 1), [0x77]);
        command(&mut dev, CMD_AUX_ENABLE, &[], 0);
        command(&mut dev, CMD_KBD_ENABLE, &[], 0);
        assert_eq!(command(&mut dev, CMD_READ_CTR, &[], 1), [0x47]);
    }

    #[test]
    fn the_aux_port_is_reported_absent_without_timeouts() {
        let (mut dev, _) = controller();
        // Linux i8042_check_aux: loopback first; a reply without AUX data means "no loop".
        dev.write(COMMAND, &[CMD_WRITE_AUX_BUFFER]);
        dev.write(DATA, &[0x5A]);
        let status = inb(&mut dev, COMMAND);
        assert_ne!(status & STATUS_OUTPUT_FULL, 0);
        assert_eq!(status & STATUS_AUX_DATA, 0);
        // Then the interface test, whose reply replaces the unread loopback byte.
        assert_eq!(command(&mut dev, CMD_AUX_TEST, &[], 1), [PORT_TEST_CLOCK_HIGH]);
    }

    #[test]
    fn unknown_commands_and_offsets_are_ignored() {
        let (mut dev, exit) = controller();
        dev.write(COMMAND, &[0xC0]);
        dev.write(COMMAND, &[0xC0]);
        dev.write(2, &[0xFE]);
        assert_eq!(inb(&mut dev, 1), 0xFF);
        assert_eq!(inb(&mut dev, COMMAND) & STATUS_OUTPUT_FULL, 0);
        assert_eq!(exit.requested(), None);
    }
}
