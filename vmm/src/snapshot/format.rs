//! The snapshot file, defined once: what `migrate` writes and `-incoming` reads.
//!
//! ```text
//! offset 0   header, 32 bytes, little-endian:
//!            magic "MINNOWVM" | format version u32 | flags u32 (bit 0: memory is sparse)
//!            | state length u64 | CRC-32 of the state u32 | reserved u32 (0)
//! offset 32  the state: `Snapshot` (machine spec, run state, vCPUs, KVM's chips and clock,
//!            devices, ROM), postcard-encoded
//!            zeros up to the next 4 KiB boundary
//!            guest RAM: each range of `Snapshot::memory` in order, each a whole number of pages
//!            (raw: byte for byte, holes where a file's pages are zero), or, with the sparse
//!            flag, per range a bitmap of the pages that hold data and then those pages
//!            (`snapshot::memory`)
//! ```
//! Memory starts on a page boundary so a restore from a raw file can map it copy-on-write
//! (`MAP_PRIVATE`) instead of reading it; a stream (`exec:`) is written sparse. The state is checksummed; memory is not (as QEMU's is
//! not): a file corrupted there gives a guest with corrupted memory.
use super::codec::{self, StateError};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

pub const MAGIC: [u8; 8] = *b"MINNOWVM";
/// Bumped whenever what `Snapshot` holds changes; a restore refuses any other.
pub const VERSION: u32 = 1;
pub const HEADER_LEN: u64 = 32;
pub const PAGE: u64 = 4096;
/// Header flag: guest RAM is in the sparse layout.
pub const FLAG_SPARSE: u32 = 1;
/// The largest state a restore reads (the vCPUs, devices and ROM take well under this).
pub const MAX_STATE: u64 = 64 << 20;

/// What the saved VM was: a restore must build the same machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSpec {
    /// Guest RAM, bytes (`-m`).
    pub memory: u64,
    /// vCPUs (`-smp`).
    pub cpus: u8,
    /// KVM's interrupt controllers, as `Irqchip`'s debug form says it.
    pub irqchip: String,
    /// A checksum of the CPUID the vCPUs were given: another host or `-cpu` differs here.
    pub cpuid: u32,
    /// The firmware ROM's size, 0 for none.
    pub rom_size: u64,
    /// Every device on the buses: (bus, base, length, kind).
    pub devices: Vec<DeviceSlot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSlot {
    pub bus: Bus,
    pub base: u64,
    pub len: u64,
    pub kind: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bus {
    Pio,
    Mmio,
}

impl MachineSpec {
    /// How `self` (the snapshot's) differs from `here` (the machine the command line built), in
    /// words naming the option to change; `None` when they match.
    pub fn difference(&self, here: &MachineSpec) -> Option<String> {
        let mib = |b: u64| b >> 20;
        if self.memory != here.memory {
            return Some(format!(
                "-m: the snapshot is of a {} MiB guest, this one has {} MiB",
                mib(self.memory),
                mib(here.memory)
            ));
        }
        if self.cpus != here.cpus {
            return Some(format!(
                "-smp: the snapshot has {} vCPUs, this machine {}",
                self.cpus, here.cpus
            ));
        }
        if self.irqchip != here.irqchip {
            return Some(format!(
                "-M pic=/pit=: the snapshot's interrupt controllers are {}, this machine's {}",
                self.irqchip, here.irqchip
            ));
        }
        if self.cpuid != here.cpuid {
            return Some(
                "-cpu: the snapshot's vCPUs had other CPU features (another host, or another -cpu)".into(),
            );
        }
        if self.rom_size != here.rom_size {
            return Some(format!(
                "-bios: the snapshot's firmware ROM is {} bytes, this machine's {}",
                self.rom_size, here.rom_size
            ));
        }
        device_difference(&self.devices, &here.devices)
    }
}

fn device_difference(saved: &[DeviceSlot], here: &[DeviceSlot]) -> Option<String> {
    let name = |d: &DeviceSlot| format!("{} at {:?} {:#x}", d.kind, d.bus, d.base);
    for (s, h) in saved.iter().zip(here) {
        if s != h {
            return Some(format!(
                "devices: the snapshot has {}, this machine has {}",
                name(s),
                name(h)
            ));
        }
    }
    match (saved.get(here.len()), here.get(saved.len())) {
        (Some(s), _) => Some(format!(
            "devices: the snapshot has {}, this machine does not",
            name(s)
        )),
        (_, Some(h)) => Some(format!(
            "devices: this machine has {}, the snapshot does not",
            name(h)
        )),
        _ => None,
    }
}

/// One device's saved state, at its place on a bus.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedDevice {
    pub bus: Bus,
    pub base: u64,
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
}

/// A range of guest RAM in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRange {
    pub guest_addr: u64,
    pub len: u64,
}

/// Everything but guest RAM. Byte strings go through `serde_bytes`: postcard writes them as a
/// sequence of u8 would be (a length, then the bytes), but reads them in one copy, not byte by byte.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub spec: MachineSpec,
    /// The VM was paused before `migrate` (a clone waits for `cont`, as QEMU's does).
    pub paused: bool,
    /// Each vCPU's state, encoded by `vstate` (opaque here).
    #[serde(with = "codec::byte_strings")]
    pub vcpus: Vec<Vec<u8>>,
    /// KVM's PICs, I/O APIC and PIT (none with the split irqchip), encoded by `vstate`.
    #[serde(with = "serde_bytes")]
    pub irqchip: Option<Vec<u8>>,
    /// The guest's kvmclock when it stopped, ns.
    pub clock_ns: u64,
    /// The host's UTC when the state was taken, ns: a restore moves the guest's clock on by
    /// the time that passed since.
    pub saved_at_utc_ns: u64,
    pub devices: Vec<SavedDevice>,
    /// The firmware ROM's bytes (the firmware keeps data in it).
    #[serde(with = "serde_bytes")]
    pub rom: Option<Vec<u8>>,
    pub memory: Vec<MemoryRange>,
}

impl Snapshot {
    /// Guest RAM's bytes, all ranges together.
    pub fn ram_bytes(&self) -> u64 {
        self.memory.iter().map(|r| r.len).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("the state stream ended early: {what} needs {wanted} bytes, got {got}")]
    Truncated {
        what: &'static str,
        wanted: u64,
        got: u64,
    },
    #[error("not a minnow snapshot (it starts with {0:02x?}, not \"MINNOWVM\")")]
    Magic([u8; 8]),
    #[error("snapshot format version {found}: this minnow reads version {VERSION} only")]
    Version { found: u32 },
    #[error("snapshot flags {0:#x}: this minnow knows only {FLAG_SPARSE:#x} (sparse memory)")]
    Flags(u32),
    #[error("the snapshot's state is {0} bytes, more than the {MAX_STATE} a snapshot can have")]
    StateTooLarge(u64),
    #[error("the snapshot's state is corrupted (CRC-32 {found:#010x}, the header says {expected:#010x})")]
    Checksum { expected: u32, found: u32 },
    #[error("the snapshot's memory layout is wrong: {0}")]
    Layout(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the snapshot stream: {0}")]
    Io(#[from] io::Error),
}

/// Where guest RAM starts in a file whose state is `state_len` bytes.
pub fn memory_offset(state_len: u64) -> u64 {
    (HEADER_LEN + state_len).div_ceil(PAGE) * PAGE
}

/// The header and state, then the padding before memory. The caller writes memory next, in
/// the layout `flags` says.
pub fn write_state(out: &mut impl Write, snapshot: &Snapshot, flags: u32) -> Result<u64, FormatError> {
    let state = codec::encode("snapshot", snapshot)?;
    let mut header = Vec::with_capacity(HEADER_LEN as usize);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&flags.to_le_bytes());
    header.extend_from_slice(&(state.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&state).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    out.write_all(&header)?;
    out.write_all(&state)?;
    let offset = memory_offset(state.len() as u64);
    let padding = offset - HEADER_LEN - state.len() as u64;
    out.write_all(&vec![0; padding as usize])?;
    Ok(offset)
}

/// Reads exactly `n` bytes (or says how many came).
fn read_exact(input: &mut impl Read, what: &'static str, n: u64) -> Result<Vec<u8>, FormatError> {
    // One read for the whole state, not a dozen growing ones (each a new allocation). Callers
    // bound n (MAX_STATE at most); the cap only guards a future caller that does not.
    let mut buf = Vec::with_capacity(n.min(MAX_STATE) as usize);
    let got = input.take(n).read_to_end(&mut buf)? as u64;
    match got == n {
        true => Ok(buf),
        false => Err(FormatError::Truncated { what, wanted: n, got }),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

/// What [`read_state`] found.
#[derive(Debug)]
pub struct StateRead {
    pub snapshot: Snapshot,
    /// Where guest RAM starts in the file.
    pub memory_offset: u64,
    /// Guest RAM is in the sparse layout.
    pub sparse: bool,
}

/// Reads the header and the state, and the padding up to memory: the reader is left at the
/// first byte of guest RAM. Checks everything but memory.
pub fn read_state(input: &mut impl Read) -> Result<StateRead, FormatError> {
    let header = read_exact(input, "the header", HEADER_LEN)?;
    let mut magic = [0; 8];
    magic.copy_from_slice(&header[..8]);
    if magic != MAGIC {
        return Err(FormatError::Magic(magic));
    }
    let version = u32_at(&header, 8);
    if version != VERSION {
        return Err(FormatError::Version { found: version });
    }
    let flags = u32_at(&header, 12);
    if flags & !FLAG_SPARSE != 0 {
        return Err(FormatError::Flags(flags));
    }
    let state_len = u64::from(u32_at(&header, 16)) | (u64::from(u32_at(&header, 20)) << 32);
    if state_len > MAX_STATE {
        return Err(FormatError::StateTooLarge(state_len));
    }
    let state = read_exact(input, "the state", state_len)?;
    let found = crc32fast::hash(&state);
    let expected = u32_at(&header, 24);
    if found != expected {
        return Err(FormatError::Checksum { expected, found });
    }
    let snapshot: Snapshot = codec::decode("snapshot", &state)?;
    check_memory(&snapshot)?;
    let offset = memory_offset(state_len);
    read_exact(
        input,
        "the padding before memory",
        offset - HEADER_LEN - state_len,
    )?;
    Ok(StateRead {
        snapshot,
        memory_offset: offset,
        sparse: flags & FLAG_SPARSE != 0,
    })
}

/// Memory ranges must be whole pages, in order, not overlapping, and add up to the spec's RAM.
fn check_memory(s: &Snapshot) -> Result<(), FormatError> {
    let mut end = 0u64;
    let mut total = 0u64;
    for r in &s.memory {
        if r.len == 0 || r.len % PAGE != 0 || r.guest_addr % PAGE != 0 || r.guest_addr < end {
            return Err(FormatError::Layout(format!(
                "range {:#x}+{:#x} is not whole pages in order",
                r.guest_addr, r.len
            )));
        }
        end = r
            .guest_addr
            .checked_add(r.len)
            .ok_or_else(|| FormatError::Layout(format!("range {:#x}+{:#x} wraps", r.guest_addr, r.len)))?;
        total = total.saturating_add(r.len);
    }
    match total <= s.spec.memory {
        true => Ok(()),
        false => Err(FormatError::Layout(format!(
            "{total} bytes of memory for a {} byte guest",
            s.spec.memory
        ))),
    }
}

#[cfg(test)]
mod tests;
