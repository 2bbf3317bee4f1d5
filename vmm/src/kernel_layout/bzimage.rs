//! A Linux bzImage (or zImage), laid out as QEMU's x86_load_linux does.
use super::*;

pub(super) fn bzimage(mut input: KernelInput) -> Result<KernelLayout> {
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
