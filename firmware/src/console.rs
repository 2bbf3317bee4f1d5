//! COM1, for the firmware's few lines of output (errors and faults). The UART is initialised on
//! first use only: a successful boot prints nothing and costs no serial exits.
use core::fmt::{self, Write};
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};

const COM1: u16 = 0x3F8;

pub struct Console {
    uart: Option<Uart16550<PioBackend>>,
}

impl Console {
    pub const fn new() -> Self {
        Self { uart: None }
    }

    fn uart(&mut self) -> Option<&mut Uart16550<PioBackend>> {
        if self.uart.is_none() {
            // SAFETY: COM1's eight ports belong to the UART on every machine we run on.
            let mut uart = unsafe { Uart16550::new_port(COM1) }.ok()?;
            // A missing UART (isa-serial=off) reads all-ones; init fails and we stay silent.
            uart.init(Config::default()).ok()?;
            self.uart = Some(uart);
        }
        self.uart.as_mut()
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let Some(uart) = self.uart() else { return Ok(()) };
        for &b in s.as_bytes() {
            if b == b'\n' {
                send(uart, b'\r');
            }
            send(uart, b);
        }
        Ok(())
    }
}

fn send(uart: &mut Uart16550<PioBackend>, byte: u8) {
    // Bounded: a wedged UART must not hang the firmware's error path.
    for _ in 0..100_000 {
        if uart.try_send_byte(byte).is_ok() {
            return;
        }
        core::hint::spin_loop();
    }
}
