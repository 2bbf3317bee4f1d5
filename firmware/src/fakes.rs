//! Host stand-ins for physical memory and the fw_cfg device, for unit tests.
use crate::fw_cfg::{Directory, File, FwCfg, FwCfgError};
use crate::memory::Memory;
use std::collections::BTreeMap;

/// Sparse guest memory: 4 KiB pages created on first touch, zero-filled.
#[derive(Default)]
pub struct FakeMemory {
    pages: BTreeMap<u64, Box<[u8; 4096]>>,
}

impl FakeMemory {
    fn byte_mut(&mut self, addr: u64) -> &mut u8 {
        let page = self
            .pages
            .entry(addr & !0xFFF)
            .or_insert_with(|| Box::new([0; 4096]));
        &mut page[(addr & 0xFFF) as usize]
    }
    pub fn byte(&self, addr: u64) -> u8 {
        self.pages
            .get(&(addr & !0xFFF))
            .map_or(0, |p| p[(addr & 0xFFF) as usize])
    }
    pub fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| self.byte(addr + i)).collect()
    }
}

impl Memory for FakeMemory {
    fn write(&mut self, addr: u64, data: &[u8]) {
        data.iter()
            .enumerate()
            .for_each(|(i, &b)| *self.byte_mut(addr + i as u64) = b);
    }
    fn read(&self, addr: u64, buf: &mut [u8]) {
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = self.byte(addr + i as u64));
    }
    fn fill(&mut self, addr: u64, len: u64, byte: u8) {
        // A page at a time: loaders zero whole BSS segments.
        let (mut at, end) = (addr, addr + len);
        while at < end {
            let page = self
                .pages
                .entry(at & !0xFFF)
                .or_insert_with(|| Box::new([0; 4096]));
            let (from, to) = ((at & 0xFFF) as usize, ((end - (at & !0xFFF)).min(4096)) as usize);
            page[from..to].fill(byte);
            at = (at & !0xFFF) + to as u64;
        }
    }
}

/// An fw_cfg device holding items and named files, recording what the firmware writes.
#[derive(Default)]
pub struct FakeFwCfg {
    pub items: BTreeMap<u16, Vec<u8>>,
    files: Vec<(String, u16)>,
    selected: u16,
    offset: usize,
    pub dma: bool,
}

impl FakeFwCfg {
    pub fn new() -> Self {
        Self {
            dma: true,
            ..Self::default()
        }
    }
    pub fn item(mut self, key: u16, data: impl Into<Vec<u8>>) -> Self {
        self.items.insert(key, data.into());
        self
    }
    pub fn add_file(mut self, name: &str, data: impl Into<Vec<u8>>) -> Self {
        let key = 0x20 + self.files.len() as u16;
        self.files.push((name.to_string(), key));
        self.items.insert(key, data.into());
        self
    }
    pub fn file_data(&self, name: &str) -> &[u8] {
        let key = self
            .files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| *k)
            .expect("file exists");
        &self.items[&key]
    }
    fn current(&mut self) -> &mut Vec<u8> {
        self.items.entry(self.selected).or_default()
    }
}

impl FwCfg for FakeFwCfg {
    fn select(&mut self, key: u16) {
        self.selected = key;
        self.offset = 0;
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<(), FwCfgError> {
        let off = self.offset;
        let data = self.current().clone();
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = data.get(off + i).copied().unwrap_or(0));
        self.offset += buf.len();
        Ok(())
    }
    fn skip(&mut self, len: u32) -> Result<(), FwCfgError> {
        self.offset += len as usize;
        Ok(())
    }
    fn load(&mut self, dest: u64, len: u32, mem: &mut dyn Memory) -> Result<(), FwCfgError> {
        let mut buf = vec![0; len as usize];
        self.read(&mut buf)?;
        mem.write(dest, &buf);
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> Result<(), FwCfgError> {
        if !self.dma {
            return Err(FwCfgError::WriteNeedsDma);
        }
        let off = self.offset;
        let item = self.current();
        if item.len() < off + data.len() {
            return Err(FwCfgError::Dma { key: 0 });
        }
        item[off..off + data.len()].copy_from_slice(data);
        self.offset += data.len();
        Ok(())
    }
    fn file_bytes(&self, name: &[u8]) -> Option<File> {
        let (_, key) = self.files.iter().find(|(n, _)| n.as_bytes() == name)?;
        Some(File {
            key: *key,
            size: self.items[key].len() as u32,
        })
    }
}

/// A xorshift generator for randomized tests: deterministic, so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `below`.
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// The directory as the device would serve it, for testing `Directory::read`.
pub fn directory_item(files: &[(&str, u16, u32)]) -> Vec<u8> {
    let mut out = (files.len() as u32).to_be_bytes().to_vec();
    for (name, key, size) in files {
        out.extend(size.to_be_bytes());
        out.extend(key.to_be_bytes());
        out.extend([0, 0]);
        let mut n = [0u8; 56];
        n[..name.len()].copy_from_slice(name.as_bytes());
        out.extend(n);
    }
    out
}

#[test]
fn the_directory_is_read_and_searched_by_name() {
    let item = directory_item(&[("etc/e820", 0x21, 40), ("etc/table-loader", 0x22, 256)]);
    let mut cfg = FakeFwCfg::new().item(minnow_bootproto::fw_cfg::key::FILE_DIR, item);
    let dir = Directory::read(&mut cfg).unwrap();
    assert_eq!(dir.find("etc/table-loader"), Some(File { key: 0x22, size: 256 }));
    assert_eq!(dir.find("etc/e82"), None);
    let too_many = directory_item(&vec![("x", 0x20, 1); crate::fw_cfg::MAX_FILES + 1]);
    let mut cfg = FakeFwCfg::new().item(minnow_bootproto::fw_cfg::key::FILE_DIR, too_many);
    assert!(matches!(
        Directory::read(&mut cfg),
        Err(FwCfgError::TooManyFiles(33))
    ));
}
