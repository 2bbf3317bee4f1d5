//! FNV-1a, 32-bit: the initrd checksum the payloads print and the tests recompute on the host.

pub const OFFSET_BASIS: u32 = 0x811C_9DC5;
pub const PRIME: u32 = 0x0100_0193;

fn step(h: u32, b: u8) -> u32 {
    (h ^ u32::from(b)).wrapping_mul(PRIME)
}

/// FNV-1a 32 of `bytes`.
///
/// The initrd is the one large thing a payload reads, on a machine that emulates every guest
/// instruction, so the bulk goes through [`blocks`]: two instructions a byte instead of six.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let whole = bytes.len() / 8 * 8;
    let h = blocks(OFFSET_BASIS, &bytes[..whole]);
    bytes[whole..].iter().fold(h, |h, &b| step(h, b))
}

/// FNV-1a over `bytes` (a multiple of 8 long), from state `h`. XOR-ing a byte into the low byte
/// of `h` is exactly `h ^ zero-extended byte`, so each byte is one `xor r8, m8` and one `imul`.
#[cfg(target_arch = "x86_64")]
fn blocks(mut h: u32, bytes: &[u8]) -> u32 {
    if bytes.is_empty() {
        return h;
    }
    debug_assert!(bytes.len().is_multiple_of(8));
    let range = bytes.as_ptr_range();
    // SAFETY: reads exactly the bytes of `bytes` (from its start, 8 at a time, to its end, which
    // is a multiple of 8 past the start and not before it); writes only the named registers.
    unsafe {
        core::arch::asm!(
            "2:",
            "xor {h:l}, byte ptr [{p}]",
            "imul {h:e}, {h:e}, 0x01000193",
            "xor {h:l}, byte ptr [{p} + 1]",
            "imul {h:e}, {h:e}, 0x01000193",
            "xor {h:l}, byte ptr [{p} + 2]",
            "imul {h:e}, {h:e}, 0x01000193",
            "xor {h:l}, byte ptr [{p} + 3]",
            "imul {h:e}, {h:e}, 0x01000193",
            "xor {h:l}, byte ptr [{p} + 4]",
            "imul {h:e}, {h:e}, 0x01000193",
            "xor {h:l}, byte ptr [{p} + 5]",
            "imul {h:e}, {h:e}, 0x01000193",
            "xor {h:l}, byte ptr [{p} + 6]",
            "imul {h:e}, {h:e}, 0x01000193",
            "xor {h:l}, byte ptr [{p} + 7]",
            "imul {h:e}, {h:e}, 0x01000193",
            "add {p}, 8",
            "cmp {p}, {end}",
            "jb 2b",
            h = inout(reg) h,
            p = inout(reg) range.start => _,
            end = in(reg) range.end,
            options(nostack, readonly),
        );
    }
    h
}

#[cfg(not(target_arch = "x86_64"))]
fn blocks(h: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(h, |h, &b| step(h, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(fnv1a32(b""), 0x811C_9DC5);
        assert_eq!(fnv1a32(b"a"), 0xE40C_292C);
        assert_eq!(fnv1a32(b"foobar"), 0xBF9C_F968);
    }

    #[test]
    fn the_block_loop_matches_the_definition_at_every_length() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + (i >> 3)) as u8).collect();
        for len in [0, 1, 7, 8, 9, 16, 63, 64, 65, 999, 1000] {
            let simple = data[..len].iter().fold(OFFSET_BASIS, |h, &b| step(h, b));
            assert_eq!(fnv1a32(&data[..len]), simple, "length {len}");
        }
    }
}
