//! The firmware's long-mode page tables: an identity map of the low 4 GiB.
//!
//! With 1 GiB pages (every KVM host CPU has them) the map is two tables, a PML4 and a PDPT,
//! built at compile time and linked into the ROM at `layout::ROM_LOW` (firmware.ld asserts it):
//! reset.S loads CR3 and runs no loop. CPUs without 1 GiB pages (QEMU's default TCG model,
//! qemu64) get 2 MiB pages instead, which reset.S builds in RAM at `layout::FALLBACK_PAGE_TABLES`
//! in the same format as [`fallback_directory_entry`].
//!
//! Accessed and dirty bits are preset so the CPU never writes to the ROM tables: on pc/q35 they
//! sit in read-only ROM.

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const ACCESSED: u64 = 1 << 5;
const DIRTY: u64 = 1 << 6;
const HUGE: u64 = 1 << 7;
/// Flags of a PML4 or PDPT entry that points to a table.
pub const TABLE_FLAGS: u64 = PRESENT | WRITABLE | ACCESSED;
/// Flags of a 1 GiB or 2 MiB leaf.
pub const LEAF_FLAGS: u64 = PRESENT | WRITABLE | ACCESSED | DIRTY | HUGE;
const PAGE: u64 = 4096;
const ENTRIES: usize = 512;

/// The PML4, then the PDPT of four 1 GiB pages: 8 KiB.
#[repr(C, align(4096))]
pub struct PageTables {
    pub pml4: [u64; ENTRIES],
    pub pdpt: [u64; ENTRIES],
}

impl PageTables {
    /// The identity map of 0..4 GiB, for tables that will sit at physical address `base`.
    pub const fn identity_4gib(base: u64) -> Self {
        let mut t = PageTables {
            pml4: [0; ENTRIES],
            pdpt: [0; ENTRIES],
        };
        let mut gib = 0;
        while gib < 4 {
            t.pdpt[gib] = ((gib as u64) << 30) | LEAF_FLAGS;
            gib += 1;
        }
        t.pml4[0] = (base + PAGE) | TABLE_FLAGS;
        t
    }
}

/// Entry `i` (0..2048) of the four RAM page directories reset.S builds when the CPU lacks
/// 1 GiB pages: the 2 MiB page at `i * 2 MiB`.
pub const fn fallback_directory_entry(i: u64) -> u64 {
    (i << 21) | LEAF_FLAGS
}

/// The tables in the ROM.
#[cfg_attr(target_os = "none", link_section = ".page_tables")]
#[used]
pub static ROM_PAGE_TABLES: PageTables = PageTables::identity_4gib(crate::layout::ROM_LOW);

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the ROM tables as the CPU would, for tables placed at `base`.
    fn translate(t: &PageTables, base: u64, va: u64) -> Option<u64> {
        let pml4e = t.pml4[((va >> 39) & 511) as usize];
        if pml4e & PRESENT == 0 || pml4e & !0xFFF != base + PAGE {
            return None;
        }
        let pdpte = t.pdpt[((va >> 30) & 511) as usize];
        (pdpte & PRESENT != 0 && pdpte & HUGE != 0 && pdpte & DIRTY != 0)
            .then_some((pdpte & !0x3FFF_FFFF) | (va & 0x3FFF_FFFF))
    }

    #[test]
    fn every_address_below_4gib_maps_to_itself_and_nothing_above() {
        let base = crate::layout::ROM_LOW;
        let t = PageTables::identity_4gib(base);
        for va in [
            0,
            0x1234,
            0x9_FC00,
            0xF_FFF0,
            0x10_0000,
            0xBFFF_FFFF,
            0xFEE0_0000,
            0xFFFF_FFF0,
        ] {
            assert_eq!(translate(&t, base, va), Some(va), "{va:#x}");
        }
        assert_eq!(translate(&t, base, 0x1_0000_0000), None);
        assert_eq!(core::mem::size_of::<PageTables>(), 0x2000);
    }

    #[test]
    fn the_fallback_directories_map_4gib_in_2mib_pages() {
        assert_eq!(fallback_directory_entry(0), 0xE3);
        assert_eq!(fallback_directory_entry(2047) & !0xFFF, 0xFFE0_0000);
        assert_eq!(LEAF_FLAGS, 0xE3, "reset.S hard-codes 0xE3");
        assert_eq!(TABLE_FLAGS, 0x23, "reset.S hard-codes 0x23");
    }
}
