//! An ELF kernel with a PVH note (XEN_ELFNOTE_PHYS32_ENTRY), booted through PVH: its segments
//! where they say, `hvm_start_info` v1 at 0x6000 with the memory map, the command line and the
//! initrd as module 0, EBX = start_info, in flat 32-bit protected mode with paging off.
use super::{layout, place_initrd, write, write_cmdline, CpuEntry, DirectBootError, Input, Mode, Plan};
use crate::kernel_layout;
use minnow_bootproto::pvh::{MemmapEntry, ModlistEntry, StartInfo, START_MAGIC};
use vm_memory::GuestMemoryMmap;
use zerocopy::IntoBytes;

/// Zeroes `len` bytes from `addr` (a segment's bss), a page-sized buffer at a time.
fn zero(ram: &GuestMemoryMmap, addr: u64, len: u64) -> Result<(), DirectBootError> {
    const CHUNK: u64 = 0x1_0000;
    let zeros = [0u8; CHUNK as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(CHUNK);
        write(ram, "kernel segment's zero fill", addr + at, &zeros[..n as usize])?;
        at += n;
    }
    Ok(())
}

pub(super) fn load(input: &Input, plan: &Plan, ram: &GuestMemoryMmap) -> Result<CpuEntry, DirectBootError> {
    let path = &input.kernel.name;
    let image = &input.kernel.bytes;
    // Checked before anything is written: every segment within the file and the RAM below 4 GiB
    // (kernel_layout's ELF reader, which also lays PVH kernels out for the firmware, on the ELF
    // reader minnow.rom uses) below the ACPI tables, if any, and a note. 32- and 64-bit alike.
    let elf = kernel_layout::elf_image(path, image, plan.ram_end).map_err(|e| match e {
        kernel_layout::KernelLayoutError::OutsideRam { addr, end, ram, .. } => {
            DirectBootError::KernelTooLarge {
                path: path.clone(),
                start: addr,
                size: end.saturating_sub(addr),
                ram_end: ram,
            }
        }
        other => DirectBootError::Elf(other),
    })?;
    let (low, high) = (elf.low, elf.high);
    let Some(entry) = elf.pvh_entry.map(u64::from) else {
        return Err(DirectBootError::NoPvhNote { path: path.clone() });
    };
    if low < layout::KERNEL {
        return Err(DirectBootError::BelowHighMemory {
            path: path.clone(),
            addr: low,
        });
    }
    if !(low..high).contains(&entry) {
        return Err(DirectBootError::PvhEntryOutside {
            path: path.clone(),
            entry,
            low,
            high,
        });
    }
    for &(addr, data, memsz) in &elf.segments {
        write(ram, "kernel segment", addr, data)?;
        zero(ram, addr + data.len() as u64, memsz - data.len() as u64)?;
    }
    write_cmdline(input, ram, layout::CMDLINE_MAX - 1)?;
    let initrd = place_initrd(input, plan, ram, high.next_multiple_of(0x1000), u64::MAX)?;

    let max = ((layout::PVH_MEMMAP_END - layout::PVH_MEMMAP) / 24) as usize;
    let memmap: Vec<u8> = plan
        .e820
        .iter()
        .take(max)
        .flat_map(|e| {
            let m = MemmapEntry {
                addr: e.addr,
                size: e.size,
                kind: e.kind,
                reserved: 0.into(),
            };
            m.as_bytes().to_vec()
        })
        .collect();
    write(ram, "PVH memory map", layout::PVH_MEMMAP, &memmap)?;
    let mut info = StartInfo {
        magic: START_MAGIC.into(),
        version: 1.into(),
        cmdline_paddr: layout::CMDLINE.into(),
        rsdp_paddr: plan.rsdp().into(), // 0 without ACPI: the MP table instead
        memmap_paddr: layout::PVH_MEMMAP.into(),
        memmap_entries: ((memmap.len() / 24) as u32).into(),
        ..Default::default()
    };
    if let Some((paddr, size)) = initrd {
        let module = ModlistEntry {
            paddr: paddr.into(),
            size: size.into(),
            ..Default::default()
        };
        write(ram, "PVH module list", layout::PVH_MODLIST, module.as_bytes())?;
        info.nr_modules = 1.into();
        info.modlist_paddr = layout::PVH_MODLIST.into();
    }
    write(ram, "PVH start info", layout::PVH_START_INFO, info.as_bytes())?;
    Ok(CpuEntry {
        mode: Mode::Protected32,
        rip: entry,
        rsp: layout::STACK_TOP,
        rsi: 0,
        rbx: layout::PVH_START_INFO,
    })
}
