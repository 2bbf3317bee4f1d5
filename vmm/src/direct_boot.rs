//! `-bios none`: the VMM boots the kernel itself, with no firmware. A bzImage enters through the
//! Linux 64-bit boot protocol (the 32-bit one for a kernel without `XLF_KERNEL_64`), an ELF
//! `vmlinux` (ELF32 or ELF64) through PVH. [`linux-loader`](linux_loader) puts a bzImage in guest
//! RAM, and an ELF's segments are written from the ELF reader minnow.rom shares
//! (`minnow_bootproto::elf`, checked by `kernel_layout`); this
//! module builds what minnow.rom would have built around it, so a kernel cannot tell the two
//! paths apart by what it is handed: the same e820 map (RAM with the legacy area carved as
//! `minnow_bootproto::e820::legacy` says), the command line at the same address, boot_params and
//! hvm_start_info where the firmware puts them, and either the ACPI tables or the MP table:
//!
//! - with ACPI (`acpi=on` or `auto`), the tables the VMM serves minnow.rom in fw_cfg
//!   (`minnow_acpi::build`), linked by [`AcpiFiles::link`] where minnow.rom's table-loader puts
//!   them: the tables blob in the HIGH zone, the highest whole pages of RAM below 4 GiB, reserved
//!   in e820 as whole pages; the RSDP at the start of the F-segment zone (0xE0000, already
//!   reserved). Its address goes to `boot_params.acpi_rsdp_addr` or `hvm_start_info.rsdp_paddr`.
//!   No MP table, as the firmware writes none with ACPI.
//! - without ACPI (`acpi=off`), the MP table (`minnow_bootproto::mptable`) describes the CPUs and
//!   the RSDP address is 0.
//!
//! vCPU 0 starts at the kernel's entry in the state its protocol promises ([`CpuEntry`]); the
//! others stay in KVM's wait-for-SIPI state, for the kernel to start.
//!
//! Guest-physical layout ([`layout`]); the boot structures are in RAM below the MP table, none of
//! them reserved in e820 (the kernel copies what it needs early, as from the firmware):
//!
//! | range | what |
//! |---|---|
//! | 0x500-0x530 | GDT: 0x10 `__BOOT_CS`, 0x18 `__BOOT_DS`, 0x20 TSS |
//! | 0x1000-0x6000 | initial stack (RSP = 0x6000, growing down) |
//! | 0x6000-0x7000 | PVH `hvm_start_info`, module list (0x6040), memory map (0x6100) |
//! | 0x7000-0x8000 | Linux boot_params |
//! | 0x9000-0xF000 | 64-bit entry: identity page tables of 0-4 GiB (PML4, PDPT, 4 PDs of 2 MiB pages) |
//! | 0x20000-0x30000 | kernel command line |
//! | 0x9E000-0xA0000 | MP table without ACPI, floating pointer at 0x9FC00 (reserved in e820) |
//! | 0xE0000 | the RSDP with ACPI (in the reserved 0xE0000-0x100000) |
//! | 1 MiB | the bzImage's protected-mode part; ELF segments where they say (at or above 1 MiB) |
//! | below the ACPI tables | the initrd, page-aligned, below the kernel's `initrd_addr_max` |
//! | top of RAM below 4 GiB | with ACPI, the tables, in whole pages reserved in e820 |
//!
//! The tables take the top of RAM first and the kernel and the initrd must fit below them (where
//! the firmware, given QEMU's initrd at the top, puts the tables below the initrd): with no
//! initrd, or one below the tables anyway, both paths hand over the same map.
mod cpu_entry;
mod linux;
mod pvh;

pub use cpu_entry::{CpuEntry, Mode, SEL_TSS};

use crate::config::Config;
use crate::kernel_layout::{Blob, KernelLayoutError};
use crate::layout::LOW_RAM_MAX;
use crate::vstate::memory;
use minnow_acpi::{AcpiFiles, Linked};
use minnow_bootproto::e820::{self, legacy, E820Entry};
use minnow_bootproto::mptable;
use std::path::{Path, PathBuf};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Where direct boot puts things. Keep in address order.
pub mod layout {
    /// The GDT: six 8-byte slots (the TSS descriptor takes two in long mode).
    pub const GDT: u64 = 0x500;
    /// The initial stack's top: it grows down through free RAM below the boot structures.
    pub const STACK_TOP: u64 = 0x6000;
    /// PVH `hvm_start_info`, then its module list and memory map (where minnow.rom puts them).
    pub const PVH_START_INFO: u64 = 0x6000;
    pub const PVH_MODLIST: u64 = 0x6040;
    pub const PVH_MEMMAP: u64 = 0x6100;
    pub const PVH_MEMMAP_END: u64 = 0x7000;
    /// Linux boot_params, the zero page (where minnow.rom and Firecracker put it).
    pub const BOOT_PARAMS: u64 = 0x7000;
    /// Identity map of 0-4 GiB for the 64-bit entry: PML4, PDPT, then four page directories.
    pub const PML4: u64 = 0x9000;
    pub const PDPT: u64 = 0xA000;
    pub const PD: u64 = 0xB000;
    pub const PAGE_TABLES_END: u64 = 0xF000;
    /// The kernel command line (QEMU's address for it, and minnow.rom's), at most 64 KiB.
    pub const CMDLINE: u64 = crate::kernel_layout::LINUX_CMDLINE_ADDR;
    pub const CMDLINE_MAX: u64 = 0x1_0000;
    /// The RSDP: the start of the table-loader's F-segment zone, where minnow.rom puts it.
    pub const RSDP: u64 = minnow_bootproto::e820::legacy::LEGACY_HOLE_END;
    /// Where the bzImage's protected-mode part goes, and below which no kernel may load.
    pub const KERNEL: u64 = minnow_bootproto::e820::legacy::HIGH_MEMORY;
    /// The ACPI tables' alignment and unit of reservation (the table-loader's HIGH zone).
    pub const PAGE: u64 = 0x1000;
}

#[derive(Debug, thiserror::Error)]
pub enum DirectBootError {
    #[error("-bios none boots a kernel directly: pass -kernel")]
    NoKernel,
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// QEMU's words, which test runners look for.
    #[error("could not open kernel file '{path}': {source}")]
    ReadKernel { path: PathBuf, source: std::io::Error },
    #[error("{path}: neither a bzImage nor an ELF kernel: -bios none boots a Linux bzImage or an ELF with a PVH note (other kernels boot through the firmware: omit -bios none)")]
    NotAKernel { path: String },
    #[error("{path}: not a bzImage direct boot can load: {reason}")]
    BadBzImage { path: String, reason: String },
    #[error("{path}: ELF kernel without a PVH entry note (Xen note type 18): -bios none boots ELF kernels through PVH only (multiboot kernels boot through the firmware: omit -bios none)")]
    NoPvhNote { path: String },
    #[error("{path}: the PVH entry {entry:#x} is outside the kernel's segments ({low:#x}..{high:#x})")]
    PvhEntryOutside {
        path: String,
        entry: u64,
        low: u64,
        high: u64,
    },
    #[error(
        "{path}: a segment loads at {addr:#x}, below 1 MiB, where direct boot keeps its boot structures"
    )]
    BelowHighMemory { path: String, addr: u64 },
    #[error(transparent)]
    Elf(#[from] KernelLayoutError),
    #[error("{path}: the kernel needs {size:#x} bytes of RAM from {start:#x}, but RAM below 4 GiB ends at {ram_end:#x}: give the VM more memory (-m)")]
    KernelTooLarge {
        path: String,
        start: u64,
        size: u64,
        ram_end: u64,
    },
    #[error("{path}: initrd of {size:#x} bytes does not fit in RAM between the kernel's end ({kernel_end:#x}) and {limit:#x}: give the VM more memory (-m)")]
    InitrdTooLarge {
        path: String,
        size: u64,
        kernel_end: u64,
        limit: u64,
    },
    #[error("the kernel command line is {len} bytes, longer than the {max} this kernel takes")]
    CmdlineTooLong { len: usize, max: u64 },
    #[error("the kernel command line contains a NUL byte at offset {at}")]
    CmdlineNul { at: usize },
    #[error("{path}: loading the kernel into guest memory: {source}")]
    Load {
        path: String,
        source: linux_loader::loader::Error,
    },
    #[error(
        "no room for the ACPI tables ({size:#x} bytes) in RAM below 4 GiB: give the VM more memory (-m)"
    )]
    NoRoomForAcpi { size: u64 },
    #[error(transparent)]
    Acpi(#[from] minnow_acpi::AcpiError),
    #[error("writing the {what} ({len} bytes at {addr:#x}) into guest memory: not RAM")]
    GuestMemory {
        what: &'static str,
        addr: u64,
        len: usize,
    },
}

/// What direct boot loads and the machine it loads it into.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The kernel, named as the user gave it (errors name it).
    pub kernel: &'a Blob,
    pub initrd: Option<&'a Blob>,
    /// Without the NUL.
    pub cmdline: &'a str,
    /// Guest RAM in bytes.
    pub memory: u64,
    pub cpus: u8,
    /// CPUID(1) EAX and EDX as the vCPUs see them, for the MP table's processor entries (what
    /// minnow.rom reads with CPUID).
    pub cpu_signature: (u32, u32),
    /// The ACPI tables, as served to minnow.rom in fw_cfg: installed where its table-loader would
    /// install them. `None` (`acpi=off`): the MP table instead.
    pub acpi: Option<&'a AcpiFiles>,
}

/// Where direct boot installs the ACPI tables: where minnow.rom's table-loader puts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiPlacement {
    /// The tables blob (`etc/acpi/tables`): page-aligned, in the highest whole pages of RAM
    /// below 4 GiB.
    pub tables: u64,
    /// The bytes reserved in e820 from `tables`: the blob rounded up to whole pages.
    pub reserved: u64,
    /// The RSDP (`etc/acpi/rsdp`): [`layout::RSDP`].
    pub rsdp: u64,
}

impl AcpiPlacement {
    /// Where `tables_len` bytes of tables go in `map` (the e820 map without them): as the
    /// table-loader's HIGH zone allocates, the highest page-aligned fit of whole pages in RAM
    /// below 4 GiB.
    pub fn new(map: &[E820Entry], tables_len: u64) -> Option<Self> {
        const FOUR_GIB: u64 = 1 << 32;
        let reserved = tables_len.next_multiple_of(layout::PAGE);
        let tables = map
            .iter()
            .filter(|e| e.kind.get() == e820::RAM)
            .filter_map(|e| {
                let (start, end) = (e.addr.get(), e.addr.get() + e.size.get());
                let base = end.min(FOUR_GIB).checked_sub(reserved)? & !(layout::PAGE - 1);
                (base >= start).then_some(base)
            })
            .max()?;
        Some(Self {
            tables,
            reserved,
            rsdp: layout::RSDP,
        })
    }
}

/// What direct boot decides before it loads anything: the RAM left for the kernel and the
/// initrd, the e820 map they are handed, and the ACPI tables.
#[derive(Debug)]
struct Plan {
    /// End of the RAM below 4 GiB the kernel and the initrd may use: the ACPI tables' first page,
    /// or the end of RAM.
    ram_end: u64,
    e820: Vec<E820Entry>,
    acpi: Option<(AcpiPlacement, Linked)>,
}

impl Plan {
    fn new(input: &Input) -> Result<Self, DirectBootError> {
        let low_ram_end = input.memory.min(LOW_RAM_MAX);
        let map = e820_map(input.memory);
        let Some(files) = input.acpi else {
            return Ok(Self {
                ram_end: low_ram_end,
                e820: map,
                acpi: None,
            });
        };
        let size = files.tables.len() as u64;
        let at = AcpiPlacement::new(&map, size).ok_or(DirectBootError::NoRoomForAcpi { size })?;
        let linked = files.link(at.tables, at.rsdp)?;
        Ok(Self {
            ram_end: low_ram_end.min(at.tables),
            e820: e820_map_reserving(input.memory, Some((at.tables, at.reserved))),
            acpi: Some((at, linked)),
        })
    }

    /// The RSDP's address for the boot protocol: 0 without ACPI.
    fn rsdp(&self) -> u64 {
        self.acpi.as_ref().map_or(0, |(at, _)| at.rsdp)
    }
}

/// The e820 map of the machine without ACPI tables: its RAM (what `etc/e820` lists) with the
/// legacy area carved out as minnow.rom carves it, so both paths report the same map.
pub fn e820_map(memory: u64) -> Vec<E820Entry> {
    e820_map_reserving(memory, None)
}

/// [`e820_map`] with `reserved` (`(start, size)`, the ACPI tables' pages) marked reserved, as
/// minnow.rom's table-loader marks the pages it allocates.
pub fn e820_map_reserving(memory: u64, reserved: Option<(u64, u64)>) -> Vec<E820Entry> {
    // (start, end, kind); kind None is a hole, dropped at the end.
    let mut map: Vec<(u64, u64, Option<u32>)> = memory::ram_map(memory)
        .into_iter()
        .map(|(start, size)| (start, start + size, Some(e820::RAM)))
        .collect();
    let carves = legacy::CARVES.iter().map(|c| (c.start, c.end, c.kind));
    let tables = reserved.map(|(start, size)| (start, start + size, Some(e820::RESERVED)));
    for (c_start, c_end, c_kind) in carves.chain(tables) {
        // The carved range replaces whatever overlaps it, keeping the parts that stick out.
        let mut next = Vec::with_capacity(map.len() + 2);
        for &(start, end, kind) in &map {
            if start < c_start {
                next.push((start, end.min(c_start), kind));
            }
            if end > c_end {
                next.push((start.max(c_end), end, kind));
            }
        }
        next.push((c_start, c_end, c_kind));
        next.sort_by_key(|r| r.0);
        map = next.into_iter().fold(Vec::new(), |mut merged, r| {
            match merged.last_mut() {
                Some(last) if last.1 == r.0 && last.2 == r.2 => last.1 = r.1,
                _ => merged.push(r),
            }
            merged
        });
    }
    map.into_iter()
        .filter_map(|(start, end, kind)| Some(E820Entry::new(start, end - start, kind?)))
        .collect()
}

fn write(ram: &GuestMemoryMmap, what: &'static str, addr: u64, bytes: &[u8]) -> Result<(), DirectBootError> {
    ram.write_slice(bytes, GuestAddress(addr))
        .map_err(|_| DirectBootError::GuestMemory {
            what,
            addr,
            len: bytes.len(),
        })
}

fn read_kernel(path: &Path) -> Result<Blob, DirectBootError> {
    let bytes = std::fs::read(path).map_err(|source| DirectBootError::ReadKernel {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Blob::new(path.display().to_string(), bytes))
}

fn read(path: &Path) -> Result<Blob, DirectBootError> {
    let bytes = std::fs::read(path).map_err(|source| DirectBootError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Blob::new(path.display().to_string(), bytes))
}

/// What `-bios none` loads, read once: a reset loads it again from here, without reopening the
/// files.
#[derive(Clone, Debug)]
pub struct DirectBootImage {
    kernel: Blob,
    initrd: Option<Blob>,
    acpi: Option<AcpiFiles>,
    cmdline: String,
    memory: u64,
    cpus: u8,
    cpu_signature: (u32, u32),
}

impl DirectBootImage {
    /// Reads `-kernel` and `-initrd`, with the ACPI tables fw_cfg serves when `c` has ACPI.
    pub fn read(c: &Config, cpu_signature: (u32, u32)) -> Result<Self, DirectBootError> {
        Ok(Self {
            kernel: read_kernel(c.kernel.as_deref().ok_or(DirectBootError::NoKernel)?)?,
            initrd: c.initrd.as_deref().map(read).transpose()?,
            acpi: match c.acpi() {
                true => Some(minnow_acpi::build(&crate::fw_cfg_setup::acpi_machine(c))?),
                false => None,
            },
            cmdline: crate::devices::virtio::placement::kernel_cmdline(c),
            memory: c.memory,
            cpus: c.cpus,
            cpu_signature,
        })
    }

    /// Loads it into `ram` as [`load`] does; returns vCPU 0's entry state.
    pub fn load(&self, ram: &GuestMemoryMmap) -> Result<CpuEntry, DirectBootError> {
        let input = Input {
            kernel: &self.kernel,
            initrd: self.initrd.as_ref(),
            cmdline: &self.cmdline,
            memory: self.memory,
            cpus: self.cpus,
            cpu_signature: self.cpu_signature,
            acpi: self.acpi.as_ref(),
        };
        load(&input, ram)
    }
}

/// Reads `-kernel` and `-initrd` and loads them as [`load`] does, with the ACPI tables fw_cfg
/// serves when `c` has ACPI.
pub fn load_files(
    c: &Config,
    ram: &GuestMemoryMmap,
    cpu_signature: (u32, u32),
) -> Result<CpuEntry, DirectBootError> {
    DirectBootImage::read(c, cpu_signature)?.load(ram)
}

/// Loads the kernel and everything around it into `ram`; returns vCPU 0's entry state.
pub fn load(input: &Input, ram: &GuestMemoryMmap) -> Result<CpuEntry, DirectBootError> {
    let k = &input.kernel.bytes;
    let is_bzimage = k.get(0x202..0x206) == Some(&minnow_bootproto::linux::HEADER_MAGIC.to_le_bytes()[..]);
    if !is_bzimage && !k.starts_with(b"\x7fELF") {
        return Err(DirectBootError::NotAKernel {
            path: input.kernel.name.clone(),
        });
    }
    let plan = Plan::new(input)?;
    let entry = match is_bzimage {
        true => linux::load(input, &plan, ram)?,
        false => pvh::load(input, &plan, ram)?,
    };
    match &plan.acpi {
        Some((at, linked)) => {
            write(ram, "ACPI tables", at.tables, &linked.tables)?;
            write(ram, "ACPI RSDP", at.rsdp, &linked.rsdp)?;
        }
        None => write_mptable(input, ram)?,
    }
    let gdt: Vec<u8> = entry.mode.gdt().iter().flat_map(|d| d.to_le_bytes()).collect();
    write(ram, "GDT", layout::GDT, &gdt)?;
    if entry.mode == Mode::Long64 {
        write(ram, "page tables", layout::PML4, &page_tables())?;
    }
    Ok(entry)
}

/// The MP table and its floating pointer, as minnow.rom writes them without ACPI: the CPUs, and
/// IRQ0 on IOAPIC pin 2 (fw_cfg_setup tells the firmware IRQ0_OVERRIDE = 1 on this machine).
fn write_mptable(input: &Input, ram: &GuestMemoryMmap) -> Result<(), DirectBootError> {
    let m = mptable::Machine {
        cpus: u16::from(input.cpus),
        irq0_override: true,
        cpu_signature: input.cpu_signature.0,
        cpu_features: input.cpu_signature.1,
    };
    let t = mptable::build(&m, legacy::MPTABLE as u32);
    write(ram, "MP table", legacy::MPTABLE, t.table())?;
    write(
        ram,
        "MP floating pointer",
        legacy::MP_FLOATING_POINTER,
        &t.floating_pointer,
    )
}

/// Identity page tables for 0-4 GiB with 2 MiB pages, from [`layout::PML4`] to
/// [`layout::PAGE_TABLES_END`].
fn page_tables() -> Vec<u8> {
    const TABLE: u64 = 0x3; // present, writable
    const LEAF: u64 = 0x83; // present, writable, 2 MiB page
    let mut entries = vec![0u64; ((layout::PAGE_TABLES_END - layout::PML4) / 8) as usize];
    entries[0] = layout::PDPT | TABLE;
    for i in 0..4u64 {
        entries[512 + i as usize] = (layout::PD + i * 0x1000) | TABLE;
    }
    for (n, e) in entries[1024..].iter_mut().enumerate() {
        *e = ((n as u64) << 21) | LEAF;
    }
    entries.iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// Writes the command line (with its NUL) at [`layout::CMDLINE`] if it is at most `max` bytes.
fn write_cmdline(input: &Input, ram: &GuestMemoryMmap, max: u64) -> Result<(), DirectBootError> {
    let c = input.cmdline;
    if let Some(at) = c.bytes().position(|b| b == 0) {
        return Err(DirectBootError::CmdlineNul { at });
    }
    let max = max.min(layout::CMDLINE_MAX - 1);
    if c.len() as u64 > max {
        return Err(DirectBootError::CmdlineTooLong { len: c.len(), max });
    }
    let mut bytes = Vec::with_capacity(c.len() + 1);
    bytes.extend_from_slice(c.as_bytes());
    bytes.push(0);
    write(ram, "command line", layout::CMDLINE, &bytes)
}

/// Places the initrd page-aligned as high as it fits below `limit` (exclusive) and the plan's
/// RAM end (below the ACPI tables), at or above `kernel_end`, writes it, and returns
/// `(address, size)`.
fn place_initrd(
    input: &Input,
    plan: &Plan,
    ram: &GuestMemoryMmap,
    kernel_end: u64,
    limit: u64,
) -> Result<Option<(u64, u64)>, DirectBootError> {
    let Some(initrd) = input.initrd else {
        return Ok(None);
    };
    let size = initrd.bytes.len() as u64;
    let limit = limit.min(plan.ram_end);
    let addr = limit.checked_sub(size).map(|a| a & !0xFFF);
    let Some(addr) = addr.filter(|&a| a >= kernel_end) else {
        return Err(DirectBootError::InitrdTooLarge {
            path: initrd.name.clone(),
            size,
            kernel_end,
            limit,
        });
    };
    write(ram, "initrd", addr, &initrd.bytes)?;
    Ok(Some((addr, size)))
}

#[cfg(test)]
mod tests;
