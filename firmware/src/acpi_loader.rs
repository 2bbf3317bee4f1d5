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

    fn find(&self, name: &[u8; FILE_LEN]) -> Result<Allocation, AcpiError> {
        self.allocations[..self.count]
            .iter()
            .find(|a| tl::same_file(&a.name, name))
            .copied()
            .ok_or(AcpiError::NotAllocated(Name(*name)))
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
mod tests {
    use super::*;
    use crate::fakes::{FakeFwCfg, FakeMemory};
    use minnow_bootproto::fw_cfg::encode_name;
    use minnow_bootproto::table_loader::{
        encode, AddChecksum, AddPointer, Allocate, WritePointer, ZONE_FSEG, ZONE_HIGH,
    };

    fn n(s: &str) -> [u8; FILE_LEN] {
        encode_name(s).unwrap()
    }
    fn alloc(f: &str, align: u32, zone: u8) -> [u8; 128] {
        encode(&Command::Allocate(&Allocate {
            file: n(f),
            align: align.into(),
            zone,
        }))
    }
    fn ptr(d: &str, s: &str, offset: u32, size: u8) -> [u8; 128] {
        encode(&Command::AddPointer(&AddPointer {
            dest_file: n(d),
            src_file: n(s),
            offset: offset.into(),
            size,
        }))
    }
    fn csum(f: &str, offset: u32, start: u32, length: u32) -> [u8; 128] {
        encode(&Command::AddChecksum(&AddChecksum {
            file: n(f),
            offset: offset.into(),
            start: start.into(),
            length: length.into(),
        }))
    }
    fn script(cmds: &[[u8; 128]]) -> Vec<u8> {
        cmds.concat()
    }
    fn ram_map() -> MemoryMap {
        let mut m = MemoryMap::new();
        m.set(0, 0x9E000, e820::RAM).unwrap();
        m.set(0x100000, 0x7F00000, e820::RAM).unwrap();
        m
    }

    /// A QEMU-shaped script: tables blob (HIGH), RSDP (FSEG) pointing at the XSDT inside it.
    fn qemu_like() -> FakeFwCfg {
        let mut rsdp = vec![0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 2;
        rsdp[24..32].copy_from_slice(&0x40u64.to_le_bytes()); // XSDT at tables + 0x40
        let mut tables = vec![0u8; 0x80];
        tables[0x40..0x44].copy_from_slice(b"XSDT");
        tables[0x40 + 9] = 0; // checksum byte, left 0 by QEMU
        FakeFwCfg::new()
            .add_file("etc/acpi/tables", tables)
            .add_file("etc/acpi/rsdp", rsdp)
            .add_file(
                "etc/table-loader",
                script(&[
                    alloc("etc/acpi/tables", 64, ZONE_HIGH),
                    alloc("etc/acpi/rsdp", 16, ZONE_FSEG),
                    ptr("etc/acpi/rsdp", "etc/acpi/tables", 24, 8),
                    csum("etc/acpi/rsdp", 8, 0, 20),
                    csum("etc/acpi/tables", 0x40 + 9, 0x40, 0x40),
                ]),
            )
    }

    #[test]
    fn a_qemu_shaped_script_places_patches_and_checksums_the_tables() {
        let (mut cfg, mut mem, mut map) = (qemu_like(), FakeMemory::default(), ram_map());
        let rsdp = install(&mut cfg, &mut mem, &mut map, &[]).unwrap().unwrap();
        assert_eq!(rsdp, layout::FSEG_ZONE);
        let xsdt = u64::from_le_bytes(mem.bytes(rsdp + 24, 8).try_into().unwrap());
        assert_eq!(mem.bytes(xsdt, 4), b"XSDT");
        let tables = xsdt - 0x40;
        assert_eq!(tables % 64, 0);
        assert!(tables + 0x80 <= 0x8000000, "HIGH zone is at the top of RAM");
        assert!(!map.is_ram(tables, 0x80), "tables are reserved in e820");
        assert_eq!(tables % 4096, 0, "HIGH allocations take whole pages");
        assert_eq!(
            map.ram_end_from(0x100000),
            Some(tables),
            "no RAM sliver above the tables"
        );
        let sum = |a, n| mem.bytes(a, n).iter().fold(0u8, |s, &b| s.wrapping_add(b));
        assert_eq!(sum(rsdp, 20), 0);
        assert_eq!(sum(xsdt, 0x40), 0);
    }

    #[test]
    fn byte_sum_matches_a_byte_loop() {
        use crate::memory::byte_sum;
        let data: Vec<u8> = (0..256u32)
            .map(|i| (i * 151 + 7) as u8)
            .chain([255u8; 8192])
            .collect();
        for len in [0, 1, 7, 8, 9, 255, 256, 300, 512, 1024, 4096, 8448] {
            let want = data[..len].iter().fold(0u8, |s, &b| s.wrapping_add(b));
            assert_eq!(byte_sum(&data[..len]), want, "len {len}");
        }
    }

    #[test]
    fn tables_avoid_what_the_vmm_already_placed() {
        // QEMU's microvm puts the initrd flush against the top of RAM (no ACPI gap).
        let (mut cfg, mut mem, mut map) = (qemu_like(), FakeMemory::default(), ram_map());
        let initrd = (0x8000000 - 0x1e4474 - 0xb8c, 0x1e4474);
        let rsdp = install(&mut cfg, &mut mem, &mut map, &[initrd]).unwrap().unwrap();
        let xsdt = u64::from_le_bytes(mem.bytes(rsdp + 24, 8).try_into().unwrap());
        assert!(xsdt + 0x40 <= initrd.0, "tables at {xsdt:#x} overlap the initrd");
        assert!(map.is_ram(initrd.0, initrd.1), "the initrd's range stays RAM");
    }

    #[test]
    fn write_pointer_writes_the_address_back_into_fw_cfg() {
        let mut cfg = qemu_like().add_file("etc/vmgenid_addr", vec![0u8; 8]);
        let mut cmds = cfg.file_data("etc/table-loader").to_vec();
        cmds.extend(encode(&Command::WritePointer(&WritePointer {
            dest_file: n("etc/vmgenid_addr"),
            src_file: n("etc/acpi/tables"),
            dst_offset: 0.into(),
            src_offset: 0x40.into(),
            size: 8,
        })));
        let mut cfg2 = FakeFwCfg::new()
            .add_file("etc/acpi/tables", cfg.file_data("etc/acpi/tables").to_vec())
            .add_file("etc/acpi/rsdp", cfg.file_data("etc/acpi/rsdp").to_vec())
            .add_file("etc/vmgenid_addr", vec![0u8; 8])
            .add_file("etc/table-loader", cmds);
        let (mut mem, mut map) = (FakeMemory::default(), ram_map());
        let rsdp = install(&mut cfg2, &mut mem, &mut map, &[]).unwrap().unwrap();
        let xsdt = u64::from_le_bytes(mem.bytes(rsdp + 24, 8).try_into().unwrap());
        assert_eq!(cfg2.file_data("etc/vmgenid_addr"), xsdt.to_le_bytes());
        cfg.dma = false;
    }

    #[test]
    fn malformed_scripts_fail_with_the_reason() {
        type Case = (Vec<[u8; 128]>, fn(&AcpiError) -> bool);
        let cases: Vec<Case> = vec![
            (vec![alloc("etc/nope", 64, ZONE_HIGH)], |e| {
                matches!(e, AcpiError::NoSuchFile(_))
            }),
            (vec![ptr("etc/acpi/rsdp", "etc/acpi/tables", 0, 8)], |e| {
                matches!(e, AcpiError::NotAllocated(_))
            }),
            (vec![alloc("etc/acpi/tables", 3, ZONE_HIGH)], |e| {
                matches!(e, AcpiError::BadAlignment(_, 3))
            }),
            (vec![alloc("etc/acpi/tables", 64, 9)], |e| {
                matches!(e, AcpiError::BadZone(_, 9))
            }),
            (
                vec![
                    alloc("etc/acpi/tables", 64, ZONE_HIGH),
                    alloc("etc/acpi/tables", 64, ZONE_HIGH),
                ],
                |e| matches!(e, AcpiError::AlreadyAllocated(_)),
            ),
            (
                vec![
                    alloc("etc/acpi/tables", 64, ZONE_HIGH),
                    ptr("etc/acpi/tables", "etc/acpi/tables", 0x7C, 8),
                ],
                |e| matches!(e, AcpiError::OutOfBounds(_)),
            ),
            (
                vec![
                    alloc("etc/acpi/tables", 64, ZONE_HIGH),
                    ptr("etc/acpi/tables", "etc/acpi/tables", 0, 3),
                ],
                |e| matches!(e, AcpiError::BadPointerSize(3)),
            ),
            (
                vec![
                    alloc("etc/acpi/tables", 64, ZONE_HIGH),
                    csum("etc/acpi/tables", 0, 0x40, 0x41),
                ],
                |e| matches!(e, AcpiError::OutOfBounds(_)),
            ),
        ];
        for (cmds, expected) in cases {
            let base = qemu_like();
            let mut cfg = FakeFwCfg::new()
                .add_file("etc/acpi/tables", base.file_data("etc/acpi/tables").to_vec())
                .add_file("etc/acpi/rsdp", base.file_data("etc/acpi/rsdp").to_vec())
                .add_file("etc/table-loader", script(&cmds));
            let (mut mem, mut map) = (FakeMemory::default(), ram_map());
            let err = install(&mut cfg, &mut mem, &mut map, &[]).unwrap_err();
            assert!(expected(&err), "unexpected error {err}");
            assert!(!format!("{err}").is_empty());
        }
        let mut cfg = FakeFwCfg::new().add_file("etc/table-loader", vec![0u8; 100]);
        let (mut mem, mut map) = (FakeMemory::default(), ram_map());
        assert_eq!(
            install(&mut cfg, &mut mem, &mut map, &[]).unwrap_err(),
            AcpiError::TruncatedScript(100)
        );
    }

    /// Random mutations of a QEMU-shaped script must give an error or tables, never a panic.
    #[test]
    fn mutated_scripts_never_panic() {
        let base = qemu_like();
        let script = base.file_data("etc/table-loader").to_vec();
        let mut rng = crate::fakes::Rng(0x2545_F491_4F6C_DD1D);
        for _ in 0..3000 {
            let mut s = script.clone();
            for _ in 0..1 + rng.next(6) {
                let at = rng.next(s.len() as u64) as usize;
                s[at] = match rng.next(3) {
                    0 => 0xFF,
                    1 => rng.next(5) as u8, // command numbers, small sizes
                    _ => rng.next(256) as u8,
                };
            }
            let mut cfg = FakeFwCfg::new()
                .add_file("etc/acpi/tables", base.file_data("etc/acpi/tables").to_vec())
                .add_file("etc/acpi/rsdp", base.file_data("etc/acpi/rsdp").to_vec())
                .add_file("etc/table-loader", s);
            let (mut mem, mut map) = (FakeMemory::default(), ram_map());
            let _ = install(&mut cfg, &mut mem, &mut map, &[]);
        }
    }

    #[test]
    fn no_script_means_no_acpi_and_unknown_commands_are_skipped() {
        let (mut mem, mut map) = (FakeMemory::default(), ram_map());
        assert_eq!(
            install(&mut FakeFwCfg::new(), &mut mem, &mut map, &[]).unwrap(),
            None
        );
        let mut cfg = FakeFwCfg::new().add_file("etc/table-loader", vec![0x55u8; 128]);
        assert_eq!(install(&mut cfg, &mut mem, &mut map, &[]).unwrap(), None);
    }
}
