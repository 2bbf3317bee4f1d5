//! ELF kernels: the checks QEMU's load_elf makes, over the ELF reader the firmware shares
//! (`minnow_bootproto::elf`), and PVH kernels laid out as QEMU does.
use super::*;
use minnow_bootproto::elf::{self as wire, ElfError, Header};

pub(super) use wire::ProgramHeader as Phdr;

/// The parts of an ELF file the loaders need, checked against the file's bounds.
pub(super) struct Elf {
    pub(super) machine: u16,
    pub(super) flags: u32,
    pub(super) entry: u64,
    pub(super) phdrs: Vec<Phdr>,
}

impl Elf {
    pub(super) fn parse(path: &str, d: &[u8]) -> Result<Self> {
        let bad = |e: ElfError| KernelLayoutError::BadElf {
            path: path.into(),
            reason: e.to_string(),
        };
        let h = Header::parse(d).map_err(bad)?;
        let phdrs = (0..h.phnum)
            .map(|i| h.phdr(d, i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(bad)?;
        Ok(Self {
            machine: h.machine,
            flags: h.flags,
            entry: h.entry,
            phdrs,
        })
    }

    /// The PT_LOAD segments, each checked: file data within the file, filesz <= memsz, and the
    /// memory range within `ram` bytes.
    pub(super) fn loads<'d>(&self, path: &str, d: &'d [u8], ram: u64) -> Result<Vec<(Phdr, &'d [u8])>> {
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
            let data = ph.data(d).ok_or_else(|| {
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
            let notes = ph.data(d).ok_or_else(|| KernelLayoutError::BadElf {
                path: path.into(),
                reason: format!(
                    "notes at {:#x}+{:#x} are past the end of the file",
                    ph.offset, ph.filesz
                ),
            })?;
            let note = wire::find_note(
                notes,
                ph.note_align(),
                minnow_bootproto::pvh::NOTE_NAME,
                XEN_ELFNOTE_PHYS32_ENTRY,
            );
            if let Some(desc) = note {
                return match minnow_bootproto::pvh::entry_from_note(desc) {
                    Some(entry) => Ok(Some(entry)),
                    None => Err(KernelLayoutError::BadElf {
                        path: path.into(),
                        reason: "truncated PVH entry note".into(),
                    }),
                };
            }
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// PVH

/// An ELF kernel as a loader that writes the segments itself sees it (`-bios none`, see
/// direct_boot.rs), 32- or 64-bit alike.
pub struct ElfImage<'a> {
    /// The guest range `[low, high)` the PT_LOAD segments occupy.
    pub low: u64,
    pub high: u64,
    /// The PVH entry, `None` without the note.
    pub pvh_entry: Option<u32>,
    /// Each PT_LOAD segment: its address, its file bytes, and its size in memory (the rest zeros).
    pub segments: Vec<(u64, &'a [u8], u64)>,
}

/// Reads `d` as [`layout`] does, each segment checked within the file and within the
/// `below_4g_mem_size` bytes of RAM below 4 GiB.
pub fn elf_image<'a>(path: &str, d: &'a [u8], below_4g_mem_size: u64) -> Result<ElfImage<'a>> {
    let elf = Elf::parse(path, d)?;
    let loads = elf.loads(path, d, below_4g_mem_size)?;
    let (low, high) = Elf::bounds(&loads);
    Ok(ElfImage {
        low,
        high,
        pvh_entry: elf.pvh_entry(path, d)?,
        segments: loads.iter().map(|(p, data)| (p.paddr, *data, p.memsz)).collect(),
    })
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
