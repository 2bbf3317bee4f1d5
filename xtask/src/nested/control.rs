//! Telling our hangs from the test bed's: `cargo xtask nested-test --control` runs each case that
//! QEMU can run right after it, with QEMU as the L3 VMM in the same L2 and the same guest, and
//! `--load` keeps a CPU-bound job running beside the whole nested run (as other VMs sharing the
//! host's two cores would). A case that fails on minnow and passes on QEMU is ours to fix.
use super::cases::{paths, Case, Expect};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The name a control run of `case` gets.
pub fn control_name(case: &str) -> String {
    format!("{case}-qemucontrol")
}

/// `case` with QEMU as the VMM: the same machine, firmware (minnow.rom when the case takes the
/// built-in one), kernel, devices and checks. None when QEMU cannot run it: direct boot
/// (`-bios none`), a case that is not a plain minnow run, or one that kills minnow by name.
pub fn qemu_control(case: &Case) -> Option<Case> {
    let kills_minnow = matches!(
        case.expect,
        Expect::Linux { killed: true, .. } | Expect::FsKilled { .. }
    );
    if case.program != paths::MINNOW || kills_minnow {
        return None;
    }
    let mut args = vec![
        "-cpu".to_string(),
        "host".into(),
        "-display".into(),
        "none".into(),
        "-no-user-config".into(),
    ];
    let mut has_bios = false;
    let mut given = case.args.iter();
    while let Some(a) = given.next() {
        match a.as_str() {
            "-boot-timeline" => {}
            "-M" | "-machine" => {
                let machine = given.next()?;
                args.extend(["-M".into(), format!("{machine},accel=kvm")]);
            }
            "-bios" => {
                let rom = given.next()?;
                if rom == "none" {
                    return None;
                }
                has_bios = true;
                args.extend(["-bios".into(), rom.clone()]);
            }
            _ => args.push(a.clone()),
        }
    }
    if !has_bios {
        args.extend(["-bios".into(), paths::MINNOW_ROM.into()]);
    }
    let mut control = case.clone();
    control.name = control_name(&case.name);
    control.program = paths::QEMU;
    control.args = args;
    Some(control)
}

/// `cases`, each followed by its QEMU control run where there is one.
pub fn with_controls(cases: Vec<Case>) -> Vec<Case> {
    cases
        .into_iter()
        .flat_map(|c| {
            let control = qemu_control(&c);
            std::iter::once(c).chain(control)
        })
        .collect()
}

/// `cases`, each `times` times in a row (named `NAME-r2`, `NAME-r3`, ... after the first), to
/// count how often a case hangs.
pub fn repeated(cases: Vec<Case>, times: usize) -> Vec<Case> {
    cases
        .into_iter()
        .flat_map(|c| {
            (1..=times.max(1)).map(move |i| {
                let mut again = c.clone();
                if i > 1 {
                    again.name = format!("{}-r{i}", c.name);
                }
                again
            })
        })
        .collect()
}

/// A CPU-bound job on one host core for as long as it lives.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Load {
    pub fn start() -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let spin = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut x: u64 = 1;
            while !spin.load(Ordering::Relaxed) {
                for _ in 0..1_000_000 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                }
            }
            x
        });
        eprintln!("[nested] a CPU-bound job runs on one host core beside the nested host");
        Load {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::{linux_cases, payload_cases};
    use super::*;

    #[test]
    fn a_firmware_case_runs_on_qemu_with_the_same_rom_guest_and_checks() {
        let case = linux_cases()
            .into_iter()
            .find(|c| c.name == "linux-bzimage-minnowrom-acpion-rtcon-smp2")
            .unwrap();
        let control = qemu_control(&case).unwrap();
        assert_eq!(control.program, paths::QEMU);
        assert_eq!(
            control.name,
            "linux-bzimage-minnowrom-acpion-rtcon-smp2-qemucontrol"
        );
        let line = control.args.join(" ");
        assert!(line.contains("-M microvm,acpi=on,rtc=on,accel=kvm"), "{line}");
        assert!(line.contains(&format!("-bios {}", paths::MINNOW_ROM)), "{line}");
        assert!(line.contains("-cpu host"), "{line}");
        assert!(line.contains(&format!("-kernel {}", paths::VMLINUZ)), "{line}");
    }

    #[test]
    fn direct_boot_and_kill_cases_have_no_control() {
        let all = linux_cases();
        for c in all
            .iter()
            .filter(|c| c.name.contains("-direct-") || c.name.contains("kill9"))
        {
            assert!(qemu_control(c).is_none(), "{}", c.name);
        }
        let payloads = payload_cases();
        let with = with_controls(payloads.clone());
        assert!(with.len() > payloads.len());
        assert!(with.iter().all(|c| !c.args.iter().any(|a| a == "-boot-timeline")));
    }
}
