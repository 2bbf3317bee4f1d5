//! The e820 memory map entry, as found in `etc/e820`, in boot_params and (with another header) in
//! PVH and multiboot memory maps.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Usable RAM.
pub const RAM: u32 = 1;
/// Reserved: firmware, ROM, MMIO.
pub const RESERVED: u32 = 2;
/// ACPI tables, reclaimable once parsed.
pub const ACPI: u32 = 3;
/// ACPI non-volatile storage.
pub const NVS: u32 = 4;
/// Unusable (bad) memory.
pub const UNUSABLE: u32 = 5;

/// One packed 20-byte e820 entry `{ le64 addr; le64 size; le32 type }`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C, packed)]
pub struct E820Entry {
    pub addr: zerocopy::little_endian::U64,
    pub size: zerocopy::little_endian::U64,
    pub kind: zerocopy::little_endian::U32,
}
const _: () = assert!(core::mem::size_of::<E820Entry>() == 20);

impl E820Entry {
    pub fn new(addr: u64, size: u64, kind: u32) -> Self {
        Self {
            addr: addr.into(),
            size: size.into(),
            kind: kind.into(),
        }
    }
}
