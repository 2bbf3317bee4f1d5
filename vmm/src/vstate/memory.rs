//! Guest RAM and the firmware ROM, laid out like QEMU's microvm: RAM from 0 up to 3 GiB, the rest
//! from 4 GiB; the ROM at the top of 4 GiB and its last (up to) 128 KiB again below 1 MiB.
use crate::layout;
use minnow_bootproto::rom;
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("ROM image of {0} bytes is not a non-zero multiple of 64 KiB")]
    RomSize(usize),
    #[error("ROM image of {0} bytes is larger than 16 MiB")]
    RomTooLarge(usize),
    #[error("cannot allocate the ROM mapping: {0}")]
    RomMap(vm_memory::mmap::MmapRegionError),
    #[error("cannot allocate {size} bytes of guest RAM at {addr:#x}: {source}")]
    Ram {
        addr: u64,
        size: usize,
        source: vm_memory::mmap::MmapRegionError,
    },
    #[error("guest memory regions overlap: {0}")]
    Regions(vm_memory::GuestRegionCollectionError),
}

/// The ROM: one host mapping the VM sees twice, writable, as microvm's firmware expects
/// (QEMU maps it as RAM there, and qboot and SeaBIOS keep their data in it).
pub struct Rom {
    pub mapping: MmapRegion,
}

impl Rom {
    pub fn new(image: &[u8]) -> Result<Self, MemoryError> {
        let size = image.len();
        if size == 0 || !(size as u64).is_multiple_of(rom::SIZE_UNIT) {
            return Err(MemoryError::RomSize(size));
        }
        if size > 16 << 20 {
            return Err(MemoryError::RomTooLarge(size));
        }
        let mapping = MmapRegion::new(size).map_err(MemoryError::RomMap)?;
        // SAFETY: the mapping is `size` bytes, freshly allocated, and nothing else refers to it yet.
        unsafe { std::ptr::copy_nonoverlapping(image.as_ptr(), mapping.as_ptr(), size) };
        Ok(Self { mapping })
    }

    pub fn size(&self) -> u64 {
        self.mapping.size() as u64
    }

    /// Puts `image`'s bytes back (a reset: the firmware keeps data in its ROM, as on QEMU's
    /// microvm, and starts again from the pristine image).
    pub fn restore(&self, image: &[u8]) {
        let len = image.len().min(self.mapping.size());
        // SAFETY: `len` bytes fit the live mapping; the vCPUs are parked and no device DMA runs
        // during a reset, so nothing else writes it meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(image.as_ptr(), self.mapping.as_ptr(), len) };
    }

    /// Its bytes as the guest left them (the firmware keeps data in its ROM).
    pub fn contents(&self) -> Vec<u8> {
        let mut bytes = vec![0u8; self.mapping.size()];
        // SAFETY: the mapping is `size` bytes and lives as long as `self`; the vCPUs are parked
        // while a snapshot reads it.
        unsafe { std::ptr::copy_nonoverlapping(self.mapping.as_ptr(), bytes.as_mut_ptr(), bytes.len()) };
        bytes
    }

    /// Guest-physical ranges where the ROM appears, with their offsets into the ROM:
    /// `(guest address, length, offset)`.
    pub fn windows(&self) -> [(u64, u64, u64); 2] {
        let size = self.size();
        let (low, low_len) = rom::low_alias(size);
        [(rom::high_base(size), size, 0), (low, low_len, size - low_len)]
    }
}

/// Guest RAM ranges for `size` bytes, leaving a hole where the ROM's low alias sits.
pub fn ram_ranges(size: u64, rom_low_alias: Option<(u64, u64)>) -> Vec<(GuestAddress, usize)> {
    let low = size.min(layout::LOW_RAM_MAX);
    let mut ranges = Vec::new();
    match rom_low_alias {
        Some((start, len)) if start < low => {
            ranges.push((GuestAddress(0), start as usize));
            if start + len < low {
                ranges.push((GuestAddress(start + len), (low - start - len) as usize));
            }
        }
        _ => ranges.push((GuestAddress(0), low as usize)),
    }
    if size > low {
        ranges.push((GuestAddress(layout::HIGH_RAM_START), (size - low) as usize));
    }
    ranges
}

/// Guest memory: `size` bytes of RAM and, when there is a ROM, its two windows over the ROM's one
/// host mapping. Everything that touches guest memory (KVM's slots, fw_cfg DMA) sees the same
/// map: qboot and SeaBIOS keep DMA buffers in their own F-segment data.
pub fn create(size: u64, rom: Option<&Rom>) -> Result<GuestMemoryMmap, MemoryError> {
    let alias = rom.map(|r| (r.windows()[1].0, r.windows()[1].1));
    let mut regions = Vec::new();
    for (addr, len) in ram_ranges(size, alias) {
        let ram = |source| MemoryError::Ram {
            addr: addr.0,
            size: len,
            source,
        };
        let mapping = MmapRegion::new(len).map_err(ram)?;
        dont_fork(mapping.as_ptr(), len);
        regions.extend(GuestRegionMmap::new(mapping, addr));
    }
    if let Some(rom) = rom {
        for (addr, len, offset) in rom.windows() {
            // SAFETY: the window lies inside the ROM's live mapping (offset + len <= its size, both
            // page-aligned), which the machine keeps until after guest memory is gone; the
            // protection and flags are those MmapRegion::new created it with.
            let mapping = unsafe {
                MmapRegion::build_raw(
                    rom.mapping.as_ptr().add(offset as usize),
                    len as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_PRIVATE,
                )
            }
            .map_err(MemoryError::RomMap)?;
            regions.extend(GuestRegionMmap::new(mapping, GuestAddress(addr)));
        }
    }
    regions.sort_by_key(vm_memory::GuestMemoryRegion::start_addr);
    GuestMemoryMmap::from_regions(regions).map_err(MemoryError::Regions)
}

/// Leaves guest RAM out of any child the VMM forks (the snapshot broker, passt before its
/// exec), as QEMU does: a child would otherwise keep copies of pages the guest writes next.
pub fn dont_fork(host: *mut u8, len: usize) {
    // SAFETY: madvise on a mapping of `len` bytes at `host` that the caller owns; advice only.
    let r = unsafe { libc::madvise(host.cast(), len, libc::MADV_DONTFORK) };
    if r != 0 {
        crate::report!("guest RAM: MADV_DONTFORK: {}", std::io::Error::last_os_error());
    }
}

/// The RAM ranges the guest can use, as `(start, size)`: what etc/e820 lists.
pub fn ram_map(size: u64) -> Vec<(u64, u64)> {
    let low = size.min(layout::LOW_RAM_MAX);
    let mut map = vec![(0, low)];
    if size > low {
        map.push((layout::HIGH_RAM_START, size - low));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_is_split_at_3gib_with_a_hole_for_the_rom_alias() {
        let alias = Some((0xF_0000, 0x1_0000));
        assert_eq!(
            ram_ranges(512 << 20, alias),
            vec![
                (GuestAddress(0), 0xF_0000),
                (GuestAddress(0x10_0000), (512 << 20) - 0x10_0000)
            ]
        );
        let r = ram_ranges(4 << 30, alias);
        assert_eq!(r[2], (GuestAddress(1 << 32), 1 << 30));
        assert_eq!(ram_map(4 << 30), vec![(0, 3 << 30), (1 << 32, 1 << 30)]);
        assert_eq!(ram_ranges(64 << 20, None), vec![(GuestAddress(0), 64 << 20)]);
    }

    #[test]
    fn roms_must_be_whole_64k_units_and_map_twice() {
        assert!(matches!(Rom::new(&[0; 1000]), Err(MemoryError::RomSize(1000))));
        assert!(matches!(Rom::new(&[]), Err(MemoryError::RomSize(0))));
        let rom = Rom::new(&vec![0xAB; 256 << 10]).unwrap();
        assert_eq!(
            rom.windows(),
            [(0xFFFC_0000, 256 << 10, 0), (0xE_0000, 128 << 10, 128 << 10)]
        );
    }
}
