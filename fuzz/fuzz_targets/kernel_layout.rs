//! A `-kernel` image is a user's file, possibly built by someone else: any bytes, steered by the
//! first byte into each parser (bzImage, multiboot 1 as a.out kludge or ELF, ELF/PVH) so the
//! fuzzer need not discover their magic numbers. Laying it out must return items or an error,
//! never panic, and never place a segment outside the machine's RAM.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::kernel_layout::{layout, Blob, KernelInput};

/// Multiboot 1's header magic; the checksum field makes magic + flags + checksum zero.
const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;
/// RAM below 4 GiB: small, since every guest range is checked against it, which bounds what a
/// header can make the loader allocate.
const RAM: u64 = 32 << 20;

/// Puts a multiboot header with a good checksum at `at`, keeping the input's flags.
fn multiboot_header(kernel: &mut Vec<u8>, at: usize) {
    kernel.resize(kernel.len().max(at + 32), 0);
    let flags = u32::from_le_bytes(kernel[at + 4..at + 8].try_into().unwrap());
    kernel[at..at + 4].copy_from_slice(&MULTIBOOT_MAGIC.to_le_bytes());
    let sum = MULTIBOOT_MAGIC.wrapping_add(flags).wrapping_neg();
    kernel[at + 8..at + 12].copy_from_slice(&sum.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    // steer: bits 0-1 the format, bit 2 an ELF magic under a multiboot header, bits 3-4 how
    // many initrds (multiboot modules), bits 5-7 the initrds' size in 64-byte units; the next
    // byte where the multiboot header goes.
    let [steer, place, rest @ ..] = data else {
        return;
    };
    let initrd_len = rest.len().min(usize::from(steer >> 5) * 64);
    let (initrd, kernel) = rest.split_at(initrd_len);
    let mut kernel = kernel.to_vec();
    match steer % 4 {
        0 => {
            kernel.resize(kernel.len().max(0x400), 0);
            kernel[0x202..0x206].copy_from_slice(b"HdrS");
        }
        1 => {
            // After an ELF header's 64 bytes, on a 4-byte boundary, as the search wants.
            multiboot_header(&mut kernel, 64 + usize::from(*place) * 4);
            if steer & 4 != 0 {
                kernel[0..4].copy_from_slice(b"\x7fELF");
            }
        }
        2 => {
            kernel.resize(kernel.len().max(64), 0);
            kernel[0..4].copy_from_slice(b"\x7fELF");
        }
        _ => {}
    }
    let initrds = (0..usize::from((steer >> 3) & 3))
        .map(|i| Blob::new(format!("fuzz-initrd{i} arg"), initrd.to_vec()))
        .collect();
    let input = KernelInput {
        kernel: Blob::new("fuzz-kernel", kernel),
        initrds,
        cmdline: "console=ttyS0".into(),
        below_4g_mem_size: RAM,
        acpi_data_size: 0,
    };
    if let Ok(l) = layout(input) {
        for s in &l.segments {
            assert!(
                s.addr + s.bytes.len() as u64 <= RAM,
                "segment at {:#x} past RAM",
                s.addr
            );
        }
    }
});
