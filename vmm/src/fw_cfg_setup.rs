//! What the machine tells its firmware through fw_cfg: CPUs, RAM and `etc/e820`, the `-kernel`
//! items laid out as QEMU lays them out, the ACPI tables with the table-loader script that
//! installs them (unless `acpi=off`), and the user's `-fw_cfg` files.
use crate::config::{Bios, Config, FwCfgSource};
use crate::devices::fw_cfg::{FwCfg, FwCfgBuilder, FwCfgError};
use crate::devices::virtio::placement;
use crate::kernel_layout::{self, Blob, KernelInput, KernelLayoutError};
use crate::layout;
use crate::vstate::memory;
use minnow_bootproto::e820::{self, E820Entry};
use minnow_bootproto::fw_cfg::file;
use std::path::{Path, PathBuf};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::IntoBytes;

#[derive(Debug, thiserror::Error)]
pub enum FwCfgSetupError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// QEMU's words, which test runners look for (kvm-unit-tests' probe run).
    #[error("could not open kernel file '{path}': {source}")]
    ReadKernel { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Kernel(#[from] KernelLayoutError),
    #[error("fw_cfg: {0}")]
    FwCfg(#[from] FwCfgError),
    #[error("the kernel's segment at {addr:#x} ({len} bytes) does not fit in guest RAM: give the VM more memory (-m)")]
    Segment { addr: u64, len: usize },
    #[error("{0} fw_cfg files: Minnow's ROM reads at most 32 (fewer -fw_cfg files, or another -bios)")]
    TooManyFilesForRom(usize),
    #[error(transparent)]
    Acpi(#[from] minnow_acpi::AcpiError),
}

/// A multiboot `-initrd` list: each module's file is its text up to the first space, and the
/// whole text is its command line (the module's name in the MBI).
fn multiboot_modules(arg: &Path) -> Result<Vec<Blob>, FwCfgSetupError> {
    kernel_layout::multiboot_modules(&arg.to_string_lossy())
        .into_iter()
        .map(|text| {
            let file = text.split(' ').next().unwrap_or_default();
            Ok(Blob::new(text.clone(), read(Path::new(file))?))
        })
        .collect()
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

/// What the ACPI tables describe of the machine `c` builds.
pub fn acpi_machine(c: &Config) -> minnow_acpi::Machine {
    minnow_acpi::Machine {
        cpus: c.cpus,
        rtc: c.machine.rtc.or(true),
        serial: c.machine.isa_serial,
        ioapic2: c.ioapic2(),
        pic: c.pic(),
        virtio_mmio: placement::transports(c)
            .unwrap_or_default()
            .into_iter()
            .map(|t| minnow_acpi::VirtioMmio {
                base: t.base,
                gsi: t.gsi,
            })
            .collect(),
        fw_cfg_dma: true,
        vmgenid: true,
    }
}

/// `etc/acpi/tables`, `etc/acpi/rsdp` and `etc/table-loader`, as QEMU's microvm serves them.
fn add_acpi(builder: &mut FwCfgBuilder, c: &Config) -> Result<(), FwCfgSetupError> {
    let files = minnow_acpi::build(&acpi_machine(c))?;
    builder.add_file(file::ACPI_TABLES, files.tables, false)?;
    builder.add_file(file::ACPI_RSDP, files.rsdp, false)?;
    builder.add_file(file::TABLE_LOADER, files.table_loader, false)?;
    Ok(())
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
    if c.acpi() {
        add_acpi(&mut builder, c)?;
    }
    // With -bios none the VMM loads the kernel itself (direct_boot.rs): no kernel items.
    if let Some(kernel) = c.kernel.as_ref().filter(|_| c.bios != Bios::None) {
        let kernel_bytes = std::fs::read(kernel).map_err(|source| FwCfgSetupError::ReadKernel {
            path: kernel.to_path_buf(),
            source,
        })?;
        let initrds = match &c.initrd {
            // As QEMU: for a multiboot kernel, -initrd is "file args,file2 args2".
            Some(arg) if kernel_layout::is_multiboot(&kernel_bytes) => multiboot_modules(arg)?,
            Some(path) => vec![Blob::new(path.display().to_string(), read(path)?)],
            None => Vec::new(),
        };
        let input = KernelInput {
            kernel: Blob::new(kernel.display().to_string(), kernel_bytes),
            initrds,
            cmdline: placement::kernel_cmdline(c),
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
        if let Some((name, rom)) = crate::option_roms::load(c, loaded.format) {
            let order = crate::option_roms::bootorder(name.trim_start_matches("genroms/"));
            builder.add_file(&name, rom, false)?;
            builder.add_file("bootorder", order, false)?;
        }
    }
    if c.firmware_milestones && c.milestone_port_is_free() {
        let port = minnow_bootproto::milestone::PORT.to_le_bytes();
        builder.add_file(file::MINNOW_MILESTONES, port.to_vec(), false)?;
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

    #[test]
    fn the_acpi_files_are_served_unless_acpi_is_off() {
        use crate::config::OnOffAuto;
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let files = |acpi, bios| {
            let mut c = Config {
                bios,
                ..Config::default()
            };
            c.machine.acpi = acpi;
            let fw_cfg = build(&c, &ram).unwrap();
            [file::ACPI_TABLES, file::ACPI_RSDP, file::TABLE_LOADER]
                .map(|f| fw_cfg.file_contents(f).is_some())
        };
        assert_eq!(files(OnOffAuto::Auto, Bios::Builtin), [true; 3]);
        assert_eq!(files(OnOffAuto::On, Bios::Builtin), [true; 3]);
        assert_eq!(files(OnOffAuto::Off, Bios::Builtin), [false; 3]);
        // Direct boot installs the tables itself, and fw_cfg still serves them, as QEMU does.
        assert_eq!(files(OnOffAuto::Auto, Bios::None), [true; 3]);
        assert_eq!(files(OnOffAuto::Off, Bios::None), [false; 3]);
        let c = Config::default();
        let served = build(&c, &ram).unwrap();
        let want = minnow_acpi::build(&acpi_machine(&c)).unwrap();
        assert_eq!(
            served.file_contents(file::ACPI_TABLES),
            Some(want.tables.as_slice())
        );
    }
}
