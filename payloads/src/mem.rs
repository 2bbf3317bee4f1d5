//! Physical memory, as the payload sees it: identity-mapped from 0 to 4 GiB.
use zerocopy::FromBytes;

/// Read access to guest-physical memory.
pub trait Phys {
    /// The `len` bytes at physical `addr`, or `None` when the range is not readable (address 0,
    /// which no loader hands over, or beyond the identity map).
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]>;
}

/// Reads a `T` at `addr`.
pub fn read<T: FromBytes>(m: &dyn Phys, addr: u64) -> Option<T> {
    T::read_from_bytes(m.bytes(addr, core::mem::size_of::<T>())?).ok()
}

pub fn read_u32(m: &dyn Phys, addr: u64) -> Option<u32> {
    Some(u32::from_le_bytes(m.bytes(addr, 4)?.try_into().ok()?))
}

/// The NUL-terminated string at `addr` (without its NUL), if it ends within `max` bytes.
pub fn cstr(m: &dyn Phys, addr: u64, max: usize) -> Option<&[u8]> {
    let mut len = 0;
    loop {
        if len >= max {
            return None;
        }
        if *m.bytes(addr + len as u64, 1)?.first()? == 0 {
            return m.bytes(addr, len).or(Some(&[]));
        }
        len += 1;
    }
}

/// Offsets of the 16-byte-aligned paragraphs of `area` that start with `sig`: the RSDP and MP
/// floating pointer scans. One load and compare per paragraph.
pub fn paragraphs_starting_with<'a>(area: &'a [u8], sig: &'a [u8; 4]) -> impl Iterator<Item = usize> + 'a {
    let want = u32::from_le_bytes(*sig);
    area.chunks_exact(16)
        .enumerate()
        .filter(move |(_, c)| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) == want)
        .map(|(i, _)| 16 * i)
}

/// Byte-sum of `bytes`: ACPI and MP tables sum to 0 when their checksum is right.
pub fn sum8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// A sparse fake of physical memory for the host tests: separate regions, each a byte vector.
#[cfg(test)]
#[derive(Default)]
pub struct FakeMem {
    regions: Vec<(u64, Vec<u8>)>,
}

#[cfg(test)]
impl FakeMem {
    /// Writes `bytes` at `addr`, into the region that holds it or a new one.
    pub fn put(&mut self, addr: u64, bytes: &[u8]) {
        for (base, data) in &mut self.regions {
            if addr >= *base && addr + bytes.len() as u64 <= *base + data.len() as u64 {
                let off = (addr - *base) as usize;
                data[off..off + bytes.len()].copy_from_slice(bytes);
                return;
            }
        }
        self.regions.push((addr, bytes.to_vec()));
    }
    /// Adds a zeroed region.
    pub fn zeroed(&mut self, addr: u64, len: usize) {
        self.regions.push((addr, vec![0; len]));
    }
}

#[cfg(test)]
impl Phys for FakeMem {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        if addr == 0 {
            return None;
        }
        self.regions.iter().find_map(|(base, data)| {
            let off = addr.checked_sub(*base)? as usize;
            data.get(off..off.checked_add(len)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_strings_end_at_their_nul_and_within_bounds() {
        let mut m = FakeMem::default();
        m.put(0x1000, b"console=ttyS0\0rest");
        assert_eq!(cstr(&m, 0x1000, 100), Some(&b"console=ttyS0"[..]));
        assert_eq!(cstr(&m, 0x1000, 5), None, "no NUL within max");
        m.put(0x2000, b"\0");
        assert_eq!(cstr(&m, 0x2000, 0), None);
        assert_eq!(cstr(&m, 0x2000, 1), Some(&b""[..]));
        assert_eq!(cstr(&m, 0x3000, 10), None, "unmapped");
        assert_eq!(read_u32(&m, 0x1000), Some(u32::from_le_bytes(*b"cons")));
    }

    #[test]
    fn paragraph_scan_finds_aligned_signatures_only() {
        let mut area = vec![0u8; 64];
        area[16..20].copy_from_slice(b"_MP_");
        area[36..40].copy_from_slice(b"_MP_");
        area[48..52].copy_from_slice(b"_MP_");
        assert_eq!(
            paragraphs_starting_with(&area, b"_MP_").collect::<Vec<_>>(),
            [16, 48]
        );
    }
}
