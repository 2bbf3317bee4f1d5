//! Just enough ELF (32- and 64-bit, little-endian x86) to load a kernel's PT_LOAD segments and
//! read its notes.

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
/// Most program headers we look at.
pub const MAX_PHDRS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Truncated,
    /// Not little-endian x86 or x86_64.
    WrongMachine(u16),
    TooManySegments(u16),
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotElf => write!(f, "not an ELF image"),
            Self::Truncated => write!(f, "ELF headers run past the end of the image"),
            Self::WrongMachine(m) => write!(f, "ELF machine {m} is not x86"),
            Self::TooManySegments(n) => write!(f, "{n} program headers, at most {MAX_PHDRS} supported"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub is_64: bool,
    pub entry: u64,
    pub phoff: u64,
    pub phentsize: u16,
    pub phnum: u16,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub kind: u32,
    pub offset: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, ElfError> {
    Ok(u16::from_le_bytes(
        b.get(o..o + 2)
            .ok_or(ElfError::Truncated)?
            .try_into()
            .map_err(|_| ElfError::Truncated)?,
    ))
}
fn u32_at(b: &[u8], o: usize) -> Result<u32, ElfError> {
    Ok(u32::from_le_bytes(
        b.get(o..o + 4)
            .ok_or(ElfError::Truncated)?
            .try_into()
            .map_err(|_| ElfError::Truncated)?,
    ))
}
fn u64_at(b: &[u8], o: usize) -> Result<u64, ElfError> {
    Ok(u64::from_le_bytes(
        b.get(o..o + 8)
            .ok_or(ElfError::Truncated)?
            .try_into()
            .map_err(|_| ElfError::Truncated)?,
    ))
}

/// Whether `b` starts with the ELF magic.
pub fn is_elf(b: &[u8]) -> bool {
    b.starts_with(b"\x7fELF")
}

/// Parses the file header from the image's first bytes (at least 64).
pub fn parse_header(b: &[u8]) -> Result<Header, ElfError> {
    if !is_elf(b) {
        return Err(ElfError::NotElf);
    }
    let is_64 = match b.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(ElfError::NotElf),
    };
    let machine = u16_at(b, 18)?;
    if b.get(5) != Some(&1) || !(machine == EM_386 || machine == EM_X86_64) {
        return Err(ElfError::WrongMachine(machine));
    }
    let h = if is_64 {
        Header {
            is_64,
            entry: u64_at(b, 24)?,
            phoff: u64_at(b, 32)?,
            phentsize: u16_at(b, 54)?,
            phnum: u16_at(b, 56)?,
        }
    } else {
        Header {
            is_64,
            entry: u64::from(u32_at(b, 24)?),
            phoff: u64::from(u32_at(b, 28)?),
            phentsize: u16_at(b, 42)?,
            phnum: u16_at(b, 44)?,
        }
    };
    let min = if is_64 { 56 } else { 32 };
    if usize::from(h.phentsize) < min {
        return Err(ElfError::Truncated);
    }
    if usize::from(h.phnum) > MAX_PHDRS {
        return Err(ElfError::TooManySegments(h.phnum));
    }
    Ok(h)
}

/// Parses one program header.
pub fn parse_segment(h: &Header, b: &[u8]) -> Result<Segment, ElfError> {
    Ok(if h.is_64 {
        Segment {
            kind: u32_at(b, 0)?,
            offset: u64_at(b, 8)?,
            paddr: u64_at(b, 24)?,
            filesz: u64_at(b, 32)?,
            memsz: u64_at(b, 40)?,
        }
    } else {
        Segment {
            kind: u32_at(b, 0)?,
            offset: u64::from(u32_at(b, 4)?),
            paddr: u64::from(u32_at(b, 12)?),
            filesz: u64::from(u32_at(b, 16)?),
            memsz: u64::from(u32_at(b, 20)?),
        }
    })
}

/// Finds the descriptor of the note `name`/`kind` in a PT_NOTE segment's bytes.
pub fn find_note<'a>(notes: &'a [u8], name: &[u8], kind: u32) -> Option<&'a [u8]> {
    let mut at = 0usize;
    while at + 12 <= notes.len() {
        let namesz = u32_at(notes, at).ok()? as usize;
        let descsz = u32_at(notes, at + 4).ok()? as usize;
        let ty = u32_at(notes, at + 8).ok()?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(namesz.checked_next_multiple_of(4)?)?;
        let next = desc_at.checked_add(descsz.checked_next_multiple_of(4)?)?;
        let n = notes.get(name_at..name_at + namesz)?;
        let desc = notes.get(desc_at..desc_at + descsz)?;
        // The name is NUL-terminated in the file.
        if ty == kind && n.strip_suffix(&[0]).unwrap_or(n) == name {
            return Some(desc);
        }
        at = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(((name.len() + 1) as u32).to_le_bytes());
        v.extend((desc.len() as u32).to_le_bytes());
        v.extend(kind.to_le_bytes());
        v.extend(name);
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn finds_the_pvh_note_among_others() {
        let mut notes = note(b"GNU", 3, &[1, 2, 3, 4, 5]);
        notes.extend(note(b"Xen", 18, &0x100_0000u64.to_le_bytes()));
        assert_eq!(
            find_note(&notes, b"Xen", 18),
            Some(&0x100_0000u64.to_le_bytes()[..])
        );
        assert_eq!(find_note(&notes, b"Xen", 19), None);
        assert_eq!(
            find_note(&notes[..notes.len() - 4], b"Xen", 18),
            None,
            "truncated desc"
        );
        let mut bad = note(b"Xen", 18, &[0; 4]);
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find_note(&bad, b"Xen", 18), None, "huge descsz does not overflow");
    }

    #[test]
    fn parses_32_and_64_bit_headers_and_rejects_others() {
        let mut h64 = [0u8; 64];
        h64[..4].copy_from_slice(b"\x7fELF");
        h64[4] = 2;
        h64[5] = 1;
        h64[18] = 62;
        h64[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
        h64[32..40].copy_from_slice(&64u64.to_le_bytes());
        h64[54] = 56;
        h64[56] = 2;
        let h = parse_header(&h64).unwrap();
        assert_eq!((h.is_64, h.entry, h.phoff, h.phnum), (true, 0x1000, 64, 2));
        let mut h32 = [0u8; 52];
        h32[..4].copy_from_slice(b"\x7fELF");
        h32[4] = 1;
        h32[5] = 1;
        h32[18] = 3;
        h32[24..28].copy_from_slice(&0x10_0000u32.to_le_bytes());
        h32[42] = 32;
        assert!(!parse_header(&h32).unwrap().is_64);
        h32[18] = 40;
        assert_eq!(parse_header(&h32), Err(ElfError::WrongMachine(40)));
        assert_eq!(parse_header(b"MZ\0\0"), Err(ElfError::NotElf));
        assert_eq!(parse_header(&h64[..20]), Err(ElfError::Truncated));
    }
}
