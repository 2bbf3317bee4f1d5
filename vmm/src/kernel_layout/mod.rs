//! What QEMU puts in fw_cfg for `-kernel`/`-initrd`/`-append` on x86 (hw/i386/x86-common.c
//! x86_load_linux, formerly x86.c, and hw/i386/multiboot.c), so that firmware written for QEMU
//! (qboot, SeaBIOS with its option ROMs, minnow.rom) boots a kernel the same way under our VMM.
//!
//! [`layout`] recognises the kernel as QEMU does, in QEMU's order:
//!
//! 1. "HdrS" at 0x202: a Linux bzImage. SETUP_* is the patched real-mode part (at 0x10000 for
//!    protocol 2.02+), KERNEL_* the protected-mode part (at 0x100000), CMDLINE_* the command line
//!    (at 0x20000), INITRD_* the initrd, as high as the kernel and RAM allow.
//! 2. Otherwise a multiboot 1 header in the first 8 KiB: QEMU builds the whole boot image itself
//!    (kernel, then the module list, command lines and loader name, then the modules, each
//!    page-aligned) in KERNEL_DATA, and the multiboot information structure in the INITRD slot.
//! 3. Otherwise an ELF with a PVH entry note: QEMU copies the PT_LOAD segments into guest RAM
//!    itself, so they come back as [`KernelLayout::segments`] for the VMM to write; fw_cfg gets the
//!    entry, the command line (no address: firmware chooses) and the initrd.
//!
//! One file each: `bzimage.rs`, `multiboot.rs`, `elf.rs` (the ELF reader and PVH).
//!
//! Everything else is refused. Nothing here panics on a malformed image: every offset and size
//! read from a file is bounds-checked, and every guest range is checked against the RAM below
//! 4 GiB (which also bounds what a malformed header can make us allocate).
use minnow_bootproto::fw_cfg::key;
use minnow_bootproto::linux::{loadflags, xloadflags, SetupHeader, HEADER_MAGIC, HEADER_OFFSET};
use minnow_bootproto::multiboot1::{self, header_flags, info_flags, Header, Info, Module};
use zerocopy::{FromBytes, IntoBytes};

mod bzimage;
mod elf;
mod multiboot;
#[cfg(test)]
mod tests;

pub use elf::{elf_image, ElfImage};

/// Linux: real-mode part, command line and protected-mode part, for protocol 2.02 and later.
pub const LINUX_REAL_ADDR: u64 = 0x1_0000;
pub const LINUX_CMDLINE_ADDR: u64 = 0x2_0000;
pub const LINUX_PROT_ADDR: u64 = 0x10_0000;
/// QEMU's layout for protocols 2.00 and 2.01 and for zImages: real-mode part and the end of the
/// command line area; the protected-mode part of a zImage goes at 0x10000.
pub const LINUX_OLD_REAL_ADDR: u64 = 0x9_0000;
pub const LINUX_OLD_CMDLINE_END: u64 = 0x9_A000;
pub const LINUX_ZIMAGE_PROT_ADDR: u64 = 0x1_0000;
/// type_of_loader: QEMU's id.
pub const LOADER_TYPE_QEMU: u8 = 0xB0;
/// How much of an ELF kernel QEMU hands over in SETUP_DATA (its header buffer).
pub const PVH_SETUP_SIZE: usize = 8192;
pub use minnow_bootproto::pvh::XEN_ELFNOTE_PHYS32_ENTRY;
/// QEMU's multiboot layout: the memory map area the firmware fills, and the MBI after it.
pub const MULTIBOOT_MMAP_ADDR: u32 = 0x9000;
pub const MULTIBOOT_MBI_ADDR: u32 = 0x9500;
/// QEMU's MBI is 88 bytes: [`Info`] then the APM and VBE fields, left zero.
pub const MULTIBOOT_MBI_SIZE: usize = 88;
/// boot_device in the MBI: BIOS drive 0x80, no partition (QEMU's fixed value).
pub const MULTIBOOT_BOOT_DEVICE: u32 = 0x8000_FFFF;
/// boot_loader_name in the MBI. QEMU says "qemu"; kernels only print it.
pub const MULTIBOOT_LOADER_NAME: &str = "minnow";
/// QEMU refuses ELF kernels with either of these e_flags bits (LOAD_ELF_HEADER_HAS_ADDR).
pub const ELF_REFUSED_FLAGS: u32 = 0x0001_0004;

const PAGE: u64 = 4096;
/// QEMU searches for the multiboot header below 8192 - 48 (its 12-word header must fit).
const MULTIBOOT_SEARCH_END: usize = 8192 - 48;
use minnow_bootproto::elf::{u16_at, EM_386, EM_X86_64, PF_X, PT_LOAD, PT_NOTE};

/// A file handed to the loader: `name` is how the user named it (QEMU puts the kernel's and each
/// multiboot module's in the multiboot command lines), `bytes` its contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            bytes,
        }
    }
}

/// What `-kernel`, `-initrd` and `-append` gave, and the machine's memory.
#[derive(Clone, Debug, Default)]
pub struct KernelInput {
    pub kernel: Blob,
    /// bzImage and PVH take at most one. For multiboot each is a module, and its name is the
    /// module's command line ("path args", as QEMU takes it from `-initrd "path args,path2"`;
    /// see [`multiboot_modules`]).
    pub initrds: Vec<Blob>,
    /// The command line, without the NUL.
    pub cmdline: String,
    /// RAM below 4 GiB, in bytes (microvm: min(RAM, 3 GiB)).
    pub below_4g_mem_size: u64,
    /// Bytes at the top of the low RAM that the initrd must stay below (QEMU's acpi_data_size;
    /// 0 on microvm).
    pub acpi_data_size: u64,
}

/// The kernel formats QEMU's `-kernel` accepts on x86.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// A Linux bzImage (or zImage) with its boot protocol version.
    BzImage { protocol: u16 },
    /// A multiboot 1 kernel, ELF or a.out-kludge.
    Multiboot,
    /// An ELF with a PVH entry note.
    Pvh,
}

/// Bytes the VMM copies into guest RAM before the guest starts (QEMU's ELF ROM blobs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub bytes: Vec<u8>,
}

/// fw_cfg items: (key, data).
pub type Items = Vec<(u16, Vec<u8>)>;

/// The result: fw_cfg items to add, and for PVH the segments to write into guest RAM.
#[derive(Clone, Debug)]
pub struct KernelLayout {
    pub format: KernelFormat,
    pub items: Items,
    pub segments: Vec<Segment>,
}

impl KernelLayout {
    /// The data of item `key`.
    pub fn item(&self, key: u16) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Item `key` as a le32, for the ADDR/SIZE/ENTRY items.
    pub fn item_u32(&self, key: u16) -> Option<u32> {
        Some(u32::from_le_bytes(self.item(key)?.try_into().ok()?))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelLayoutError {
    #[error("{path}: neither a bzImage, an ELF (PVH) nor a multiboot kernel")]
    Unrecognised { path: String },
    #[error("{path}: Linux boot protocol {}.{:02} is older than 2.00, which this loader needs", version >> 8, version & 0xff)]
    ProtocolTooOld { path: String, version: u16 },
    #[error("{path}: setup_sects gives a {setup_size}-byte real-mode part, longer than the {len}-byte file")]
    SetupBeyondImage { path: String, setup_size: u64, len: u64 },
    #[error("{path}: initrd of {size} bytes does not fit below {max:#x}")]
    InitrdTooLarge { path: String, size: u64, max: u64 },
    #[error("{path}: this kernel format takes one initrd, {count} were given")]
    TooManyInitrds { path: String, count: usize },
    #[error("{what} contains a NUL byte at offset {at}")]
    Nul { what: String, at: usize },
    #[error("invalid 'vga=' kernel parameter: {0:?}")]
    InvalidVga(String),
    #[error("{size:#x} bytes of RAM below 4 GiB cannot hold {acpi:#x} bytes of ACPI data and an initrd")]
    BadRamSize { size: u64, acpi: u64 },
    #[error("{path}: malformed ELF: {reason}")]
    BadElf { path: String, reason: String },
    #[error("{path}: ELF e_flags {flags:#x} include {ELF_REFUSED_FLAGS:#x}, which QEMU refuses")]
    ElfFlags { path: String, flags: u32 },
    #[error("{path}: ELF kernel without a PVH entry note (Xen note type 18): cannot boot it")]
    NoPvhNote { path: String },
    #[error(
        "{path}: an x86-64 ELF cannot be loaded as multiboot: give a 32-bit one (or use the a.out kludge)"
    )]
    Multiboot64 { path: String },
    #[error("{path}: multiboot ELF machine {machine} is not i386")]
    MultibootMachine { path: String, machine: u16 },
    #[error("{path}: invalid multiboot header: {reason}")]
    BadMultiboot { path: String, reason: String },
    #[error("{path}: {what} at {addr:#x}..{end:#x} is outside the {ram:#x} bytes of RAM below 4 GiB")]
    OutsideRam {
        path: String,
        what: String,
        addr: u64,
        end: u64,
        ram: u64,
    },
}

type Result<T> = std::result::Result<T, KernelLayoutError>;

/// Lays a kernel out as QEMU's `-kernel` does.
pub fn layout(input: KernelInput) -> Result<KernelLayout> {
    let ram = input.below_4g_mem_size;
    if ram > 1 << 32 || ram <= input.acpi_data_size {
        return Err(KernelLayoutError::BadRamSize {
            size: ram,
            acpi: input.acpi_data_size,
        });
    }
    check_nul("the kernel command line", &input.cmdline)?;
    match detect(&input.kernel.bytes) {
        Detected::BzImage => bzimage::bzimage(input),
        Detected::Multiboot { offset } => multiboot::multiboot(input, offset),
        Detected::Elf => elf::pvh(input),
        Detected::Unknown => Err(KernelLayoutError::Unrecognised {
            path: input.kernel.name,
        }),
    }
}

/// What a `-kernel` image is taken for, in QEMU's order of precedence.
enum Detected {
    BzImage,
    /// A multiboot 1 header at `offset`.
    Multiboot {
        offset: usize,
    },
    /// An ELF without a multiboot header: PVH or nothing.
    Elf,
    Unknown,
}

fn detect(k: &[u8]) -> Detected {
    if k.get(0x202..0x206) == Some(&HEADER_MAGIC.to_le_bytes()[..]) {
        return Detected::BzImage;
    }
    let search = &k[..k.len().min(MULTIBOOT_SEARCH_END + 11)];
    if let Some((offset, _)) = multiboot1::find_header(search) {
        return Detected::Multiboot { offset };
    }
    if k.starts_with(b"\x7fELF") {
        return Detected::Elf;
    }
    Detected::Unknown
}

/// Whether `layout` takes `kernel` for a multiboot kernel: then `-initrd` is a module list, see
/// [`multiboot_modules`].
pub fn is_multiboot(kernel: &[u8]) -> bool {
    matches!(detect(kernel), Detected::Multiboot { .. })
}

/// Splits a QEMU `-initrd` argument into multiboot module command lines: comma-separated, ",,"
/// standing for a comma (QEMU's get_opt_value). Each module's file is its text up to the first
/// space; the whole text is its command line ([`Blob::name`]).
pub fn multiboot_modules(initrd_arg: &str) -> Vec<String> {
    let mut modules = Vec::new();
    let mut current = String::new();
    let mut chars = initrd_arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                current.push(',');
            }
            ',' => modules.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !initrd_arg.is_empty() {
        modules.push(current);
    }
    modules
}

fn check_nul(what: &str, s: &str) -> Result<()> {
    match s.bytes().position(|b| b == 0) {
        Some(at) => Err(KernelLayoutError::Nul {
            what: what.into(),
            at,
        }),
        None => Ok(()),
    }
}

fn le32(v: u64) -> Vec<u8> {
    (v as u32).to_le_bytes().to_vec()
}

/// The command line as fw_cfg_add_string stores it: with its NUL.
fn c_string(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

fn page_align(v: u64) -> u64 {
    v.div_ceil(PAGE) * PAGE
}

/// At most one initrd (bzImage, PVH).
fn single_initrd(input: &mut KernelInput) -> Result<Option<Blob>> {
    match input.initrds.len() {
        0 | 1 => Ok(input.initrds.pop()),
        count => Err(KernelLayoutError::TooManyInitrds {
            path: input.kernel.name.clone(),
            count,
        }),
    }
}

/// Places the initrd below `initrd_max` as QEMU does: refused if `size >= initrd_max`, else at
/// `(initrd_max - size)` rounded down to a page. Returns the items and the address.
fn place_initrd(initrd: Blob, initrd_max: u64) -> Result<(u64, Items)> {
    let size = initrd.bytes.len() as u64;
    if size >= initrd_max {
        return Err(KernelLayoutError::InitrdTooLarge {
            path: initrd.name,
            size,
            max: initrd_max,
        });
    }
    let addr = (initrd_max - size) & !(PAGE - 1);
    let items = vec![
        (key::INITRD_ADDR, le32(addr)),
        (key::INITRD_SIZE, le32(size)),
        (key::INITRD_DATA, initrd.bytes),
    ];
    Ok((addr, items))
}
