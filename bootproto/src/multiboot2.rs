//! Multiboot 2 (GNU Multiboot2 Specification 2.0). QEMU's `-kernel` cannot pass these images;
//! Minnow's firmware boots them from `opt/org.minnow/kernel`.
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Header magic, searched 8-byte aligned in the first [`SEARCH_LEN`] bytes.
pub const HEADER_MAGIC: u32 = 0xE852_50D6;
pub const SEARCH_LEN: usize = 32768;
/// EAX at entry.
pub const BOOTLOADER_MAGIC: u32 = 0x36D7_6289;
/// `architecture` for 32-bit protected-mode i386.
pub const ARCH_I386: u32 = 0;

/// Header tag types.
pub mod header_tag {
    pub const END: u16 = 0;
    pub const INFORMATION_REQUEST: u16 = 1;
    pub const ADDRESS: u16 = 2;
    pub const ENTRY_ADDRESS: u16 = 3;
    pub const CONSOLE_FLAGS: u16 = 4;
    pub const FRAMEBUFFER: u16 = 5;
    pub const MODULE_ALIGN: u16 = 6;
    pub const RELOCATABLE: u16 = 10;
    /// Tag flag: the loader may ignore the tag.
    pub const OPTIONAL: u16 = 1;
}

/// Boot information tag types.
pub mod info_tag {
    pub const END: u32 = 0;
    pub const CMDLINE: u32 = 1;
    pub const LOADER_NAME: u32 = 2;
    pub const MODULE: u32 = 3;
    pub const BASIC_MEMINFO: u32 = 4;
    pub const MMAP: u32 = 6;
    pub const ACPI_OLD: u32 = 14;
    pub const ACPI_NEW: u32 = 15;
}

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Header {
    pub magic: U32,
    pub architecture: U32,
    pub header_length: U32,
    pub checksum: U32,
}

impl Header {
    pub fn checksum_ok(&self) -> bool {
        self.magic
            .get()
            .wrapping_add(self.architecture.get())
            .wrapping_add(self.header_length.get())
            .wrapping_add(self.checksum.get())
            == 0
    }
}

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct HeaderTag {
    pub kind: U16,
    pub flags: U16,
    pub size: U32,
}

/// Address tag body (after the [`HeaderTag`]).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct AddressTag {
    pub header_addr: U32,
    pub load_addr: U32,
    pub load_end_addr: U32,
    pub bss_end_addr: U32,
}

/// Boot information: fixed part.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct InfoHeader {
    pub total_size: U32,
    pub reserved: U32,
}

/// Boot information tag header.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct InfoTag {
    pub kind: U32,
    pub size: U32,
}

/// Memory map tag: after [`InfoTag`] come `entry_size` and `entry_version`, then the entries.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct MmapEntry {
    pub base_addr: U64,
    pub length: U64,
    pub kind: U32,
    pub reserved: U32,
}
const _: () = assert!(core::mem::size_of::<MmapEntry>() == 24);

/// Finds a header with a valid checksum: its offset and the header. The tags follow it.
pub fn find_header(image: &[u8]) -> Option<(usize, Header)> {
    let limit = image.len().min(SEARCH_LEN);
    (0..limit.saturating_sub(15)).step_by(8).find_map(|off| {
        let (hdr, _) = Header::read_from_prefix(&image[off..]).ok()?;
        (hdr.magic.get() == HEADER_MAGIC && hdr.checksum_ok()).then_some((off, hdr))
    })
}
