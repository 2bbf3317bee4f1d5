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
//! Everything else is refused. Nothing here panics on a malformed image: every offset and size
//! read from a file is bounds-checked, and every guest range is checked against the RAM below
//! 4 GiB (which also bounds what a malformed header can make us allocate).
use minnow_bootproto::fw_cfg::key;
use minnow_bootproto::linux::{loadflags, xloadflags, SetupHeader, HEADER_MAGIC, HEADER_OFFSET};
use minnow_bootproto::multiboot1::{self, header_flags, info_flags, Header, Info, Module};
use zerocopy::{FromBytes, IntoBytes};

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
/// Xen ELF note type of the PVH 32-bit entry point (XEN_ELFNOTE_PHYS32_ENTRY).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
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
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;

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
    let k = &input.kernel.bytes;
    if k.get(0x202..0x206) == Some(&HEADER_MAGIC.to_le_bytes()[..]) {
        return bzimage(input);
    }
    let search = &k[..k.len().min(MULTIBOOT_SEARCH_END + 11)];
    if let Some((offset, _)) = multiboot1::find_header(search) {
        return multiboot(input, offset);
    }
    if k.starts_with(b"\x7fELF") {
        return pvh(input);
    }
    Err(KernelLayoutError::Unrecognised {
        path: input.kernel.name,
    })
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

// ---------------------------------------------------------------------------------------------
// Linux bzImage

fn bzimage(mut input: KernelInput) -> Result<KernelLayout> {
    let path = input.kernel.name.clone();
    let initrd = single_initrd(&mut input)?;
    let mut image = std::mem::take(&mut input.kernel.bytes);
    let len = image.len() as u64;
    let protocol = u16_at(&image, 0x206).unwrap_or(0);
    if protocol < 0x200 {
        return Err(KernelLayoutError::ProtocolTooOld {
            path,
            version: protocol,
        });
    }
    // setup_sects == 0 means 4; the size counts the boot sector.
    let setup_sects = match image[HEADER_OFFSET] {
        0 => 4,
        n => u64::from(n),
    };
    let setup_size = (setup_sects + 1) * 512;
    if setup_size > len {
        return Err(KernelLayoutError::SetupBeyondImage {
            path,
            setup_size,
            len,
        });
    }
    // setup_size >= 1024, so the whole setup header (to 0x26C) is in the image.
    let hdr_range = HEADER_OFFSET..HEADER_OFFSET + core::mem::size_of::<SetupHeader>();
    let mut hdr = SetupHeader::read_from_bytes(&image[hdr_range.clone()]).map_err(|_| {
        KernelLayoutError::SetupBeyondImage {
            path: path.clone(),
            setup_size,
            len,
        }
    })?;

    let cmdline_len = input.cmdline.len() as u64;
    // "Align to 16 bytes as a paranoia measure": only the old layouts use it.
    let cmdline_area = (cmdline_len + 16) & !15;
    let loaded_high = hdr.loadflags & loadflags::LOADED_HIGH != 0;
    let (real_addr, cmdline_addr, prot_addr) = if loaded_high && protocol >= 0x202 {
        (LINUX_REAL_ADDR, LINUX_CMDLINE_ADDR, LINUX_PROT_ADDR)
    } else {
        // The command line ends where the old real-mode area does.
        let cmdline_addr =
            LINUX_OLD_CMDLINE_END
                .checked_sub(cmdline_area)
                .ok_or_else(|| KernelLayoutError::OutsideRam {
                    path: path.clone(),
                    what: "command line".into(),
                    addr: 0,
                    end: cmdline_area,
                    ram: LINUX_OLD_CMDLINE_END,
                })?;
        let prot_addr = if loaded_high {
            LINUX_PROT_ADDR
        } else {
            LINUX_ZIMAGE_PROT_ADDR
        };
        (LINUX_OLD_REAL_ADDR, cmdline_addr, prot_addr)
    };

    // Highest address for the initrd.
    let mut initrd_max =
        if protocol >= 0x20c && hdr.xloadflags.get() & xloadflags::CAN_BE_LOADED_ABOVE_4G != 0 {
            // QEMU: the kernel handles an initrd anywhere below 4 GiB then (it has no 64-bit
            // ext_ramdisk_image support).
            u64::from(u32::MAX)
        } else if protocol >= 0x203 {
            u64::from(hdr.initrd_addr_max.get())
        } else {
            0x37ff_ffff
        };
    let top = input.below_4g_mem_size - input.acpi_data_size;
    if initrd_max >= top {
        initrd_max = top - 1;
    }

    let mut items = vec![
        (key::CMDLINE_ADDR, le32(cmdline_addr)),
        (key::CMDLINE_SIZE, le32(cmdline_len + 1)),
        (key::CMDLINE_DATA, c_string(&input.cmdline)),
    ];

    // The header patches, in QEMU's order.
    let mut old_cmdline_magic = None;
    if protocol >= 0x202 {
        hdr.cmd_line_ptr = (cmdline_addr as u32).into();
    } else {
        old_cmdline_magic = Some(cmdline_addr.wrapping_sub(real_addr) as u16);
    }
    if let Some(mode) = vga_mode(&input.cmdline)? {
        hdr.vid_mode = (mode as u16).into();
    }
    hdr.type_of_loader = LOADER_TYPE_QEMU;
    if protocol >= 0x201 {
        hdr.loadflags |= loadflags::CAN_USE_HEAP;
        hdr.heap_end_ptr = (cmdline_addr.wrapping_sub(real_addr + 0x200) as u16).into();
    }
    if let Some(initrd) = initrd {
        let size = initrd.bytes.len() as u32;
        let (addr, initrd_items) = place_initrd(initrd, initrd_max)?;
        items.extend(initrd_items);
        hdr.ramdisk_image = (addr as u32).into();
        hdr.ramdisk_size = size.into();
    }
    // No RNG-seed setup_data: QEMU 7.1 appended one (to the kernel), but QEMU 7.2 does not for
    // microvm (KERNEL_SIZE is the file minus the setup, as `-trace fw_cfg_add_i32` shows), and
    // later versions put setup_data elsewhere. Without `-dtb` nothing goes in setup_data.

    image[hdr_range].copy_from_slice(hdr.as_bytes());
    if let Some(offset) = old_cmdline_magic {
        image[0x20..0x22].copy_from_slice(&0xA33Fu16.to_le_bytes());
        image[0x22..0x24].copy_from_slice(&offset.to_le_bytes());
    }
    let kernel = image.split_off(setup_size as usize);
    let setup = image;
    items.extend([
        (key::KERNEL_ADDR, le32(prot_addr)),
        (key::KERNEL_SIZE, le32(kernel.len() as u64)),
        (key::KERNEL_DATA, kernel),
        (key::SETUP_ADDR, le32(real_addr)),
        (key::SETUP_SIZE, le32(setup_size)),
        (key::SETUP_DATA, setup),
    ]);
    Ok(KernelLayout {
        format: KernelFormat::BzImage { protocol },
        items,
        segments: Vec::new(),
    })
}

/// The `vga=` parameter as QEMU reads it: the first "vga=" anywhere in the command line, then
/// "normal", "ext", "ask" or a number (C syntax: 0x hex, 0 octal, decimal) ending the parameter.
fn vga_mode(cmdline: &str) -> Result<Option<u32>> {
    let Some(at) = cmdline.find("vga=") else {
        return Ok(None);
    };
    let v = &cmdline[at + 4..];
    for (word, mode) in [("normal", 0xffff), ("ext", 0xfffe), ("ask", 0xfffd)] {
        if v.starts_with(word) {
            return Ok(Some(mode));
        }
    }
    let bad = || KernelLayoutError::InvalidVga(v.split(' ').next().unwrap_or("").into());
    let (digits, radix) = if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        (hex, 16)
    } else if v.starts_with('0') {
        (v, 8)
    } else {
        (v, 10)
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    if end == 0 {
        // "0x" without hex digits parses as 0 ending at the 'x', which is not a separator.
        return Err(bad());
    }
    if !matches!(digits[end..].chars().next(), None | Some(' ')) {
        return Err(bad());
    }
    u32::from_str_radix(&digits[..end], radix)
        .map(Some)
        .map_err(|_| bad())
}

// ---------------------------------------------------------------------------------------------
// ELF

/// The parts of an ELF file the loaders need, checked against the file's bounds.
struct Elf {
    machine: u16,
    flags: u32,
    entry: u64,
    phdrs: Vec<Phdr>,
}

#[derive(Clone, Copy, Debug)]
struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

fn get<const N: usize>(d: &[u8], at: u64) -> Option<[u8; N]> {
    let at = usize::try_from(at).ok()?;
    d.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(d: &[u8], at: u64) -> Option<u16> {
    get(d, at).map(u16::from_le_bytes)
}
fn u32_at(d: &[u8], at: u64) -> Option<u32> {
    get(d, at).map(u32::from_le_bytes)
}
fn u64_at(d: &[u8], at: u64) -> Option<u64> {
    get(d, at).map(u64::from_le_bytes)
}

impl Elf {
    fn parse(path: &str, d: &[u8]) -> Result<Self> {
        let bad = |reason: &str| KernelLayoutError::BadElf {
            path: path.into(),
            reason: reason.into(),
        };
        if !d.starts_with(b"\x7fELF") {
            return Err(bad("no ELF magic"));
        }
        let is64 = match d.get(4) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(bad("ELF class is neither 32- nor 64-bit")),
        };
        if d.get(5) != Some(&1) {
            return Err(bad("not little-endian"));
        }
        let truncated = || bad("file too short for its ELF header");
        let machine = u16_at(d, 18).ok_or_else(truncated)?;
        let (entry, phoff, flags, phentsize, phnum) = if is64 {
            (
                u64_at(d, 24).ok_or_else(truncated)?,
                u64_at(d, 32).ok_or_else(truncated)?,
                u32_at(d, 48).ok_or_else(truncated)?,
                u16_at(d, 54).ok_or_else(truncated)?,
                u16_at(d, 56).ok_or_else(truncated)?,
            )
        } else {
            (
                u64::from(u32_at(d, 24).ok_or_else(truncated)?),
                u64::from(u32_at(d, 28).ok_or_else(truncated)?),
                u32_at(d, 36).ok_or_else(truncated)?,
                u16_at(d, 42).ok_or_else(truncated)?,
                u16_at(d, 44).ok_or_else(truncated)?,
            )
        };
        let min_phentsize = if is64 { 56 } else { 32 };
        if phnum > 0 && phentsize < min_phentsize {
            return Err(bad(&format!("program header entries of {phentsize} bytes")));
        }
        let mut phdrs = Vec::with_capacity(phnum.into());
        for i in 0..u64::from(phnum) {
            let at = phoff.checked_add(i * u64::from(phentsize));
            let ph = at.and_then(|p| {
                Some(if is64 {
                    Phdr {
                        kind: u32_at(d, p)?,
                        flags: u32_at(d, p + 4)?,
                        offset: u64_at(d, p + 8)?,
                        vaddr: u64_at(d, p + 16)?,
                        paddr: u64_at(d, p + 24)?,
                        filesz: u64_at(d, p + 32)?,
                        memsz: u64_at(d, p + 40)?,
                        align: u64_at(d, p + 48)?,
                    }
                } else {
                    Phdr {
                        kind: u32_at(d, p)?,
                        offset: u32_at(d, p + 4)?.into(),
                        vaddr: u32_at(d, p + 8)?.into(),
                        paddr: u32_at(d, p + 12)?.into(),
                        filesz: u32_at(d, p + 16)?.into(),
                        memsz: u32_at(d, p + 20)?.into(),
                        flags: u32_at(d, p + 24)?,
                        align: u32_at(d, p + 28)?.into(),
                    }
                })
            });
            phdrs.push(ph.ok_or_else(|| bad(&format!("program header {i} is past the end of the file")))?);
        }
        Ok(Self {
            machine,
            flags,
            entry,
            phdrs,
        })
    }

    /// The PT_LOAD segments, each checked: file data within the file, filesz <= memsz, and the
    /// memory range within `ram` bytes.
    fn loads<'a>(&'a self, path: &str, d: &'a [u8], ram: u64) -> Result<Vec<(Phdr, &'a [u8])>> {
        let mut out = Vec::new();
        for (i, ph) in self.phdrs.iter().enumerate().filter(|(_, p)| p.kind == PT_LOAD) {
            let bad = |reason: String| KernelLayoutError::BadElf {
                path: path.into(),
                reason: format!("segment {i}: {reason}"),
            };
            if ph.filesz > ph.memsz {
                return Err(bad(format!(
                    "file size {:#x} > memory size {:#x}",
                    ph.filesz, ph.memsz
                )));
            }
            let data = usize::try_from(ph.offset)
                .ok()
                .zip(usize::try_from(ph.filesz).ok())
                .and_then(|(o, n)| d.get(o..o.checked_add(n)?))
                .ok_or_else(|| {
                    bad(format!(
                        "data at {:#x}+{:#x} is past the end of the file",
                        ph.offset, ph.filesz
                    ))
                })?;
            // Zero-sized segments count for the kernel's bounds (as in QEMU), so they are checked too.
            let end = ph.paddr.checked_add(ph.memsz);
            if end.is_none_or(|e| e > ram) {
                return Err(KernelLayoutError::OutsideRam {
                    path: path.into(),
                    what: format!("segment {i}"),
                    addr: ph.paddr,
                    end: end.unwrap_or(u64::MAX),
                    ram,
                });
            }
            out.push((*ph, data));
        }
        if out.is_empty() {
            return Err(KernelLayoutError::BadElf {
                path: path.into(),
                reason: "no PT_LOAD segment".into(),
            });
        }
        Ok(out)
    }

    /// The lowest and highest (exclusive) physical address of the PT_LOAD segments, zero-sized
    /// ones included, as QEMU's load_elf computes them.
    fn bounds(loads: &[(Phdr, &[u8])]) -> (u64, u64) {
        loads.iter().fold((u64::MAX, 0), |(lo, hi), (p, _)| {
            (lo.min(p.paddr), hi.max(p.paddr.saturating_add(p.memsz)))
        })
    }

    /// The entry load_elf reports: e_entry, moved from virtual to physical when it falls in an
    /// executable segment whose addresses differ.
    fn physical_entry(&self) -> u64 {
        // The last matching segment wins, as in QEMU's loop.
        self.phdrs
            .iter()
            .rfind(|p| {
                p.kind == PT_LOAD
                    && p.vaddr != p.paddr
                    && p.flags & PF_X != 0
                    && self.entry >= p.vaddr
                    && self.entry - p.vaddr < p.filesz
            })
            .map_or(self.entry, |p| self.entry - p.vaddr + p.paddr)
    }

    /// The PVH entry: the low 32 bits of the first Xen note of type 18 in a PT_NOTE segment.
    /// QEMU matches on the type alone and aligns by the segment's p_align; we also require the
    /// name "Xen" and align by 8 only when p_align says 8, 4 otherwise (a p_align of 0 would
    /// divide by zero in QEMU).
    fn pvh_entry(&self, path: &str, d: &[u8]) -> Result<Option<u32>> {
        for ph in self.phdrs.iter().filter(|p| p.kind == PT_NOTE) {
            let notes = usize::try_from(ph.offset)
                .ok()
                .zip(usize::try_from(ph.filesz).ok())
                .and_then(|(o, n)| d.get(o..o.checked_add(n)?))
                .ok_or_else(|| KernelLayoutError::BadElf {
                    path: path.into(),
                    reason: format!(
                        "notes at {:#x}+{:#x} are past the end of the file",
                        ph.offset, ph.filesz
                    ),
                })?;
            let align = if ph.align == 8 { 8 } else { 4 };
            let mut at = 0u64;
            while let (Some(namesz), Some(descsz), Some(kind)) =
                (u32_at(notes, at), u32_at(notes, at + 4), u32_at(notes, at + 8))
            {
                let name_at = at + 12;
                let desc_at = name_at + u64::from(namesz).next_multiple_of(align);
                let next = desc_at + u64::from(descsz).next_multiple_of(align);
                let name = usize::try_from(name_at)
                    .ok()
                    .and_then(|n| notes.get(n..n.checked_add(namesz as usize)?));
                if kind == XEN_ELFNOTE_PHYS32_ENTRY && name == Some(b"Xen\0") {
                    return match u32_at(notes, desc_at).filter(|_| descsz >= 4) {
                        Some(entry) => Ok(Some(entry)),
                        None => Err(KernelLayoutError::BadElf {
                            path: path.into(),
                            reason: "truncated PVH entry note".into(),
                        }),
                    };
                }
                at = next;
            }
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// PVH

/// For loaders that write an ELF kernel's segments themselves (`-bios none`, see direct_boot.rs):
/// the guest range `[low, high)` its PT_LOAD segments occupy, each checked as [`layout`] checks
/// them (within the file, within the `below_4g_mem_size` bytes of RAM below 4 GiB), and its PVH
/// entry, `None` without the note.
pub fn elf_extent(path: &str, d: &[u8], below_4g_mem_size: u64) -> Result<((u64, u64), Option<u32>)> {
    let elf = Elf::parse(path, d)?;
    let loads = elf.loads(path, d, below_4g_mem_size)?;
    Ok((Elf::bounds(&loads), elf.pvh_entry(path, d)?))
}

fn pvh(mut input: KernelInput) -> Result<KernelLayout> {
    let path = input.kernel.name.clone();
    let initrd = single_initrd(&mut input)?;
    let d = &input.kernel.bytes;
    let elf = Elf::parse(&path, d)?;
    if elf.flags & ELF_REFUSED_FLAGS != 0 {
        return Err(KernelLayoutError::ElfFlags {
            path,
            flags: elf.flags,
        });
    }
    if elf.machine != EM_X86_64 && elf.machine != EM_386 {
        return Err(KernelLayoutError::BadElf {
            path,
            reason: format!("machine {} is neither x86-64 nor i386", elf.machine),
        });
    }
    // QEMU treats an entry of 0 as no note.
    let entry = match elf.pvh_entry(&path, d)? {
        Some(e) if e != 0 => e,
        _ => return Err(KernelLayoutError::NoPvhNote { path }),
    };
    let loads = elf.loads(&path, d, input.below_4g_mem_size)?;
    let (low, high) = Elf::bounds(&loads);
    let segments = loads
        .iter()
        .filter(|(p, _)| p.memsz > 0)
        .map(|(p, data)| {
            let mut bytes = Vec::with_capacity(p.memsz as usize);
            bytes.extend_from_slice(data);
            bytes.resize(p.memsz as usize, 0);
            Segment { addr: p.paddr, bytes }
        })
        .collect();

    // SETUP_DATA is QEMU's 8 KiB header buffer: the file's first 8 KiB, so firmware sees the ELF.
    let mut head = d[..d.len().min(PVH_SETUP_SIZE)].to_vec();
    head.resize(PVH_SETUP_SIZE, 0);
    let mut items = vec![
        (key::KERNEL_ENTRY, entry.to_le_bytes().to_vec()),
        (key::KERNEL_ADDR, le32(low)),
        (key::KERNEL_SIZE, le32(high - low)),
        (key::CMDLINE_SIZE, le32(input.cmdline.len() as u64 + 1)),
        (key::CMDLINE_DATA, c_string(&input.cmdline)),
        (key::SETUP_SIZE, le32(PVH_SETUP_SIZE as u64)),
        (key::SETUP_DATA, head),
    ];
    if let Some(initrd) = initrd {
        let initrd_max = input.below_4g_mem_size - input.acpi_data_size - 1;
        items.extend(place_initrd(initrd, initrd_max)?.1);
    }
    Ok(KernelLayout {
        format: KernelFormat::Pvh,
        items,
        segments,
    })
}

// ---------------------------------------------------------------------------------------------
// Multiboot 1

fn multiboot(input: KernelInput, offset: usize) -> Result<KernelLayout> {
    let path = input.kernel.name.clone();
    let d = &input.kernel.bytes;
    let ram = input.below_4g_mem_size;
    let bad = |reason: &str| KernelLayoutError::BadMultiboot {
        path: path.clone(),
        reason: reason.into(),
    };
    // The a.out fields may run past a short file: QEMU reads them from its zeroed 8 KiB buffer.
    let mut raw = [0u8; core::mem::size_of::<Header>()];
    let avail = &d[offset..d.len().min(offset + raw.len())];
    raw[..avail.len()].copy_from_slice(avail);
    let hdr = Header::read_from_bytes(&raw).map_err(|_| bad("header"))?;
    let flags = hdr.flags.get();
    for m in &input.initrds {
        check_nul("a multiboot module name", &m.name)?;
    }
    check_nul("the kernel file name", &path)?;

    let (load_addr, entry, image) = if flags & header_flags::AOUT_KLUDGE == 0 {
        // QEMU looks at e_machine before anything else.
        if u16_at(d, 18) == Some(EM_X86_64) {
            return Err(KernelLayoutError::Multiboot64 { path: path.clone() });
        }
        if !d.starts_with(b"\x7fELF") {
            return Err(bad(
                "no a.out kludge flag (bit 16), so the kernel must be an ELF, and it is not",
            ));
        }
        let elf = Elf::parse(&path, d)?;
        if elf.machine != EM_386 {
            return Err(KernelLayoutError::MultibootMachine {
                path: path.clone(),
                machine: elf.machine,
            });
        }
        let loads = elf.loads(&path, d, ram)?;
        let (low, high) = Elf::bounds(&loads);
        // QEMU loads the segments as ROM blobs, then copies [low, high) back out of them into
        // KERNEL_DATA: the gaps and the bss are zeros. The firmware copies it all into place.
        let mut image = vec![0u8; (high - low) as usize];
        for (p, data) in &loads {
            let at = (p.paddr - low) as usize;
            image[at..at + data.len()].copy_from_slice(data);
        }
        (low, elf.physical_entry() as u32, image)
    } else {
        let header_addr = hdr.header_addr.get();
        let load_addr = hdr.load_addr.get();
        let load_end_addr = hdr.load_end_addr.get();
        let bss_end_addr = hdr.bss_end_addr.get();
        if header_addr < load_addr {
            return Err(bad(&format!(
                "load_addr {load_addr:#x} is above header_addr {header_addr:#x}"
            )));
        }
        if (header_addr - load_addr) as usize > offset {
            return Err(bad(&format!(
                "header_addr {header_addr:#x} - load_addr {load_addr:#x} is more than the header's offset {offset:#x}"
            )));
        }
        let text_offset = offset - (header_addr - load_addr) as usize;
        let load_size = if load_end_addr != 0 {
            if load_end_addr < load_addr {
                return Err(bad(&format!(
                    "load_end_addr {load_end_addr:#x} is below load_addr {load_addr:#x}"
                )));
            }
            load_end_addr - load_addr
        } else {
            u32::try_from(d.len() - text_offset).map_err(|_| bad("the kernel file is larger than 4 GiB"))?
        };
        if load_size > u32::MAX - load_addr {
            return Err(bad("the kernel does not fit in the 32-bit address space"));
        }
        let kernel_size = if bss_end_addr != 0 {
            if bss_end_addr < load_addr + load_size {
                return Err(bad(&format!(
                    "bss_end_addr {bss_end_addr:#x} is below load_end_addr"
                )));
            }
            bss_end_addr - load_addr
        } else {
            load_size
        };
        let end = u64::from(load_addr) + u64::from(kernel_size);
        if end > ram {
            return Err(KernelLayoutError::OutsideRam {
                path: path.clone(),
                what: "multiboot kernel".into(),
                addr: load_addr.into(),
                end,
                ram,
            });
        }
        let text = d
            .get(text_offset..text_offset + load_size as usize)
            .ok_or_else(|| {
                bad(&format!(
                    "{load_size:#x} bytes from file offset {text_offset:#x} run past the end of the file"
                ))
            })?;
        let mut image = Vec::with_capacity(kernel_size as usize);
        image.extend_from_slice(text);
        image.resize(kernel_size as usize, 0);
        (u64::from(load_addr), hdr.entry_addr.get(), image)
    };

    // After the page-aligned kernel: the module list, the command lines (modules', then the
    // kernel's "path cmdline"), the loader name; page-aligned; then each module, page-aligned.
    // QEMU sizes the command-line area from the raw -initrd string: the names joined by ',',
    // with a comma inside a name doubled.
    let phys = load_addr;
    let modules = &input.initrds;
    let initrd_arg_len = match modules.len() {
        0 => 0,
        n => {
            modules
                .iter()
                .map(|m| m.name.len() + m.name.matches(',').count())
                .sum::<usize>()
                + (n - 1)
                + 1
        }
    };
    let cmdline_len = (path.len() + 1 + input.cmdline.len() + 1 + initrd_arg_len) as u64;
    let mbinfo_off = page_align(image.len() as u64);
    let mods_len = 16 * modules.len() as u64;
    let cmdlines_off = mbinfo_off + mods_len;
    let loader_off = cmdlines_off + cmdline_len;
    let mut size = page_align(loader_off + MULTIBOOT_LOADER_NAME.len() as u64 + 1);
    let check_end = |size: u64| {
        if phys + size > ram {
            Err(KernelLayoutError::OutsideRam {
                path: path.clone(),
                what: "multiboot kernel and modules".into(),
                addr: phys,
                end: phys + size,
                ram,
            })
        } else {
            Ok(())
        }
    };
    check_end(size)?;
    let mut buf = image;
    buf.resize(size as usize, 0);

    let mut cmdline_at = cmdlines_off as usize;
    let mut add_string = |buf: &mut Vec<u8>, s: &str| {
        let at = cmdline_at;
        buf[at..at + s.len()].copy_from_slice(s.as_bytes());
        cmdline_at += s.len() + 1;
        (phys + at as u64) as u32
    };
    for (i, m) in modules.iter().enumerate() {
        let string = add_string(&mut buf, &m.name);
        let start = size;
        size = page_align(start + m.bytes.len() as u64);
        check_end(size)?;
        buf.resize(size as usize, 0);
        buf[start as usize..start as usize + m.bytes.len()].copy_from_slice(&m.bytes);
        let entry = Module {
            mod_start: ((phys + start) as u32).into(),
            mod_end: ((phys + start + m.bytes.len() as u64) as u32).into(),
            string: string.into(),
            reserved: 0.into(),
        };
        let at = mbinfo_off as usize + 16 * i;
        buf[at..at + 16].copy_from_slice(entry.as_bytes());
    }
    let cmdline = add_string(&mut buf, &format!("{} {}", path, input.cmdline));
    let loader_at = loader_off as usize;
    buf[loader_at..loader_at + MULTIBOOT_LOADER_NAME.len()].copy_from_slice(MULTIBOOT_LOADER_NAME.as_bytes());

    let info = Info {
        flags: (info_flags::MEMORY
            | info_flags::BOOT_DEVICE
            | info_flags::CMDLINE
            | info_flags::MODS
            | info_flags::MMAP
            | info_flags::LOADER_NAME)
            .into(),
        boot_device: MULTIBOOT_BOOT_DEVICE.into(),
        cmdline: cmdline.into(),
        mods_count: (modules.len() as u32).into(),
        mods_addr: ((phys + mbinfo_off) as u32).into(),
        mmap_addr: MULTIBOOT_MMAP_ADDR.into(),
        boot_loader_name: ((phys + loader_off) as u32).into(),
        ..Default::default()
    };
    let mut mbi = info.as_bytes().to_vec();
    mbi.resize(MULTIBOOT_MBI_SIZE, 0);

    let items = vec![
        (key::KERNEL_ENTRY, entry.to_le_bytes().to_vec()),
        (key::KERNEL_ADDR, le32(phys)),
        (key::KERNEL_SIZE, le32(size)),
        (key::KERNEL_DATA, buf),
        (key::INITRD_ADDR, le32(MULTIBOOT_MBI_ADDR.into())),
        (key::INITRD_SIZE, le32(MULTIBOOT_MBI_SIZE as u64)),
        (key::INITRD_DATA, mbi),
    ];
    Ok(KernelLayout {
        format: KernelFormat::Multiboot,
        items,
        segments: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MIB: u64 = 1 << 20;

    fn put16(d: &mut [u8], at: usize, v: u16) {
        d[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(d: &mut [u8], at: usize, v: u32) {
        d[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(d: &mut [u8], at: usize, v: u64) {
        d[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn input(kernel: Vec<u8>, initrds: Vec<Blob>, cmdline: &str, ram: u64) -> KernelInput {
        KernelInput {
            kernel: Blob::new("/boot/kernel", kernel),
            initrds,
            cmdline: cmdline.into(),
            below_4g_mem_size: ram,
            acpi_data_size: 0,
        }
    }

    fn initrd(len: usize) -> Vec<Blob> {
        vec![Blob::new(
            "/boot/initrd",
            (0..len).map(|i| (i * 7) as u8).collect(),
        )]
    }

    /// A bzImage: `setup_sects`, protocol `version`, loadflags and xloadflags, `len` bytes whose
    /// contents are a pattern (so the split can be checked).
    fn bzimage(setup_sects: u8, version: u16, loadflags: u8, xloadflags: u16, len: usize) -> Vec<u8> {
        let mut d: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        d[0x1F1] = setup_sects;
        put32(&mut d, 0x202, HEADER_MAGIC);
        put16(&mut d, 0x206, version);
        d[0x210] = 0;
        d[0x211] = loadflags;
        put32(&mut d, 0x218, 0);
        put32(&mut d, 0x21C, 0);
        put16(&mut d, 0x224, 0);
        put32(&mut d, 0x228, 0);
        put32(&mut d, 0x22C, 0x37FF_FFFF);
        put16(&mut d, 0x236, xloadflags);
        d
    }

    #[test]
    fn bzimage_items_and_header_patches() {
        let image = bzimage(
            4,
            0x020F,
            loadflags::LOADED_HIGH,
            xloadflags::KERNEL_64 | xloadflags::CAN_BE_LOADED_ABOVE_4G,
            0x3000,
        );
        let l = layout(input(image.clone(), initrd(0x1234), "console=ttyS0", 512 * MIB)).unwrap();
        assert_eq!(l.format, KernelFormat::BzImage { protocol: 0x020F });
        assert!(l.segments.is_empty());
        let setup_size = 5 * 512;
        assert_eq!(l.item_u32(key::SETUP_ADDR), Some(0x10000));
        assert_eq!(l.item_u32(key::SETUP_SIZE), Some(setup_size as u32));
        assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x3000 - setup_size as u32));
        assert_eq!(l.item(key::KERNEL_DATA), Some(&image[setup_size..]));
        assert_eq!(l.item_u32(key::CMDLINE_ADDR), Some(0x20000));
        assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(14));
        assert_eq!(l.item(key::CMDLINE_DATA), Some(&b"console=ttyS0\0"[..]));
        // Above-4G-capable: initrd_max is the top of RAM - 1, the initrd page-aligned below it.
        let initrd_addr = (0x1FFF_FFFF - 0x1234) & !0xFFF;
        assert_eq!(l.item_u32(key::INITRD_ADDR), Some(initrd_addr));
        assert_eq!(l.item_u32(key::INITRD_SIZE), Some(0x1234));
        assert_eq!(l.item(key::INITRD_DATA).map(<[u8]>::len), Some(0x1234));
        assert_eq!(l.item(key::KERNEL_ENTRY), None);

        let setup = l.item(key::SETUP_DATA).unwrap();
        assert_eq!(setup.len(), setup_size);
        let mut want = image[..setup_size].to_vec();
        want[0x210] = 0xB0;
        want[0x211] = loadflags::LOADED_HIGH | loadflags::CAN_USE_HEAP;
        put32(&mut want, 0x218, initrd_addr);
        put32(&mut want, 0x21C, 0x1234);
        put16(&mut want, 0x224, 0xFE00);
        put32(&mut want, 0x228, 0x20000);
        assert_eq!(setup, &want[..]);
    }

    #[test]
    fn bzimage_initrd_max_follows_the_protocol() {
        // 2.0b: initrd_addr_max from the header, within 2 GiB of RAM.
        let image = bzimage(1, 0x020B, loadflags::LOADED_HIGH, 0, 0x2000);
        let l = layout(input(image.clone(), initrd(0x1000), "", 2048 * MIB)).unwrap();
        assert_eq!(l.item_u32(key::SETUP_SIZE), Some(1024));
        assert_eq!(
            l.item_u32(key::INITRD_ADDR),
            Some((0x37FF_FFFF - 0x1000) & !0xFFF)
        );
        assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(1));
        assert_eq!(l.item(key::CMDLINE_DATA), Some(&b"\0"[..]));
        // The same kernel with XLF_CAN_BE_LOADED_ABOVE_4G but protocol 2.0b: still the header's.
        let mut above = image.clone();
        put16(&mut above, 0x236, xloadflags::CAN_BE_LOADED_ABOVE_4G);
        let l = layout(input(above, initrd(0x1000), "", 2048 * MIB)).unwrap();
        assert_eq!(
            l.item_u32(key::INITRD_ADDR),
            Some((0x37FF_FFFF - 0x1000) & !0xFFF)
        );
        // Small RAM and ACPI data clip it.
        let mut i = input(image.clone(), initrd(0x1000), "", 256 * MIB);
        i.acpi_data_size = 0x2_0000;
        let l = layout(i).unwrap();
        assert_eq!(
            l.item_u32(key::INITRD_ADDR),
            Some((0x0FFE_0000 - 1 - 0x1000) & !0xFFF)
        );
        // 2.02: 0x37ffffff.
        let mut old = image;
        put16(&mut old, 0x206, 0x0202);
        let l = layout(input(old, initrd(0x1000), "", 2048 * MIB)).unwrap();
        assert_eq!(
            l.item_u32(key::INITRD_ADDR),
            Some((0x37FF_FFFF - 0x1000) & !0xFFF)
        );
    }

    #[test]
    fn bzimage_initrd_too_large() {
        let image = bzimage(
            4,
            0x020F,
            loadflags::LOADED_HIGH,
            xloadflags::CAN_BE_LOADED_ABOVE_4G,
            0x3000,
        );
        let err = layout(input(image, initrd(2 * MIB as usize), "", 2 * MIB)).unwrap_err();
        assert_eq!(
            err,
            KernelLayoutError::InitrdTooLarge {
                path: "/boot/initrd".into(),
                size: 2 * MIB,
                max: 2 * MIB - 1
            }
        );
        assert_eq!(
            err.to_string(),
            "/boot/initrd: initrd of 2097152 bytes does not fit below 0x1fffff"
        );
    }

    #[test]
    fn old_protocols_and_zimage() {
        // 2.01, loaded high: old real-mode area, the command line below 0x9a000, 0x20 magic.
        let image = bzimage(4, 0x0201, loadflags::LOADED_HIGH, 0, 0x3000);
        let l = layout(input(image, vec![], "root=/dev/vda", 512 * MIB)).unwrap();
        let cmdline_addr = 0x9A000 - 0x10; // (13 + 16) & !15
        assert_eq!(l.item_u32(key::SETUP_ADDR), Some(0x90000));
        assert_eq!(l.item_u32(key::CMDLINE_ADDR), Some(cmdline_addr));
        assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
        let setup = l.item(key::SETUP_DATA).unwrap();
        assert_eq!(&setup[0x20..0x24], &[0x3F, 0xA3, 0xF0, 0x9F]);
        assert_eq!(&setup[0x228..0x22C], &[0; 4], "no cmd_line_ptr before 2.02");
        assert_eq!(&setup[0x224..0x226], &(cmdline_addr as u16 - 0x200).to_le_bytes());
        assert_eq!(setup[0x211], loadflags::LOADED_HIGH | loadflags::CAN_USE_HEAP);
        // 2.00 zImage: protected-mode part at 0x10000, no heap.
        let image = bzimage(4, 0x0200, 0, 0, 0x3000);
        let l = layout(input(image, vec![], "", 512 * MIB)).unwrap();
        assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x10000));
        let setup = l.item(key::SETUP_DATA).unwrap();
        assert_eq!((setup[0x210], setup[0x211]), (0xB0, 0));
        // Before 2.00: refused.
        let image = bzimage(4, 0x01FF, 0, 0, 0x3000);
        let err = layout(input(image, vec![], "", 512 * MIB)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/boot/kernel: Linux boot protocol 1.255 is older than 2.00, which this loader needs"
        );
    }

    #[test]
    fn vga_parameter() {
        let image = bzimage(4, 0x020F, loadflags::LOADED_HIGH, 0, 0x3000);
        let mode = |cmdline: &str| {
            layout(input(image.clone(), vec![], cmdline, 512 * MIB)).map(|l| {
                u16::from_le_bytes(l.item(key::SETUP_DATA).unwrap()[0x1FA..0x1FC].try_into().unwrap())
            })
        };
        let untouched = u16::from_le_bytes([image[0x1FA], image[0x1FB]]);
        assert_eq!(mode("quiet"), Ok(untouched));
        assert_eq!(mode("vga=0x317 quiet"), Ok(0x317));
        assert_eq!(mode("vga=791"), Ok(791));
        assert_eq!(mode("vga=010"), Ok(8));
        assert_eq!(mode("vga=ask"), Ok(0xFFFD));
        assert_eq!(mode("a vga=normal"), Ok(0xFFFF));
        assert_eq!(mode("vga=ext"), Ok(0xFFFE));
        assert_eq!(mode("vga=foo"), Err(KernelLayoutError::InvalidVga("foo".into())));
        assert_eq!(mode("vga=12x"), Err(KernelLayoutError::InvalidVga("12x".into())));
        assert!(mode("vga=0x").is_err());
        assert!(mode("vga=99999999999").is_err());
    }

    #[test]
    fn bzimage_errors() {
        // setup_sects past the end of the file.
        let image = bzimage(20, 0x020F, loadflags::LOADED_HIGH, 0, 0x1000);
        assert_eq!(
            layout(input(image, vec![], "", 512 * MIB)).unwrap_err(),
            KernelLayoutError::SetupBeyondImage {
                path: "/boot/kernel".into(),
                setup_size: 21 * 512,
                len: 0x1000
            }
        );
        let image = bzimage(4, 0x020F, loadflags::LOADED_HIGH, 0, 0x3000);
        assert_eq!(
            layout(input(
                image.clone(),
                [initrd(1), initrd(1)].concat(),
                "",
                512 * MIB
            ))
            .unwrap_err(),
            KernelLayoutError::TooManyInitrds {
                path: "/boot/kernel".into(),
                count: 2
            }
        );
        assert_eq!(
            layout(input(image.clone(), vec![], "a\0b", 512 * MIB))
                .unwrap_err()
                .to_string(),
            "the kernel command line contains a NUL byte at offset 1"
        );
        assert!(matches!(
            layout(input(image, vec![], "", 5 << 30)),
            Err(KernelLayoutError::BadRamSize { .. })
        ));
    }

    #[test]
    fn unrecognised_kernels() {
        for image in [
            vec![],
            vec![0u8; 100],
            vec![0xAB; 0x10000],
            b"#!/bin/sh\necho hi\n".to_vec(),
        ] {
            let err = layout(input(image, vec![], "", 512 * MIB)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "/boot/kernel: neither a bzImage, an ELF (PVH) nor a multiboot kernel"
            );
        }
    }

    // --- ELF ---------------------------------------------------------------------------------

    /// The parser's own program-header type describes the headers the tests write.
    type Ph = Phdr;

    fn elf(is64: bool, machine: u16, e_flags: u32, entry: u64, phs: &[Ph], len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[..4].copy_from_slice(b"\x7fELF");
        d[4] = if is64 { 2 } else { 1 };
        d[5] = 1;
        d[6] = 1;
        put16(&mut d, 16, 2);
        put16(&mut d, 18, machine);
        put32(&mut d, 20, 1);
        let (phoff, entsize) = if is64 { (64, 56) } else { (52, 32) };
        if is64 {
            put64(&mut d, 24, entry);
            put64(&mut d, 32, phoff as u64);
            put32(&mut d, 48, e_flags);
            put16(&mut d, 52, 64);
            put16(&mut d, 54, entsize as u16);
            put16(&mut d, 56, phs.len() as u16);
        } else {
            put32(&mut d, 24, entry as u32);
            put32(&mut d, 28, phoff as u32);
            put32(&mut d, 36, e_flags);
            put16(&mut d, 40, 52);
            put16(&mut d, 42, entsize as u16);
            put16(&mut d, 44, phs.len() as u16);
        }
        for (i, p) in phs.iter().enumerate() {
            let at = phoff + i * entsize;
            put32(&mut d, at, p.kind);
            if is64 {
                put32(&mut d, at + 4, p.flags);
                put64(&mut d, at + 8, p.offset);
                put64(&mut d, at + 16, p.vaddr);
                put64(&mut d, at + 24, p.paddr);
                put64(&mut d, at + 32, p.filesz);
                put64(&mut d, at + 40, p.memsz);
                put64(&mut d, at + 48, p.align);
            } else {
                put32(&mut d, at + 4, p.offset as u32);
                put32(&mut d, at + 8, p.vaddr as u32);
                put32(&mut d, at + 12, p.paddr as u32);
                put32(&mut d, at + 16, p.filesz as u32);
                put32(&mut d, at + 20, p.memsz as u32);
                put32(&mut d, at + 24, p.flags);
                put32(&mut d, at + 28, p.align as u32);
            }
        }
        d
    }

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&kind.to_le_bytes());
        n.extend_from_slice(name);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend_from_slice(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    const LOAD: u32 = PT_LOAD;
    const TEXT: u64 = 0x1000;
    const NOTES: u64 = 0x1200;
    const DATA: u64 = 0x1400;
    const PVH_LEN: usize = 0x1600;

    /// An ELF with a PVH note and two PT_LOADs: text at 0x100000 (0x180 bytes, 0x200 in memory)
    /// and data at 0x200000 (0x10 bytes, 0x1000 in memory); a GNU note before the Xen ones.
    fn pvh_elf(is64: bool, entry_note: u64) -> Vec<u8> {
        let mut notes = note(b"GNU\0", 3, &[0x11; 20]);
        notes.extend(note(b"Xen\0", 6, b"linux\0"));
        if is64 {
            notes.extend(note(b"Xen\0", 18, &entry_note.to_le_bytes()));
        } else {
            notes.extend(note(b"Xen\0", 18, &(entry_note as u32).to_le_bytes()));
        }
        let kbase = if is64 { 0xFFFF_FFFF_8000_0000 } else { 0xC000_0000 };
        let phs = [
            Ph {
                kind: LOAD,
                flags: PF_X | 4,
                offset: TEXT,
                vaddr: kbase + 0x100000,
                paddr: 0x100000,
                filesz: 0x180,
                memsz: 0x200,
                align: 0x1000,
            },
            Ph {
                kind: LOAD,
                flags: 6,
                offset: DATA,
                vaddr: kbase + 0x200000,
                paddr: 0x200000,
                filesz: 0x10,
                memsz: 0x1000,
                align: 0x1000,
            },
            Ph {
                kind: PT_NOTE,
                flags: 4,
                offset: NOTES,
                vaddr: 0,
                paddr: 0,
                filesz: notes.len() as u64,
                memsz: notes.len() as u64,
                align: 4,
            },
        ];
        let machine = if is64 { EM_X86_64 } else { EM_386 };
        let mut d = elf(is64, machine, 0, kbase + 0x100000, &phs, PVH_LEN);
        for i in 0..0x180 {
            d[TEXT as usize + i] = 0x90 ^ i as u8;
        }
        d[DATA as usize..DATA as usize + 0x10].fill(0xDA);
        d[NOTES as usize..NOTES as usize + notes.len()].copy_from_slice(&notes);
        d
    }

    #[test]
    fn pvh_items_and_segments() {
        for is64 in [true, false] {
            let image = pvh_elf(is64, 0x1_0010_0040);
            let mut i = input(image.clone(), initrd(0x2345), "console=hvc0", 512 * MIB);
            i.acpi_data_size = 0x10000;
            let l = layout(i).unwrap();
            assert_eq!(l.format, KernelFormat::Pvh);
            let want_entry = 0x0010_0040;
            assert_eq!(
                l.item_u32(key::KERNEL_ENTRY),
                Some(want_entry),
                "low 32 bits of the note"
            );
            assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
            assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x101000));
            assert_eq!(l.item(key::KERNEL_DATA), None);
            assert_eq!(l.item(key::CMDLINE_ADDR), None);
            assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(13));
            assert_eq!(l.item(key::CMDLINE_DATA), Some(&b"console=hvc0\0"[..]));
            assert_eq!(l.item_u32(key::SETUP_SIZE), Some(8192));
            let setup = l.item(key::SETUP_DATA).unwrap();
            assert_eq!(setup.len(), 8192);
            assert_eq!(&setup[..PVH_LEN], &image[..]);
            assert!(setup[PVH_LEN..].iter().all(|&b| b == 0));
            assert_eq!(l.item(key::SETUP_ADDR), None);
            assert_eq!(
                l.item_u32(key::INITRD_ADDR),
                Some((0x2000_0000 - 0x10000 - 1 - 0x2345) & !0xFFF)
            );
            assert_eq!(l.item_u32(key::INITRD_SIZE), Some(0x2345));
            assert_eq!(l.segments.len(), 2);
            assert_eq!(l.segments[0].addr, 0x100000);
            assert_eq!(
                &l.segments[0].bytes[..0x180],
                &image[TEXT as usize..TEXT as usize + 0x180]
            );
            assert_eq!(&l.segments[0].bytes[0x180..], &[0; 0x80]);
            assert_eq!(l.segments[1].addr, 0x200000);
            assert_eq!(l.segments[1].bytes.len(), 0x1000);
            assert_eq!(
                &l.segments[1].bytes[..0x11],
                &[[0xDA; 0x10].as_slice(), &[0]].concat()[..]
            );
        }
    }

    #[test]
    fn pvh_errors() {
        let err = |image: Vec<u8>| layout(input(image, vec![], "", 512 * MIB)).unwrap_err();
        // No note (the entry's value 0 counts as none, as in QEMU).
        assert_eq!(
            err(pvh_elf(true, 0)),
            KernelLayoutError::NoPvhNote {
                path: "/boot/kernel".into()
            }
        );
        let mut no_note = pvh_elf(true, 0x100000);
        no_note[NOTES as usize..DATA as usize].fill(0);
        assert_eq!(
            err(no_note).to_string(),
            "/boot/kernel: ELF kernel without a PVH entry note (Xen note type 18): cannot boot it"
        );
        // e_flags QEMU refuses.
        let mut flagged = pvh_elf(true, 0x100000);
        put32(&mut flagged, 48, 4);
        assert_eq!(
            err(flagged),
            KernelLayoutError::ElfFlags {
                path: "/boot/kernel".into(),
                flags: 4
            }
        );
        // Big-endian.
        let mut be = pvh_elf(true, 0x100000);
        be[5] = 2;
        assert!(matches!(err(be), KernelLayoutError::BadElf { reason, .. } if reason == "not little-endian"));
        // A segment outside RAM.
        let image = pvh_elf(true, 0x100000);
        assert_eq!(
            layout(input(image, vec![], "", 0x180000))
                .unwrap_err()
                .to_string(),
            "/boot/kernel: segment 1 at 0x200000..0x201000 is outside the 0x180000 bytes of RAM below 4 GiB"
        );
        // Segment data past the end of the file.
        let mut short = pvh_elf(true, 0x100000);
        short.truncate(DATA as usize + 8);
        assert!(
            matches!(err(short), KernelLayoutError::BadElf { reason, .. } if reason.contains("past the end"))
        );
        // filesz > memsz.
        let mut fat = pvh_elf(true, 0x100000);
        put64(&mut fat, 64 + 40, 0x10);
        assert!(matches!(err(fat), KernelLayoutError::BadElf { reason, .. } if reason.contains("file size")));
    }

    // --- multiboot ---------------------------------------------------------------------------

    fn mb_header(flags: u32, addrs: [u32; 5]) -> Vec<u8> {
        let mut h = Vec::new();
        for v in [
            multiboot1::HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(multiboot1::HEADER_MAGIC).wrapping_sub(flags),
        ]
        .into_iter()
        .chain(addrs)
        {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h
    }

    /// An a.out-kludge kernel: loaded at 0x100000 from file offset 0, header at 0x20, 0x1000
    /// bytes of file, bss to 0x102000, entry 0x100040.
    fn aout(load_end: u32, bss_end: u32) -> Vec<u8> {
        let mut d: Vec<u8> = (0..0x1000).map(|i| (i % 253) as u8).collect();
        let h = mb_header(
            header_flags::AOUT_KLUDGE | header_flags::MEMORY_INFO,
            [0x100020, 0x100000, load_end, bss_end, 0x100040],
        );
        d[0x20..0x40].copy_from_slice(&h);
        d
    }

    #[test]
    fn multiboot_aout_layout() {
        let image = aout(0, 0x102000);
        let modules = vec![
            Blob::new("mod1 arg=1", vec![0x11; 100]),
            Blob::new("m,2", vec![0x22; 5000]),
        ];
        let l = layout(KernelInput {
            kernel: Blob::new("kernel.elf", image.clone()),
            initrds: modules,
            cmdline: "console=ttyS0".into(),
            below_4g_mem_size: 512 * MIB,
            acpi_data_size: 0,
        })
        .unwrap();
        assert_eq!(l.format, KernelFormat::Multiboot);
        assert!(l.segments.is_empty());
        assert_eq!(l.item_u32(key::KERNEL_ENTRY), Some(0x100040));
        assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x6000));
        assert_eq!(l.item_u32(key::INITRD_ADDR), Some(0x9500));
        assert_eq!(l.item_u32(key::INITRD_SIZE), Some(88));
        let buf = l.item(key::KERNEL_DATA).unwrap();
        assert_eq!(buf.len(), 0x6000);
        assert_eq!(&buf[..0x1000], &image[..]);
        assert!(buf[0x1000..0x2000].iter().all(|&b| b == 0), "bss");
        // Module list at the page after the kernel, then the strings: modules', kernel's, name.
        let module = |i: usize| Module::read_from_bytes(&buf[0x2000 + 16 * i..0x2010 + 16 * i]).unwrap();
        let (m0, m1) = (module(0), module(1));
        assert_eq!(
            (m0.mod_start.get(), m0.mod_end.get(), m0.string.get()),
            (0x103000, 0x103000 + 100, 0x102020)
        );
        assert_eq!(
            (m1.mod_start.get(), m1.mod_end.get(), m1.string.get()),
            (0x104000, 0x104000 + 5000, 0x10202B)
        );
        assert_eq!(
            &buf[0x2020..0x2049],
            b"mod1 arg=1\0m,2\0kernel.elf console=ttyS0\0\0"
        );
        assert_eq!(&buf[0x2049..0x2050], b"minnow\0");
        assert_eq!(&buf[0x3000..0x3064], &[0x11; 100]);
        assert_eq!(&buf[0x4000..0x4000 + 5000], &[0x22; 5000]);
        assert!(buf[0x4000 + 5000..].iter().all(|&b| b == 0));

        let mbi = l.item(key::INITRD_DATA).unwrap();
        assert_eq!(mbi.len(), 88);
        let info = Info::read_from_bytes(&mbi[..68]).unwrap();
        assert_eq!(info.flags.get(), 0x24F);
        assert_eq!(
            (info.mem_lower.get(), info.mem_upper.get()),
            (0, 0),
            "the firmware fills them"
        );
        assert_eq!(info.boot_device.get(), 0x8000_FFFF);
        assert_eq!(info.cmdline.get(), 0x10202F);
        assert_eq!((info.mods_count.get(), info.mods_addr.get()), (2, 0x102000));
        assert_eq!((info.mmap_length.get(), info.mmap_addr.get()), (0, 0x9000));
        assert_eq!(info.boot_loader_name.get(), 0x102049);
        assert!(mbi[68..].iter().all(|&b| b == 0));
    }

    #[test]
    fn multiboot_aout_sizes_and_no_modules() {
        // load_end_addr set, no bss: the image is exactly load_end - load_addr.
        let l = layout(input(aout(0x100800, 0), vec![], "", 512 * MIB)).unwrap();
        let buf = l.item(key::KERNEL_DATA).unwrap();
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x2000));
        assert!(buf[..0x800] == aout(0x100800, 0)[..0x800]);
        assert!(buf[0x800..0x1000].iter().all(|&b| b == 0));
        let info = Info::read_from_bytes(&l.item(key::INITRD_DATA).unwrap()[..68]).unwrap();
        assert_eq!((info.mods_count.get(), info.mods_addr.get()), (0, 0x101000));
        assert_eq!(info.cmdline.get(), 0x101000);
        assert_eq!(&buf[0x1000..0x101E], b"/boot/kernel \0minnow\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(info.boot_loader_name.get(), 0x101000 + 14);
    }

    #[test]
    fn multiboot_aout_errors() {
        let err = |image: Vec<u8>| {
            layout(input(image, vec![], "", 512 * MIB))
                .unwrap_err()
                .to_string()
        };
        assert!(err(aout(0x0F_0000, 0)).contains("load_end_addr 0xf0000 is below load_addr"));
        assert!(err(aout(0, 0x100800)).contains("bss_end_addr"));
        assert!(err(aout(0x102000, 0)).contains("run past the end of the file"));
        let mut h = aout(0, 0);
        h[0x20..0x40].copy_from_slice(&mb_header(
            header_flags::AOUT_KLUDGE,
            [0x100020, 0x100040, 0, 0, 0],
        ));
        assert!(err(h).contains("load_addr 0x100040 is above header_addr 0x100020"));
        let mut h = aout(0, 0);
        h[0x20..0x40].copy_from_slice(&mb_header(
            header_flags::AOUT_KLUDGE,
            [0x100100, 0x100000, 0, 0, 0],
        ));
        assert!(err(h).contains("more than the header's offset"));
        // A kernel ending past RAM.
        let e = layout(input(aout(0, 0x4000_0000), vec![], "", 512 * MIB)).unwrap_err();
        assert!(matches!(e, KernelLayoutError::OutsideRam { .. }), "{e}");
        // No kludge flag and not an ELF.
        let mut h = aout(0, 0);
        h[0x20..0x40].copy_from_slice(&mb_header(0, [0; 5]));
        assert!(err(h).contains("must be an ELF"));
    }

    /// A multiboot ELF: one executable segment linked at 0xC0100000, loaded at 0x100000, with
    /// the header in it, and a bss segment.
    fn multiboot_elf(is64: bool, machine: u16) -> Vec<u8> {
        let phs = [
            Ph {
                kind: LOAD,
                flags: PF_X | 4,
                offset: 0x1000,
                vaddr: 0xC010_0000,
                paddr: 0x100000,
                filesz: 0x100,
                memsz: 0x100,
                align: 0x1000,
            },
            Ph {
                kind: LOAD,
                flags: 6,
                offset: 0x1100,
                vaddr: 0xC010_2000,
                paddr: 0x102000,
                filesz: 0,
                memsz: 0x800,
                align: 0x1000,
            },
        ];
        let mut d = elf(is64, machine, 0, 0xC010_0010, &phs, 0x1100);
        d[0x1000..0x100C].copy_from_slice(&mb_header(0, [0; 5])[..12]);
        d[0x1010..0x1020].fill(0xCC);
        d
    }

    #[test]
    fn multiboot_elf_layout() {
        let image = multiboot_elf(false, EM_386);
        let l = layout(input(image.clone(), vec![], "x", 512 * MIB)).unwrap();
        assert_eq!(l.format, KernelFormat::Multiboot);
        assert_eq!(
            l.item_u32(key::KERNEL_ENTRY),
            Some(0x100010),
            "entry moved to the physical address"
        );
        assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
        // [0x100000, 0x102800) page-aligned, then one page of strings.
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x4000));
        let buf = l.item(key::KERNEL_DATA).unwrap();
        assert_eq!(&buf[..0x100], &image[0x1000..0x1100]);
        assert!(buf[0x100..0x3000].iter().all(|&b| b == 0));
        assert_eq!(&buf[0x3000..0x3010], b"/boot/kernel x\0m");
        // A 64-bit ELF without the kludge is refused, as by QEMU; other machines too.
        let e = layout(input(multiboot_elf(true, EM_X86_64), vec![], "", 512 * MIB)).unwrap_err();
        assert_eq!(
            e,
            KernelLayoutError::Multiboot64 {
                path: "/boot/kernel".into()
            }
        );
        let e = layout(input(multiboot_elf(false, 40), vec![], "", 512 * MIB)).unwrap_err();
        assert_eq!(
            e,
            KernelLayoutError::MultibootMachine {
                path: "/boot/kernel".into(),
                machine: 40
            }
        );
        // QEMU 7.2 with `-kernel mbelf -initrd mod1 -append x` (a 100-byte module): 0x5000.
        let one = |image: Vec<u8>| KernelInput {
            kernel: Blob::new("mbelf", image),
            initrds: vec![Blob::new("mod1", vec![0x11; 100])],
            cmdline: "x".into(),
            below_4g_mem_size: 512 * MIB,
            acpi_data_size: 0,
        };
        let l = layout(one(image)).unwrap();
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x5000));
        // The multiboot header wins over a PVH note (QEMU tries multiboot first); QEMU 7.2 gives
        // entry 0x100000 and size 0x103000 for this one.
        let mut both = pvh_elf(false, 0x100000);
        both[0x1000..0x100C].copy_from_slice(&mb_header(0, [0; 5])[..12]);
        let l = layout(one(both)).unwrap();
        assert_eq!(l.format, KernelFormat::Multiboot);
        assert_eq!(l.item_u32(key::KERNEL_ENTRY), Some(0x100000));
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x103000));
    }

    #[test]
    fn multiboot_module_argument_splitting() {
        assert_eq!(multiboot_modules("a b,c"), ["a b", "c"]);
        assert_eq!(multiboot_modules("a,,b,c d=1"), ["a,b", "c d=1"]);
        assert_eq!(multiboot_modules(""), Vec::<String>::new());
    }

    /// Tiny deterministic generator for the corruption test.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn truncated_and_corrupted_images_never_panic() {
        let images = [
            bzimage(
                4,
                0x020F,
                loadflags::LOADED_HIGH,
                xloadflags::CAN_BE_LOADED_ABOVE_4G,
                0x3000,
            ),
            pvh_elf(true, 0x100000),
            pvh_elf(false, 0x100000),
            aout(0, 0x102000),
            multiboot_elf(false, EM_386),
        ];
        let mut rng = Lcg(1);
        for image in &images {
            for len in (0..image.len()).step_by(7).chain([image.len()]) {
                let _ = layout(input(image[..len].to_vec(), initrd(10), "vga=1", 64 * MIB));
            }
            for _ in 0..2000 {
                let mut bad = image.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let at = rng.next() as usize % bad.len();
                    // Mostly header bytes, where it matters.
                    let at = if rng.next().is_multiple_of(2) {
                        at % 0x280
                    } else {
                        at
                    };
                    bad[at] = rng.next() as u8;
                    if rng.next().is_multiple_of(8) {
                        let v = [0u8, 0xFF, 0x7F, 0x80][rng.next() as usize % 4];
                        let end = (at + 8).min(bad.len());
                        bad[at..end].fill(v);
                    }
                }
                let _ = layout(input(bad, initrd(10), "", 64 * MIB));
            }
        }
    }

    // --- the real kernel, against QEMU 7.2 ------------------------------------------------------

    const CACHE: &str = "/root/.cache/minnow";
    const CACHED_PACKAGE: &str = "linux-image-6.1.0-56-cloud-amd64=6.1.192-2";
    /// The initramfs `cargo xtask guest` built when the QEMU values were taken; a stand-in of the
    /// same size keeps the check independent of later rebuilds.
    const QEMU_INITRD_SIZE: usize = 0x1E_4474;

    fn cached(file: &str) -> Option<Vec<u8>> {
        let path = Path::new(CACHE).join(file);
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                println!("not run: {} missing (cargo xtask guest)", path.display());
                None
            }
        }
    }

    fn same_kernel() -> bool {
        let package = std::fs::read_to_string(Path::new(CACHE).join("vmlinuz.package")).unwrap_or_default();
        if package.trim() != CACHED_PACKAGE {
            println!(
                "not run: the cached kernel is {:?}, the QEMU values are for {CACHED_PACKAGE}",
                package.trim()
            );
            return false;
        }
        true
    }

    fn debian(file: &str, bytes: Vec<u8>) -> KernelInput {
        KernelInput {
            kernel: Blob::new(format!("{CACHE}/{file}"), bytes),
            initrds: vec![Blob::new("initramfs.cpio", vec![0; QEMU_INITRD_SIZE])],
            cmdline: "console=ttyS0".into(),
            below_4g_mem_size: 512 * MIB,
            acpi_data_size: 0,
        }
    }

    /// `qemu-system-x86_64 -M microvm -m 512 -kernel vmlinuz -initrd ... -append console=ttyS0
    /// -trace 'fw_cfg_add_i32'` with QEMU 7.2.
    #[test]
    fn debian_bzimage_matches_qemu() {
        let Some(vmlinuz) = cached("vmlinuz") else { return };
        if !same_kernel() {
            return;
        }
        let len = vmlinuz.len();
        let l = layout(debian("vmlinuz", vmlinuz.clone())).unwrap();
        assert_eq!(l.format, KernelFormat::BzImage { protocol: 0x020F });
        assert_eq!(l.item_u32(key::SETUP_ADDR), Some(0x10000));
        assert_eq!(l.item_u32(key::SETUP_SIZE), Some(0x5000));
        assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100000));
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0xD8_27C0));
        assert_eq!(l.item(key::KERNEL_DATA), Some(&vmlinuz[0x5000..]));
        assert_eq!(l.item_u32(key::CMDLINE_ADDR), Some(0x20000));
        assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(0xE));
        assert_eq!(l.item_u32(key::INITRD_ADDR), Some(0x1FE1_B000));
        assert_eq!(l.item_u32(key::INITRD_SIZE), Some(0x1E_4474));
        let setup = l.item(key::SETUP_DATA).unwrap();
        assert_eq!(setup.len(), 0x5000);
        assert_eq!(&setup[0x228..0x22C], &0x20000u32.to_le_bytes());
        assert_eq!(
            &setup[0x218..0x220],
            &[0x00, 0xB0, 0xE1, 0x1F, 0x74, 0x44, 0x1E, 0x00]
        );
        assert_eq!(setup[0x210], 0xB0);
        assert_eq!(&setup[0x224..0x226], &0xFE00u16.to_le_bytes());
        assert_eq!(len, 0x5000 + 0xD8_27C0);
    }

    #[test]
    fn debian_pvh_matches_qemu() {
        let Some(vmlinux) = cached("vmlinux") else { return };
        if !same_kernel() {
            return;
        }
        let l = layout(debian("vmlinux", vmlinux.clone())).unwrap();
        assert_eq!(l.format, KernelFormat::Pvh);
        assert_eq!(l.item_u32(key::KERNEL_ENTRY), Some(0x100_0850));
        assert_eq!(l.item_u32(key::KERNEL_ADDR), Some(0x100_0000));
        assert_eq!(l.item_u32(key::KERNEL_SIZE), Some(0x2E0_0000));
        assert_eq!(l.item_u32(key::CMDLINE_SIZE), Some(0xE));
        assert_eq!(l.item_u32(key::SETUP_SIZE), Some(0x2000));
        assert_eq!(l.item(key::SETUP_DATA), Some(&vmlinux[..0x2000]));
        assert_eq!(l.item_u32(key::INITRD_ADDR), Some(0x1FE1_B000));
        let spans: Vec<(u64, usize)> = l.segments.iter().map(|s| (s.addr, s.bytes.len())).collect();
        assert_eq!(
            spans,
            [
                (0x100_0000, 0x182_6634),
                (0x2A0_0000, 0x61_A000),
                (0x301_A000, 0x3_4000),
                (0x304_E000, 0xDB_2000)
            ]
        );
        assert_eq!(&l.segments[0].bytes[..16], &vmlinux[0x20_0000..0x20_0010]);
    }
}
