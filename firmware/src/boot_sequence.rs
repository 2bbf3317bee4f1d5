//! The boot sequence, one step per line. `main.rs` runs it on the real machine; tests run it
//! against fakes.
use crate::acpi_loader;
use crate::bios_data::{self, FarPointer};
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
    /// The ROM's real-mode stub every IVT vector points at (see bios_data.rs).
    fn unsupported_bios_call(&self) -> FarPointer;
}

/// Everything from fw_cfg to a loaded kernel. Returns how to enter it.
pub fn run(
    cfg: &mut dyn FwCfg,
    mem: &mut dyn Memory,
    machine: &mut dyn Machine,
) -> Result<Handoff, BootError> {
    machine.init_chipset();
    let mut map = read_memory_map(cfg, machine)?;
    bios_data::install(mem, &map, machine.unsupported_bios_call());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeFwCfg, FakeMemory};
    use crate::layout;
    use crate::memory::read_obj;
    use minnow_bootproto::e820::{self, E820Entry};
    use minnow_bootproto::multiboot1::Info;
    use minnow_bootproto::pvh::StartInfo;
    use zerocopy::IntoBytes;

    struct FakeMachine {
        chipset_inits: u32,
    }

    impl Machine for FakeMachine {
        fn init_chipset(&mut self) {
            self.chipset_inits += 1;
        }
        fn cmos_sizes(&mut self) -> CmosSizes {
            CmosSizes {
                above_16m_64k: 0x0F00,
                ..CmosSizes::default()
            }
        }
        fn cpu_signature(&self) -> (u32, u32) {
            (0x600, 0x200)
        }
        fn unsupported_bios_call(&self) -> FarPointer {
            FarPointer::in_rom(0xF_FF40)
        }
    }

    const RAM: u64 = 0x1000_0000;

    fn e820_file() -> Vec<u8> {
        E820Entry::new(0, RAM, e820::RAM).as_bytes().to_vec()
    }

    fn le(v: u32) -> Vec<u8> {
        v.to_le_bytes().to_vec()
    }

    /// fw_cfg as QEMU's microvm (acpi=off) fills it for `-kernel vmlinux -initrd I -append C`.
    fn qemu_pvh() -> FakeFwCfg {
        let mut elf_head = vec![0u8; 0x2000];
        elf_head[..4].copy_from_slice(b"\x7fELF");
        FakeFwCfg::new()
            .add_file("etc/e820", e820_file())
            .item(key::NB_CPUS, 2u16.to_le_bytes().to_vec())
            .item(key::IRQ0_OVERRIDE, le(1))
            .item(key::KERNEL_ENTRY, le(0x100_0850))
            .item(key::KERNEL_ADDR, le(0x100_0000))
            .item(key::KERNEL_SIZE, le(0x200_0000))
            .item(key::SETUP_SIZE, le(0x2000))
            .item(key::SETUP_DATA, elf_head)
            .item(key::CMDLINE_SIZE, le(14))
            .item(key::CMDLINE_DATA, b"console=ttyS0\0".to_vec())
            .item(key::INITRD_ADDR, le(0xFF0_0000))
            .item(key::INITRD_SIZE, le(0x1000))
            .item(key::INITRD_DATA, vec![0x5A; 0x1000])
    }

    #[test]
    fn a_qemu_pvh_boot_without_acpi_gets_start_info_and_an_mp_table() {
        let (mut cfg, mut mem, mut machine) = (
            qemu_pvh(),
            FakeMemory::default(),
            FakeMachine { chipset_inits: 0 },
        );
        let h = run(&mut cfg, &mut mem, &mut machine).unwrap();
        assert_eq!(
            h,
            Handoff::Pvh {
                entry: 0x100_0850,
                start_info: layout::PVH_START_INFO as u32
            }
        );
        assert_eq!(machine.chipset_inits, 1);
        let si: StartInfo = read_obj(&mem, layout::PVH_START_INFO);
        assert_eq!(si.rsdp_paddr.get(), 0, "no ACPI");
        assert_eq!(mem.bytes(si.cmdline_paddr.get(), 13), b"console=ttyS0");
        assert_eq!(mem.bytes(0xFF0_0000, 0x1000), vec![0x5A; 0x1000]);
        assert_eq!(mem.bytes(layout::MP_FLOATING_POINTER, 4), b"_MP_");
        assert_eq!(mem.bytes(layout::MPTABLE, 4), b"PCMP");
    }

    #[test]
    fn no_kernel_is_reported_before_anything_is_loaded() {
        let mut cfg = FakeFwCfg::new().add_file("etc/e820", e820_file());
        let (mut mem, mut machine) = (FakeMemory::default(), FakeMachine { chipset_inits: 0 });
        assert_eq!(
            run(&mut cfg, &mut mem, &mut machine).unwrap_err(),
            BootError::NoKernel
        );
        assert_eq!(mem.bytes(layout::MPTABLE, 4), [0; 4], "nothing written");
    }

    #[test]
    fn without_etc_e820_the_cmos_sizes_give_the_map() {
        // The same items, but no files: no etc/e820.
        let mut cfg_no_e820 = FakeFwCfg::new();
        cfg_no_e820.items = qemu_pvh().items;
        // The CMOS says 16 MiB + 0xF00 * 64 KiB = 256 MiB.
        let (mut mem, mut machine) = (FakeMemory::default(), FakeMachine { chipset_inits: 0 });
        let h = run(&mut cfg_no_e820, &mut mem, &mut machine).unwrap();
        assert!(matches!(h, Handoff::Pvh { .. }));
        let si: StartInfo = read_obj(&mem, layout::PVH_START_INFO);
        let last: minnow_bootproto::pvh::MemmapEntry = read_obj(
            &mem,
            si.memmap_paddr.get() + 24 * u64::from(si.memmap_entries.get() - 1),
        );
        assert_eq!(last.addr.get() + last.size.get(), 0x1000_0000);
    }

    #[test]
    fn a_qemu_multiboot_kernel_gets_its_mbi_completed() {
        let mbi = Info {
            mmap_addr: (layout::QEMU_MULTIBOOT_MMAP as u32).into(),
            ..Default::default()
        };
        let mut cfg = FakeFwCfg::new()
            .add_file("etc/e820", e820_file())
            .item(key::NB_CPUS, 1u16.to_le_bytes().to_vec())
            .item(key::KERNEL_ENTRY, le(0x10_000C))
            .item(key::KERNEL_ADDR, le(0x10_0000))
            .item(key::KERNEL_SIZE, le(0x100))
            .item(key::KERNEL_DATA, vec![0xF4; 0x100])
            .item(key::INITRD_ADDR, le(layout::QEMU_MULTIBOOT_MBI as u32))
            .item(key::INITRD_SIZE, le(88))
            .item(key::INITRD_DATA, [mbi.as_bytes(), &[0u8; 20]].concat());
        let (mut mem, mut machine) = (FakeMemory::default(), FakeMachine { chipset_inits: 0 });
        let h = run(&mut cfg, &mut mem, &mut machine).unwrap();
        assert_eq!(
            h,
            Handoff::Multiboot1 {
                entry: 0x10_000C,
                info: layout::QEMU_MULTIBOOT_MBI as u32
            }
        );
        let info: Info = read_obj(&mem, layout::QEMU_MULTIBOOT_MBI);
        assert_eq!(info.mem_upper.get(), ((RAM - 0x10_0000) / 1024) as u32);
        assert!(info.mmap_length.get() >= 3 * 24);
        assert_eq!(mem.bytes(0x10_0000, 0x100), vec![0xF4; 0x100]);
    }
}
