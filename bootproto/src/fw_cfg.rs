//! QEMU's firmware configuration interface (docs/specs/fw_cfg.rst, hw/nvram/fw_cfg.c).
use zerocopy::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// x86 I/O port of the 16-bit selector register (little-endian).
pub const PORT_SELECTOR: u16 = 0x510;
/// x86 I/O port of the 8-bit data register.
pub const PORT_DATA: u16 = 0x511;
/// x86 I/O port of the high half of the big-endian 64-bit DMA address register.
pub const PORT_DMA_HIGH: u16 = 0x514;
/// x86 I/O port of the low half; writing it starts the transfer.
pub const PORT_DMA_LOW: u16 = 0x518;
/// Number of I/O ports the device decodes (0x510..0x51C) when DMA is offered.
pub const PORT_RANGE_DMA: u16 = 0x0C;

/// What item 0 (SIGNATURE) holds.
pub const SIGNATURE: [u8; 4] = *b"QEMU";
/// What a 64-bit read of the DMA register returns ("QEMU CFG", big-endian).
pub const DMA_SIGNATURE: u64 = 0x5145_4d55_2043_4647;
/// What an x86 32-bit `in` from [`PORT_DMA_HIGH`] returns: the bytes "QEMU" of the signature.
pub const DMA_SIGNATURE_HIGH_PORT: u32 = u32::from_le_bytes(*b"QEMU");

/// Bits of the ID item.
pub const ID_TRADITIONAL: u32 = 1 << 0;
pub const ID_DMA: u32 = 1 << 1;

/// Well-known selector keys.
pub mod key {
    pub const SIGNATURE: u16 = 0x00;
    pub const ID: u16 = 0x01;
    pub const UUID: u16 = 0x02;
    pub const RAM_SIZE: u16 = 0x03;
    pub const NOGRAPHIC: u16 = 0x04;
    pub const NB_CPUS: u16 = 0x05;
    pub const MACHINE_ID: u16 = 0x06;
    pub const KERNEL_ADDR: u16 = 0x07;
    pub const KERNEL_SIZE: u16 = 0x08;
    pub const KERNEL_CMDLINE: u16 = 0x09;
    pub const INITRD_ADDR: u16 = 0x0a;
    pub const INITRD_SIZE: u16 = 0x0b;
    pub const BOOT_DEVICE: u16 = 0x0c;
    pub const NUMA: u16 = 0x0d;
    pub const BOOT_MENU: u16 = 0x0e;
    pub const MAX_CPUS: u16 = 0x0f;
    pub const KERNEL_ENTRY: u16 = 0x10;
    pub const KERNEL_DATA: u16 = 0x11;
    pub const INITRD_DATA: u16 = 0x12;
    pub const CMDLINE_ADDR: u16 = 0x13;
    pub const CMDLINE_SIZE: u16 = 0x14;
    pub const CMDLINE_DATA: u16 = 0x15;
    pub const SETUP_ADDR: u16 = 0x16;
    pub const SETUP_SIZE: u16 = 0x17;
    pub const SETUP_DATA: u16 = 0x18;
    pub const FILE_DIR: u16 = 0x19;
    /// First selector of the file slots.
    pub const FILE_FIRST: u16 = 0x20;
    /// x86-specific: le32, 1 when IRQ0 is routed to IOAPIC pin 2.
    pub const IRQ0_OVERRIDE: u16 = 0x8002;
    /// x86-specific legacy e820 reservation table.
    pub const E820_TABLE: u16 = 0x8003;
    pub const INVALID: u16 = 0xffff;
}

/// Well-known file names.
pub mod file {
    pub const E820: &str = "etc/e820";
    pub const TABLE_LOADER: &str = "etc/table-loader";
    pub const ACPI_TABLES: &str = "etc/acpi/tables";
    pub const ACPI_RSDP: &str = "etc/acpi/rsdp";
    pub const FDT: &str = "etc/fdt";
    /// Minnow's route for raw kernels of any supported format (multiboot2 among them).
    pub const MINNOW_KERNEL: &str = "opt/org.minnow/kernel";
    pub const MINNOW_INITRD: &str = "opt/org.minnow/initrd";
    pub const MINNOW_CMDLINE: &str = "opt/org.minnow/cmdline";
    /// Multiboot modules, in order: `opt/org.minnow/module/0`, `/1`, ... (numbered from 0 with no
    /// gap), each with an optional command line in `opt/org.minnow/module/N/cmdline`.
    pub const MINNOW_MODULE_PREFIX: &str = "opt/org.minnow/module/";
    pub const MINNOW_MODULE_CMDLINE_SUFFIX: &str = "/cmdline";
    /// The port (u16, little-endian) the firmware writes its boot milestones to; absent: none.
    pub const MINNOW_MILESTONES: &str = "opt/org.minnow/milestones";
}

/// DMA control bits.
pub mod dma {
    pub const ERROR: u32 = 1 << 0;
    pub const READ: u32 = 1 << 1;
    pub const SKIP: u32 = 1 << 2;
    pub const SELECT: u32 = 1 << 3;
    pub const WRITE: u32 = 1 << 4;
}

/// The 16-byte DMA descriptor (`FWCfgDmaAccess`), all fields big-endian.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct DmaAccess {
    pub control: U32,
    pub length: U32,
    pub address: U64,
}
const _: () = assert!(core::mem::size_of::<DmaAccess>() == 16);

impl DmaAccess {
    /// A descriptor that first selects `selector`, then applies `op` (one of the [`dma`] bits).
    pub fn select_then(selector: u16, op: u32, length: u32, address: u64) -> Self {
        Self {
            control: ((u32::from(selector) << 16) | dma::SELECT | op).into(),
            length: length.into(),
            address: address.into(),
        }
    }
    /// A descriptor that applies `op` to the current item at its current offset.
    pub fn op(op: u32, length: u32, address: u64) -> Self {
        Self {
            control: op.into(),
            length: length.into(),
            address: address.into(),
        }
    }
}

/// Length of a file name in the directory, NUL terminator included.
pub const FILE_NAME_LEN: usize = 56;

/// One 64-byte entry of the file directory (after its be32 count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FileEntry {
    pub size: U32,
    pub select: U16,
    pub reserved: U16,
    pub name: [u8; FILE_NAME_LEN],
}
const _: () = assert!(core::mem::size_of::<FileEntry>() == 64);

impl FileEntry {
    /// The name up to its NUL terminator (all 56 bytes if unterminated).
    pub fn name_bytes(&self) -> &[u8] {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(FILE_NAME_LEN);
        &self.name[..end]
    }

    /// Whether this entry is the file `name`.
    pub fn is(&self, name: &str) -> bool {
        name_matches(&self.name, name.as_bytes())
    }
}

/// Whether a NUL-padded name field holds exactly `name`.
pub fn name_matches(field: &[u8], name: &[u8]) -> bool {
    field.get(name.len()) == Some(&0) && field.starts_with(name)
}

/// Copies `name` into a NUL-padded directory name field; `None` if it does not fit with its NUL.
pub fn encode_name(name: &str) -> Option<[u8; FILE_NAME_LEN]> {
    let bytes = name.as_bytes();
    if bytes.len() >= FILE_NAME_LEN || bytes.contains(&0) {
        return None;
    }
    let mut out = [0u8; FILE_NAME_LEN];
    out[..bytes.len()].copy_from_slice(bytes);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_descriptor_is_big_endian_with_selector_in_the_high_half() {
        let d = DmaAccess::select_then(key::KERNEL_DATA, dma::READ, 0x1234, 0x10_0000);
        assert_eq!(
            d.as_bytes(),
            &[0x00, 0x11, 0x00, 0x0a, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0x10, 0, 0]
        );
    }

    #[test]
    fn file_names_compare_up_to_the_nul() {
        let e = FileEntry {
            size: 20.into(),
            select: 0x20.into(),
            reserved: 0.into(),
            name: encode_name("etc/e820").unwrap(),
        };
        assert!(e.is("etc/e820"));
        assert!(!e.is("etc/e82"));
        assert!(encode_name(&"x".repeat(56)).is_none());
        assert!(encode_name(&"x".repeat(55)).is_some());
        assert!(
            !name_matches(&[b'x'; FILE_NAME_LEN], &[b'x'; FILE_NAME_LEN]),
            "no room for the NUL"
        );
    }
}
