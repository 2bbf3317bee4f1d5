//! The Linux x86 boot protocol (Documentation/arch/x86/boot.rst, zero-page.rst).
use crate::e820::E820Entry;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Offset of the setup header in the image and in boot_params.
pub const HEADER_OFFSET: usize = 0x1F1;
/// "HdrS", the `header` field's magic.
pub const HEADER_MAGIC: u32 = 0x5372_6448;
/// The `boot_flag` value.
pub const BOOT_FLAG: u16 = 0xAA55;
/// type_of_loader: QEMU's id, which qboot and SeaBIOS also report.
pub const LOADER_QEMU: u8 = 0xB0;
/// Oldest protocol we load: 2.06 gives `cmdline_size` and a relocatable kernel with `kernel_alignment`.
pub const MIN_VERSION: u16 = 0x0206;
/// The 64-bit entry is this far past the protected-mode code's start (XLF_KERNEL_64).
pub const ENTRY64_OFFSET: u64 = 0x200;
/// Segment selectors the 32- and 64-bit entries expect (`__BOOT_CS`, `__BOOT_DS`).
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;
/// Entries in boot_params' own e820 table.
pub const E820_MAX_ENTRIES: usize = 128;

/// loadflags bits.
pub mod loadflags {
    pub const LOADED_HIGH: u8 = 1 << 0;
    pub const KEEP_SEGMENTS: u8 = 1 << 6;
    pub const CAN_USE_HEAP: u8 = 1 << 7;
}

/// xloadflags bits.
pub mod xloadflags {
    pub const KERNEL_64: u16 = 1 << 0;
    pub const CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
}

/// setup_data types.
pub mod setup_data {
    pub const NONE: u32 = 0;
    pub const E820_EXT: u32 = 1;
    pub const DTB: u32 = 2;
    pub const RNG_SEED: u32 = 9;
}

/// The setup header: 123 bytes from 0x1F1 (protocol 2.15).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SetupHeader {
    pub setup_sects: u8,
    pub root_flags: U16,
    pub syssize: U32,
    pub ram_size: U16,
    pub vid_mode: U16,
    pub root_dev: U16,
    pub boot_flag: U16,
    pub jump: U16,
    pub header: U32,
    pub version: U16,
    pub realmode_swtch: U32,
    pub start_sys_seg: U16,
    pub kernel_version: U16,
    pub type_of_loader: u8,
    pub loadflags: u8,
    pub setup_move_size: U16,
    pub code32_start: U32,
    pub ramdisk_image: U32,
    pub ramdisk_size: U32,
    pub bootsect_kludge: U32,
    pub heap_end_ptr: U16,
    pub ext_loader_ver: u8,
    pub ext_loader_type: u8,
    pub cmd_line_ptr: U32,
    pub initrd_addr_max: U32,
    pub kernel_alignment: U32,
    pub relocatable_kernel: u8,
    pub min_alignment: u8,
    pub xloadflags: U16,
    pub cmdline_size: U32,
    pub hardware_subarch: U32,
    pub hardware_subarch_data: U64,
    pub payload_offset: U32,
    pub payload_length: U32,
    pub setup_data: U64,
    pub pref_address: U64,
    pub init_size: U32,
    pub handover_offset: U32,
    pub kernel_info_offset: U32,
}
const _: () = assert!(core::mem::size_of::<SetupHeader>() == 0x26C - HEADER_OFFSET);

impl SetupHeader {
    /// Size of the real-mode part of the image: (setup_sects + 1) sectors, 0 meaning 4.
    pub fn setup_size(&self) -> usize {
        let sects = if self.setup_sects == 0 {
            4
        } else {
            usize::from(self.setup_sects)
        };
        (sects + 1) * 512
    }
    /// Number of header bytes a loader copies: up to 0x202 + the jump's displacement byte.
    pub fn header_len(&self) -> usize {
        let end = 0x202 + usize::from(self.jump.get().to_le_bytes()[1]);
        end.clamp(0x202, 0x26C) - HEADER_OFFSET
    }

    /// Where a kernel that is not relocatable must be loaded: `pref_address` from protocol 2.10,
    /// 1 MiB (the protected-mode code's default `code32_start`) before.
    pub fn load_address(&self) -> u64 {
        match self.pref_address.get() {
            0 => 0x10_0000,
            pref => pref,
        }
    }

    /// Zeroes every field the kernel's protocol version does not define (boot.rst gives the
    /// version each field appeared in), so that bytes an older kernel keeps there (code, or
    /// another header's data) are never read as `init_size`, `pref_address`, `xloadflags`...
    fn clear_fields_newer_than(&mut self, version: u16) {
        if version < 0x0207 {
            self.hardware_subarch = 0.into();
            self.hardware_subarch_data = 0.into();
        }
        if version < 0x0208 {
            self.payload_offset = 0.into();
            self.payload_length = 0.into();
        }
        if version < 0x0209 {
            self.setup_data = 0.into();
        }
        if version < 0x020A {
            self.min_alignment = 0;
            self.pref_address = 0.into();
            self.init_size = 0.into();
        }
        if version < 0x020B {
            self.handover_offset = 0.into();
        }
        if version < 0x020C {
            self.xloadflags = 0.into();
        }
        if version < 0x020F {
            self.kernel_info_offset = 0.into();
        }
    }
}

/// The zero page handed to the 32- and 64-bit entries: exactly 4 KiB.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct BootParams {
    pub screen_info: [u8; 0x40],
    pub apm_bios_info: [u8; 0x14],
    pub _pad2: [u8; 4],
    pub tboot_addr: U64,
    pub ist_info: [u8; 0x10],
    pub acpi_rsdp_addr: U64,
    pub _pad3: [u8; 8],
    pub hd0_info: [u8; 0x10],
    pub hd1_info: [u8; 0x10],
    pub sys_desc_table: [u8; 0x10],
    pub olpc_ofw_header: [u8; 0x10],
    pub ext_ramdisk_image: U32,
    pub ext_ramdisk_size: U32,
    pub ext_cmd_line_ptr: U32,
    pub _pad4: [u8; 0x70],
    pub cc_blob_address: U32,
    pub edid_info: [u8; 0x80],
    pub efi_info: [u8; 0x20],
    pub alt_mem_k: U32,
    pub scratch: U32,
    pub e820_entries: u8,
    pub eddbuf_entries: u8,
    pub edd_mbr_sig_buf_entries: u8,
    pub kbd_status: u8,
    pub secure_boot: u8,
    pub _pad5: [u8; 2],
    pub sentinel: u8,
    pub _pad6: u8,
    pub hdr: SetupHeader,
    pub _pad7: [u8; 0x290 - 0x26C],
    pub edd_mbr_sig_buffer: [u8; 0x40],
    pub e820_table: [E820Entry; E820_MAX_ENTRIES],
    pub _pad8: [u8; 0x30],
    pub eddbuf: [u8; 0x1EC],
    pub _pad9: [u8; 0x114],
}
const _: () = assert!(core::mem::size_of::<BootParams>() == 4096);
const _: () = assert!(core::mem::offset_of!(BootParams, acpi_rsdp_addr) == 0x70);
const _: () = assert!(core::mem::offset_of!(BootParams, ext_ramdisk_image) == 0xC0);
const _: () = assert!(core::mem::offset_of!(BootParams, cc_blob_address) == 0x13C);
const _: () = assert!(core::mem::offset_of!(BootParams, e820_entries) == 0x1E8);
const _: () = assert!(core::mem::offset_of!(BootParams, sentinel) == 0x1EF);
const _: () = assert!(core::mem::offset_of!(BootParams, hdr) == HEADER_OFFSET);
const _: () = assert!(core::mem::offset_of!(BootParams, e820_table) == 0x2D0);
const _: () = assert!(core::mem::offset_of!(BootParams, eddbuf) == 0xD00);

/// Header of one node of the setup_data chain; `len` bytes of data follow.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SetupData {
    pub next: U64,
    pub kind: U32,
    pub len: U32,
}

/// Why an image is not a bzImage we can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than its own setup header.
    Truncated,
    /// No "HdrS" at 0x202.
    NoMagic,
    /// Protocol older than [`MIN_VERSION`].
    TooOld(u16),
    /// setup_sects says the real-mode part is longer than the image.
    SetupBeyondImage,
    /// `code32_start` is 0: the image has no protected-mode entry, only its real-mode setup code,
    /// which runs on BIOS services (iPXE's ipxe.lkrn, protocol 2.07). Linux always sets it.
    NoProtectedModeEntry(u16),
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "image too short for a Linux setup header"),
            Self::NoMagic => write!(f, "no \"HdrS\" magic at 0x202"),
            Self::TooOld(v) => write!(f, "boot protocol {}.{:02} is older than 2.06", v >> 8, v & 0xff),
            Self::SetupBeyondImage => write!(f, "setup_sects points past the end of the image"),
            Self::NoProtectedModeEntry(v) => write!(
                f,
                "a boot protocol {}.{:02} image with no 32-bit entry (code32_start is 0): it starts only \
                 through its real-mode setup code, on BIOS services, which Minnow does not provide \
                 (boot it with SeaBIOS)",
                v >> 8,
                v & 0xff
            ),
        }
    }
}

/// Reads and checks the setup header of a bzImage whose first bytes are `image`.
/// `image_len` is the whole image's length (the slice may be only its start).
pub fn parse_header(image: &[u8], image_len: usize) -> Result<SetupHeader, HeaderError> {
    let bytes = image.get(HEADER_OFFSET..0x26C).ok_or(HeaderError::Truncated)?;
    let hdr = SetupHeader::read_from_bytes(bytes).map_err(|_| HeaderError::Truncated)?;
    if hdr.header.get() != HEADER_MAGIC {
        return Err(HeaderError::NoMagic);
    }
    if hdr.version.get() < MIN_VERSION {
        return Err(HeaderError::TooOld(hdr.version.get()));
    }
    if hdr.setup_size() >= image_len {
        return Err(HeaderError::SetupBeyondImage);
    }
    if hdr.code32_start.get() == 0 {
        return Err(HeaderError::NoProtectedModeEntry(hdr.version.get()));
    }
    let mut hdr = hdr;
    hdr.clear_fields_newer_than(hdr.version.get());
    Ok(hdr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(version: u16, setup_sects: u8, len: usize) -> [u8; 0x1000] {
        let mut img = [0u8; 0x1000];
        img[0x1F1] = setup_sects;
        img[0x201] = 0x6A; // jump displacement: header ends at 0x26C
        img[0x202..0x206].copy_from_slice(&HEADER_MAGIC.to_le_bytes());
        img[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        img[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
        let _ = len;
        img
    }

    #[test]
    fn accepts_a_modern_header_and_sizes_its_setup() {
        let hdr = parse_header(&image(0x020F, 0, 0x1000), 0x10_0000).unwrap();
        assert_eq!(hdr.setup_size(), 5 * 512);
        assert_eq!(hdr.header_len(), 0x26C - 0x1F1);
    }

    /// A 2.07 kernel (iPXE's ipxe.lkrn) ends its header long before `init_size`: what lies
    /// there is not read as header fields.
    #[test]
    fn fields_newer_than_the_protocol_read_as_zero() {
        let mut img = image(0x0207, 0, 0);
        img[0x250..0x26C].fill(0xA5); // setup_data .. kernel_info_offset: code, in an old kernel
        img[0x236..0x238].fill(0xA5); // xloadflags (2.12)
        let hdr = parse_header(&img, 0x10_0000).unwrap();
        assert_eq!(hdr.init_size.get(), 0);
        assert_eq!(hdr.pref_address.get(), 0);
        assert_eq!(hdr.load_address(), 0x10_0000);
        assert_eq!(hdr.xloadflags.get(), 0);
        assert_eq!(hdr.setup_data.get(), 0);
        assert_eq!(hdr.handover_offset.get(), 0);
        let mut new = image(0x020F, 0, 0);
        new[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
        new[0x260..0x264].copy_from_slice(&0x80_0000u32.to_le_bytes());
        let hdr = parse_header(&new, 0x10_0000).unwrap();
        assert_eq!((hdr.load_address(), hdr.init_size.get()), (0x100_0000, 0x80_0000));
    }

    #[test]
    fn rejects_bad_headers_with_the_reason() {
        let mut img = image(0x020F, 0, 0);
        img[0x202] = b'X';
        assert_eq!(parse_header(&img, 0x10_0000).unwrap_err(), HeaderError::NoMagic);
        assert_eq!(
            parse_header(&image(0x0202, 0, 0), 0x10_0000).unwrap_err(),
            HeaderError::TooOld(0x0202)
        );
        assert_eq!(
            parse_header(&image(0x020F, 0, 0)[..0x200], 0x10_0000).unwrap_err(),
            HeaderError::Truncated
        );
        assert_eq!(
            parse_header(&image(0x020F, 200, 0), 0x1000).unwrap_err(),
            HeaderError::SetupBeyondImage
        );
        let mut ipxe = image(0x0207, 0, 0);
        ipxe[0x214..0x218].fill(0);
        assert_eq!(
            parse_header(&ipxe, 0x10_0000).unwrap_err(),
            HeaderError::NoProtectedModeEntry(0x0207)
        );
    }
}
