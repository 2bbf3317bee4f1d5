//! What the machine tells its firmware through fw_cfg: CPUs, RAM and `etc/e820`, the `-kernel`
//! items laid out as QEMU lays them out, and the user's `-fw_cfg` files.
use crate::config::{Bios, Config, FwCfgSource};
use crate::devices::fw_cfg::{FwCfg, FwCfgBuilder, FwCfgError};
use crate::kernel_layout::{self, Blob, KernelInput, KernelLayoutError};
use crate::layout;
use crate::vstate::memory;
use minnow_bootproto::e820::{self, E820Entry};
use std::path::{Path, PathBuf};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::IntoBytes;

#[derive(Debug, thiserror::Error)]
pub enum FwCfgSetupError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Kernel(#[from] KernelLayoutError),
    #[error("fw_cfg: {0}")]
    FwCfg(#[from] FwCfgError),
    #[error("the kernel's segment at {addr:#x} ({len} bytes) does not fit in guest RAM: give the VM more memory (-m)")]
    Segment { addr: u64, len: usize },
    #[error("{0} fw_cfg files: Minnow's ROM reads at most 32 (fewer -fw_cfg files, or another -bios)")]
    TooManyFilesForRom(usize),
}

fn read(path: &Path) -> Result<Vec<u8>, FwCfgSetupError> {
    std::fs::read(path).map_err(|source| FwCfgSetupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// `etc/e820`: the RAM ranges, as QEMU's microvm lists them (no reservations: firmware carves).
pub fn e820(memory: u64) -> Vec<u8> {
    memory::ram_map(memory)
        .into_iter()
        .flat_map(|(start, size)| E820Entry::new(start, size, e820::RAM).as_bytes().to_vec())
        .collect()
}

/// Builds the fw_cfg device for `c`, writing a PVH kernel's segments into `ram` as QEMU does.
pub fn build(c: &Config, ram: &GuestMemoryMmap) -> Result<FwCfg, FwCfgSetupError> {
    let cpus = u16::from(c.cpus);
    let mut builder = FwCfgBuilder::new()
        .ram_size(c.memory)
        .cpus(cpus, cpus)
        .irq0_override(true)
        .nographic(true);
    builder.add_file("etc/e820", e820(c.memory), false)?;
    if let Some(kernel) = &c.kernel {
        let initrds = match &c.initrd {
            Some(path) => vec![Blob::new(path.display().to_string(), read(path)?)],
            None => Vec::new(),
        };
        let input = KernelInput {
            kernel: Blob::new(kernel.display().to_string(), read(kernel)?),
            initrds,
            cmdline: c.append.clone().unwrap_or_default(),
            below_4g_mem_size: c.memory.min(layout::LOW_RAM_MAX),
            acpi_data_size: 0,
        };
        let loaded = kernel_layout::layout(input)?;
        for s in &loaded.segments {
            ram.write_slice(&s.bytes, GuestAddress(s.addr))
                .map_err(|_| FwCfgSetupError::Segment {
                    addr: s.addr,
                    len: s.bytes.len(),
                })?;
        }
        builder = builder.items(loaded.items);
    }
    for f in &c.fw_cfg {
        let data = match &f.source {
            FwCfgSource::File(path) => read(path)?,
            FwCfgSource::String(s) => s.as_bytes().to_vec(),
        };
        builder.add_file(&f.name, data, false)?;
    }
    let fw_cfg = builder.build(ram.clone())?;
    if c.bios == Bios::Builtin && fw_cfg.exceeds_firmware_cache() {
        return Err(FwCfgSetupError::TooManyFilesForRom(fw_cfg.file_count()));
    }
    Ok(fw_cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_lists_ram_below_3gib_and_from_4gib() {
        let map = e820(4 << 30);
        assert_eq!(map.len(), 40);
        let first = E820Entry::new(0, 3 << 30, e820::RAM);
        assert_eq!(&map[..20], first.as_bytes());
        assert_eq!(e820(512 << 20).len(), 20);
    }
}
