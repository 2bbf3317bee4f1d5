//! QEMU's fw_cfg device, x86 I/O variant with DMA (hw/nvram/fw_cfg.c, docs/specs/fw_cfg.rst).
//!
//! One [`BusDevice`] for ports 0x510..0x51C:
//!
//! | offset | port  | access                                                                        |
//! |--------|-------|-------------------------------------------------------------------------------|
//! | 0      | 0x510 | selector: 16-bit little-endian write; resets the offset to 0                   |
//! | 1      | 0x511 | data: 8-bit read of the selected item at its offset (0 past the end)          |
//! | 4..8   | 0x514 | DMA address, high half (a big-endian 32-bit value); reads "QEMU"              |
//! | 8..12  | 0x518 | DMA address, low half: writing it runs the transfer; reads " CFG"             |
//!
//! Items are the well-known keys (0x00..0x19, and 0x8000.. for x86-local ones) and files, kept
//! sorted by name like QEMU, in selectors from 0x20. The device is built once, before the guest
//! runs, with [`FwCfgBuilder`]; only files marked writable change afterwards (DMA WRITE, as used
//! by the table-loader's WRITE_POINTER), and [`FwCfg::file_contents`] reads them back.
//!
//! DMA goes through vm-memory's checked accessors: a descriptor or transfer range outside guest
//! memory sets the ERROR bit and touches no memory; nothing here can reach host memory outside the
//! guest's mappings.
use crate::bus::BusDevice;
use crate::snapshot::codec::{self, StateError};
use minnow_bootproto::fw_cfg::{self as wire, dma, key};
use std::collections::BTreeMap;
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

mod builder;

pub use builder::FwCfgBuilder;
/// File slots QEMU offers by default (FW_CFG_FILE_SLOTS_DFLT).
pub const QEMU_FILE_SLOTS: usize = 0x20;
/// File slots Minnow's machine offers by default (QEMU's `x-file-slots=64`).
pub const DEFAULT_FILE_SLOTS: usize = 64;
/// Directory entries minnow.rom caches (firmware/src/fw_cfg.rs `MAX_FILES`): with more files than
/// this, it refuses the directory. See [`FwCfg::exceeds_firmware_cache`].
pub const FIRMWARE_DIRECTORY_CACHE: usize = 32;
/// Longest file name: the directory's 56-byte field holds it with its NUL.
pub const MAX_NAME_LEN: usize = wire::FILE_NAME_LEN - 1;

/// Selector bit 14: the old "write" channel. QEMU ignores it when looking items up.
const WRITE_CHANNEL: u16 = 0x4000;
/// Selector bit 15: x86-local keys (0x8000..).
const ARCH_LOCAL: u16 = 0x8000;
/// The index part of a key, once the two flag bits are off.
const ENTRY_MASK: u16 = !(WRITE_CHANNEL | ARCH_LOCAL);
/// Most file slots the 14-bit key space has room for.
const MAX_FILE_SLOTS: usize = (ENTRY_MASK - key::FILE_FIRST) as usize + 1;

/// What reads of 0x514..0x51C return: the DMA signature, big-endian.
const DMA_SIGNATURE: [u8; 8] = wire::DMA_SIGNATURE.to_be_bytes();
/// Register offsets in the 12-port range.
const SELECTOR: u64 = 0;
const DATA: u64 = 1;
const DMA_HIGH: u64 = (wire::PORT_DMA_HIGH - wire::PORT_SELECTOR) as u64;
const DMA_LOW: u64 = (wire::PORT_DMA_LOW - wire::PORT_SELECTOR) as u64;
/// Zero-fill chunk for DMA reads past an item's end.
const ZEROS: [u8; 4096] = [0; 4096];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FwCfgError {
    #[error("fw_cfg file name {name:?} is {len} bytes long; the directory holds at most {MAX_NAME_LEN}")]
    NameTooLong { name: String, len: usize },
    #[error("fw_cfg file name {0:?} is empty or contains a NUL byte")]
    InvalidName(String),
    #[error("fw_cfg file {0:?} is added twice")]
    DuplicateName(String),
    #[error("{count} fw_cfg files do not fit in the device's {slots} file slots")]
    TooManyFiles { count: usize, slots: usize },
    #[error("{0} fw_cfg file slots: the key space has room for 1 to {MAX_FILE_SLOTS}")]
    BadSlotCount(usize),
    #[error("fw_cfg item {key:#06x} is {len} bytes long; items are limited to 4 GiB - 1")]
    ItemTooLarge { key: u16, len: usize },
    #[error("fw_cfg file {name:?} is {len} bytes long; items are limited to 4 GiB - 1")]
    FileTooLarge { name: String, len: usize },
    #[error(
        "fw_cfg key {0:#06x} cannot be set as an item: FILE_DIR and the file slots belong to the \
         device (use a file), and bit 14 is not part of a key"
    )]
    ReservedKey(u16),
}

#[derive(Clone, Debug, Default)]
struct Item {
    data: Vec<u8>,
    writable: bool,
}

/// The fw_cfg device. Put it on the I/O bus at [`wire::PORT_SELECTOR`] for
/// [`wire::PORT_RANGE_DMA`] ports.
pub struct FwCfg<M: GuestMemory = GuestMemoryMmap> {
    memory: M,
    /// By key (arch-local keys keep bit 15); files at their selectors.
    items: BTreeMap<u16, Item>,
    /// File name to selector.
    names: BTreeMap<String, u16>,
    /// Keys whose index (bits 0-13) reaches this are outside the device's key space.
    key_limit: u16,
    /// The selected key with bit 14 cleared; `None` after selecting outside the key space.
    current: Option<u16>,
    offset: u32,
    /// The DMA address register; cleared when a transfer starts.
    dma_address: u64,
}

/// What a DMA descriptor asks for, in QEMU's precedence: READ, then WRITE, then SKIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    None,
    Read,
    Write,
    Skip,
}

impl<M: GuestMemory> FwCfg<M> {
    /// The current contents of file `name` (what the guest wrote, for a writable file).
    pub fn file_contents(&self, name: &str) -> Option<&[u8]> {
        let select = self.names.get(name)?;
        self.items.get(select).map(|item| item.data.as_slice())
    }

    /// The selector of file `name`.
    pub fn file_selector(&self, name: &str) -> Option<u16> {
        self.names.get(name).copied()
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.names.len()
    }

    /// Whether minnow.rom would refuse this directory: it caches [`FIRMWARE_DIRECTORY_CACHE`]
    /// entries (QEMU's default slot count), and fails with more files than that.
    pub fn exceeds_firmware_cache(&self) -> bool {
        self.names.len() > FIRMWARE_DIRECTORY_CACHE
    }

    /// Selects `key` (as a write to 0x510 or a DMA SELECT does) and rewinds to offset 0.
    fn select(&mut self, key: u16) {
        let key = key & !WRITE_CHANNEL;
        self.current = ((key & ENTRY_MASK) < self.key_limit).then_some(key);
        self.offset = 0;
    }

    /// A read of the data port: the next byte, or 0 past the end (the offset stays there).
    fn read_data(&mut self) -> u8 {
        let Some(item) = self.current.and_then(|k| self.items.get(&k)) else {
            return 0;
        };
        match item.data.get(self.offset as usize) {
            Some(&b) => {
                self.offset += 1;
                b
            }
            None => 0,
        }
    }

    /// Whether `[addr, addr + len)` is all guest memory allowing `access`.
    fn in_memory(&self, addr: u64, len: u64, access: Permissions) -> bool {
        let Ok(count) = usize::try_from(len) else {
            return false;
        };
        addr.checked_add(len).is_some() && self.memory.check_range(GuestAddress(addr), count, access)
    }

    /// Writes `data` at `addr` if all of it is guest memory; otherwise writes nothing.
    fn write_guest(&self, addr: u64, data: &[u8]) -> bool {
        self.in_memory(addr, data.len() as u64, Permissions::Write)
            && self.memory.write_slice(data, GuestAddress(addr)).is_ok()
    }

    /// Runs the DMA transfer whose descriptor is at `desc_addr` and writes its status back.
    fn dma(&mut self, desc_addr: u64) {
        let mut raw = [0u8; 16];
        if !self.in_memory(desc_addr, raw.len() as u64, Permissions::Read)
            || self.memory.read_slice(&mut raw, GuestAddress(desc_addr)).is_err()
        {
            // As QEMU: report the error in `control` if that much of the descriptor is memory.
            self.write_guest(desc_addr, &dma::ERROR.to_be_bytes());
            return;
        }
        let word = |at: usize| u32::from_be_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let control = word(0);
        let length = word(4);
        let address = (u64::from(word(8)) << 32) | u64::from(word(12));
        if control & dma::SELECT != 0 {
            self.select((control >> 16) as u16);
        }
        let op = if control & dma::READ != 0 {
            Op::Read
        } else if control & dma::WRITE != 0 {
            Op::Write
        } else if control & dma::SKIP != 0 {
            Op::Skip
        } else {
            Op::None
        };
        let ok = self.transfer(op, length, address);
        self.write_guest(desc_addr, &(if ok { 0 } else { dma::ERROR }).to_be_bytes());
    }

    /// One transfer on the current item. On failure nothing has changed: neither guest memory
    /// nor the item's offset.
    fn transfer(&mut self, op: Op, length: u32, address: u64) -> bool {
        let Some(current) = self.current else {
            // Selected outside the key space.
            return false;
        };
        let offset = self.offset as usize;
        let len = length as usize;
        match op {
            Op::None => true,
            Op::Skip => {
                let avail = self
                    .items
                    .get(&current)
                    .map_or(0, |i| i.data.len().saturating_sub(offset));
                self.offset += len.min(avail) as u32;
                true
            }
            Op::Read => {
                if !self.in_memory(address, u64::from(length), Permissions::Write) {
                    return false;
                }
                let data = self
                    .items
                    .get(&current)
                    .map_or(&[][..], |i| i.data.get(offset..).unwrap_or(&[]));
                let n = len.min(data.len());
                if self
                    .memory
                    .write_slice(&data[..n], GuestAddress(address))
                    .is_err()
                {
                    return false;
                }
                // Past the item's end: zeros, and the offset stays at the end.
                let mut at = address + n as u64;
                let mut left = len - n;
                while left > 0 {
                    let chunk = left.min(ZEROS.len());
                    if self
                        .memory
                        .write_slice(&ZEROS[..chunk], GuestAddress(at))
                        .is_err()
                    {
                        return false;
                    }
                    at += chunk as u64;
                    left -= chunk;
                }
                self.offset += n as u32;
                true
            }
            Op::Write => {
                if len == 0 {
                    return true;
                }
                if !self.in_memory(address, u64::from(length), Permissions::Read) {
                    return false;
                }
                let Some(item) = self.items.get(&current) else {
                    return false;
                };
                // QEMU: only writable items, and the whole write must fit in the item.
                if !item.writable || offset.checked_add(len).is_none_or(|end| end > item.data.len()) {
                    return false;
                }
                let mut buf = vec![0u8; len];
                if self.memory.read_slice(&mut buf, GuestAddress(address)).is_err() {
                    return false;
                }
                if let Some(item) = self.items.get_mut(&current) {
                    item.data[offset..offset + len].copy_from_slice(&buf);
                }
                self.offset += length;
                true
            }
        }
    }
}

impl<M: GuestMemory + Send> BusDevice for FwCfg<M> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (offset, data.len()) {
            (DATA, 1) => data[0] = self.read_data(),
            (DMA_HIGH.., _) => {
                for (i, b) in data.iter_mut().enumerate() {
                    let at = (offset - DMA_HIGH) as usize + i;
                    *b = DMA_SIGNATURE.get(at).copied().unwrap_or(0xFF);
                }
            }
            // The selector is write-only; the data port is 8 bits wide.
            _ => data.fill(0xFF),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data) {
            (SELECTOR, &[lo, hi]) => self.select(u16::from_le_bytes([lo, hi])),
            (DMA_HIGH, &[a, b, c, d]) => self.dma_address = u64::from(u32::from_be_bytes([a, b, c, d])) << 32,
            (DMA_LOW, &[a, b, c, d]) => {
                let address = self.dma_address | u64::from(u32::from_be_bytes([a, b, c, d]));
                self.dma_address = 0;
                self.dma(address);
            }
            (DMA_HIGH, bytes) if bytes.len() == 8 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                self.dma_address = 0;
                self.dma(u64::from_be_bytes(be));
            }
            // Data port writes are ignored (QEMU >= 2.4); other widths are not registers.
            _ => {}
        }
    }

    /// QEMU's fw_cfg reset: the signature selected again, no transfer in progress. The items
    /// stay (a guest-written file too, as QEMU keeps it).
    fn reset(&mut self) {
        self.select(key::SIGNATURE);
        self.dma_address = 0;
    }

    fn kind(&self) -> &'static str {
        "fw_cfg"
    }

    /// Where the guest is in its reads (key, offset, DMA address) and what it wrote into the
    /// writable files; the rest comes from the command line, as it did for the saved VM.
    fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        let written = self
            .items
            .iter()
            .filter(|(_, item)| item.writable)
            .map(|(&key, item)| (key, item.data.clone()))
            .collect();
        let state = FwCfgState {
            current: self.current,
            offset: self.offset,
            dma_address: self.dma_address,
            written,
        };
        codec::encode("fw_cfg", &state)
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let state: FwCfgState = codec::decode("fw_cfg", bytes)?;
        for (key, data) in state.written {
            match self.items.get_mut(&key) {
                Some(item) if item.writable && item.data.len() == data.len() => item.data = data,
                _ => {
                    return Err(StateError::refused(
                        "fw_cfg",
                        format!(
                            "the snapshot wrote file {key:#x}, which this machine does not have as saved"
                        ),
                    ))
                }
            }
        }
        self.current = state.current;
        self.offset = state.offset;
        self.dma_address = state.dma_address;
        Ok(())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FwCfgState {
    current: Option<u16>,
    offset: u32,
    dma_address: u64,
    written: Vec<(u16, Vec<u8>)>,
}

#[cfg(test)]
mod tests;
