//! Multiboot 1 kernels: the boot image and information structure QEMU builds.
use super::elf::Elf;
use super::*;

pub(super) fn multiboot(input: KernelInput, offset: usize) -> Result<KernelLayout> {
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
