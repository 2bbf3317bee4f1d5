//! Kernels passed with QEMU's `-kernel`, laid out in fw_cfg as QEMU's x86_load_linux (bzImage,
//! PVH) and multiboot loader leave them. The layout QEMU chose is honoured exactly: since QEMU 7.1
//! setup_data nodes hold absolute addresses, so nothing may move.
use super::{linux, load_checked, load_cmdline, multiboot1, pvh, Env, Handoff};
use crate::error::BootError;
use crate::fw_cfg::FwCfg;
use minnow_bootproto::fw_cfg::key;
use minnow_bootproto::linux as proto;

/// Enough of the setup block to recognise the format and read the whole setup header.
const PEEK: usize = 0x270;

/// The `-kernel` items every path needs (and the firmware must not allocate over); the rest are
/// read by the path that needs them, since each read is a VM exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Items {
    pub kernel_addr: u32,
    pub kernel_size: u32,
    pub initrd_addr: u32,
    pub initrd_size: u32,
}

impl Items {
    pub fn read(cfg: &mut dyn FwCfg) -> Result<Self, BootError> {
        Ok(Self {
            kernel_addr: cfg.read_u32(key::KERNEL_ADDR)?,
            kernel_size: cfg.read_u32(key::KERNEL_SIZE)?,
            initrd_addr: cfg.read_u32(key::INITRD_ADDR)?,
            initrd_size: cfg.read_u32(key::INITRD_SIZE)?,
        })
    }
}

pub fn load(env: &mut Env, items: &Items) -> Result<Handoff, BootError> {
    // Past its end an item reads as zeros, so a fixed-size peek needs no SETUP_SIZE read: no setup
    // block (multiboot) peeks as all zeros.
    let mut head = [0u8; PEEK];
    env.cfg.read_item(key::SETUP_DATA, &mut head)?;
    if head.get(0x202..0x206) == Some(&proto::HEADER_MAGIC.to_le_bytes()[..]) {
        linux_kernel(env, &head, items)
    } else if minnow_bootproto::elf::is_elf(&head) {
        pvh_kernel(env, items)
    } else {
        multiboot_kernel(env, items)
    }
}

/// Loads the initrd QEMU describes, if any.
fn initrd(env: &mut Env, items: &Items) -> Result<Option<(u64, u64)>, BootError> {
    if items.initrd_size == 0 {
        return Ok(None);
    }
    let addr = u64::from(items.initrd_addr);
    load_checked(env, "initrd", key::INITRD_DATA, 0, addr, items.initrd_size)?;
    Ok(Some((addr, u64::from(items.initrd_size))))
}

fn linux_kernel(env: &mut Env, head: &[u8; PEEK], items: &Items) -> Result<Handoff, BootError> {
    // QEMU has already split the image into setup and kernel; there is no whole length to check.
    let header = proto::parse_header(head, usize::MAX)?;
    let kernel_addr = u64::from(items.kernel_addr);
    linux::check_kernel_room(env, &header, kernel_addr, u64::from(items.kernel_size))?;
    load_checked(env, "kernel", key::KERNEL_DATA, 0, kernel_addr, items.kernel_size)?;
    let cmdline_addr = u64::from(env.cfg.read_u32(key::CMDLINE_ADDR)?);
    let cmdline_size = env.cfg.read_u32(key::CMDLINE_SIZE)?;
    // CMDLINE_SIZE counts QEMU's NUL; the kernel's cmdline_size does not. Refuse what the kernel
    // would cut, as the raw-image route does, rather than let it lose the end silently.
    let max = u64::from(header.cmdline_size.get());
    if u64::from(cmdline_size.saturating_sub(1)) > max {
        return Err(BootError::CmdlineTooLong {
            len: u64::from(cmdline_size - 1),
            max,
        });
    }
    if cmdline_size > 0 {
        load_checked(
            env,
            "command line",
            key::CMDLINE_DATA,
            0,
            cmdline_addr,
            cmdline_size,
        )?;
    }
    let initrd = initrd(env, items)?;
    let loaded = linux::Loaded {
        header,
        header_len: header.header_len(),
        kernel_addr,
        cmdline_addr,
        initrd,
    };
    linux::finish(env, &loaded)
}

/// QEMU has already copied the ELF's segments into RAM; it gives the PVH entry, the command line
/// (without an address: firmware chooses) and the initrd.
fn pvh_kernel(env: &mut Env, items: &Items) -> Result<Handoff, BootError> {
    super::check_range(
        env.map,
        "kernel",
        u64::from(items.kernel_addr),
        u64::from(items.kernel_size),
    )?;
    let entry = env.cfg.read_u32(key::KERNEL_ENTRY)?;
    // CMDLINE_SIZE counts the NUL QEMU appends.
    let cmdline_size = env.cfg.read_u32(key::CMDLINE_SIZE)?;
    let cmdline_addr = load_cmdline(env, b"", Some(key::CMDLINE_DATA), cmdline_size, u64::MAX)?;
    let initrd = initrd(env, items)?;
    pvh::finish(
        env,
        &pvh::Loaded {
            entry,
            cmdline_addr,
            initrd,
        },
    )
}

/// Multiboot 1: QEMU built the MBI and put it in the INITRD slot; the image, command lines and
/// modules are all in KERNEL_DATA.
fn multiboot_kernel(env: &mut Env, items: &Items) -> Result<Handoff, BootError> {
    if items.initrd_size == 0 {
        return Err(BootError::UnknownFormat);
    }
    let addr = u64::from(items.kernel_addr);
    load_checked(env, "kernel", key::KERNEL_DATA, 0, addr, items.kernel_size)?;
    let mbi = u64::from(items.initrd_addr);
    load_checked(
        env,
        "multiboot information",
        key::INITRD_DATA,
        0,
        mbi,
        items.initrd_size,
    )?;
    let entry = env.cfg.read_u32(key::KERNEL_ENTRY)?;
    multiboot1::finish_qemu(env, entry, mbi)
}
