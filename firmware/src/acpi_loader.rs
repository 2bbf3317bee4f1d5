//! QEMU's BIOS linker/loader (`etc/table-loader`): allocate the ACPI blobs in guest memory, patch
//! their pointers and checksums, and write pointers back to QEMU. qboot panics on WRITE_POINTER;
//! this loader implements all four commands and skips unknown ones, as SeaBIOS does.
use crate::fw_cfg::{FwCfg, FwCfgError};
use crate::layout;
use crate::memory::Memory;
use crate::memory_map::{MapError, MemoryMap};
use minnow_bootproto::e820;
use minnow_bootproto::fw_cfg::file;
use minnow_bootproto::table_loader::{self as tl, Command, COMMAND_SIZE};

/// Most files one script may allocate (QEMU allocates 2: the tables and the RSDP).
pub const MAX_ALLOCATIONS: usize = 16;
const FILE_LEN: usize = tl::FILE_LEN;
const PAGE: u64 = 4096;

/// A file name from the script, for error messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name(pub [u8; FILE_LEN]);

impl core::fmt::Debug for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        tl::file_name(&self.0).iter().try_for_each(|&b| {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            core::fmt::Write::write_char(f, c)
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// The script is not a whole number of commands.
    TruncatedScript(u32),
    /// ALLOCATE names a file fw_cfg does not have.
    NoSuchFile(Name),
    /// A command refers to a file no ALLOCATE placed.
    NotAllocated(Name),
    AlreadyAllocated(Name),
    TooManyFiles,
    BadAlignment(Name, u32),
    BadZone(Name, u8),
    /// No RAM left for the file in its zone.
    NoRoom(Name, u32),
    /// A command reaches past the end of its file.
    OutOfBounds(Name),
    BadPointerSize(u8),
    FwCfg(FwCfgError),
    Map(MapError),
}

impl From<FwCfgError> for AcpiError {
    fn from(e: FwCfgError) -> Self {
        Self::FwCfg(e)
    }
}
impl From<MapError> for AcpiError {
    fn from(e: MapError) -> Self {
        Self::Map(e)
    }
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ACPI table-loader: ")?;
        match self {
            Self::TruncatedScript(n) => write!(f, "script of {n} bytes is not a multiple of 128"),
            Self::NoSuchFile(n) => write!(f, "ALLOCATE of \"{n}\", which fw_cfg does not have"),
            Self::NotAllocated(n) => write!(f, "\"{n}\" is used before it is allocated"),
            Self::AlreadyAllocated(n) => write!(f, "\"{n}\" is allocated twice"),
            Self::TooManyFiles => write!(f, "more than {MAX_ALLOCATIONS} files"),
            Self::BadAlignment(n, a) => write!(f, "\"{n}\" asks for alignment {a:#x}, not a power of two"),
            Self::BadZone(n, z) => write!(f, "\"{n}\" asks for unknown zone {z}"),
            Self::NoRoom(n, s) => write!(f, "no room for \"{n}\" ({s} bytes)"),
            Self::OutOfBounds(n) => write!(f, "a command reaches past the end of \"{n}\""),
            Self::BadPointerSize(s) => write!(f, "pointer size {s} is not 1, 2, 4 or 8"),
            Self::FwCfg(e) => write!(f, "{e}"),
            Self::Map(e) => write!(f, "{e}"),
        }
    }
}

/// An allocated file: where it is and how long.
#[derive(Clone, Copy)]
struct Placed {
    addr: u64,
    size: u32,
}

#[derive(Clone, Copy)]
struct Allocation {
    name: [u8; FILE_LEN],
    addr: u64,
    size: u32,
}

/// Where the loader may put things, and what it has put there.
pub struct Loader<'a> {
    cfg: &'a mut dyn FwCfg,
    mem: &'a mut dyn Memory,
    map: &'a mut MemoryMap,
    /// Ranges the VMM has already filled (a `-kernel` initrd, PVH segments): never allocated.
    occupied: &'a [(u64, u64)],
    fseg_next: u64,
    allocations: [Allocation; MAX_ALLOCATIONS],
    count: usize,
}

/// Runs `etc/table-loader` if fw_cfg has one. Returns the RSDP's address when ACPI was installed.
/// The F-segment zone must already be RAM (see `chipset`); `occupied` lists `(start, size)`
/// ranges the tables must not overwrite.
pub fn install(
    cfg: &mut dyn FwCfg,
    mem: &mut dyn Memory,
    map: &mut MemoryMap,
    occupied: &[(u64, u64)],
) -> Result<Option<u64>, AcpiError> {
    let Some(script) = cfg.file(file::TABLE_LOADER) else {
        return Ok(None);
    };
    if !(script.size as usize).is_multiple_of(COMMAND_SIZE) {
        return Err(AcpiError::TruncatedScript(script.size));
    }
    let mut loader = Loader {
        cfg,
        mem,
        map,
        occupied,
        fseg_next: layout::FSEG_ZONE,
        allocations: [Allocation {
            name: [0; FILE_LEN],
            addr: 0,
            size: 0,
        }; MAX_ALLOCATIONS],
        count: 0,
    };
    // Commands run fw_cfg transfers of their own, so the script is read in chunks by offset.
    let mut chunk = [0u8; COMMAND_SIZE * 16];
    let mut offset = 0u32;
    while offset < script.size {
        let n = ((script.size - offset) as usize).min(chunk.len());
        loader.cfg.read_at(script.key, offset, &mut chunk[..n])?;
        for raw in chunk[..n].chunks_exact(COMMAND_SIZE) {
            // chunks_exact yields whole commands, so decode cannot fail.
            if let Some(cmd) = tl::decode(raw) {
                loader.run(&cmd)?;
            }
        }
        offset += n as u32;
    }
    Ok(loader.find(&name_field(file::ACPI_RSDP)).ok().map(|a| a.addr))
}

fn name_field(name: &str) -> [u8; FILE_LEN] {
    let mut out = [0u8; FILE_LEN];
    out[..name.len()].copy_from_slice(name.as_bytes());
    out
}

fn check_pointer_size(size: u8) -> Result<usize, AcpiError> {
    match size {
        1 | 2 | 4 | 8 => Ok(usize::from(size)),
        _ => Err(AcpiError::BadPointerSize(size)),
    }
}

impl Loader<'_> {
    fn run(&mut self, cmd: &Command) -> Result<(), AcpiError> {
        match cmd {
            Command::Allocate(c) => self.allocate(&c.file, c.align.get(), c.zone),
            Command::AddPointer(c) => self.add_pointer(&c.dest_file, &c.src_file, c.offset.get(), c.size),
            Command::AddChecksum(c) => {
                self.add_checksum(&c.file, c.offset.get(), c.start.get(), c.length.get())
            }
            Command::WritePointer(c) => self.write_pointer(
                &c.dest_file,
                &c.src_file,
                c.dst_offset.get(),
                c.src_offset.get(),
                c.size,
            ),
            Command::Unknown(_) => Ok(()),
        }
    }

    /// Where file `name` was allocated. Every command looks its files up here, so the name is
    /// copied only into an error, never into the result.
    fn find(&self, name: &[u8; FILE_LEN]) -> Result<Placed, AcpiError> {
        match self.allocations[..self.count]
            .iter()
            .find(|a| tl::same_file(&a.name, name))
        {
            Some(a) => Ok(Placed {
                addr: a.addr,
                size: a.size,
            }),
            None => Err(AcpiError::NotAllocated(Name(*name))),
        }
    }

    fn allocate(&mut self, name: &[u8; FILE_LEN], align: u32, zone: u8) -> Result<(), AcpiError> {
        let file = self
            .cfg
            .file_bytes(tl::file_name(name))
            .ok_or(AcpiError::NoSuchFile(Name(*name)))?;
        if self.find(name).is_ok() {
            return Err(AcpiError::AlreadyAllocated(Name(*name)));
        }
        if self.count == MAX_ALLOCATIONS {
            return Err(AcpiError::TooManyFiles);
        }
        let align = if align == 0 { 1 } else { align };
        if !align.is_power_of_two() {
            return Err(AcpiError::BadAlignment(Name(*name), align));
        }
        let size = u64::from(file.size);
        let addr = match zone {
            tl::ZONE_HIGH => {
                // Whole pages, so no sliver of RAM is left beside a reservation.
                let pages = size.next_multiple_of(PAGE);
                let addr = self
                    .map
                    .highest_fit_avoiding(pages, u64::from(align).max(PAGE), layout::FOUR_GIB, self.occupied)
                    .ok_or(AcpiError::NoRoom(Name(*name), file.size))?;
                // Reserved, not ACPI-reclaimable: the loader may have written pointers to it
                // back into QEMU (WRITE_POINTER), which must stay valid.
                self.map.set(addr, pages, e820::RESERVED)?;
                addr
            }
            tl::ZONE_FSEG => {
                let addr = self.fseg_next.next_multiple_of(u64::from(align));
                if addr + size > layout::FSEG_ZONE_END {
                    return Err(AcpiError::NoRoom(Name(*name), file.size));
                }
                self.fseg_next = addr + size;
                addr
            }
            other => return Err(AcpiError::BadZone(Name(*name), other)),
        };
        self.cfg.load_at(file.key, 0, addr, file.size, self.mem)?;
        self.allocations[self.count] = Allocation {
            name: *name,
            addr,
            size: file.size,
        };
        self.count += 1;
        Ok(())
    }

    fn add_pointer(
        &mut self,
        dest: &[u8; FILE_LEN],
        src: &[u8; FILE_LEN],
        offset: u32,
        size: u8,
    ) -> Result<(), AcpiError> {
        let (d, s) = (self.find(dest)?, self.find(src)?);
        let len = check_pointer_size(size)?;
        if u64::from(offset) + len as u64 > u64::from(d.size) {
            return Err(AcpiError::OutOfBounds(Name(*dest)));
        }
        let at = d.addr + u64::from(offset);
        let mut bytes = [0u8; 8];
        self.mem.read(at, &mut bytes[..len]);
        let value = u64::from_le_bytes(bytes).wrapping_add(s.addr);
        self.mem.write(at, &value.to_le_bytes()[..len]);
        Ok(())
    }

    fn add_checksum(
        &mut self,
        name: &[u8; FILE_LEN],
        offset: u32,
        start: u32,
        length: u32,
    ) -> Result<(), AcpiError> {
        let f = self.find(name)?;
        let end = u64::from(start) + u64::from(length);
        if end > u64::from(f.size) || offset >= f.size {
            return Err(AcpiError::OutOfBounds(Name(*name)));
        }
        let sum = self.mem.byte_sum(f.addr + u64::from(start), u64::from(length));
        let mut byte = [0u8];
        let target = f.addr + u64::from(offset);
        self.mem.read(target, &mut byte);
        self.mem.write(target, &[byte[0].wrapping_sub(sum)]);
        Ok(())
    }

    fn write_pointer(
        &mut self,
        dest: &[u8; FILE_LEN],
        src: &[u8; FILE_LEN],
        dst_offset: u32,
        src_offset: u32,
        size: u8,
    ) -> Result<(), AcpiError> {
        let s = self.find(src)?;
        let len = check_pointer_size(size)?;
        let d = self
            .cfg
            .file_bytes(tl::file_name(dest))
            .ok_or(AcpiError::NoSuchFile(Name(*dest)))?;
        if src_offset >= s.size || u64::from(dst_offset) + len as u64 > u64::from(d.size) {
            return Err(AcpiError::OutOfBounds(Name(*dest)));
        }
        let value = (s.addr + u64::from(src_offset)).to_le_bytes();
        self.cfg.select(d.key);
        if dst_offset > 0 {
            self.cfg.skip(dst_offset)?;
        }
        self.cfg.write(&value[..len])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
