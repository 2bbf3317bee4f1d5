//! Where a firmware ROM lives in guest-physical memory (QEMU's x86_bios_rom_init).
//!
//! A ROM of `size` bytes (a multiple of 64 KiB) ends at 4 GiB; its last `min(size, 128 KiB)` bytes
//! are also visible just below 1 MiB. The CPU resets at 0xFFFF_FFF0, the ROM's last 16 bytes.

/// ROM images are sized in units of this.
pub const SIZE_UNIT: u64 = 64 * 1024;
/// At most this much of the ROM's end is aliased below 1 MiB.
pub const MAX_LOW_ALIAS: u64 = 128 * 1024;
/// The first instruction the CPU fetches after reset.
pub const RESET_VECTOR: u64 = 0xFFFF_FFF0;
/// End (exclusive) of the high mapping.
pub const HIGH_END: u64 = 0x1_0000_0000;
/// End (exclusive) of the low alias.
pub const LOW_END: u64 = 0x10_0000;

/// Guest-physical base of a ROM of `size` bytes in its 4 GiB mapping.
pub const fn high_base(size: u64) -> u64 {
    HIGH_END - size
}

/// Guest-physical base and length of the low (below 1 MiB) alias of a ROM of `size` bytes.
pub const fn low_alias(size: u64) -> (u64, u64) {
    let len = if size < MAX_LOW_ALIAS { size } else { MAX_LOW_ALIAS };
    (LOW_END - len, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_64k_rom_is_aliased_whole_at_0xf0000() {
        assert_eq!(high_base(SIZE_UNIT), 0xFFFF_0000);
        assert_eq!(low_alias(SIZE_UNIT), (0xF_0000, 0x1_0000));
        assert_eq!(low_alias(256 * 1024), (0xE_0000, 0x2_0000));
    }
}
