//! [`FwCfgBuilder`]: the fw_cfg device's contents, checked and laid out once, before the guest
//! runs: the well-known items, the files in QEMU's name order, and the directory.
use super::{
    FwCfg, FwCfgError, Item, ARCH_LOCAL, DEFAULT_FILE_SLOTS, ENTRY_MASK, MAX_FILE_SLOTS, MAX_NAME_LEN,
    WRITE_CHANNEL,
};
use minnow_bootproto::fw_cfg::{self as wire, key, FileEntry};
use std::collections::BTreeMap;
use vm_memory::GuestMemory;
use zerocopy::IntoBytes;

/// Builds an [`FwCfg`]: the well-known items with microvm's values, then whatever the machine adds.
///
/// ```
/// # use minnow_vmm::devices::fw_cfg::{FwCfgBuilder, FwCfgError};
/// # use vm_memory::{GuestAddress, GuestMemoryMmap};
/// let memory = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("1 MiB");
/// let fw_cfg = FwCfgBuilder::new()
///     .ram_size(1 << 20)
///     .cpus(2, 2)
///     .file("etc/e820", vec![0; 20])?
///     .build(memory)?;
/// assert_eq!(fw_cfg.file_count(), 1);
/// # Ok::<(), FwCfgError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FwCfgBuilder {
    items: BTreeMap<u16, Vec<u8>>,
    files: BTreeMap<String, Item>,
    file_slots: usize,
}

impl Default for FwCfgBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl FwCfgBuilder {
    /// SIGNATURE "QEMU", ID (traditional + DMA), a zero UUID, NOGRAPHIC 0, BOOT_MENU 0, one CPU,
    /// RAM_SIZE 0 (set it), IRQ0_OVERRIDE 1, and [`DEFAULT_FILE_SLOTS`] file slots.
    pub fn new() -> Self {
        let mut b = Self {
            items: BTreeMap::new(),
            files: BTreeMap::new(),
            file_slots: DEFAULT_FILE_SLOTS,
        };
        b.items.insert(key::SIGNATURE, wire::SIGNATURE.to_vec());
        b.items.insert(
            key::ID,
            (wire::ID_TRADITIONAL | wire::ID_DMA).to_le_bytes().to_vec(),
        );
        b.items.insert(key::UUID, vec![0; 16]);
        b.items.insert(key::NOGRAPHIC, 0u16.to_le_bytes().to_vec());
        b.items.insert(key::BOOT_MENU, 0u16.to_le_bytes().to_vec());
        b.items.insert(key::NB_CPUS, 1u16.to_le_bytes().to_vec());
        b.items.insert(key::MAX_CPUS, 1u16.to_le_bytes().to_vec());
        b.items.insert(key::RAM_SIZE, 0u64.to_le_bytes().to_vec());
        b.items.insert(key::IRQ0_OVERRIDE, 1u32.to_le_bytes().to_vec());
        b
    }

    /// RAM_SIZE: all guest RAM, in bytes (le64).
    pub fn ram_size(self, bytes: u64) -> Self {
        self.item(key::RAM_SIZE, bytes.to_le_bytes().to_vec())
    }

    /// NB_CPUS (boot CPUs) and MAX_CPUS (QEMU: the APIC ID limit), le16 each.
    pub fn cpus(self, boot: u16, max: u16) -> Self {
        self.item(key::NB_CPUS, boot.to_le_bytes().to_vec())
            .item(key::MAX_CPUS, max.to_le_bytes().to_vec())
    }

    pub fn nographic(self, on: bool) -> Self {
        self.item(key::NOGRAPHIC, u16::from(on).to_le_bytes().to_vec())
    }

    pub fn boot_menu(self, on: bool) -> Self {
        self.item(key::BOOT_MENU, u16::from(on).to_le_bytes().to_vec())
    }

    /// IRQ0_OVERRIDE: whether the PIT's IRQ0 reaches IOAPIC pin 2 (QEMU always says 1).
    pub fn irq0_override(self, on: bool) -> Self {
        self.item(key::IRQ0_OVERRIDE, u32::from(on).to_le_bytes().to_vec())
    }

    /// Number of file slots (QEMU's `x-file-slots`); default [`DEFAULT_FILE_SLOTS`].
    pub fn file_slots(mut self, slots: usize) -> Self {
        self.file_slots = slots;
        self
    }

    /// Sets (or replaces) a keyed item. Keys are checked by [`Self::build`].
    pub fn item(mut self, key: u16, data: Vec<u8>) -> Self {
        self.items.insert(key, data);
        self
    }

    /// Sets several keyed items, e.g. those of a [`crate::kernel_layout::KernelLayout`].
    pub fn items(mut self, items: impl IntoIterator<Item = (u16, Vec<u8>)>) -> Self {
        self.items.extend(items);
        self
    }

    /// Adds a read-only file.
    pub fn file(mut self, name: &str, data: Vec<u8>) -> Result<Self, FwCfgError> {
        self.add_file(name, data, false)?;
        Ok(self)
    }

    /// Adds a file the guest may overwrite by DMA (a table-loader WRITE_POINTER target such as
    /// "etc/vmgenid_addr"); read it back with [`FwCfg::file_contents`].
    pub fn writable_file(mut self, name: &str, data: Vec<u8>) -> Result<Self, FwCfgError> {
        self.add_file(name, data, true)?;
        Ok(self)
    }

    /// Adds a file in place: for loops over a list of files.
    pub fn add_file(&mut self, name: &str, data: Vec<u8>, writable: bool) -> Result<(), FwCfgError> {
        if name.len() > MAX_NAME_LEN {
            return Err(FwCfgError::NameTooLong {
                name: name.into(),
                len: name.len(),
            });
        }
        if name.is_empty() || wire::encode_name(name).is_none() {
            return Err(FwCfgError::InvalidName(name.into()));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(FwCfgError::FileTooLarge {
                name: name.into(),
                len: data.len(),
            });
        }
        if self.files.contains_key(name) {
            return Err(FwCfgError::DuplicateName(name.into()));
        }
        self.files.insert(name.into(), Item { data, writable });
        Ok(())
    }

    /// Number of files added so far.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The device, doing DMA in `memory`. Files get selectors 0x20.. in name order, as in QEMU.
    pub fn build<M: GuestMemory>(self, memory: M) -> Result<FwCfg<M>, FwCfgError> {
        let slots = self.file_slots;
        if slots == 0 || slots > MAX_FILE_SLOTS {
            return Err(FwCfgError::BadSlotCount(slots));
        }
        if self.files.len() > slots {
            return Err(FwCfgError::TooManyFiles {
                count: self.files.len(),
                slots,
            });
        }
        let key_limit = key::FILE_FIRST + slots as u16;
        let mut items = BTreeMap::new();
        for (k, data) in self.items {
            let index = k & ENTRY_MASK;
            let generic = k & ARCH_LOCAL == 0;
            // Bit 14 is no key; FILE_DIR and the file slots are the device's; an x86-local key
            // must be inside the key space, as in QEMU, or no selector could reach it.
            if k & WRITE_CHANNEL != 0
                || (generic && (index == key::FILE_DIR || index >= key::FILE_FIRST))
                || index >= key_limit
            {
                return Err(FwCfgError::ReservedKey(k));
            }
            if u32::try_from(data.len()).is_err() {
                return Err(FwCfgError::ItemTooLarge {
                    key: k,
                    len: data.len(),
                });
            }
            items.insert(
                k,
                Item {
                    data,
                    writable: false,
                },
            );
        }
        // QEMU sizes the directory for every slot, with the count of the ones in use.
        let mut dir = Vec::with_capacity(4 + slots * core::mem::size_of::<FileEntry>());
        dir.extend_from_slice(&(self.files.len() as u32).to_be_bytes());
        let mut names = BTreeMap::new();
        for (select, (name, item)) in (key::FILE_FIRST..).zip(self.files) {
            let entry = FileEntry {
                size: (item.data.len() as u32).into(),
                select: select.into(),
                reserved: 0.into(),
                // Checked by add_file.
                name: wire::encode_name(&name).unwrap_or([0; wire::FILE_NAME_LEN]),
            };
            dir.extend_from_slice(entry.as_bytes());
            names.insert(name, select);
            items.insert(select, item);
        }
        dir.resize(4 + slots * core::mem::size_of::<FileEntry>(), 0);
        items.insert(
            key::FILE_DIR,
            Item {
                data: dir,
                writable: false,
            },
        );
        Ok(FwCfg {
            memory,
            items,
            names,
            key_limit,
            current: Some(key::SIGNATURE),
            offset: 0,
            dma_address: 0,
        })
    }
}
