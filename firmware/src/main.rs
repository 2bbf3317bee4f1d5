//! The ROM's entry: reset.S switches to long mode and calls `firmware_main`, which runs the boot
//! sequence and jumps to the kernel, or prints one line on COM1 and halts.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod arch;

#[cfg(target_os = "none")]
mod rom {
    use crate::arch;
    use core::fmt::Write;
    use minnow_bootproto::milestone;
    use minnow_firmware::bios_data::FarPointer;
    use minnow_firmware::boot_sequence::{self, Machine};
    use minnow_firmware::console::Console;
    use minnow_firmware::error::BootError;
    use minnow_firmware::fw_cfg::PortFwCfg;
    use minnow_firmware::memory_map::CmosSizes;
    use minnow_firmware::milestones;
    use minnow_firmware::{chipset, hw};

    struct Hardware;

    impl Machine for Hardware {
        fn init_chipset(&mut self) {
            chipset::init(chipset::detect());
        }
        fn cmos_sizes(&mut self) -> CmosSizes {
            chipset::cmos_sizes()
        }
        fn cpu_signature(&self) -> (u32, u32) {
            hw::cpu_signature()
        }
        fn unsupported_bios_call(&self) -> FarPointer {
            arch::unsupported_bios_call()
        }
    }

    #[no_mangle]
    extern "C" fn firmware_main() -> ! {
        arch::idt::install();
        let mut cfg = PortFwCfg::new();
        // Milestones go only where the VMM asked (opt/org.minnow/milestones), never by default.
        let mut milestone_port = None;
        let handoff = cfg.probe().map_err(BootError::from).and_then(|()| {
            milestone_port = milestones::requested_port(&mut cfg);
            if let Some(port) = milestone_port {
                hw::outb(port, milestone::FIRMWARE_START);
            }
            boot_sequence::run(&mut cfg, &mut hw::PhysMemory, &mut Hardware)
        });
        match handoff {
            Ok(h) => {
                if let Some(port) = milestone_port {
                    hw::outb(port, h.milestone());
                }
                arch::jump(h)
            }
            Err(e) => {
                let _ = writeln!(Console::new(), "minnow: {e}");
                arch::halt()
            }
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let _ = writeln!(Console::new(), "minnow: firmware bug: {info}");
        arch::halt()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the firmware runs on bare metal: build it with `cargo xtask firmware`");
    std::process::exit(2);
}
