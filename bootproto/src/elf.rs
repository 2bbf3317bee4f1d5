//! ELF as kernels use it: the file header, program headers and notes of 32- and 64-bit
//! little-endian x86 images. The one ELF reader of the firmware (which reads an image piece by
//! piece from fw_cfg) and the VMM (which holds it whole), so an image one side boots the other
//! reads the same way. Every read is bounds-checked: a malformed image is an error, never a panic.
use core::fmt;

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
/// Program header flag: executable.
pub const PF_X: u32 = 1;
pub const EM_386: u16 = 3;
pub const EM_X86_64: u16 = 62;
/// Bytes that always hold the file header (a 64-bit one is 64 bytes, a 32-bit one 52).
pub const HEADER_MAX: usize = 64;
/// Bytes that always hold one program header of either class.
pub const PHDR_MAX: usize = 56;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    NotElf,
    /// EI_CLASS is neither 1 (32-bit) nor 2 (64-bit).
    BadClass(u8),
    /// EI_DATA is not 1 (little-endian).
    NotLittleEndian,
    /// A header runs past the end of the bytes given.
    Truncated,
    /// e_phentsize is smaller than a program header of the file's class.
    ProgramHeaderSize(u16),
    /// Program header `index` lies past the end of the file.
    ProgramHeaderOutside { index: u16 },
    /// The file data of segment `index` lies past the end of the file, or is larger than its
    /// memory image.
    SegmentOutside { index: u16 },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf => write!(f, "no ELF magic"),
            Self::BadClass(c) => write!(f, "ELF class {c} is neither 32- nor 64-bit"),
            Self::NotLittleEndian => write!(f, "not little-endian"),
            Self::Truncated => write!(f, "file too short for its ELF header"),
            Self::ProgramHeaderSize(n) => write!(f, "program header entries of {n} bytes"),
            Self::ProgramHeaderOutside { index } => {
                write!(f, "program header {index} is past the end of the file")
            }
            Self::SegmentOutside { index } => write!(
                f,
                "segment {index}: its file data is past the end of the file or larger than its memory size"
            ),
        }
    }
}

/// The file header fields loaders use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub is_64: bool,
    pub machine: u16,
    pub flags: u32,
    pub entry: u64,
    pub phoff: u64,
    pub phentsize: u16,
    pub phnum: u16,
}

/// One program header, widened to 64 bits whatever the class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramHeader {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

fn bytes<const N: usize>(b: &[u8], at: u64) -> Option<[u8; N]> {
    let at = usize::try_from(at).ok()?;
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
/// Little-endian u16 at `at`, if in bounds.
pub fn u16_at(b: &[u8], at: u64) -> Option<u16> {
    bytes(b, at).map(u16::from_le_bytes)
}
/// Little-endian u32 at `at`, if in bounds.
pub fn u32_at(b: &[u8], at: u64) -> Option<u32> {
    bytes(b, at).map(u32::from_le_bytes)
}
/// Little-endian u64 at `at`, if in bounds.
pub fn u64_at(b: &[u8], at: u64) -> Option<u64> {
    bytes(b, at).map(u64::from_le_bytes)
}

/// Whether `b` starts with the ELF magic.
pub fn is_elf(b: &[u8]) -> bool {
    b.starts_with(b"\x7fELF")
}

impl Header {
    /// Parses the file header from the image's first bytes ([`HEADER_MAX`] suffice). The machine
    /// is not checked here: what a loader accepts depends on the protocol.
    pub fn parse(b: &[u8]) -> Result<Self, ElfError> {
        if !is_elf(b) {
            return Err(ElfError::NotElf);
        }
        let is_64 = match b.get(4) {
            Some(1) => false,
            Some(2) => true,
            Some(&c) => return Err(ElfError::BadClass(c)),
            None => return Err(ElfError::Truncated),
        };
        if b.get(5) != Some(&1) {
            return Err(ElfError::NotLittleEndian);
        }
        let h = Self::fields(b, is_64).ok_or(ElfError::Truncated)?;
        if h.phnum > 0 && usize::from(h.phentsize) < h.phdr_size() {
            return Err(ElfError::ProgramHeaderSize(h.phentsize));
        }
        Ok(h)
    }

    fn fields(b: &[u8], is_64: bool) -> Option<Self> {
        let machine = u16_at(b, 18)?;
        Some(if is_64 {
            Self {
                is_64,
                machine,
                entry: u64_at(b, 24)?,
                phoff: u64_at(b, 32)?,
                flags: u32_at(b, 48)?,
                phentsize: u16_at(b, 54)?,
                phnum: u16_at(b, 56)?,
            }
        } else {
            Self {
                is_64,
                machine,
                entry: u32_at(b, 24)?.into(),
                phoff: u32_at(b, 28)?.into(),
                flags: u32_at(b, 36)?,
                phentsize: u16_at(b, 42)?,
                phnum: u16_at(b, 44)?,
            }
        })
    }

    /// The size of one program header of this class.
    pub fn phdr_size(&self) -> usize {
        if self.is_64 {
            56
        } else {
            32
        }
    }

    /// Where program header `index` starts in the file, if the arithmetic does not overflow.
    pub fn phdr_offset(&self, index: u16) -> Option<u64> {
        self.phoff
            .checked_add(u64::from(index).checked_mul(u64::from(self.phentsize))?)
    }

    /// Parses one program header from `b`, the bytes at its offset (at least [`Self::phdr_size`]).
    pub fn parse_phdr(&self, b: &[u8]) -> Result<ProgramHeader, ElfError> {
        let p = if self.is_64 {
            (|| {
                Some(ProgramHeader {
                    kind: u32_at(b, 0)?,
                    flags: u32_at(b, 4)?,
                    offset: u64_at(b, 8)?,
                    vaddr: u64_at(b, 16)?,
                    paddr: u64_at(b, 24)?,
                    filesz: u64_at(b, 32)?,
                    memsz: u64_at(b, 40)?,
                    align: u64_at(b, 48)?,
                })
            })()
        } else {
            (|| {
                Some(ProgramHeader {
                    kind: u32_at(b, 0)?,
                    offset: u32_at(b, 4)?.into(),
                    vaddr: u32_at(b, 8)?.into(),
                    paddr: u32_at(b, 12)?.into(),
                    filesz: u32_at(b, 16)?.into(),
                    memsz: u32_at(b, 20)?.into(),
                    flags: u32_at(b, 24)?,
                    align: u32_at(b, 28)?.into(),
                })
            })()
        };
        p.ok_or(ElfError::Truncated)
    }

    /// Program header `index` of the whole image `image`.
    pub fn phdr(&self, image: &[u8], index: u16) -> Result<ProgramHeader, ElfError> {
        let outside = ElfError::ProgramHeaderOutside { index };
        let at = self
            .phdr_offset(index)
            .and_then(|a| usize::try_from(a).ok())
            .ok_or(outside)?;
        let end = at.checked_add(self.phdr_size()).ok_or(outside)?;
        self.parse_phdr(image.get(at..end).ok_or(outside)?)
    }
}

impl ProgramHeader {
    /// The file bytes of this segment within `image`, if they lie in it.
    pub fn data<'a>(&self, image: &'a [u8]) -> Option<&'a [u8]> {
        let at = usize::try_from(self.offset).ok()?;
        let len = usize::try_from(self.filesz).ok()?;
        image.get(at..at.checked_add(len)?)
    }

    /// The alignment of the notes in this PT_NOTE segment: 8 when p_align says 8, else 4 (as
    /// QEMU reads them, without dividing by a p_align of 0).
    pub fn note_align(&self) -> u64 {
        if self.align == 8 {
            8
        } else {
            4
        }
    }
}

/// One note: its name without the terminating NUL, its type and its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    pub name: &'a [u8],
    pub kind: u32,
    pub desc: &'a [u8],
}

/// The notes of a PT_NOTE segment's bytes; stops at the first one that does not fit.
pub struct Notes<'a> {
    bytes: &'a [u8],
    at: u64,
    align: u64,
}

impl<'a> Notes<'a> {
    /// `align`: [`ProgramHeader::note_align`].
    pub fn new(bytes: &'a [u8], align: u64) -> Self {
        Self { bytes, at: 0, align }
    }
}

impl<'a> Iterator for Notes<'a> {
    type Item = Note<'a>;

    fn next(&mut self) -> Option<Note<'a>> {
        let b = self.bytes;
        let namesz = u32_at(b, self.at)?;
        let descsz = u32_at(b, self.at.checked_add(4)?)?;
        let kind = u32_at(b, self.at.checked_add(8)?)?;
        let name_at = self.at.checked_add(12)?;
        let desc_at = name_at.checked_add(u64::from(namesz).checked_next_multiple_of(self.align)?)?;
        let next = desc_at.checked_add(u64::from(descsz).checked_next_multiple_of(self.align)?)?;
        let slice = |at: u64, len: u32| {
            let at = usize::try_from(at).ok()?;
            b.get(at..at.checked_add(len as usize)?)
        };
        let name = slice(name_at, namesz)?;
        let desc = slice(desc_at, descsz)?;
        self.at = next;
        Some(Note {
            name: name.strip_suffix(&[0]).unwrap_or(name),
            kind,
            desc,
        })
    }
}

/// The descriptor of the first note named `name` of type `kind`.
pub fn find_note<'a>(notes: &'a [u8], align: u64, name: &[u8], kind: u32) -> Option<&'a [u8]> {
    Notes::new(notes, align)
        .find(|n| n.kind == kind && n.name == name)
        .map(|n| n.desc)
}

#[cfg(test)]
mod tests;
