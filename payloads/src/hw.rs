//! The bare-metal side, shared by every payload: the start-up code, physical memory through the
//! identity map, COM1, the isa-debug-exit port, and the panic handler.
use crate::analyze::{analyze, Image};
use crate::entry::EntryState;
use crate::mem::Phys;
use crate::proto::Handed;
use crate::report::{write_map, DEBUG_EXIT_PORT, EXIT_FAIL, PREFIX};
use crate::Status;
use core::arch::asm;
use core::fmt::{self, Write};

core::arch::global_asm!(include_str!("arch/start.S"), options(att_syntax));

extern "C" {
    /// Bounds of the payload in memory, .bss and stack included (sections.ld).
    static __image_start: u8;
    static __image_end: u8;
}

/// start.S maps 0 to 4 GiB one to one.
const IDENTITY_END: u64 = 1 << 32;

/// Physical memory through the identity map.
pub struct Identity;

impl Phys for Identity {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let end = addr.checked_add(len as u64)?;
        if addr == 0 || end > IDENTITY_END {
            return None;
        }
        // SAFETY: [addr, end) lies in the identity map start.S set up, so it is mapped; the
        // payload never writes memory outside its own image, so the bytes do not change under
        // the slice. (Unbacked addresses read as 0xFF; the checks above them catch garbage.)
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
    }
}

fn outb(port: u16, value: u8) {
    // SAFETY: port I/O to COM1 and the debug-exit port only; no memory is touched.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for outb: reads a COM1 status register.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) }
    value
}

const COM1: u16 = 0x3F8;
const LSR_THR_EMPTY: u8 = 1 << 5;
/// IIR bits 6-7 read 11 once the FIFOs are on: a 16550A, which takes 16 bytes per THR-empty.
const IIR_FIFO_ON: u8 = 0xC0;
const FIFO_LEN: u8 = 16;

/// COM1, 115200 8N1. QEMU needs no setup; real 16550s get the minimum. Every port access is a
/// VM exit under KVM, so the transmitter is polled once per FIFO-full, not once per byte.
pub struct Com1 {
    /// Bytes that may be written before the next poll.
    room: u8,
    /// Bytes per poll: 16 with a FIFO, 1 without.
    burst: u8,
}

impl Com1 {
    pub fn new() -> Self {
        outb(COM1 + 1, 0x00); // no interrupts
        outb(COM1 + 3, 0x80); // DLAB: the next two ports are the divisor
        outb(COM1, 0x01); // 115200 baud
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8 bits, no parity, one stop bit
        outb(COM1 + 2, 0x07); // FIFOs on, cleared
        outb(COM1 + 4, 0x03); // DTR, RTS
        let burst = if inb(COM1 + 2) & IIR_FIFO_ON == IIR_FIFO_ON {
            FIFO_LEN
        } else {
            1
        };
        Com1 { room: 0, burst }
    }

    fn send(&mut self, b: u8) {
        if self.room == 0 {
            // Bounded: a missing UART reads 0xFF (ready), a wedged one must not hang us.
            for _ in 0..100_000 {
                if inb(COM1 + 5) & LSR_THR_EMPTY != 0 {
                    break;
                }
            }
            self.room = self.burst;
        }
        outb(COM1, b);
        self.room -= 1;
    }
}

impl Default for Com1 {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                self.send(b'\r');
            }
            self.send(b);
        }
        Ok(())
    }
}

/// Marks the end of the boot for a VMM's timeline (0x3f0 <- 123, as Firecracker's boot timer), then
/// leaves QEMU through isa-debug-exit (status (code << 1) | 1), else halts for good.
pub fn exit(code: u8) -> ! {
    outb(
        minnow_bootproto::milestone::PORT,
        minnow_bootproto::milestone::BOOT_DONE,
    );
    outb(DEBUG_EXIT_PORT, code);
    loop {
        // SAFETY: stops this CPU with interrupts off; nothing follows.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

fn image(s: &EntryState) -> Image {
    Image {
        start: core::ptr::addr_of!(__image_start) as u64,
        end: core::ptr::addr_of!(__image_end) as u64,
        bss_dirty: s.bss_dirty != 0,
    }
}

/// The demo's greeting: what booted this guest and with what, then the checks' verdict, and the
/// same exit as [`finish`].
pub fn greet(h: &Handed, s: &EntryState) -> ! {
    let report = analyze(&Identity, h, image(s));
    let mut com1 = Com1::new();
    let _ = writeln!(com1, "Hello from a Minnow guest!");
    let _ = write!(
        com1,
        "  booted through {}, entered in {}-bit mode, command line \"",
        report.proto, report.entry
    );
    if let Ok(Some(cmdline)) = report.cmdline {
        for &b in cmdline {
            let _ = com1.write_char(if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            });
        }
    }
    let _ = writeln!(com1, "\"");
    let cpus = report.acpi.madt_cpus.or(report.mp.cpus).unwrap_or(1);
    let tables = if report.acpi.count > 0 {
        "ACPI"
    } else {
        "the MP table"
    };
    let _ = writeln!(
        com1,
        "  {} MiB of RAM, {cpus} CPU(s) described by {tables}",
        report.mem_kb.div_ceil(1024)
    );
    match report.failure() {
        None => {
            let _ = writeln!(com1, "  every boot-protocol check passed");
        }
        Some(r) => {
            let _ = writeln!(com1, "  a boot-protocol check failed: {r}");
        }
    }
    exit(report.exit_code())
}

/// Checks what the loader handed over, prints the report line, and exits with its verdict.
pub fn finish(h: &Handed, s: &EntryState) -> ! {
    let report = analyze(&Identity, h, image(s));
    let mut com1 = Com1::new();
    if let (Status::Bad(_), Some(map)) = (report.e820, &h.map) {
        let _ = write_map(&mut com1, map);
    }
    let _ = report.write(&mut com1);
    exit(report.exit_code())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Com1::new(), "{PREFIX} panic: {info} result=fail:panic");
    exit(EXIT_FAIL)
}
