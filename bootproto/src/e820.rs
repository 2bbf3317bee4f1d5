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

/// The legacy area below 1 MiB as every Minnow loader reports it (minnow.rom carving QEMU's RAM
/// ranges, the VMM's direct boot building its own map): base memory ends at [`MPTABLE`], the MP
/// table area up to 640 KiB is reserved, 640-896 KiB (VGA, option ROMs) is not memory at all, and
/// 896 KiB-1 MiB (the F-segment zone and the ROM alias) is reserved. [`CARVES`] is that, as steps.
///
/// [`MPTABLE`]: legacy::MPTABLE
/// [`CARVES`]: legacy::CARVES
pub mod legacy {
    use super::RESERVED;

    /// The MP configuration table (no-ACPI machines), and its floating pointer in the last KiB of
    /// base memory, where Linux scans for it.
    pub const MPTABLE: u64 = 0x9_E000;
    pub const MP_FLOATING_POINTER: u64 = 0x9_FC00;
    /// 640 KiB: end of base memory.
    pub const BASE_MEMORY_END: u64 = 0xA_0000;
    /// End of the legacy hole; the F-segment zone (table-loader ZONE_FSEG) and the ROM follow.
    pub const LEGACY_HOLE_END: u64 = 0xE_0000;
    /// 1 MiB: where RAM resumes.
    pub const HIGH_MEMORY: u64 = 0x10_0000;

    /// One step of the carving: `[start, end)` becomes `kind`, or no memory at all when `None`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Carve {
        pub start: u64,
        pub end: u64,
        pub kind: Option<u32>,
    }

    /// What a loader carves out of the RAM map, in this order.
    pub const CARVES: [Carve; 3] = [
        Carve {
            start: MPTABLE,
            end: BASE_MEMORY_END,
            kind: Some(RESERVED),
        },
        Carve {
            start: BASE_MEMORY_END,
            end: LEGACY_HOLE_END,
            kind: None,
        },
        Carve {
            start: LEGACY_HOLE_END,
            end: HIGH_MEMORY,
            kind: Some(RESERVED),
        },
    ];
}
