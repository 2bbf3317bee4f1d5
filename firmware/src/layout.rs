//! Where the firmware puts things in guest-physical memory. Keep in address order.
//!
//! Low memory below 640 KiB is ours until the kernel starts; the kernel copies what it needs out
//! of the handoff structures early, so apart from the MP table none of it is reserved in e820.
use minnow_bootproto::e820::legacy;

/// The real-mode interrupt vector table and the two BIOS data area words kernels read (see
/// bios_data.rs): the EBDA segment and the KiB of base memory.
pub const REAL_MODE_IVT: u64 = 0;
pub const BDA_EBDA_SEGMENT: u64 = 0x40E;
pub const BDA_BASE_MEMORY_KIB: u64 = 0x413;
/// PVH `hvm_start_info`, then its module list and memory map.
pub const PVH_START_INFO: u64 = 0x6000;
pub const PVH_MODLIST: u64 = 0x6040;
pub const PVH_MEMMAP: u64 = 0x6100;
pub const PVH_MEMMAP_END: u64 = 0x7000;
/// Linux boot_params (the zero page) for the 32/64-bit entries.
pub const LINUX_BOOT_PARAMS: u64 = 0x7000;
/// QEMU's multiboot layout (hw/i386/multiboot.c): memory map area, then the MBI.
pub const QEMU_MULTIBOOT_MMAP: u64 = 0x9000;
pub const QEMU_MULTIBOOT_MBI: u64 = 0x9500;
/// The real-mode part of a bzImage booted from a raw file, and where QEMU puts it.
pub const LINUX_SETUP: u64 = 0x1_0000;
/// Boot information we build for raw multiboot kernels (MBI, memory map, modules, strings).
pub const MULTIBOOT_INFO: u64 = 0x1_0000;
pub const MULTIBOOT_INFO_END: u64 = 0x2_0000;
/// Kernel command line, for every protocol (QEMU's choice for bzImage too).
pub const CMDLINE: u64 = 0x2_0000;
pub const CMDLINE_MAX: u64 = 0x1_0000;
/// Raw multiboot kernels' module strings (each "<fw_cfg name> <command line>").
pub const MODULE_STRINGS: u64 = 0x3_0000;
pub const MODULE_STRINGS_END: u64 = 0x4_0000;
/// Page tables reset.S builds when the CPU lacks 1 GiB pages (see paging.rs), then the
/// firmware's own .bss and stack (see firmware.ld).
pub const FALLBACK_PAGE_TABLES: u64 = 0x7_0000;
pub const FIRMWARE_RAM: u64 = 0x8_0000;
pub const FIRMWARE_RAM_END: u64 = 0x9_0000;
/// MP configuration table (no-ACPI machines), and the floating pointer in the last KiB of base
/// memory, where Linux scans for it. The whole range is reserved in e820. These and the legacy
/// hole are shared with the VMM's direct boot (minnow_bootproto::e820::legacy).
pub const MPTABLE: u64 = legacy::MPTABLE;
pub const MP_FLOATING_POINTER: u64 = legacy::MP_FLOATING_POINTER;
pub const BASE_MEMORY_END: u64 = legacy::BASE_MEMORY_END;
/// Legacy hole: VGA and option ROM space, never RAM for the guest.
pub const LEGACY_HOLE_END: u64 = legacy::LEGACY_HOLE_END;
/// The F-segment allocation zone for the ACPI RSDP (table-loader ZONE_FSEG).
pub const FSEG_ZONE: u64 = legacy::LEGACY_HOLE_END;
pub const FSEG_ZONE_END: u64 = 0xF_0000;
/// The ROM's low alias.
pub const ROM_LOW: u64 = 0xF_0000;
/// Where protected-mode kernels load (bzImage).
pub const HIGH_MEMORY: u64 = legacy::HIGH_MEMORY;
/// Below-4 GiB RAM never extends past this (QEMU splits RAM at 3 GiB on microvm, lower on pc).
pub const FOUR_GIB: u64 = 0x1_0000_0000;

/// Ranges the firmware itself occupies while it loads a kernel: nothing may be loaded over them.
pub const FIRMWARE_OWNED: [(u64, u64); 3] = [
    (0, 0x1000),
    (PVH_START_INFO, LINUX_BOOT_PARAMS + 0x1000),
    (FALLBACK_PAGE_TABLES, FIRMWARE_RAM_END),
];
