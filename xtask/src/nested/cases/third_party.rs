//! Systems nobody here wrote (`cargo xtask third-party`) on minnow's own VMM, on real KVM:
//! Xen 4.17 with Debian's dom0 kernel through minnow.rom (multiboot 1 with modules from `-initrd`),
//! and memtest86+ (x64 and ia32) on all of RAM. Xen's platform
//! timer is the PIT (`pit=on`, the default: KVM's in-kernel PIT, with port 0x61's gate), whose
//! tick reaches I/O APIC pin 2 as the MADT says (vstate/legacy_routes.rs); memtest times itself
//! with the same.
use super::*;

/// Xen's command line. `smap=0`: L2's KVM runs on QEMU TCG's emulated SVM, and TCG's SMAP
/// faults Xen's own writes to a PV guest's stack (`create_bounce_frame`: dom0 dies at its first
/// exception), as it does under TCG without nesting, with SeaBIOS too. Real KVM needs no option.
const XEN_CMDLINE: &str = "console=com1 com1=115200 dom0_mem=256M smap=0";
/// `minnow.reboot`: dom0's /init ends with an immediate reset (sysrq), which `-no-reboot` turns
/// into minnow's exit. Xen cannot power this machine off: it drives only I/O-port ACPI sleep
/// registers (it logs "Invalid sleep control/status register data"), and microvm's, as QEMU's,
/// are memory-mapped. (An orderly `reboot -f` in dom0 stops before "Restarting system" here.)
const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen minnow.reboot minnow.case=xen";
/// Xen and its dom0 get more than the other cases' 256 MiB.
const XEN_MEM_MIB: u64 = 512;
/// Xen to dom0's reset took 21 to 85 s in L2 over this project's CI runs (68 s beside a
/// CPU-bound job, 85 s on a quiet machine, the dom0 clock showing stalls of L2 of 20 s); a run
/// was killed by the common 60 s limit while dom0 was still booting. About twice the slowest.
const XEN_LIMIT_SECS: u32 = 180;
const MEMTEST_MEM_MIB: u64 = 256;
/// memtest never stops by itself: L2 stops minnow as soon as the screen shows test #0 at the top
/// of RAM, or after this long. Measured on the nested host (`-boot-timeline`, an Intel Xeon
/// L0): memtest computes for 15.6 s (x64) and 28-29 s (ia32) before its first byte on the
/// screen, and reaches the top of RAM within 40 s; an AMD EPYC L0 was faster. The limit is three
/// times the slowest.
const MEMTEST_LIMIT_SECS: u32 = 120;

fn machine(mem_mib: u64) -> Vec<String> {
    machine_args_with_memory(true, true, true, 1, mem_mib)
}

/// Xen as multiboot 1 through minnow.rom, dom0 to the test initramfs's /init, which reports
/// `hypervisor=xen` and resets the machine through Xen.
pub fn xen_case() -> Case {
    let mut args = machine(XEN_MEM_MIB);
    let modules = format!("{} {DOM0_CMDLINE},{}", paths::DOM0_KERNEL, paths::INITRAMFS);
    args.extend(["-kernel", paths::XEN, "-append", XEN_CMDLINE, "-initrd", &modules].map(String::from));
    let mut case = Case::new(
        "thirdparty-xen-multiboot1-minnowrom".into(),
        paths::MINNOW,
        args,
        Expect::Xen {
            xen_cmdline: XEN_CMDLINE.into(),
            dom0_cmdline: DOM0_CMDLINE.into(),
        },
    );
    case.hang_secs = XEN_LIMIT_SECS;
    case
}

/// memtest86+ (`build`: "x64" or "ia32") through minnow.rom: all of RAM found, and test #0's
/// window at its top, which ends the run.
pub fn memtest_case(build: &str) -> Case {
    let mut args = machine(MEMTEST_MEM_MIB);
    let kernel = format!("{}/memtest86+{build}.bin", paths::THIRD_PARTY);
    args.extend(["-kernel", &kernel, "-append", "console=ttyS0,115200"].map(String::from));
    let top = MEMTEST_MEM_MIB - 1;
    // The last 4 MiB window of the first test: memtest got through all of RAM.
    let at_the_top = format!("[{}MB of {top}MB]", top - 4);
    let mut case = Case::new(
        format!("thirdparty-memtest-{build}-minnowrom"),
        paths::MINNOW,
        args,
        Expect::Screen {
            must_have: vec![
                format!("Memory  :  {MEMTEST_MEM_MIB}MB"),
                "#0  [Address test".into(),
                format!("MB of {top}MB]"),
                at_the_top.clone(),
            ],
        },
    );
    case.stop_when = Some(StopWhen {
        text: at_the_top,
        limit_secs: MEMTEST_LIMIT_SECS,
    });
    case
}
