//! A `-kernel` image is a user's file, possibly built by someone else: any bytes, steered by the
//! first byte into each parser (bzImage, multiboot 1, ELF/PVH) so the fuzzer need not discover
//! their magic numbers. Laying it out must return items or an error, never panic, and never
//! allocate beyond the machine's RAM.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::kernel_layout::{layout, Blob, KernelInput};

/// Multiboot 1's header magic and the checksum that makes magic + flags + checksum zero.
const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;

fuzz_target!(|data: &[u8]| {
    let Some((&steer, rest)) = data.split_first() else {
        return;
    };
    let (initrd, kernel) = rest.split_at(rest.len().min(usize::from(steer >> 4) * 16));
    let mut kernel = kernel.to_vec();
    match steer % 4 {
        0 => {
            kernel.resize(kernel.len().max(0x400), 0);
            kernel[0x202..0x206].copy_from_slice(b"HdrS");
        }
        1 if kernel.len() >= 12 => {
            let flags = u32::from_le_bytes(kernel[4..8].try_into().unwrap());
            kernel[0..4].copy_from_slice(&MULTIBOOT_MAGIC.to_le_bytes());
            let sum = MULTIBOOT_MAGIC.wrapping_add(flags).wrapping_neg();
            kernel[8..12].copy_from_slice(&sum.to_le_bytes());
        }
        2 => {
            kernel.resize(kernel.len().max(64), 0);
            kernel[0..4].copy_from_slice(b"\x7fELF");
        }
        _ => {}
    }
    let input = KernelInput {
        kernel: Blob::new("fuzz-kernel", kernel),
        initrds: vec![Blob::new("fuzz-initrd", initrd.to_vec())],
        cmdline: "console=ttyS0".into(),
        // Small RAM: every guest range is checked against it, which bounds what a header can
        // make the loader allocate.
        below_4g_mem_size: 32 << 20,
        acpi_data_size: 0,
    };
    let _ = layout(input);
});
