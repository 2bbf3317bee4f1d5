//! Multiboot 1: the information structure (MBI) a kernel gets in EBX. QEMU builds most of it for
//! `-kernel` and leaves the memory fields to firmware; for raw images we build all of it.
use super::raw::modules::{Module as LoadedModule, MAX_MODULES};
use super::{Env, Handoff};
use crate::error::BootError;
use crate::layout;
use crate::memory::{read_obj, write_obj};
use crate::memory_map::MemoryMap;
use minnow_bootproto::multiboot1::{info_flags, Info, MmapEntry, Module};

const MBI: u64 = layout::MULTIBOOT_INFO;
const MMAP: u64 = MBI + 0x100;
const MMAP_END: u64 = MBI + 0x800;
const MODULES: u64 = MMAP_END;
const LOADER_NAME: u64 = MBI + 0x900;
const _: () = assert!(MODULES + 16 * MAX_MODULES as u64 <= LOADER_NAME);

/// mem_lower and mem_upper: KiB of RAM from 0 and from 1 MiB up to the first hole.
pub fn mem_info(map: &MemoryMap) -> (u32, u32) {
    let lower = crate::bios_data::base_memory_kib(map);
    let upper = map
        .ram_end_from(layout::HIGH_MEMORY)
        .map_or(0, |end| (end - layout::HIGH_MEMORY) / 1024);
    (u32::from(lower), upper.min(u64::from(u32::MAX)) as u32)
}

/// Writes the memory map at `addr` (at most `max` entries); returns its length in bytes.
fn write_mmap(env: &mut Env, addr: u64, max: usize) -> u32 {
    let mut len = 0;
    for (i, e) in env.map.entries().take(max).enumerate() {
        let entry = MmapEntry {
            size: 20.into(),
            base_addr: e.addr,
            length: e.size,
            kind: e.kind,
        };
        write_obj(env.mem, addr + 24 * i as u64, &entry);
        len += 24;
    }
    len
}

/// Completes the MBI QEMU placed at `mbi` (in the INITRD slot): memory sizes and the memory map,
/// which QEMU leaves to firmware at the `mmap_addr` it chose.
pub fn finish_qemu(env: &mut Env, entry: u32, mbi: u64) -> Result<Handoff, BootError> {
    let mut info: Info = read_obj(env.mem, mbi);
    let mmap = u64::from(info.mmap_addr.get());
    // QEMU's map area runs from mmap_addr up to the MBI itself.
    let room = if mmap < mbi {
        ((mbi - mmap) / 24) as usize
    } else {
        0
    };
    if room == 0 {
        return Err(BootError::Multiboot(
            "QEMU's MBI leaves no room for the memory map",
        ));
    }
    let (lower, upper) = mem_info(env.map);
    info.mem_lower = lower.into();
    info.mem_upper = upper.into();
    info.mmap_length = write_mmap(env, mmap, room).into();
    info.flags = (info.flags.get() | info_flags::MEMORY | info_flags::MMAP).into();
    write_obj(env.mem, mbi, &info);
    Ok(Handoff::Multiboot1 {
        entry,
        info: mbi as u32,
    })
}

/// Builds a whole MBI for a raw image: memory, map, command line, the modules and the loader name.
pub fn finish_raw(
    env: &mut Env,
    entry: u32,
    cmdline: u64,
    modules: &[LoadedModule],
) -> Result<Handoff, BootError> {
    let (lower, upper) = mem_info(env.map);
    let mmap_length = write_mmap(env, MMAP, ((MMAP_END - MMAP) / 24) as usize);
    env.mem.write(LOADER_NAME, b"minnow\0");
    let mut info = Info {
        flags: (info_flags::MEMORY | info_flags::CMDLINE | info_flags::MMAP | info_flags::LOADER_NAME).into(),
        mem_lower: lower.into(),
        mem_upper: upper.into(),
        cmdline: (cmdline as u32).into(),
        mmap_length: mmap_length.into(),
        mmap_addr: (MMAP as u32).into(),
        boot_loader_name: (LOADER_NAME as u32).into(),
        ..Default::default()
    };
    // modules.rs loads them below 4 GiB and caps their number at what fits before LOADER_NAME.
    for (i, m) in modules.iter().enumerate() {
        let entry = Module {
            mod_start: (m.start as u32).into(),
            mod_end: (m.end as u32).into(),
            string: (m.string as u32).into(),
            reserved: 0.into(),
        };
        write_obj(env.mem, MODULES + 16 * i as u64, &entry);
    }
    if !modules.is_empty() {
        info.flags = (info.flags.get() | info_flags::MODS).into();
        info.mods_count = (modules.len() as u32).into();
        info.mods_addr = (MODULES as u32).into();
    }
    write_obj(env.mem, MBI, &info);
    Ok(Handoff::Multiboot1 {
        entry,
        info: MBI as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeFwCfg, FakeMemory};
    use minnow_bootproto::e820;

    fn map() -> MemoryMap {
        let mut m = MemoryMap::new();
        m.set(0, 0x9E000, e820::RAM).unwrap();
        m.set(0x9E000, 0x2000, e820::RESERVED).unwrap();
        m.set(0x100000, 0x7F0_0000, e820::RAM).unwrap();
        m
    }

    #[test]
    fn qemu_mbi_gets_memory_sizes_and_the_map_below_it() {
        let map = map();
        let (mut cfg, mut mem) = (FakeFwCfg::new(), FakeMemory::default());
        let qemu = Info {
            flags: info_flags::CMDLINE.into(),
            mmap_addr: (layout::QEMU_MULTIBOOT_MMAP as u32).into(),
            ..Default::default()
        };
        write_obj(&mut mem, layout::QEMU_MULTIBOOT_MBI, &qemu);
        let mut env = Env {
            cfg: &mut cfg,
            mem: &mut mem,
            map: &map,
            rsdp: None,
        };
        let h = finish_qemu(&mut env, 0x10_0010, layout::QEMU_MULTIBOOT_MBI).unwrap();
        assert_eq!(
            h,
            Handoff::Multiboot1 {
                entry: 0x10_0010,
                info: 0x9500
            }
        );
        let info: Info = read_obj(&mem, layout::QEMU_MULTIBOOT_MBI);
        assert_eq!(
            info.flags.get(),
            info_flags::CMDLINE | info_flags::MEMORY | info_flags::MMAP
        );
        assert_eq!(
            (info.mem_lower.get(), info.mem_upper.get()),
            (0x9E000 / 1024, 0x7F0_0000 / 1024)
        );
        assert_eq!(info.mmap_length.get(), 3 * 24);
        let e: MmapEntry = read_obj(&mem, layout::QEMU_MULTIBOOT_MMAP + 48);
        assert_eq!(
            (e.size.get(), e.base_addr.get(), e.kind.get()),
            (20, 0x100000, e820::RAM)
        );
    }

    #[test]
    fn raw_mbi_lists_every_module_with_its_string() {
        let map = map();
        let (mut cfg, mut mem) = (FakeFwCfg::new(), FakeMemory::default());
        let mut env = Env {
            cfg: &mut cfg,
            mem: &mut mem,
            map: &map,
            rsdp: None,
        };
        let modules = [
            LoadedModule {
                start: 0x200_0000,
                end: 0x200_1000,
                string: 0x3_0000,
            },
            LoadedModule {
                start: 0x300_0000,
                end: 0x300_0010,
                string: 0x3_0020,
            },
        ];
        finish_raw(&mut env, 0x100000, 0x20000, &modules).unwrap();
        let info: Info = read_obj(&mem, MBI);
        assert_eq!(info.mods_count.get(), 2);
        let list: [Module; 2] = read_obj(&mem, u64::from(info.mods_addr.get()));
        let got: Vec<_> = list
            .iter()
            .map(|m| (m.mod_start.get(), m.mod_end.get(), m.string.get()))
            .collect();
        assert_eq!(
            got,
            [
                (0x200_0000, 0x200_1000, 0x3_0000),
                (0x300_0000, 0x300_0010, 0x3_0020)
            ]
        );
        assert_eq!(mem.bytes(u64::from(info.boot_loader_name.get()), 7), b"minnow\0");
    }
}
