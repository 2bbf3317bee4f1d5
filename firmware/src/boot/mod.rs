//! Boot protocols: find the kernel in fw_cfg, load it, and say how to enter it.
//!
//! QEMU's `-kernel` items (KERNEL_*, SETUP_*, INITRD_*, CMDLINE_*) are handled by [`qemu`], laid
//! out exactly as QEMU's x86_load_linux and multiboot loader leave them. A raw image in the file
//! `opt/org.minnow/kernel` is handled by [`raw`], which detects the format itself.
use crate::error::BootError;
use crate::fw_cfg::FwCfg;
use crate::layout;
use crate::memory::Memory;
use crate::memory_map::MemoryMap;
use minnow_bootproto::{fw_cfg::file, milestone};

pub mod linux;
pub mod multiboot1;
pub mod multiboot2;
pub mod pvh;
pub mod qemu;
pub mod raw;

/// What the boot paths need from the machine.
pub struct Env<'a> {
    pub cfg: &'a mut dyn FwCfg,
    pub mem: &'a mut dyn Memory,
    /// The final memory map (RAM, firmware reservations, ACPI tables).
    pub map: &'a MemoryMap,
    pub rsdp: Option<u64>,
}

/// How to enter the loaded kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handoff {
    /// Linux 64-bit entry: RSI = boot_params.
    Linux64 { entry: u64, boot_params: u64 },
    /// Linux 32-bit entry: ESI = boot_params.
    Linux32 { entry: u32, boot_params: u32 },
    /// PVH: EBX = hvm_start_info.
    Pvh { entry: u32, start_info: u32 },
    /// Multiboot 1: EAX = 0x2BADB002, EBX = MBI.
    Multiboot1 { entry: u32, info: u32 },
    /// Multiboot 2: EAX = 0x36D76289, EBX = boot information.
    Multiboot2 { entry: u32, info: u32 },
}

impl Handoff {
    /// The value written to the kernel milestone port just before the jump.
    pub fn milestone(&self) -> u8 {
        match self {
            Self::Linux64 { .. } | Self::Linux32 { .. } => milestone::KERNEL_LINUX,
            Self::Pvh { .. } => milestone::KERNEL_PVH,
            Self::Multiboot1 { .. } => milestone::KERNEL_MULTIBOOT,
            Self::Multiboot2 { .. } => milestone::KERNEL_MULTIBOOT2,
        }
    }
}

/// Where the kernel comes from.
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// A raw image in `opt/org.minnow/kernel`.
    Raw(crate::fw_cfg::File),
    /// QEMU's `-kernel` items.
    Qemu(qemu::Items),
}

impl Kernel {
    /// Finds the kernel: a raw image wins over `-kernel`.
    pub fn find(cfg: &mut dyn FwCfg) -> Result<Self, BootError> {
        if let Some(f) = cfg.file(file::MINNOW_KERNEL) {
            return Ok(Self::Raw(f));
        }
        let items = qemu::Items::read(cfg)?;
        if items.kernel_size == 0 {
            return Err(BootError::NoKernel);
        }
        Ok(Self::Qemu(items))
    }

    /// Memory the VMM has already committed to this kernel (QEMU copies PVH segments into RAM
    /// and fixes the initrd's address): the firmware must not allocate there.
    pub fn occupied(&self) -> [(u64, u64); 2] {
        match self {
            Self::Raw(_) => [(0, 0); 2],
            Self::Qemu(i) => [
                (u64::from(i.kernel_addr), u64::from(i.kernel_size)),
                (u64::from(i.initrd_addr), u64::from(i.initrd_size)),
            ],
        }
    }
}

/// Loads the kernel.
pub fn load(env: &mut Env, kernel: &Kernel) -> Result<Handoff, BootError> {
    match kernel {
        Kernel::Raw(f) => raw::load(env, *f),
        Kernel::Qemu(items) => qemu::load(env, items),
    }
}

/// Checks that `what` may occupy `[start, start + len)`: all RAM, none of it the firmware's.
pub fn check_range(map: &MemoryMap, what: &'static str, start: u64, len: u64) -> Result<(), BootError> {
    let end = start.saturating_add(len);
    if len == 0 {
        return Ok(());
    }
    if layout::FIRMWARE_OWNED.iter().any(|&(s, e)| start < e && s < end) {
        return Err(BootError::OverlapsFirmware { what, start, end });
    }
    if !map.is_ram(start, len) {
        return Err(BootError::DoesNotFit { what, start, end });
    }
    Ok(())
}

/// Loads `len` bytes of fw_cfg item `key`, from `offset`, to `dest`, after checking the range.
pub fn load_checked(
    env: &mut Env,
    what: &'static str,
    key: u16,
    offset: u32,
    dest: u64,
    len: u32,
) -> Result<(), BootError> {
    check_range(env.map, what, dest, u64::from(len))?;
    env.cfg.load_at(key, offset, dest, len, env.mem)?;
    Ok(())
}

/// Copies a command line of `len` bytes from fw_cfg item `key` to `layout::CMDLINE`, NUL-terminated,
/// after `name` and a space when `name` is not empty (multiboot's convention). Returns its address.
pub fn load_cmdline(
    env: &mut Env,
    name: &[u8],
    key: Option<u16>,
    len: u32,
    max: u64,
) -> Result<u64, BootError> {
    let max = max.min(layout::CMDLINE_MAX - 1);
    let item = key.map(|key| (key, len));
    write_named_string(env, "command line", layout::CMDLINE, name, item, max)?;
    Ok(layout::CMDLINE)
}

/// Writes at `at` the string `name`, then, when `item` (fw_cfg key, length) is given, a space
/// (if `name` is not empty) and the item's bytes, then a NUL: multiboot's "name args" form, or
/// the item alone. At most `max` bytes before the NUL. Returns the NUL's address.
pub fn write_named_string(
    env: &mut Env,
    what: &'static str,
    at: u64,
    name: &[u8],
    item: Option<(u16, u32)>,
    max: u64,
) -> Result<u64, BootError> {
    let space = u64::from(!name.is_empty() && item.is_some());
    let len = name.len() as u64 + space + item.map_or(0, |(_, n)| u64::from(n));
    if len > max {
        return Err(BootError::CmdlineTooLong { len, max });
    }
    env.mem.write(at, name);
    let mut end = at + name.len() as u64;
    if let Some((key, n)) = item {
        if space == 1 {
            env.mem.write(end, b" ");
            end += 1;
        }
        load_checked(env, what, key, 0, end, n)?;
        end += u64::from(n);
    }
    env.mem.write(end, &[0]);
    Ok(end)
}
