//! PVH: enter a kernel's 32-bit XEN_ELFNOTE_PHYS32_ENTRY with an hvm_start_info (version 1, with
//! a memory map), the command line, the initrd as module 0 and the RSDP.
use super::{Env, Handoff};
use crate::error::BootError;
use crate::layout;
use crate::memory::write_obj;
use minnow_bootproto::pvh::{MemmapEntry, ModlistEntry, StartInfo, START_MAGIC};

/// The kernel's command line, initrd and entry, already in memory.
pub struct Loaded {
    pub entry: u32,
    pub cmdline_addr: u64,
    pub initrd: Option<(u64, u64)>,
}

pub fn finish(env: &mut Env, k: &Loaded) -> Result<Handoff, BootError> {
    let max = ((layout::PVH_MEMMAP_END - layout::PVH_MEMMAP) / 24) as usize;
    let mut entries = 0u32;
    for (i, e) in env.map.entries().take(max).enumerate() {
        let m = MemmapEntry {
            addr: e.addr,
            size: e.size,
            kind: e.kind,
            reserved: 0.into(),
        };
        write_obj(env.mem, layout::PVH_MEMMAP + 24 * i as u64, &m);
        entries += 1;
    }
    let mut info = StartInfo {
        magic: START_MAGIC.into(),
        version: 1.into(),
        cmdline_paddr: k.cmdline_addr.into(),
        rsdp_paddr: env.rsdp.unwrap_or(0).into(),
        memmap_paddr: layout::PVH_MEMMAP.into(),
        memmap_entries: entries.into(),
        ..Default::default()
    };
    if let Some((paddr, size)) = k.initrd {
        let module = ModlistEntry {
            paddr: paddr.into(),
            size: size.into(),
            ..Default::default()
        };
        write_obj(env.mem, layout::PVH_MODLIST, &module);
        info.nr_modules = 1.into();
        info.modlist_paddr = layout::PVH_MODLIST.into();
    }
    write_obj(env.mem, layout::PVH_START_INFO, &info);
    Ok(Handoff::Pvh {
        entry: k.entry,
        start_info: layout::PVH_START_INFO as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeFwCfg, FakeMemory};
    use crate::memory::read_obj;
    use crate::memory_map::MemoryMap;
    use minnow_bootproto::e820;

    #[test]
    fn start_info_has_the_memmap_module_cmdline_and_rsdp() {
        let mut map = MemoryMap::new();
        map.set(0, 0x9E000, e820::RAM).unwrap();
        map.set(0x100000, 0x1000_0000, e820::RAM).unwrap();
        let (mut cfg, mut mem) = (FakeFwCfg::new(), FakeMemory::default());
        let mut env = Env {
            cfg: &mut cfg,
            mem: &mut mem,
            map: &map,
            rsdp: Some(0xE0000),
        };
        let k = Loaded {
            entry: 0x100_0000,
            cmdline_addr: 0x20000,
            initrd: Some((0x800_0000, 77)),
        };
        assert_eq!(
            finish(&mut env, &k).unwrap(),
            Handoff::Pvh {
                entry: 0x100_0000,
                start_info: 0x6000
            }
        );
        let si: StartInfo = read_obj(&mem, layout::PVH_START_INFO);
        assert_eq!(
            (si.magic.get(), si.version.get(), si.nr_modules.get()),
            (START_MAGIC, 1, 1)
        );
        assert_eq!((si.cmdline_paddr.get(), si.rsdp_paddr.get()), (0x20000, 0xE0000));
        assert_eq!(si.memmap_entries.get(), 2);
        let m: MemmapEntry = read_obj(&mem, si.memmap_paddr.get() + 24);
        assert_eq!(
            (m.addr.get(), m.size.get(), m.kind.get()),
            (0x100000, 0x1000_0000, e820::RAM)
        );
        let module: ModlistEntry = read_obj(&mem, si.modlist_paddr.get());
        assert_eq!((module.paddr.get(), module.size.get()), (0x800_0000, 77));
    }
}
