//! The Linux boot protocol's 32- and 64-bit entries: ESI/RSI = boot_params (the zero page).
use super::Handed;
use crate::acpi::RsdpSource;
use crate::bzimage;
use crate::entry::{check_linux_selectors, check_long64, check_protected32, EntryState};
use crate::mem::{read, Phys};
use crate::memmap::MemMap;
use crate::Reason;
use minnow_bootproto::linux::{BootParams, E820_MAX_ENTRIES, HEADER_MAGIC};

pub fn gather<'m>(m: &'m dyn Phys, s: &EntryState) -> Handed<'m> {
    let mut h = Handed::new("bzimage", s);
    // Linux zeroes its own .bss: the loader need not.
    h.bss_must_be_zero = false;
    h.mode = if s.bits == 64 {
        check_long64(m, s)
    } else {
        check_protected32(m, s)
    }
    .and_then(|()| check_linux_selectors(s));
    if s.bits == 32 && (s.rbx | s.rbp | s.rdi) != 0 {
        h.fail("ebx-ebp-edi-not-zero");
    }
    let at = s.rsi;
    let Some(bp) = read::<BootParams>(m, at) else {
        h.fail("boot-params-unreadable");
        return h;
    };
    let hdr = &bp.hdr;
    if hdr.header.get() != HEADER_MAGIC {
        h.fail("esi-not-boot-params");
        return h;
    }
    if bp.scratch.get() == bzimage::SETUP16_MARK {
        h.entry = 16;
    }
    h.region(at, core::mem::size_of::<BootParams>() as u64);
    if hdr.version.get() != bzimage::VERSION || hdr.code32_start.get() != bzimage::CODE32_START {
        h.fail("setup-header-changed");
    }
    if hdr.type_of_loader == 0 {
        h.fail("type-of-loader-unset");
    }
    let cmdline = u64::from(hdr.cmd_line_ptr.get()) | (u64::from(bp.ext_cmd_line_ptr.get()) << 32);
    if cmdline != 0 {
        h.cmdline = Some(cmdline);
    }
    h.cmdline_max = Some(u64::from(hdr.cmdline_size.get()));
    let size = u64::from(hdr.ramdisk_size.get()) | (u64::from(bp.ext_ramdisk_size.get()) << 32);
    let image = u64::from(hdr.ramdisk_image.get()) | (u64::from(bp.ext_ramdisk_image.get()) << 32);
    if size != 0 {
        h.initrd = Some((image, size));
    }
    let n = usize::from(bp.e820_entries);
    if n > E820_MAX_ENTRIES {
        h.map_error = Some(Reason::new("e820-entries-over-128"));
    }
    let mut map = MemMap::default();
    for e in bp.e820_table.iter().take(n) {
        map.push(e.addr.get(), e.size.get(), e.kind.get());
    }
    h.map = Some(map);
    if bp.acpi_rsdp_addr.get() != 0 {
        h.rsdp = RsdpSource::Given(bp.acpi_rsdp_addr.get());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::{long64, protected32};
    use minnow_bootproto::e820::E820Entry;
    use zerocopy::{FromZeros, IntoBytes};

    fn boot_params() -> BootParams {
        let mut bp = BootParams::new_zeroed();
        bp.hdr = bzimage::setup_header(1, 0x4000, 0x10000, true);
        bp.hdr.type_of_loader = 0xB0;
        bp.hdr.cmd_line_ptr = 0x20000.into();
        bp.hdr.ramdisk_image = 0x1F00_0000.into();
        bp.hdr.ramdisk_size = 4096.into();
        bp.acpi_rsdp_addr = 0xE0000.into();
        bp.e820_entries = 2;
        bp.e820_table[0] = E820Entry::new(0, 0x9FC00, 1);
        bp.e820_table[1] = E820Entry::new(0x10_0000, 0x1FF0_0000, 1);
        bp
    }

    #[test]
    fn the_64_bit_entry_reads_boot_params() {
        let mut m = crate::entry::tests::gdt();
        m.put(0x7000, boot_params().as_bytes());
        let s = EntryState {
            rsi: 0x7000,
            ..long64()
        };
        let h = gather(&m, &s);
        assert_eq!((h.mode, h.magic, h.entry), (Ok(()), Ok(()), 64));
        assert_eq!((h.cmdline, h.initrd), (Some(0x20000), Some((0x1F00_0000, 4096))));
        assert_eq!(h.map.as_ref().map(MemMap::len), Some(2));
        assert!(matches!(h.rsdp, RsdpSource::Given(0xE0000)));
    }

    #[test]
    fn the_real_mode_path_is_recognised_and_registers_are_checked() {
        let mut m = crate::entry::tests::gdt();
        let mut bp = boot_params();
        bp.scratch = bzimage::SETUP16_MARK.into();
        m.put(0x11000, bp.as_bytes());
        let s = EntryState {
            rsi: 0x11000,
            ..protected32()
        };
        let h = gather(&m, &s);
        assert_eq!((h.mode, h.magic, h.entry), (Ok(()), Ok(()), 16));
        let h = gather(&m, &EntryState { rbp: 1, ..s });
        assert_eq!(h.magic, Err(Reason::new("ebx-ebp-edi-not-zero")));
        let h = gather(&m, &EntryState { rsi: 0x11100, ..s });
        assert_eq!(h.magic, Err(Reason::new("boot-params-unreadable")));
    }
}
