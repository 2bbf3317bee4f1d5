//! Guest-physical memory as the firmware sees it: identity-mapped, accessed through one trait so
//! the boot logic can run against a fake on the host.
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Byte access to physical memory. Callers check that ranges are RAM (see `memory_map`) before
/// writing; implementations may assume it.
pub trait Memory {
    fn write(&mut self, addr: u64, data: &[u8]);
    fn read(&self, addr: u64, buf: &mut [u8]);
    fn fill(&mut self, addr: u64, len: u64, byte: u8);
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
