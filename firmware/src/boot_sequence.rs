//! The boot sequence, one step per line. `main.rs` runs it on the real machine; tests run it
//! against fakes.
use crate::acpi_loader;
use crate::boot::{self, Handoff};
use crate::error::BootError;
use crate::fw_cfg::FwCfg;
use crate::memory::Memory;
use crate::memory_map::{self, CmosSizes, MemoryMap};
use crate::mptable;
use minnow_bootproto::fw_cfg::key;

/// The machine-specific operations the sequence needs besides fw_cfg and memory.
pub trait Machine {
    /// Sets up the chipset (pc/q35) before QEMU builds its ACPI tables from that state.
    fn init_chipset(&mut self);
    /// The CMOS memory-size bytes, for machines without `etc/e820`.
    fn cmos_sizes(&mut self) -> CmosSizes;
    /// CPUID(1) EAX and EDX, for the MP table's processor entries.
    fn cpu_signature(&self) -> (u32, u32);
}

/// Everything from fw_cfg to a loaded kernel. Returns how to enter it.
pub fn run(
    cfg: &mut dyn FwCfg,
    mem: &mut dyn Memory,
    machine: &mut dyn Machine,
) -> Result<Handoff, BootError> {
    machine.init_chipset();
    let mut map = read_memory_map(cfg, machine)?;
    let kernel = boot::Kernel::find(cfg)?;
    let rsdp = acpi_loader::install(cfg, mem, &mut map, &kernel.occupied())?;
    if rsdp.is_none() {
        write_mptable(cfg, mem, machine)?;
    }
    boot::load(
        &mut boot::Env {
            cfg,
            mem,
            map: &map,
            rsdp,
        },
        &kernel,
    )
}

/// QEMU's `etc/e820` (or the CMOS sizes), with the firmware's legacy areas carved out.
fn read_memory_map(cfg: &mut dyn FwCfg, machine: &mut dyn Machine) -> Result<MemoryMap, BootError> {
    let mut map = match memory_map::from_fw_cfg(cfg)? {
        Some(map) => map,
        None => memory_map::from_cmos(machine.cmos_sizes())?,
    };
    memory_map::carve_legacy(&mut map)?;
    Ok(map)
}

fn write_mptable(cfg: &mut dyn FwCfg, mem: &mut dyn Memory, machine: &dyn Machine) -> Result<(), BootError> {
    let mut cpus = [0u8; 2];
    cfg.read_item(key::NB_CPUS, &mut cpus)?;
    let irq0_override = cfg.read_u32(key::IRQ0_OVERRIDE)? != 0;
    let (cpu_signature, cpu_features) = machine.cpu_signature();
    let m = mptable::Machine {
        cpus: u16::from_le_bytes(cpus),
        irq0_override,
        cpu_signature,
        cpu_features,
    };
    mptable::write(mem, &m);
    Ok(())
}
