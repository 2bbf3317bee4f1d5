//! A bzImage, booted through the Linux boot protocol's 64-bit entry (or its 32-bit entry when the
//! kernel has no `XLF_KERNEL_64`): the protected-mode part at 1 MiB, boot_params at 0x7000 with
//! the setup header copied from the image, RSI = boot_params.
use super::{layout, place_initrd, write, write_cmdline, CpuEntry, DirectBootError, Input, Mode, Plan};
use linux_loader::loader::{bzimage::BzImage, KernelLoader};
use minnow_bootproto::linux::{self as proto, loadflags, xloadflags, BootParams, E820_MAX_ENTRIES};
use std::io::Cursor;
use vm_memory::{GuestAddress, GuestMemoryMmap};
use zerocopy::{FromZeros, IntoBytes};

/// type_of_loader: "undefined" (boot.rst), as Firecracker and Cloud Hypervisor report.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xFF;

pub(super) fn load(input: &Input, plan: &Plan, ram: &GuestMemoryMmap) -> Result<CpuEntry, DirectBootError> {
    let path = &input.kernel.name;
    let image = &input.kernel.bytes;
    let bad = |reason: String| DirectBootError::BadBzImage {
        path: path.clone(),
        reason,
    };
    let header = proto::parse_header(image, image.len()).map_err(|e| bad(e.to_string()))?;
    if header.loadflags & loadflags::LOADED_HIGH == 0 {
        return Err(bad(
            "a zImage (no LOADED_HIGH): its kernel loads below 1 MiB".into()
        ));
    }
    // The kernel runs from 1 MiB for init_size bytes (decompressing in place), at least the size
    // of its protected-mode part.
    let pm_len = (image.len() - header.setup_size()) as u64;
    let need = u64::from(header.init_size.get())
        .max(pm_len)
        .next_multiple_of(0x1000);
    // Below the ACPI tables, if any: the RAM the e820 map hands over ends there.
    let ram_end = plan.ram_end;
    if layout::KERNEL + need > ram_end {
        return Err(DirectBootError::KernelTooLarge {
            path: path.clone(),
            start: layout::KERNEL,
            size: need,
            ram_end,
        });
    }
    BzImage::load(
        ram,
        Some(GuestAddress(layout::KERNEL)),
        &mut Cursor::new(&image[..]),
        Some(GuestAddress(layout::KERNEL)),
    )
    .map_err(|source| DirectBootError::Load {
        path: path.clone(),
        source,
    })?;
    let cmdline_size = u64::from(header.cmdline_size.get());
    write_cmdline(input, ram, cmdline_size)?;
    // initrd_addr_max is the highest address the initrd's last byte may have.
    let limit = u64::from(header.initrd_addr_max.get()) + 1;
    let initrd = place_initrd(input, plan, ram, layout::KERNEL + need, limit)?;

    let mut bp = BootParams::new_zeroed();
    let len = header.header_len();
    bp.hdr.as_mut_bytes()[..len].copy_from_slice(&image[proto::HEADER_OFFSET..][..len]);
    let hdr = &mut bp.hdr;
    hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    hdr.code32_start = (layout::KERNEL as u32).into();
    hdr.cmd_line_ptr = (layout::CMDLINE as u32).into();
    if let Some((addr, size)) = initrd {
        hdr.ramdisk_image = (addr as u32).into();
        hdr.ramdisk_size = (size as u32).into();
        bp.ext_ramdisk_image = ((addr >> 32) as u32).into();
        bp.ext_ramdisk_size = ((size >> 32) as u32).into();
    }
    if bp.hdr.vid_mode.get() == 0 {
        bp.hdr.vid_mode = 0xFFFF.into(); // "normal": no mode change (as minnow.rom)
    }
    bp.acpi_rsdp_addr = plan.rsdp().into(); // 0 without ACPI: the MP table instead
    let map = &plan.e820;
    for (slot, e) in bp.e820_table.iter_mut().zip(map) {
        *slot = *e;
    }
    bp.e820_entries = map.len().min(E820_MAX_ENTRIES) as u8;
    write(ram, "boot_params", layout::BOOT_PARAMS, bp.as_bytes())?;

    Ok(if header.xloadflags.get() & xloadflags::KERNEL_64 != 0 {
        CpuEntry {
            mode: Mode::Long64,
            rip: layout::KERNEL + proto::ENTRY64_OFFSET,
            rsp: layout::STACK_TOP,
            rsi: layout::BOOT_PARAMS,
            rbx: 0,
        }
    } else {
        // The 32-bit entry also wants EBX = EBP = EDI = 0, which they are.
        CpuEntry {
            mode: Mode::Protected32,
            rip: layout::KERNEL,
            rsp: layout::STACK_TOP,
            rsi: layout::BOOT_PARAMS,
            rbx: 0,
        }
    })
}
