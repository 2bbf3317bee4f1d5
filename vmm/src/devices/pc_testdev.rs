//! QEMU's `pc-testdev` (hw/misc/pc-testdev.c), the test device kvm-unit-tests' x86 runner gives
//! its guests; off unless `-device pc-testdev`. Its four parts:
//! - ports 0xe0-0xe3 and 0xe8-0xeb: one 32-bit register, read and written at any width and offset;
//! - port 0xe4: a 4-byte write of a guest-physical address makes KVM drop its mapping of that page;
//! - ports 0x2000-0x2017: a byte written to 0x2000 + N sets ISA interrupt line N to (byte != 0);
//! - MMIO 0xff000000-0xff00ffff: 64 KiB of scratch memory behind MMIO exits.
//!
//! Like QEMU's, its state is not part of a snapshot.
use crate::bus::BusDevice;
use crate::irq::LineLevel;
use std::sync::Arc;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

pub const REGISTER_PORT: u16 = 0xE0;
pub const REGISTER_BYTE_PORT: u16 = 0xE8;
pub const FLUSH_PORT: u16 = 0xE4;
pub const IRQ_PORT: u16 = 0x2000;
/// ISA interrupt lines 0-23.
pub const IRQ_LINES: u64 = 24;
pub const IOMEM: u64 = 0xFF00_0000;
pub const IOMEM_LEN: u64 = 0x1_0000;
const PAGE: u64 = 4096;

/// The 32-bit register at 0xe0 (and again at 0xe8): a write of N bytes at offset K replaces
/// those bytes; a read returns them.
#[derive(Default)]
pub struct Register {
    bytes: [u8; 4],
}

impl BusDevice for Register {
    fn kind(&self) -> &'static str {
        "pc-testdev"
    }

    fn read(&mut self, offset: u64, data: &mut [u8]) {
        read_bytes(&self.bytes, offset, data, 0xFF);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        write_bytes(&mut self.bytes, offset, data);
    }
}

/// Fills `data` from `store` at `offset`; bytes past its end read as `past`.
fn read_bytes(store: &[u8], offset: u64, data: &mut [u8], past: u8) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = byte_at(offset, i)
            .and_then(|at| store.get(at))
            .copied()
            .unwrap_or(past);
    }
}

/// Copies `data` into `store` at `offset`; bytes past its end are dropped.
fn write_bytes(store: &mut [u8], offset: u64, data: &[u8]) {
    for (i, b) in data.iter().enumerate() {
        if let Some(slot) = byte_at(offset, i).and_then(|at| store.get_mut(at)) {
            *slot = *b;
        }
    }
}

fn byte_at(offset: u64, i: usize) -> Option<usize> {
    usize::try_from(offset).ok()?.checked_add(i)
}

/// Port 0xe4: a 4-byte write of an address makes KVM forget its mapping of that page of guest
/// RAM, as QEMU's mprotect() round trip does. Minnow copies the page out, drops it
/// (`MADV_DONTNEED`, which invalidates KVM's mapping) and writes it back: a write to that page
/// by another vCPU or a device in between is lost, where QEMU would fault; nothing crashes.
pub struct FlushPage {
    ram: GuestMemoryMmap,
}

impl FlushPage {
    pub fn new(ram: GuestMemoryMmap) -> Self {
        Self { ram }
    }

    fn flush(&self, addr: u64) {
        let page = GuestAddress(addr & !(PAGE - 1));
        let mut copy = [0u8; PAGE as usize];
        // Not RAM (or not a whole page of it): nothing KVM maps from us.
        if self.ram.read_slice(&mut copy, page).is_err() {
            return;
        }
        let Ok(host) = self.ram.get_host_address(page) else {
            return;
        };
        // SAFETY: `host` is the start of a whole page of guest RAM that `ram` maps (read just
        // above); MADV_DONTNEED only drops its contents, which are written back below.
        let r = unsafe { libc::madvise(host.cast(), PAGE as usize, libc::MADV_DONTNEED) };
        if r != 0 {
            crate::report!(
                "pc-testdev: flushing page {:#x}: {}",
                page.0,
                std::io::Error::last_os_error()
            );
        }
        if self.ram.write_slice(&copy, page).is_err() {
            crate::report!("pc-testdev: writing page {:#x} back failed", page.0);
        }
    }
}

impl BusDevice for FlushPage {
    fn kind(&self) -> &'static str {
        "pc-testdev"
    }

    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }

    /// Only 4-byte writes, as in QEMU.
    fn write(&mut self, _offset: u64, data: &[u8]) {
        if let Ok(bytes) = <[u8; 4]>::try_from(data) {
            self.flush(u64::from(u32::from_le_bytes(bytes)));
        }
    }
}

/// Ports 0x2000-0x2017: a byte written to 0x2000 + N sets ISA interrupt line (GSI) N.
pub struct IrqLines {
    lines: Arc<dyn LineLevel>,
}

impl IrqLines {
    pub fn new(lines: Arc<dyn LineLevel>) -> Self {
        Self { lines }
    }
}

impl BusDevice for IrqLines {
    fn kind(&self) -> &'static str {
        "pc-testdev"
    }

    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }

    /// Only 1-byte writes, as in QEMU.
    fn write(&mut self, offset: u64, data: &[u8]) {
        let (&[level], Ok(gsi)) = (data, u32::try_from(offset)) else {
            return;
        };
        if let Err(e) = self.lines.set_level(gsi, level != 0) {
            crate::report!("pc-testdev: setting GSI {gsi}: {e}");
        }
    }
}

/// 64 KiB at 0xff000000 that reads back what was written, each access an MMIO exit.
pub struct IoMem {
    bytes: Box<[u8]>,
}

impl Default for IoMem {
    fn default() -> Self {
        Self {
            bytes: vec![0; IOMEM_LEN as usize].into_boxed_slice(),
        }
    }
}

impl BusDevice for IoMem {
    fn kind(&self) -> &'static str {
        "pc-testdev"
    }

    fn read(&mut self, offset: u64, data: &mut [u8]) {
        read_bytes(&self.bytes, offset, data, 0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        write_bytes(&mut self.bytes, offset, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordedLevels;

    #[test]
    fn the_register_keeps_each_byte_written_at_any_width() {
        let mut r = Register::default();
        r.write(0, &[0x78, 0x56, 0x34, 0x12]);
        r.write(2, &[0xCD, 0xAB]);
        r.write(1, &[0xEE]);
        let mut all = [0u8; 4];
        r.read(0, &mut all);
        assert_eq!(u32::from_le_bytes(all), 0xABCD_EE78);
        let mut high = [0u8; 2];
        r.read(2, &mut high);
        assert_eq!(high, [0xCD, 0xAB]);
        let mut past = [0u8; 2];
        r.read(3, &mut past);
        assert_eq!(past, [0xAB, 0xFF], "nothing past the register");
    }

    #[test]
    fn a_byte_sets_its_interrupt_line_and_wider_writes_do_nothing() {
        let levels = Arc::new(RecordedLevels::default());
        let mut irq = IrqLines::new(levels.clone());
        irq.write(10, &[1]);
        assert_eq!(levels.level(10), Some(true));
        irq.write(10, &[0]);
        assert_eq!(levels.level(10), Some(false));
        irq.write(11, &[1, 0]);
        assert_eq!(levels.level(11), None);
    }

    #[test]
    fn the_memory_window_reads_back_what_was_written() {
        let mut m = IoMem::default();
        m.write(0xFFFE, &[1, 2, 3, 4]);
        let mut b = [9u8; 4];
        m.read(0xFFFE, &mut b);
        assert_eq!(b, [1, 2, 0, 0]);
    }

    #[test]
    fn a_flushed_page_keeps_its_contents_and_other_addresses_are_ignored() {
        let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_000)]).unwrap();
        ram.write_slice(&[0x5A; 16], GuestAddress(0x2000)).unwrap();
        let mut f = FlushPage::new(ram.clone());
        f.write(0, &0x2123u32.to_le_bytes());
        f.write(0, &0xFF00_0000u32.to_le_bytes());
        f.write(0, &[0x20]);
        let mut b = [0u8; 16];
        ram.read_slice(&mut b, GuestAddress(0x2000)).unwrap();
        assert_eq!(b, [0x5A; 16]);
    }
}
