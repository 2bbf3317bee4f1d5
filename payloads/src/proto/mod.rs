//! Each protocol's boot information, read into one shape ([`Handed`]) for [`crate::analyze`].
use crate::acpi::RsdpSource;
use crate::entry::EntryState;
use crate::memmap::MemMap;
use crate::{Check, Reason};

pub mod linux;
pub mod multiboot1;
pub mod multiboot2;
pub mod pvh;

/// Most boot-information structures remembered for the overlap checks.
pub const MAX_REGIONS: usize = 8;

/// What a loader handed over, before any checking beyond the protocol's own structure.
#[derive(Clone, Debug)]
pub struct Handed<'m> {
    pub proto: &'static str,
    /// 16, 32 or 64 (see [`crate::report::Report::entry`]).
    pub entry: u64,
    pub mode: Check,
    pub magic: Check,
    /// Physical address of the NUL-terminated command line.
    pub cmdline: Option<u64>,
    /// The longest command line the kernel accepts, if its protocol says (Linux: cmdline_size).
    pub cmdline_max: Option<u64>,
    /// Physical address and length of the initrd (module 0).
    pub initrd: Option<(u64, u64)>,
    pub map: Option<MemMap>,
    /// A malformed map (bad entry size, too many entries), found while reading it.
    pub map_error: Option<Reason>,
    /// Multiboot's mem_lower and mem_upper, in KiB.
    pub meminfo: Option<(u32, u32)>,
    pub rsdp: RsdpSource<'m>,
    /// Memory the boot information occupies: must not overlap the payload or the initrd.
    pub regions: [(u64, u64); MAX_REGIONS],
    pub region_count: usize,
    /// The protocol makes the loader zero .bss (multiboot's bss_end_addr, an ELF's p_memsz).
    pub bss_must_be_zero: bool,
    pub cr0: u64,
    /// The payload's own identity map uses 1 GiB pages (else 2 MiB).
    pub gib_pages: bool,
}

impl<'m> Handed<'m> {
    pub fn new(proto: &'static str, s: &EntryState) -> Self {
        Self {
            proto,
            entry: s.bits,
            mode: Ok(()),
            magic: Ok(()),
            cmdline: None,
            cmdline_max: None,
            initrd: None,
            map: None,
            map_error: None,
            meminfo: None,
            rsdp: RsdpSource::Scan,
            regions: [(0, 0); MAX_REGIONS],
            region_count: 0,
            bss_must_be_zero: true,
            cr0: s.cr0,
            gib_pages: s.gib_pages != 0,
        }
    }

    /// Remembers that `[addr, addr + len)` holds boot information.
    pub fn region(&mut self, addr: u64, len: u64) {
        if let Some(slot) = self.regions.get_mut(self.region_count) {
            *slot = (addr, len);
            self.region_count += 1;
        }
    }

    pub fn regions(&self) -> &[(u64, u64)] {
        &self.regions[..self.region_count]
    }

    /// Records the first structural problem (later ones are usually consequences).
    pub fn fail(&mut self, what: &'static str) {
        if self.magic.is_ok() {
            self.magic = Err(Reason::new(what));
        }
    }
}

fn le32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from(le32(b, off)) | (u64::from(le32(b, off + 4)) << 32)
}
