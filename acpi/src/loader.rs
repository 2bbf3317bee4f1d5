//! `etc/table-loader`, QEMU's BIOS linker/loader script (hw/acpi/bios-linker-loader.c): written
//! here the way QEMU writes it, and run the way firmware runs it (for the tests, and for a VMM
//! that places the tables itself). The command format is `minnow_bootproto::table_loader`.
//!
//! As in QEMU, a pointer field holds the offset of its target inside the target's file, and the
//! loader adds the file's address; checksum bytes are left 0 for the loader to fill in.
use minnow_bootproto::fw_cfg::encode_name;
use minnow_bootproto::table_loader::{
    self as tl, AddChecksum, AddPointer, Allocate, Command, COMMAND_SIZE, FILE_LEN,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableLoaderError {
    #[error("table-loader: file name {0:?} does not fit a 56-byte field")]
    BadName(String),
    #[error("table-loader: {what} at {offset:#x}+{len} is past the end of {file:?} ({size} bytes)")]
    OutOfBounds {
        what: &'static str,
        file: String,
        offset: u64,
        len: u64,
        size: usize,
    },
    #[error("table-loader: pointer size {0} is not 1, 2, 4 or 8")]
    BadPointerSize(u8),
    #[error("table-loader: offset {value:#x} does not fit a {size}-byte pointer")]
    PointerTooSmall { value: u64, size: u8 },
    #[error("table-loader: the script is {0} bytes, not a multiple of 128")]
    Truncated(usize),
    #[error("table-loader: {0:?} is not one of the files being placed")]
    UnknownFile(String),
    #[error("table-loader: {0:?} is used before it is allocated")]
    NotAllocated(String),
    #[error("table-loader: {file:?} at {addr:#x} is not aligned to {align:#x} as its ALLOCATE asks")]
    Misaligned { file: String, addr: u64, align: u32 },
    #[error("table-loader: command {0} is not supported here")]
    Unsupported(u32),
}

/// Writes a script: every ALLOCATE first, then the pointers and checksums in the order added.
#[derive(Debug, Default)]
pub struct TableLoader {
    allocations: Vec<[u8; COMMAND_SIZE]>,
    commands: Vec<[u8; COMMAND_SIZE]>,
}

fn field(name: &str) -> Result<[u8; FILE_LEN], TableLoaderError> {
    encode_name(name).ok_or_else(|| TableLoaderError::BadName(name.into()))
}

fn range<'a>(
    what: &'static str,
    file: &str,
    blob: &'a mut [u8],
    offset: u64,
    len: u64,
) -> Result<&'a mut [u8], TableLoaderError> {
    let size = blob.len();
    let out_of_bounds = || TableLoaderError::OutOfBounds {
        what,
        file: file.into(),
        offset,
        len,
        size,
    };
    let start = usize::try_from(offset).map_err(|_| out_of_bounds())?;
    let end = offset
        .checked_add(len)
        .and_then(|e| usize::try_from(e).ok())
        .ok_or_else(out_of_bounds)?;
    blob.get_mut(start..end).ok_or_else(out_of_bounds)
}

fn pointer_len(size: u8) -> Result<u64, TableLoaderError> {
    match size {
        1 | 2 | 4 | 8 => Ok(u64::from(size)),
        _ => Err(TableLoaderError::BadPointerSize(size)),
    }
}

fn u32_of(what: &'static str, file: &str, value: usize) -> Result<u32, TableLoaderError> {
    u32::try_from(value).map_err(|_| TableLoaderError::OutOfBounds {
        what,
        file: file.into(),
        offset: value as u64,
        len: 0,
        size: u32::MAX as usize,
    })
}

impl TableLoader {
    pub fn new() -> Self {
        Self::default()
    }

    /// ALLOCATE: the firmware copies `file` into memory aligned to `align` in `zone`. Like QEMU,
    /// allocations are prepended: all of them run before any other command, the last added first.
    pub fn allocate(&mut self, file: &str, align: u32, zone: u8) -> Result<(), TableLoaderError> {
        let cmd = Allocate {
            file: field(file)?,
            align: align.into(),
            zone,
        };
        self.allocations.insert(0, tl::encode(&Command::Allocate(&cmd)));
        Ok(())
    }

    /// ADD_POINTER: stores `src_offset` in the `size`-byte field at `dest[offset]` (`dest` is the
    /// file `dest_file`), for the firmware to add the address of `src_file` to it.
    pub fn add_pointer(
        &mut self,
        dest_file: &str,
        dest: &mut [u8],
        offset: usize,
        size: u8,
        src_file: &str,
        src_offset: usize,
    ) -> Result<(), TableLoaderError> {
        let len = pointer_len(size)?;
        let value = src_offset as u64;
        if len < 8 && value >> (len * 8) != 0 {
            return Err(TableLoaderError::PointerTooSmall { value, size });
        }
        range("pointer", dest_file, dest, offset as u64, len)?
            .copy_from_slice(&value.to_le_bytes()[..len as usize]);
        let cmd = AddPointer {
            dest_file: field(dest_file)?,
            src_file: field(src_file)?,
            offset: u32_of("pointer", dest_file, offset)?.into(),
            size,
        };
        self.commands.push(tl::encode(&Command::AddPointer(&cmd)));
        Ok(())
    }

    /// ADD_CHECKSUM: the firmware makes `blob[start..start + length]` sum to 0 by adjusting
    /// `blob[checksum]`, which is left 0 here, as QEMU leaves it.
    pub fn add_checksum(
        &mut self,
        file: &str,
        blob: &mut [u8],
        start: usize,
        length: usize,
        checksum: usize,
    ) -> Result<(), TableLoaderError> {
        range("checksummed range", file, blob, start as u64, length as u64)?;
        range("checksum byte", file, blob, checksum as u64, 1)?[0] = 0;
        let cmd = AddChecksum {
            file: field(file)?,
            offset: u32_of("checksum byte", file, checksum)?.into(),
            start: u32_of("checksummed range", file, start)?.into(),
            length: u32_of("checksummed range", file, length)?.into(),
        };
        self.commands.push(tl::encode(&Command::AddChecksum(&cmd)));
        Ok(())
    }

    /// The script: the file `etc/table-loader`.
    pub fn finish(self) -> Vec<u8> {
        self.allocations
            .into_iter()
            .chain(self.commands)
            .flatten()
            .collect()
    }
}

/// A file the script places, and where: its bytes are patched in place by [`run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub name: String,
    pub addr: u64,
    pub bytes: Vec<u8>,
}

/// Runs `script` the way firmware does, with each file already at the address `files` gives:
/// ALLOCATE checks that the file is one of `files` and that its address is aligned as asked,
/// ADD_POINTER and ADD_CHECKSUM patch the bytes. WRITE_POINTER (a write back into fw_cfg) is
/// refused: nothing here has an fw_cfg to write to. Unknown commands are skipped, as SeaBIOS does.
pub fn run(script: &[u8], files: &mut [Placed]) -> Result<(), TableLoaderError> {
    if !script.len().is_multiple_of(COMMAND_SIZE) {
        return Err(TableLoaderError::Truncated(script.len()));
    }
    let mut allocated: Vec<String> = Vec::new();
    let name_of = |f: &[u8; FILE_LEN]| String::from_utf8_lossy(tl::file_name(f)).into_owned();
    let find = |files: &[Placed], allocated: &[String], name: &str| {
        if !allocated.iter().any(|a| a == name) {
            return Err(TableLoaderError::NotAllocated(name.into()));
        }
        files
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| TableLoaderError::UnknownFile(name.into()))
    };
    for raw in script.chunks_exact(COMMAND_SIZE) {
        match tl::decode(raw) {
            Some(Command::Allocate(c)) => {
                let name = name_of(&c.file);
                let f = files
                    .iter()
                    .find(|f| f.name == name)
                    .ok_or_else(|| TableLoaderError::UnknownFile(name.clone()))?;
                let align = c.align.get().max(1);
                if !align.is_power_of_two() || f.addr % u64::from(align) != 0 {
                    return Err(TableLoaderError::Misaligned {
                        file: name,
                        addr: f.addr,
                        align,
                    });
                }
                allocated.push(name);
            }
            Some(Command::AddPointer(c)) => {
                let src = find(files, &allocated, &name_of(&c.src_file))?;
                let dest = find(files, &allocated, &name_of(&c.dest_file))?;
                let src_addr = files[src].addr;
                let len = pointer_len(c.size)?;
                let d = &mut files[dest];
                let at = range("pointer", &d.name, &mut d.bytes, u64::from(c.offset.get()), len)?;
                let mut value = [0u8; 8];
                value[..at.len()].copy_from_slice(at);
                let patched = u64::from_le_bytes(value).wrapping_add(src_addr);
                at.copy_from_slice(&patched.to_le_bytes()[..at.len()]);
            }
            Some(Command::AddChecksum(c)) => {
                let i = find(files, &allocated, &name_of(&c.file))?;
                let f = &mut files[i];
                let (start, length) = (u64::from(c.start.get()), u64::from(c.length.get()));
                let sum = range("checksummed range", &f.name, &mut f.bytes, start, length)?
                    .iter()
                    .fold(0u8, |s, &b| s.wrapping_add(b));
                let byte = &mut range(
                    "checksum byte",
                    &f.name,
                    &mut f.bytes,
                    u64::from(c.offset.get()),
                    1,
                )?[0];
                *byte = byte.wrapping_sub(sum);
            }
            Some(Command::WritePointer(_)) => {
                return Err(TableLoaderError::Unsupported(tl::CMD_WRITE_POINTER))
            }
            Some(Command::Unknown(_)) | None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use minnow_bootproto::table_loader::{ZONE_FSEG, ZONE_HIGH};

    fn commands(script: &[u8]) -> Vec<Command<'_>> {
        script
            .chunks_exact(COMMAND_SIZE)
            .map(|c| tl::decode(c).expect("a whole command"))
            .collect()
    }

    #[test]
    fn allocations_come_first_last_added_first_as_in_qemu() {
        let mut blob = vec![0u8; 64];
        let mut l = TableLoader::new();
        l.allocate("etc/acpi/tables", 64, ZONE_HIGH).unwrap();
        l.add_checksum("etc/acpi/tables", &mut blob, 0, 36, 9).unwrap();
        l.allocate("etc/acpi/rsdp", 16, ZONE_FSEG).unwrap();
        let script = l.finish();
        let cmds = commands(&script);
        assert_eq!(cmds.len(), 3);
        match (&cmds[0], &cmds[1], &cmds[2]) {
            (Command::Allocate(a), Command::Allocate(b), Command::AddChecksum(_)) => {
                assert_eq!(tl::file_name(&a.file), b"etc/acpi/rsdp");
                assert_eq!((a.align.get(), a.zone), (16, ZONE_FSEG));
                assert_eq!(tl::file_name(&b.file), b"etc/acpi/tables");
                assert_eq!((b.align.get(), b.zone), (64, ZONE_HIGH));
            }
            other => panic!("unexpected order {other:?}"),
        }
    }

    #[test]
    fn pointers_store_the_offset_and_checksums_are_left_zero() {
        let mut blob = vec![0xAAu8; 48];
        let mut l = TableLoader::new();
        l.add_pointer("t", &mut blob, 40, 8, "t", 0x24).unwrap();
        l.add_checksum("t", &mut blob, 0, 48, 9).unwrap();
        assert_eq!(&blob[40..48], &0x24u64.to_le_bytes());
        assert_eq!(blob[9], 0);
        assert_eq!(
            l.add_pointer("t", &mut blob, 44, 8, "t", 0),
            Err(TableLoaderError::OutOfBounds {
                what: "pointer",
                file: "t".into(),
                offset: 44,
                len: 8,
                size: 48
            })
        );
        assert_eq!(
            l.add_pointer("t", &mut blob, 0, 1, "t", 0x100),
            Err(TableLoaderError::PointerTooSmall {
                value: 0x100,
                size: 1
            })
        );
        assert_eq!(
            l.add_pointer("t", &mut blob, 0, 3, "t", 0),
            Err(TableLoaderError::BadPointerSize(3))
        );
        assert!(matches!(
            l.add_checksum(&"x".repeat(56), &mut blob, 0, 1, 0),
            Err(TableLoaderError::BadName(_))
        ));
    }

    #[test]
    fn running_a_script_patches_pointers_and_checksums() {
        let mut a = vec![0u8; 16];
        let mut b = vec![1u8, 2, 3, 0];
        let mut l = TableLoader::new();
        l.allocate("a", 8, ZONE_HIGH).unwrap();
        l.allocate("b", 4, ZONE_FSEG).unwrap();
        l.add_pointer("a", &mut a, 4, 4, "b", 2).unwrap();
        l.add_checksum("a", &mut a, 0, 16, 0).unwrap();
        l.add_checksum("b", &mut b, 0, 4, 3).unwrap();
        let script = l.finish();
        let mut files = vec![
            Placed {
                name: "a".into(),
                addr: 0x1000,
                bytes: a,
            },
            Placed {
                name: "b".into(),
                addr: 0xE0000,
                bytes: b,
            },
        ];
        run(&script, &mut files).unwrap();
        assert_eq!(&files[0].bytes[4..8], &0xE0002u32.to_le_bytes());
        for f in &files {
            assert_eq!(
                f.bytes.iter().fold(0u8, |s, &x| s.wrapping_add(x)),
                0,
                "{}",
                f.name
            );
        }
        files[1].addr = 0xE0001;
        assert!(matches!(
            run(&script, &mut files),
            Err(TableLoaderError::Misaligned { align: 4, .. })
        ));
        assert_eq!(
            run(&script[..100], &mut files),
            Err(TableLoaderError::Truncated(100))
        );
        assert_eq!(
            run(&script[2 * COMMAND_SIZE..], &mut files),
            Err(TableLoaderError::NotAllocated("b".into()))
        );
        assert_eq!(
            run(&script, &mut files[..1]),
            Err(TableLoaderError::UnknownFile("b".into()))
        );
    }
}
