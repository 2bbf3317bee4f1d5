//! The Linux boot protocol's 32- and 64-bit entries: build boot_params (the zero page) and enter
//! the protected-mode kernel directly, with no real-mode setup code and no BIOS services.
use super::{check_range, Env, Handoff};
use crate::error::BootError;
use crate::layout;
use crate::memory::write_obj;
use minnow_bootproto::linux::{self as proto, xloadflags, BootParams, SetupHeader, E820_MAX_ENTRIES};
use zerocopy::{FromZeros, IntoBytes};

/// A kernel whose pieces are in memory.
pub struct Loaded {
    /// The setup header as the image (or QEMU, which patched it) has it.
    pub header: SetupHeader,
    /// How many bytes of `header` the image defines (the rest is zeroed).
    pub header_len: usize,
    /// Where the protected-mode kernel was loaded.
    pub kernel_addr: u64,
    pub cmdline_addr: u64,
    pub initrd: Option<(u64, u64)>,
}

/// Checks that the kernel has room to decompress: `init_size` bytes from its load address.
pub fn check_kernel_room(
    env: &Env,
    header: &SetupHeader,
    kernel_addr: u64,
    file_len: u64,
) -> Result<(), BootError> {
    let need = u64::from(header.init_size.get()).max(file_len);
    check_range(env.map, "kernel", kernel_addr, need)
}

/// Writes boot_params and chooses the entry: 64-bit when the kernel offers it (XLF_KERNEL_64).
pub fn finish(env: &mut Env, k: &Loaded) -> Result<Handoff, BootError> {
    let mut bp = BootParams::new_zeroed();
    let len = k.header_len.min(core::mem::size_of::<SetupHeader>());
    bp.hdr.as_mut_bytes()[..len].copy_from_slice(&k.header.as_bytes()[..len]);
    let hdr = &mut bp.hdr;
    hdr.cmd_line_ptr = (k.cmdline_addr as u32).into();
    bp.ext_cmd_line_ptr = ((k.cmdline_addr >> 32) as u32).into();
    if let Some((addr, size)) = k.initrd {
        hdr.ramdisk_image = (addr as u32).into();
        hdr.ramdisk_size = (size as u32).into();
        bp.ext_ramdisk_image = ((addr >> 32) as u32).into();
        bp.ext_ramdisk_size = ((size >> 32) as u32).into();
    }
    if hdr.vid_mode.get() == 0 {
        hdr.vid_mode = 0xFFFF.into(); // "normal": no mode change
    }
    hdr.code32_start = (k.kernel_addr as u32).into();
    bp.acpi_rsdp_addr = env.rsdp.unwrap_or(0).into();
    let mut n = 0;
    for (slot, e) in bp.e820_table.iter_mut().zip(env.map.entries()) {
        *slot = e;
        n += 1;
    }
    bp.e820_entries = n as u8;
    debug_assert!(
        env.map.count() <= E820_MAX_ENTRIES,
        "memory_map::MAX_ENTRIES is below 128"
    );
    let xlf = bp.hdr.xloadflags.get();
    write_obj(env.mem, layout::LINUX_BOOT_PARAMS, &bp);
    Ok(if xlf & xloadflags::KERNEL_64 != 0 {
        Handoff::Linux64 {
            entry: k.kernel_addr + proto::ENTRY64_OFFSET,
            boot_params: layout::LINUX_BOOT_PARAMS,
        }
    } else {
        Handoff::Linux32 {
            entry: k.kernel_addr as u32,
            boot_params: layout::LINUX_BOOT_PARAMS as u32,
        }
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
    fn boot_params_carry_the_header_map_cmdline_initrd_and_rsdp() {
        let mut map = MemoryMap::new();
        map.set(0, 0x9E000, e820::RAM).unwrap();
        map.set(0x9E000, 0x2000, e820::RESERVED).unwrap();
        map.set(0x100000, 0x1000_0000, e820::RAM).unwrap();
        let (mut cfg, mut mem) = (FakeFwCfg::new(), FakeMemory::default());
        let mut env = Env {
            cfg: &mut cfg,
            mem: &mut mem,
            map: &map,
            rsdp: Some(0xE0000),
        };
        let mut header = SetupHeader::new_zeroed();
        header.header = proto::HEADER_MAGIC.into();
        header.version = 0x020F.into();
        header.xloadflags = xloadflags::KERNEL_64.into();
        header.init_size = 0x100_0000.into();
        header.kernel_info_offset = 0xDEAD.into(); // beyond header_len: must not be copied
        let k = Loaded {
            header,
            header_len: 0x268 - 0x1F1,
            kernel_addr: 0x100000,
            cmdline_addr: 0x20000,
            initrd: Some((0x0FF0_0000, 0x1234)),
        };
        let h = finish(&mut env, &k).unwrap();
        assert_eq!(
            h,
            Handoff::Linux64 {
                entry: 0x100200,
                boot_params: layout::LINUX_BOOT_PARAMS
            }
        );
        let bp: BootParams = read_obj(&mem, layout::LINUX_BOOT_PARAMS);
        assert_eq!(bp.hdr.header.get(), proto::HEADER_MAGIC);
        assert_eq!(bp.hdr.kernel_info_offset.get(), 0);
        assert_eq!(
            (bp.hdr.cmd_line_ptr.get(), bp.hdr.ramdisk_image.get()),
            (0x20000, 0x0FF0_0000)
        );
        assert_eq!(bp.hdr.ramdisk_size.get(), 0x1234);
        assert_eq!(bp.acpi_rsdp_addr.get(), 0xE0000);
        assert_eq!(bp.e820_entries, 3);
        assert_eq!(bp.e820_table[1].kind.get(), e820::RESERVED);
        assert_eq!(bp.sentinel, 0);
    }
}
