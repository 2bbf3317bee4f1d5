//! Multiboot 1 (GNU Multiboot Specification 0.6.96).
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Header magic, searched 4-byte aligned in the first [`SEARCH_LEN`] bytes.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
pub const SEARCH_LEN: usize = 8192;
/// EAX at entry.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// Header flags.
pub mod header_flags {
    pub const PAGE_ALIGN: u32 = 1 << 0;
    pub const MEMORY_INFO: u32 = 1 << 1;
    pub const VIDEO_MODE: u32 = 1 << 2;
    pub const AOUT_KLUDGE: u32 = 1 << 16;
}

/// MBI flags.
pub mod info_flags {
    pub const MEMORY: u32 = 1 << 0;
    pub const BOOT_DEVICE: u32 = 1 << 1;
    pub const CMDLINE: u32 = 1 << 2;
    pub const MODS: u32 = 1 << 3;
    pub const MMAP: u32 = 1 << 6;
    pub const LOADER_NAME: u32 = 1 << 9;
}

/// The header (through the a.out address fields).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Header {
    pub magic: U32,
    pub flags: U32,
    pub checksum: U32,
    pub header_addr: U32,
    pub load_addr: U32,
    pub load_end_addr: U32,
    pub bss_end_addr: U32,
    pub entry_addr: U32,
}

impl Header {
    pub fn checksum_ok(&self) -> bool {
        self.magic
            .get()
            .wrapping_add(self.flags.get())
            .wrapping_add(self.checksum.get())
            == 0
    }
}

/// The multiboot information structure, through `boot_loader_name` (72 bytes; QEMU's is 88 with
/// the APM and VBE fields, which we never set).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Info {
    pub flags: U32,
    pub mem_lower: U32,
    pub mem_upper: U32,
    pub boot_device: U32,
    pub cmdline: U32,
    pub mods_count: U32,
    pub mods_addr: U32,
    pub syms: [U32; 4],
    pub mmap_length: U32,
    pub mmap_addr: U32,
    pub drives_length: U32,
    pub drives_addr: U32,
    pub config_table: U32,
    pub boot_loader_name: U32,
}
const _: () = assert!(core::mem::size_of::<Info>() == 68);
const _: () = assert!(core::mem::offset_of!(Info, mmap_length) == 44);
const _: () = assert!(core::mem::offset_of!(Info, boot_loader_name) == 64);

/// A module entry (16 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Module {
    pub mod_start: U32,
    pub mod_end: U32,
    pub string: U32,
    pub reserved: U32,
}

/// A memory map entry: `size` (of the rest: 20) then an e820 entry (24 bytes in all).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct MmapEntry {
    pub size: U32,
    pub base_addr: U64,
    pub length: U64,
    pub kind: U32,
}
const _: () = assert!(core::mem::size_of::<MmapEntry>() == 24);

/// Finds a header with a valid checksum: its offset in `image` and the header.
pub fn find_header(image: &[u8]) -> Option<(usize, Header)> {
    let limit = image.len().min(SEARCH_LEN);
    (0..limit.saturating_sub(11)).step_by(4).find_map(|off| {
        let hdr = Header::read_from_prefix(&image[off..])
            .map(|(h, _)| h)
            .ok()
            .or_else(|| {
                // Fewer than 32 bytes left: the a.out fields are absent.
                let mut buf = [0u8; 32];
                let n = (image.len() - off).min(32);
                buf[..n].copy_from_slice(&image[off..off + n]);
                Header::read_from_bytes(&buf).ok()
            })?;
        (hdr.magic.get() == HEADER_MAGIC && hdr.checksum_ok()).then_some((off, hdr))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_aligned_header_with_a_good_checksum() {
        let mut img = [0u8; 64];
        let flags = header_flags::MEMORY_INFO;
        img[8..12].copy_from_slice(&HEADER_MAGIC.to_le_bytes());
        img[12..16].copy_from_slice(&flags.to_le_bytes());
        img[16..20].copy_from_slice(&(0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags)).to_le_bytes());
        let (off, hdr) = find_header(&img).unwrap();
        assert_eq!((off, hdr.flags.get()), (8, flags));
        img[16] ^= 1;
        assert!(find_header(&img).is_none());
        assert!(find_header(&img[..5]).is_none());
    }
}
