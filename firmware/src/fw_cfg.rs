//! fw_cfg: the driver (DMA when the device offers it, port I/O otherwise) and the item-level
//! interface the rest of the firmware uses.
use crate::hw;
use crate::memory::Memory;
use core::sync::atomic::{compiler_fence, Ordering};
use minnow_bootproto::fw_cfg::{self as wire, dma, key, DmaAccess, FileEntry};
use zerocopy::{FromZeros, IntoBytes};

/// Most directory entries the firmware caches. QEMU's default is 32 file slots.
pub const MAX_FILES: usize = 64;

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
    fn file(&self, name: &str) -> Option<File>;

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

/// The fw_cfg directory, read once.
pub struct Directory {
    entries: [FileEntry; MAX_FILES],
    len: usize,
}

impl Directory {
    pub fn empty() -> Self {
        Self {
            entries: [FileEntry::new_zeroed(); MAX_FILES],
            len: 0,
        }
    }

    /// Reads the directory: its be32 count, then every entry in one transfer.
    pub fn read(cfg: &mut dyn FwCfg) -> Result<Self, FwCfgError> {
        let mut count = [0u8; 4];
        cfg.read_item(key::FILE_DIR, &mut count)?;
        let count = u32::from_be_bytes(count);
        if count as usize > MAX_FILES {
            return Err(FwCfgError::TooManyFiles(count));
        }
        let mut dir = Self::empty();
        dir.len = count as usize;
        cfg.read(dir.entries[..dir.len].as_mut_bytes())?;
        Ok(dir)
    }

    pub fn find(&self, name: &str) -> Option<File> {
        self.entries[..self.len]
            .iter()
            .find(|e| e.is(name))
            .map(|e| File {
                key: e.select.get(),
                size: e.size.get(),
            })
    }
}

/// The x86 fw_cfg device on ports 0x510/0x511/0x514.
pub struct PortFwCfg {
    dma: bool,
    /// Selector to apply with the next DMA transfer (folded into its control word).
    pending_select: Option<u16>,
    dir: Directory,
}

impl PortFwCfg {
    /// Checks the signature, learns whether DMA is offered, and reads the file directory.
    pub fn probe() -> Result<Self, FwCfgError> {
        let mut sig = [0u8; 4];
        hw::outw(wire::PORT_SELECTOR, key::SIGNATURE);
        sig.iter_mut().for_each(|b| *b = hw::inb(wire::PORT_DATA));
        if sig != wire::SIGNATURE {
            return Err(FwCfgError::NoDevice);
        }
        // Only the ID's low byte carries feature bits.
        hw::outw(wire::PORT_SELECTOR, key::ID);
        let dma = u32::from(hw::inb(wire::PORT_DATA)) & wire::ID_DMA != 0;
        let mut cfg = Self {
            dma,
            pending_select: None,
            dir: Directory::empty(),
        };
        cfg.dir = Directory::read(&mut cfg)?;
        Ok(cfg)
    }

    pub fn has_dma(&self) -> bool {
        self.dma
    }

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

impl FwCfg for PortFwCfg {
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

    fn file(&self, name: &str) -> Option<File> {
        self.dir.find(name)
    }
}
