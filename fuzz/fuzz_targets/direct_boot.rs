//! `-bios none` loads a user's kernel itself: any bytes, steered by the first byte into the
//! bzImage or the ELF/PVH loader (with or without ACPI tables, an initrd, a long command line),
//! loaded into a small guest. It must load or refuse, never panic, and the vCPU's entry must lie
//! in guest RAM.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::config::{Config, OnOffAuto};
use minnow_vmm::direct_boot::{load, Input};
use minnow_vmm::kernel_layout::Blob;
use std::sync::OnceLock;
use vm_memory::{GuestAddress, GuestMemoryMmap};

const RAM: u64 = 32 << 20;

fn acpi() -> &'static minnow_acpi::AcpiFiles {
    static FILES: OnceLock<minnow_acpi::AcpiFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let mut c = Config {
            memory: RAM,
            ..Config::default()
        };
        c.machine.acpi = OnOffAuto::On;
        minnow_acpi::build(&minnow_vmm::fw_cfg_setup::acpi_machine(&c)).expect("the tables build")
    })
}

fuzz_target!(|data: &[u8]| {
    // steer: bit 0 the format, bit 1 ACPI, bits 2-3 the initrd's size in KiB units, bit 4 a
    // command line longer than any kernel takes; bits 5-7 the vCPUs.
    let [steer, rest @ ..] = data else {
        return;
    };
    let initrd_len = rest.len().min(usize::from((steer >> 2) & 3) * 1024);
    let (initrd, kernel) = rest.split_at(initrd_len);
    let mut kernel = kernel.to_vec();
    match steer & 1 {
        0 => {
            kernel.resize(kernel.len().max(0x400), 0);
            kernel[0x202..0x206].copy_from_slice(b"HdrS");
        }
        _ => {
            kernel.resize(kernel.len().max(64), 0);
            kernel[0..4].copy_from_slice(b"\x7fELF");
        }
    }
    let cmdline = if steer & 0x10 != 0 {
        "x".repeat(70_000)
    } else {
        "console=ttyS0".into()
    };
    let kernel = Blob::new("fuzz-kernel", kernel);
    let initrd = (initrd_len > 0).then(|| Blob::new("fuzz-initrd", initrd.to_vec()));
    let input = Input {
        kernel: &kernel,
        initrd: initrd.as_ref(),
        cmdline: &cmdline,
        memory: RAM,
        cpus: 1 + (steer >> 5),
        cpu_signature: (0x000806F8, 0x178BFBFF),
        acpi: (steer & 2 != 0).then(acpi),
    };
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap();
    if let Ok(entry) = load(&input, &ram) {
        assert!(entry.rip < RAM, "entry {:#x} outside RAM", entry.rip);
    }
});
