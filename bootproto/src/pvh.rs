//! Xen PVH direct boot (xen/include/public/arch-x86/hvm/start_info.h, docs/misc/pvh.pandoc).
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `hvm_start_info.magic`.
pub const START_MAGIC: u32 = 0x336E_C578;
/// ELF note name and the note type that carries the 32-bit entry point.
pub const NOTE_NAME: &[u8] = b"Xen";
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The entry in a PHYS32_ENTRY note's descriptor: its low 32 bits (Linux writes a pointer-sized
/// value, other kernels 4 bytes). `None` when the descriptor is shorter than 4 bytes.
pub fn entry_from_note(desc: &[u8]) -> Option<u32> {
    desc.get(..4)?.try_into().ok().map(u32::from_le_bytes)
}

/// `struct hvm_start_info`, version 1 (56 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct StartInfo {
    pub magic: U32,
    pub version: U32,
    pub flags: U32,
    pub nr_modules: U32,
    pub modlist_paddr: U64,
    pub cmdline_paddr: U64,
    pub rsdp_paddr: U64,
    pub memmap_paddr: U64,
    pub memmap_entries: U32,
    pub reserved: U32,
}
const _: () = assert!(core::mem::size_of::<StartInfo>() == 56);

/// `struct hvm_modlist_entry` (32 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ModlistEntry {
    pub paddr: U64,
    pub size: U64,
    pub cmdline_paddr: U64,
    pub reserved: U64,
}
const _: () = assert!(core::mem::size_of::<ModlistEntry>() == 32);

/// `struct hvm_memmap_table_entry` (24 bytes); `kind` uses e820 numbering.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct MemmapEntry {
    pub addr: U64,
    pub size: U64,
    pub kind: U32,
    pub reserved: U32,
}
const _: () = assert!(core::mem::size_of::<MemmapEntry>() == 24);
