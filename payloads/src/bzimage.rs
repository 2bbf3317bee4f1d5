//! The payload's own bzImage: its setup header (which xtask writes into the image) and the values
//! the payload checks in the boot_params it is handed. One definition for both sides.
use minnow_bootproto::linux::{self as proto, loadflags, xloadflags, SetupHeader};

/// Where the protected-mode part is linked and must be loaded (not relocatable).
pub const CODE32_START: u32 = 0x10_0000;
/// The boot protocol version the header declares (2.15).
pub const VERSION: u16 = 0x020F;
/// Longest command line accepted, without its NUL (Linux's default, COMMAND_LINE_SIZE - 1).
pub const CMDLINE_SIZE: u32 = 2047;
/// The initrd may go anywhere below 2 GiB (Linux's own default for initrd_addr_max).
pub const INITRD_ADDR_MAX: u32 = 0x7FFF_FFFF;
pub const KERNEL_ALIGNMENT: u32 = 0x20_0000;
/// Offset of the real-mode setup code: right after the 2.15 header, where the jump at 0x200 leads.
pub const SETUP_CODE_OFFSET: usize = 0x26C;
/// The header's 2-byte jump at 0x200: `jmp short 0x26C` (EB 6A).
pub const JUMP: u16 = u16::from_le_bytes([0xEB, (SETUP_CODE_OFFSET - 0x202) as u8]);
/// Written by the payload's real-mode setup code (bzimage.S) into boot_params.scratch, so the
/// 32-bit entry knows it came from there: "MR16".
pub const SETUP16_MARK: u32 = u32::from_le_bytes(*b"MR16");
/// The boot sector, for whoever boots the image as a disk: `cli; hlt; jmp $-1`.
pub const BOOT_SECTOR_CODE: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

/// The setup header for an image with `setup_sects` 512-byte setup sectors after the boot sector,
/// whose protected-mode part is `pm_file_len` bytes in the file and needs `pm_mem_len` bytes in
/// memory (with .bss and stack). `kernel_64` offers the 64-bit entry (XLF_KERNEL_64); without
/// it, loaders must take the 32-bit one (`bzImage32`).
pub fn setup_header(setup_sects: u8, pm_file_len: u32, pm_mem_len: u32, kernel_64: bool) -> SetupHeader {
    let entry64 = if kernel_64 { xloadflags::KERNEL_64 } else { 0 };
    SetupHeader {
        setup_sects,
        syssize: pm_file_len.div_ceil(16).into(),
        vid_mode: 0xFFFF.into(),
        boot_flag: proto::BOOT_FLAG.into(),
        jump: JUMP.into(),
        header: proto::HEADER_MAGIC.into(),
        version: VERSION.into(),
        loadflags: loadflags::LOADED_HIGH,
        code32_start: CODE32_START.into(),
        initrd_addr_max: INITRD_ADDR_MAX.into(),
        kernel_alignment: KERNEL_ALIGNMENT.into(),
        relocatable_kernel: 0,
        min_alignment: KERNEL_ALIGNMENT.trailing_zeros() as u8,
        xloadflags: (entry64 | xloadflags::CAN_BE_LOADED_ABOVE_4G).into(),
        cmdline_size: CMDLINE_SIZE.into(),
        pref_address: u64::from(CODE32_START).into(),
        init_size: pm_mem_len.next_multiple_of(4096).into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn the_header_parses_as_a_bzimage_with_the_declared_layout() {
        let mut image = vec![0u8; 1024 + 0x3000];
        let hdr = setup_header(1, 0x3000, 0x9000, true);
        image[proto::HEADER_OFFSET..SETUP_CODE_OFFSET].copy_from_slice(hdr.as_bytes());
        let parsed = proto::parse_header(&image, image.len()).unwrap();
        assert_eq!(parsed.setup_size(), 1024);
        assert_eq!(parsed.header_len(), SETUP_CODE_OFFSET - proto::HEADER_OFFSET);
        assert_eq!(&image[0x200..0x202], &[0xEB, 0x6A]);
        assert_eq!(&image[0x1FE..0x200], &[0x55, 0xAA]);
        assert_eq!(parsed.syssize.get(), 0x300);
        assert_eq!(parsed.init_size.get(), 0x9000);
        assert_eq!(parsed.min_alignment, 21);
        assert_eq!(&image[0x202..0x206], b"HdrS");
        assert_eq!(parsed.xloadflags.get(), 3);
        assert_eq!(setup_header(1, 0x3000, 0x9000, false).xloadflags.get(), 2);
    }
}
