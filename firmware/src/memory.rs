//! Guest-physical memory as the firmware sees it: identity-mapped, accessed through one trait so
//! the boot logic can run against a fake on the host.
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Byte access to physical memory. Callers check that ranges are RAM (see `memory_map`) before
/// writing; implementations may assume it.
pub trait Memory {
    fn write(&mut self, addr: u64, data: &[u8]);
    fn read(&self, addr: u64, buf: &mut [u8]);
    fn fill(&mut self, addr: u64, len: u64, byte: u8);

    /// The sum mod 256 of `len` bytes at `addr` (ACPI checksums).
    fn byte_sum(&self, addr: u64, len: u64) -> u8 {
        let mut buf = [0u8; 256];
        let (mut sum, mut at, end) = (0u8, addr, addr + len);
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            self.read(at, &mut buf[..n]);
            sum = sum.wrapping_add(byte_sum(&buf[..n]));
            at += n as u64;
        }
        sum
    }
}

/// The sum of `bytes` mod 256, eight bytes at a time: the firmware sums every ACPI table in full,
/// and a byte loop would be most of its instructions.
pub fn byte_sum(bytes: &[u8]) -> u8 {
    const LANES: u64 = 0x00FF_00FF_00FF_00FF;
    // Four 16-bit lanes each gain two bytes per word: a block of 64 words adds at most
    // 128 * 255 < 65536 to a lane, so lanes are folded once per block, before any could carry.
    // Only each lane's low byte matters mod 256; four of them sum without carrying into bit 48.
    let fold = |lanes: u64| ((lanes & LANES).wrapping_mul(0x0001_0001_0001_0001) >> 48) as u8;
    let mut blocks = bytes.chunks_exact(8 * 64);
    let mut sum = 0u8;
    let mut add_words = |block: &[u8]| {
        let lanes = block.chunks_exact(8).fold(0u64, |lanes, w| {
            let mut word = [0u8; 8];
            word.copy_from_slice(w); // one 8-byte load: chunks_exact gives exactly 8
            let w = u64::from_le_bytes(word);
            lanes + (w & LANES) + ((w >> 8) & LANES)
        });
        sum = sum.wrapping_add(fold(lanes));
    };
    blocks.by_ref().for_each(&mut add_words);
    let tail = blocks.remainder();
    add_words(tail);
    tail[tail.len() & !7..]
        .iter()
        .fold(sum, |s, &b| s.wrapping_add(b))
}

/// Writes a wire-format value at `addr`.
pub fn write_obj<T: IntoBytes + Immutable>(mem: &mut (impl Memory + ?Sized), addr: u64, value: &T) {
    mem.write(addr, value.as_bytes());
}

/// Reads a wire-format value from `addr`.
pub fn read_obj<T: FromBytes + IntoBytes>(mem: &(impl Memory + ?Sized), addr: u64) -> T {
    let mut value = T::new_zeroed();
    mem.read(addr, value.as_mut_bytes());
    value
}
