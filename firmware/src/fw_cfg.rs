//! fw_cfg: the driver (DMA when the device offers it, port I/O otherwise) and the item-level
//! interface the rest of the firmware uses.
use crate::hw;
use crate::memory::Memory;
use core::sync::atomic::{compiler_fence, Ordering};
use minnow_bootproto::fw_cfg::{self as wire, dma, key, DmaAccess, FileEntry};
use minnow_bootproto::table_loader::same_file;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Most directory entries the firmware caches: QEMU's default number of file slots
/// (FW_CFG_FILE_SLOTS_DFLT), which only `x-file-slots` raises.
pub const MAX_FILES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwCfgError {
    /// Selector 0 did not read "QEMU".
    NoDevice,
    /// The device set the DMA error bit for this item (a transfer outside RAM, or a bad selector).
    Dma { key: u16 },
    /// Writing needs DMA, which the device does not offer.
    WriteNeedsDma,
    /// The directory lists more files than the firmware caches.
    TooManyFiles(u32),
}

impl core::fmt::Display for FwCfgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoDevice => write!(f, "no fw_cfg device at I/O port 0x510"),
            Self::Dma { key } => write!(f, "fw_cfg DMA transfer failed for item {key:#06x}"),
            Self::WriteNeedsDma => write!(f, "fw_cfg write needs DMA, which this device lacks"),
            Self::TooManyFiles(n) => write!(f, "fw_cfg lists {n} files, the firmware handles {MAX_FILES}"),
        }
    }
}

/// A file found in the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct File {
    pub key: u16,
    pub size: u32,
}

/// Item-level access to fw_cfg. An item is selected, then read (or written, or skipped) from
/// offset 0 onwards; each select starts again at offset 0.
pub trait FwCfg {
    /// Selects `key`; the next transfer starts at its offset 0.
    fn select(&mut self, key: u16);
    /// Reads the next `buf.len()` bytes of the selected item (zeros past its end).
    fn read(&mut self, buf: &mut [u8]) -> Result<(), FwCfgError>;
    /// Advances the selected item's offset by `len`.
    fn skip(&mut self, len: u32) -> Result<(), FwCfgError>;
    /// Copies the next `len` bytes of the selected item to guest memory at `dest`.
    fn load(&mut self, dest: u64, len: u32, mem: &mut dyn Memory) -> Result<(), FwCfgError>;
    /// Writes `data` into the selected item at its current offset (DMA only).
    fn write(&mut self, data: &[u8]) -> Result<(), FwCfgError>;
    /// Looks a file up by name.
    fn file(&self, name: &str) -> Option<File> {
        self.file_bytes(name.as_bytes())
    }
    /// Looks a file up by a name given as bytes.
    fn file_bytes(&self, name: &[u8]) -> Option<File>;

    /// Reads `buf.len()` bytes of `key` from offset 0.
    fn read_item(&mut self, key: u16, buf: &mut [u8]) -> Result<(), FwCfgError> {
        self.select(key);
        self.read(buf)
    }
    /// Reads a little-endian u32 item.
    fn read_u32(&mut self, key: u16) -> Result<u32, FwCfgError> {
        let mut b = [0u8; 4];
        self.read_item(key, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads `buf.len()` bytes of `key` from `offset`.
    fn read_at(&mut self, key: u16, offset: u32, buf: &mut [u8]) -> Result<(), FwCfgError> {
        self.select(key);
        if offset > 0 {
            self.skip(offset)?;
        }
        self.read(buf)
    }
    /// Copies `len` bytes of `key` from `offset` to guest memory at `dest`.
    fn load_at(
        &mut self,
        key: u16,
        offset: u32,
        dest: u64,
        len: u32,
        mem: &mut dyn Memory,
    ) -> Result<(), FwCfgError> {
        self.select(key);
        if offset > 0 {
            self.skip(offset)?;
        }
        self.load(dest, len, mem)
    }
}

/// The fw_cfg directory, read once, as the device serves it: a be32 count, then the entries.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Directory {
    count: zerocopy::big_endian::U32,
    entries: [FileEntry; MAX_FILES],
}

impl Directory {
    pub fn empty() -> Self {
        Self::new_zeroed()
    }

    fn len(&self) -> usize {
        (self.count.get() as usize).min(MAX_FILES)
    }

    /// Reads the directory: its be32 count, then every entry in one transfer.
    pub fn read(cfg: &mut dyn FwCfg) -> Result<Self, FwCfgError> {
        let mut dir = Self::empty();
        dir.fill(cfg)?;
        Ok(dir)
    }

    /// Reads the directory into `self`, in place and in one transfer: the count and as many
    /// entries as fit (the device pads past the item's end with zeros).
    pub fn fill(&mut self, cfg: &mut dyn FwCfg) -> Result<(), FwCfgError> {
        cfg.read_item(key::FILE_DIR, self.as_mut_bytes())?;
        match self.count.get() {
            n if n as usize > MAX_FILES => Err(FwCfgError::TooManyFiles(n)),
            _ => Ok(()),
        }
    }

    pub fn find(&self, name: &str) -> Option<File> {
        self.find_bytes(name.as_bytes())
    }

    /// Looks up a name given as bytes (a table-loader file field up to its NUL).
    pub fn find_bytes(&self, name: &[u8]) -> Option<File> {
        // Pad the name like the directory's fields, then compare word by word.
        let mut field = [0u8; wire::FILE_NAME_LEN];
        field.get_mut(..name.len())?.copy_from_slice(name);
        self.entries[..self.len()]
            .iter()
            .find(|e| same_file(&e.name, &field))
            .map(|e| File {
                key: e.select.get(),
                size: e.size.get(),
            })
    }
}

/// The x86 fw_cfg device's registers: ports 0x510/0x511/0x514.
pub struct Ports {
    dma: bool,
    /// Selector to apply with the next transfer (folded into a DMA control word).
    pending_select: Option<u16>,
}

/// The x86 fw_cfg device with its file directory.
pub struct PortFwCfg {
    ports: Ports,
    dir: Directory,
}

impl PortFwCfg {
    /// An unprobed device; [`Self::probe`] fills it in place.
    pub fn new() -> Self {
        Self {
            ports: Ports {
                dma: false,
                pending_select: None,
            },
            dir: Directory::empty(),
        }
    }

    /// Checks the signature, learns whether DMA is offered, and reads the file directory.
    ///
    /// The DMA register reads as "QEMU CFG" when the DMA interface exists: one access instead of
    /// five for the port I/O signature. The ID's DMA bit is then confirmed through DMA itself.
    /// Without that register, the port I/O signature and ID decide.
    pub fn probe(&mut self) -> Result<(), FwCfgError> {
        if hw::inl(wire::PORT_DMA_HIGH) == wire::DMA_SIGNATURE_HIGH_PORT {
            self.ports.dma = true;
            let id = self.ports.read_u32(key::ID)?;
            self.ports.dma = id & wire::ID_DMA != 0;
        }
        if !self.ports.dma {
            let mut sig = [0u8; 4];
            self.ports.read_item(key::SIGNATURE, &mut sig)?;
            if sig != wire::SIGNATURE {
                return Err(FwCfgError::NoDevice);
            }
            // Only the ID's low byte carries feature bits.
            let mut id = [0u8];
            self.ports.read_item(key::ID, &mut id)?;
            self.ports.dma = u32::from(id[0]) & wire::ID_DMA != 0;
        }
        self.dir.fill(&mut self.ports)
    }

    pub fn has_dma(&self) -> bool {
        self.ports.dma
    }
}

impl Default for PortFwCfg {
    fn default() -> Self {
        Self::new()
    }
}

impl Ports {
    /// Runs one DMA transfer and waits for it. `address` is guest-physical.
    fn dma(&mut self, op: u32, len: u32, address: u64) -> Result<(), FwCfgError> {
        let (desc, key) = match self.pending_select.take() {
            Some(key) => (DmaAccess::select_then(key, op, len, address), key),
            None => (DmaAccess::op(op, len, address), key::INVALID),
        };
        // The descriptor lives on the firmware stack, below 4 GiB, so writing the low half of the
        // address register is enough: the high half is zero after every transfer.
        let desc_addr = &desc as *const DmaAccess as u64;
        compiler_fence(Ordering::SeqCst);
        hw::outl(wire::PORT_DMA_LOW, (desc_addr as u32).swap_bytes());
        loop {
            compiler_fence(Ordering::SeqCst);
            // SAFETY: `desc` is a live local; the device updates `control` behind the compiler's
            // back, so it must be read volatile.
            let control = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(desc.control)) }.get();
            if control & !dma::ERROR == 0 {
                return if control & dma::ERROR != 0 {
                    Err(FwCfgError::Dma { key })
                } else {
                    Ok(())
                };
            }
            core::hint::spin_loop();
        }
    }

    /// Port I/O: applies a pending select.
    fn pio_select(&mut self) {
        if let Some(key) = self.pending_select.take() {
            hw::outw(wire::PORT_SELECTOR, key);
        }
    }
}

/// The transfers, without the directory (which is what `Directory::fill` reads through them).
impl FwCfg for Ports {
    fn select(&mut self, key: u16) {
        self.pending_select = Some(key);
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), FwCfgError> {
        if self.dma {
            return self.dma(dma::READ, buf.len() as u32, buf.as_mut_ptr() as u64);
        }
        self.pio_select();
        buf.iter_mut().for_each(|b| *b = hw::inb(wire::PORT_DATA));
        Ok(())
    }

    fn skip(&mut self, len: u32) -> Result<(), FwCfgError> {
        if self.dma {
            return self.dma(dma::SKIP, len, 0);
        }
        self.pio_select();
        (0..len).for_each(|_| {
            hw::inb(wire::PORT_DATA);
        });
        Ok(())
    }

    fn load(&mut self, dest: u64, len: u32, mem: &mut dyn Memory) -> Result<(), FwCfgError> {
        if self.dma {
            return self.dma(dma::READ, len, dest);
        }
        // Port I/O is a byte per exit: a fallback for devices without DMA, not a fast path.
        let mut chunk = [0u8; 512];
        let mut done = 0u32;
        while done < len {
            let n = (len - done).min(chunk.len() as u32);
            self.read(&mut chunk[..n as usize])?;
            mem.write(dest + u64::from(done), &chunk[..n as usize]);
            done += n;
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), FwCfgError> {
        if !self.dma {
            return Err(FwCfgError::WriteNeedsDma);
        }
        self.dma(dma::WRITE, data.len() as u32, data.as_ptr() as u64)
    }

    fn file_bytes(&self, _name: &[u8]) -> Option<File> {
        None
    }
}

impl FwCfg for PortFwCfg {
    fn select(&mut self, key: u16) {
        self.ports.select(key)
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<(), FwCfgError> {
        self.ports.read(buf)
    }
    fn skip(&mut self, len: u32) -> Result<(), FwCfgError> {
        self.ports.skip(len)
    }
    fn load(&mut self, dest: u64, len: u32, mem: &mut dyn Memory) -> Result<(), FwCfgError> {
        self.ports.load(dest, len, mem)
    }
    fn write(&mut self, data: &[u8]) -> Result<(), FwCfgError> {
        self.ports.write(data)
    }
    fn file_bytes(&self, name: &[u8]) -> Option<File> {
        self.dir.find_bytes(name)
    }
}
