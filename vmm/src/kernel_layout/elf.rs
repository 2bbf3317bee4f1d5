//! ELF kernels: the bounds-checked reader, and PVH kernels laid out as QEMU does.
use super::*;

/// The parts of an ELF file the loaders need, checked against the file's bounds.
pub(super) struct Elf {
    pub(super) machine: u16,
    pub(super) flags: u32,
    pub(super) entry: u64,
    pub(super) phdrs: Vec<Phdr>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Phdr {
    pub(super) kind: u32,
    pub(super) flags: u32,
    pub(super) offset: u64,
    pub(super) vaddr: u64,
    pub(super) paddr: u64,
    pub(super) filesz: u64,
    pub(super) memsz: u64,
    pub(super) align: u64,
}

impl Elf {
    pub(super) fn parse(path: &str, d: &[u8]) -> Result<Self> {
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
    pub(super) fn loads<'a>(&'a self, path: &str, d: &'a [u8], ram: u64) -> Result<Vec<(Phdr, &'a [u8])>> {
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
    pub(super) fn bounds(loads: &[(Phdr, &[u8])]) -> (u64, u64) {
        loads.iter().fold((u64::MAX, 0), |(lo, hi), (p, _)| {
            (lo.min(p.paddr), hi.max(p.paddr.saturating_add(p.memsz)))
        })
    }

    /// The entry load_elf reports: e_entry, moved from virtual to physical when it falls in an
    /// executable segment whose addresses differ.
    pub(super) fn physical_entry(&self) -> u64 {
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
    pub(super) fn pvh_entry(&self, path: &str, d: &[u8]) -> Result<Option<u32>> {
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

pub(super) fn pvh(mut input: KernelInput) -> Result<KernelLayout> {
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
