//! Where virtio devices go, as on QEMU's microvm: transport `i` at 0xFEB00000 + i * 0x200, its
//! interrupt at GSI 5 + i without ACPI, 16 + i with ACPI and one I/O APIC, 24 + i with two. The
//! GSI the RTC uses (8) is never given to a device: its transport stays empty. Without ACPI the
//! kernel learns of the devices from `virtio_mmio.device=` on its command line
//! (`auto-kernel-cmdline`); with ACPI from the DSDT.
use crate::config::Config;
use crate::layout::{gsi, VIRTIO_MMIO_BASE, VIRTIO_MMIO_STRIDE};

/// One transport a device sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    pub base: u64,
    pub gsi: u32,
}

/// Transports on the machine (QEMU: 8, or 24 with the second I/O APIC).
pub fn capacity(c: &Config) -> u32 {
    if c.acpi() && c.ioapic2() {
        24
    } else {
        8
    }
}

fn gsi_base(c: &Config) -> u32 {
    match (c.acpi(), c.ioapic2()) {
        (false, _) => 5,
        (true, false) => 16,
        (true, true) => 24,
    }
}

/// The transports for `c`'s devices, in order; None when there are more devices than free
/// transports.
pub fn transports(c: &Config) -> Option<Vec<Transport>> {
    let free = (0..capacity(c))
        .map(|i| Transport {
            base: VIRTIO_MMIO_BASE + u64::from(i) * VIRTIO_MMIO_STRIDE,
            gsi: gsi_base(c) + i,
        })
        .filter(|t| t.gsi != gsi::RTC);
    let taken: Vec<Transport> = free.take(c.virtio.len()).collect();
    (taken.len() == c.virtio.len()).then_some(taken)
}

/// The kernel command line: `-append`, plus the devices' `virtio_mmio.device=512@BASE:GSI`
/// when there is no ACPI to describe them and `auto-kernel-cmdline` is on.
pub fn kernel_cmdline(c: &Config) -> String {
    let mut line = c.append.clone().unwrap_or_default();
    if !c.acpi() && c.machine.auto_kernel_cmdline {
        for t in transports(c).unwrap_or_default() {
            line.push_str(&format!(" virtio_mmio.device=512@{:#x}:{}", t.base, t.gsi));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Machine, OnOffAuto, VirtioDeviceConfig};

    fn config(acpi: OnOffAuto, pic: OnOffAuto, devices: usize) -> Config {
        Config {
            machine: Machine {
                acpi,
                pic,
                ..Machine::default()
            },
            virtio: vec![VirtioDeviceConfig::Rng; devices],
            append: Some("console=ttyS0".into()),
            ..Config::default()
        }
    }

    #[test]
    fn transports_follow_qemus_gsis_and_never_take_the_rtcs() {
        let no_acpi = transports(&config(OnOffAuto::Off, OnOffAuto::Auto, 5)).unwrap();
        let gsis: Vec<u32> = no_acpi.iter().map(|t| t.gsi).collect();
        assert_eq!(gsis, [5, 6, 7, 9, 10]);
        assert_eq!(no_acpi[3].base, 0xFEB0_0800);
        let acpi = transports(&config(OnOffAuto::On, OnOffAuto::Auto, 2)).unwrap();
        assert_eq!((acpi[0].base, acpi[0].gsi, acpi[1].gsi), (0xFEB0_0000, 16, 17));
        let split = transports(&config(OnOffAuto::On, OnOffAuto::Off, 1)).unwrap();
        assert_eq!(split[0].gsi, 24);
        assert!(transports(&config(OnOffAuto::Off, OnOffAuto::Auto, 8)).is_none());
        assert_eq!(
            transports(&config(OnOffAuto::On, OnOffAuto::Off, 24)).map(|t| t.len()),
            Some(24)
        );
    }

    #[test]
    fn without_acpi_the_command_line_names_the_devices() {
        assert_eq!(
            kernel_cmdline(&config(OnOffAuto::Off, OnOffAuto::Auto, 1)),
            "console=ttyS0 virtio_mmio.device=512@0xfeb00000:5"
        );
        assert_eq!(
            kernel_cmdline(&config(OnOffAuto::On, OnOffAuto::Auto, 1)),
            "console=ttyS0"
        );
        let mut off = config(OnOffAuto::Off, OnOffAuto::Auto, 1);
        off.machine.auto_kernel_cmdline = false;
        assert_eq!(kernel_cmdline(&off), "console=ttyS0");
    }
}
