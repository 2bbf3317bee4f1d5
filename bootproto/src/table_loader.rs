//! QEMU's BIOS linker/loader script, fw_cfg file `etc/table-loader` (hw/acpi/bios-linker-loader.c).
//!
//! An array of 128-byte commands: a le32 command number, then a command-specific body, zero-padded.
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of one command.
pub const COMMAND_SIZE: usize = 128;
/// Length of the file-name fields, NUL included.
pub const FILE_LEN: usize = 56;

pub const CMD_ALLOCATE: u32 = 1;
pub const CMD_ADD_POINTER: u32 = 2;
pub const CMD_ADD_CHECKSUM: u32 = 3;
pub const CMD_WRITE_POINTER: u32 = 4;

/// ALLOCATE zones.
pub const ZONE_HIGH: u8 = 1;
pub const ZONE_FSEG: u8 = 2;

/// ALLOCATE: copy `file` into memory aligned to `align` in `zone`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Allocate {
    pub file: [u8; FILE_LEN],
    pub align: U32,
    pub zone: u8,
}

/// ADD_POINTER: add the address of `src_file` to the `size`-byte LE value at `dest_file + offset`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct AddPointer {
    pub dest_file: [u8; FILE_LEN],
    pub src_file: [u8; FILE_LEN],
    pub offset: U32,
    pub size: u8,
}

/// ADD_CHECKSUM: make bytes `[start, start + length)` of `file` sum to 0 by adjusting `file + offset`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct AddChecksum {
    pub file: [u8; FILE_LEN],
    pub offset: U32,
    pub start: U32,
    pub length: U32,
}

/// WRITE_POINTER: write `address of src_file + src_offset` (`size` bytes, LE) into the fw_cfg file
/// `dest_file` at `dst_offset`, through a DMA write.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct WritePointer {
    pub dest_file: [u8; FILE_LEN],
    pub src_file: [u8; FILE_LEN],
    pub dst_offset: U32,
    pub src_offset: U32,
    pub size: u8,
}

/// One decoded command, borrowing the script's bytes.
#[derive(Clone, Copy, Debug)]
pub enum Command<'a> {
    Allocate(&'a Allocate),
    AddPointer(&'a AddPointer),
    AddChecksum(&'a AddChecksum),
    WritePointer(&'a WritePointer),
    /// A command number this format does not define; loaders skip it, as SeaBIOS does.
    Unknown(u32),
}

/// Decodes one 128-byte command; `None` if `raw` is shorter than a command.
pub fn decode(raw: &[u8]) -> Option<Command<'_>> {
    let raw = raw.get(..COMMAND_SIZE)?;
    let (cmd, body) = U32::ref_from_prefix(raw).ok()?;
    Some(match cmd.get() {
        CMD_ALLOCATE => Command::Allocate(Allocate::ref_from_prefix(body).ok()?.0),
        CMD_ADD_POINTER => Command::AddPointer(AddPointer::ref_from_prefix(body).ok()?.0),
        CMD_ADD_CHECKSUM => Command::AddChecksum(AddChecksum::ref_from_prefix(body).ok()?.0),
        CMD_WRITE_POINTER => Command::WritePointer(WritePointer::ref_from_prefix(body).ok()?.0),
        other => Command::Unknown(other),
    })
}

/// Encodes one command into its 128-byte form (for VMMs producing a script).
pub fn encode(cmd: &Command) -> [u8; COMMAND_SIZE] {
    let mut out = [0u8; COMMAND_SIZE];
    let (num, body): (u32, &[u8]) = match cmd {
        Command::Allocate(c) => (CMD_ALLOCATE, c.as_bytes()),
        Command::AddPointer(c) => (CMD_ADD_POINTER, c.as_bytes()),
        Command::AddChecksum(c) => (CMD_ADD_CHECKSUM, c.as_bytes()),
        Command::WritePointer(c) => (CMD_WRITE_POINTER, c.as_bytes()),
        Command::Unknown(n) => (*n, &[]),
    };
    out[..4].copy_from_slice(&num.to_le_bytes());
    out[4..4 + body.len()].copy_from_slice(body);
    out
}

/// The name in a file field, up to its NUL.
pub fn file_name(field: &[u8; FILE_LEN]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(FILE_LEN);
    &field[..end]
}

/// Whether two file fields name the same file: equal up to and including the first NUL, whatever
/// follows it. Word by word, since the firmware compares names for every command and every
/// directory lookup, and most names differ in their first eight bytes.
#[inline(always)]
pub fn same_file(a: &[u8; FILE_LEN], b: &[u8; FILE_LEN]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let (a, b) = (words(a), words(b));
    for i in 0..FILE_LEN / 8 {
        let (x, y) = (a[i].get(), b[i].get());
        // Bit 7 of each byte of `zeros` is set where `x` has a NUL (exact below the first NUL).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        let diff = x ^ y;
        if diff != 0 {
            // Equal only if `x` has a NUL before the first differing byte.
            return zeros != 0 && zeros.trailing_zeros() / 8 < diff.trailing_zeros() / 8;
        }
        if zeros != 0 {
            return true;
        }
    }
    true
}

/// A name field as seven little-endian words.
fn words(field: &[u8; FILE_LEN]) -> &[zerocopy::little_endian::U64; FILE_LEN / 8] {
    zerocopy::transmute_ref!(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fw_cfg::encode_name;

    #[test]
    fn file_fields_compare_up_to_the_nul() {
        let f = |s: &[u8]| {
            let mut out = [0u8; FILE_LEN];
            out[..s.len()].copy_from_slice(s);
            out
        };
        assert!(same_file(&f(b"etc/acpi/tables"), &f(b"etc/acpi/tables")));
        assert!(!same_file(&f(b"etc/acpi/tables"), &f(b"etc/acpi/rsdp")));
        assert!(!same_file(&f(b"etc/acpi/tables"), &f(b"etc/acpi/tablesX")));
        assert!(!same_file(&f(b"etc/acpi"), &f(b"etc/acpi/tables")));
        assert!(same_file(&f(b"etc/e820\0garbage"), &f(b"etc/e820\0other")));
        assert!(same_file(&f(b""), &f(b"\0x")));
        assert!(same_file(&[b'x'; FILE_LEN], &[b'x'; FILE_LEN]));
        assert!(!same_file(&[b'x'; FILE_LEN], &f(b"x")));
        // A NUL after the first difference does not make them equal.
        assert!(!same_file(&f(b"ab\0"), &f(b"ac\0")));
    }

    #[test]
    fn commands_round_trip_through_their_128_byte_form() {
        let cmd = Command::AddChecksum(&AddChecksum {
            file: encode_name("etc/acpi/tables").unwrap(),
            offset: 9.into(),
            start: 0.into(),
            length: 36.into(),
        });
        let raw = encode(&cmd);
        assert_eq!(&raw[..4], &[3, 0, 0, 0]);
        match decode(&raw).unwrap() {
            Command::AddChecksum(c) => {
                assert_eq!(file_name(&c.file), b"etc/acpi/tables");
                assert_eq!((c.offset.get(), c.length.get()), (9, 36));
            }
            other => panic!("decoded {other:?}"),
        }
        assert!(decode(&raw[..127]).is_none());
        assert!(matches!(decode(&[7u8; 128]), Some(Command::Unknown(0x0707_0707))));
    }
}
