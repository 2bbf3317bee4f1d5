//! What runs inside the nested KVM host, and what each run must show.
//!
//! Two kinds of case, each one `minnow` run in L2:
//! * **Linux**: the cloud kernel (bzImage or PVH vmlinux) to the test initramfs's `/init`, which
//!   prints `MINNOW-INIT` lines: command line, memory, CPUs, whether the RTC works, the time it
//!   read, then powers off (ACPI) or resets (no ACPI).
//! * **Payload**: a boot conformance payload, checked by the rules the QEMU matrix uses
//!   (`minnow_tests::payload_check`).
//! * **Seed**: the Ubuntu microvm guide's command line, on its own kernel and ext4 disk.
//!
//! `virtio.rs` builds the Linux cases with devices and the seed cases, `payload.rs` the payload
//! matrix, `check.rs` says what each output must show.
use super::console::CaseOutput;
use super::script::CASE_TIMEOUT_SECS;
use minnow_tests::payload_check::{
    self, cmdline as payload_cmdline, not_supported, qboot_deviations, Expected, Loader, Payload, Route,
    DEBUG_EXIT_DEVICE,
};

/// Where things are inside the L2 initramfs (the image builder puts them there).
pub mod paths {
    pub const MINNOW: &str = "/bin/minnow";
    pub const VSOCK_ECHO: &str = "/bin/vsock-echo";
    /// guest-tools' QMP client (L2 has no Python for qemu.qmp).
    pub const QMP_CALL: &str = "/bin/qmp-call";
    /// guest-tools' snapshot benchmark (`cargo xtask bench snapshot`).
    pub const SNAPSHOT_BENCH: &str = "/bin/snapshot-bench";
    /// guest-tools' `tap-add NAME UID` (busybox cannot make a TAP for a user).
    pub const TAP_ADD: &str = "/bin/tap-add";
    pub const MINNOW_ROM: &str = "/fw/minnow.rom";
    /// The seed workload's kernel (virtio-blk, virtio-mmio and ext4 built in) and its disk.
    pub const SEED_KERNEL: &str = "/seed/bzImage";
    pub const SEED_DISK: &str = "/seed/hello.qcow2";
    pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";
    pub const QBOOT_ROM: &str = "/fw/qboot.rom";
    pub const SEABIOS_ROM: &str = "/fw/bios-microvm.bin";
    pub const VMLINUZ: &str = "/linux/vmlinuz";
    pub const VMLINUX: &str = "/linux/vmlinux";
    pub const INITRAMFS: &str = "/linux/initramfs.cpio";
    pub const PAYLOAD_DIR: &str = "/payload";
    pub const PAYLOAD_INITRD: &str = "/payload/initrd.bin";
    /// The same bytes as a qcow2 image (made with qemu-img on the host).
    pub const PAYLOAD_QCOW2: &str = "/payload/initrd.qcow2";
    pub const QEMU_IMG: &str = "/usr/bin/qemu-img";
    /// An empty ext4 file system, as a qcow2 image (made with mkfs.ext4 and qemu-img on the host),
    /// and e2fsprogs' checker and debugger to read it back after a guest wrote it.
    pub const EXT4_QCOW2: &str = "/disk/ext4.qcow2";
    pub const E2FSCK: &str = "/usr/sbin/e2fsck";
    pub const DEBUGFS: &str = "/usr/sbin/debugfs";
    /// passt, for `-netdev user` and `-netdev stream` (it runs passt.avx2 where the CPU has AVX2).
    pub const PASST: &str = "/usr/bin/passt";
    pub const PASST_AVX2: &str = "/usr/bin/passt.avx2";
    /// Debian's Xen, its dom0 kernel, and memtest86+ (`cargo xtask third-party`).
    pub const THIRD_PARTY: &str = "/third-party";
    pub const XEN: &str = "/third-party/xen-4.17-amd64";
    pub const DOM0_KERNEL: &str = "/third-party/dom0-vmlinuz";
}

/// The tables Minnow's microvm has with ACPI on (the payload may find more).
const MICROVM_TABLES: &[&str] = &["FACP", "APIC", "DSDT"];
/// Guest RAM for every case.
const MEM_MIB: u64 = 256;
/// The kernel line that says the RTC is missing or unusable: a boot stall of a second or more.
pub const RTC_STALL: &str = "rtc_cmos: broken or not accessible";
/// Kernel warnings that come from this test bed, not from the VMM: (where, why).
const KNOWN_WARNINGS: &[(&str, &str)] = &[(
    "arch/x86/kernel/fpu/xstate.c",
    "QEMU TCG's emulated SVM does not intercept XSETBV, so L2's KVM never sees the guest's XCR0 \
     and CPUID 0xD reports a stale XSAVE size; the guest falls back and boots",
)];
/// How far the guest's clock may be from the host's when the test checks it.
const CLOCK_SLACK_SECS: i64 = 600;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinuxImage {
    BzImage,
    /// The ELF vmlinux, entered through PVH.
    Pvh,
}

#[derive(Clone)]
pub enum Expect {
    /// A benchmark run: nothing to check but that the guest got to its init.
    Timing,
    /// The seed workload: its greeting on the console; with ACPI the guest powers off (exit 0),
    /// without it the guest halts and L2 stops minnow with SIGTERM (exit 143).
    Seed { acpi: bool },
    Linux {
        smp: u32,
        acpi: bool,
        rtc: bool,
        /// A virtio-rng device: the guest's hw_random must be it, and give bytes.
        rng: bool,
        /// A virtio-blk disk holding the payload initrd's bytes: the guest reads them and
        /// writes a line that L2 then finds in the image.
        blk: bool,
        /// A virtio-net NIC on an L2 TAP: the guest pings L2's address.
        net: bool,
        /// A virtio-net NIC through passt (`-netdev user` or `stream`): the guest gets
        /// 10.0.2.15 by DHCP and fetches L2's page from the gateway, 10.0.2.2.
        dhcp: bool,
        /// A vhost-vsock device: the guest echoes what L2 sends it.
        vsock: bool,
        /// L2 typed a line into a stdio virtio console: the guest must have read it.
        hvc_input: bool,
        /// L2 kills minnow (SIGKILL) once the guest's disk write is flushed: only the write and
        /// the image are checked.
        killed: bool,
        /// L2 drove the guest's shell and a monitor (monitor.rs).
        monitor: Option<MonitorKind>,
        /// L2 saved the VM and ran clones of it (snapshot.rs).
        snapshot: bool,
        append: String,
    },
    /// Xen's dom0 ran the test initramfs's /init: Xen read its own command line whole, dom0 got
    /// its own, and /init saw the hypervisor.
    Xen {
        xen_cmdline: String,
        dom0_cmdline: String,
    },
    /// A guest writing synced files into an ext4 file system on a qcow2 disk when L2 stops minnow
    /// with `signal`: the image must check clean (leaked clusters allowed after SIGKILL), the file
    /// system too, and every file the guest reported synced must be there, byte for byte.
    FsKilled { signal: &'static str },
    /// The urandom check of two clones on Debian's generic kernel (urandom.rs).
    Urandom,
    /// A full-screen program on COM1 (memtest86+): every text must be on its screen, which L2
    /// relays cut at each escape sequence.
    Screen { must_have: Vec<String> },
    Payload {
        loader: Loader,
        route: Route,
        payload: Payload,
        smp: u32,
        acpi: bool,
        kernel_arg: String,
        cmdline: String,
    },
}

#[derive(Clone)]
pub struct Case {
    pub name: String,
    /// The VMM in L2: [`paths::MINNOW`], or [`paths::QEMU`] for comparisons.
    pub program: &'static str,
    /// Its arguments, except `-serial`, which the L2 script adds.
    pub args: Vec<String>,
    /// COM1 is the command line's own `-serial mon:stdio`, so L2 takes minnow's stdout as the
    /// serial log instead of adding `-serial file:`.
    pub serial_on_stdout: bool,
    /// For a guest that never stops by itself (it halts, or runs forever): L2 stops the VM with
    /// SIGTERM as soon as this text is on its serial console, or after the limit. Otherwise the
    /// VM gets SIGKILL after `hang_secs`, as a hang.
    pub stop_when: Option<StopWhen>,
    /// Without `stop_when`: how long the VM may run before it counts as hung (the script's
    /// CASE_TIMEOUT_SECS unless a case measured slower).
    pub hang_secs: u32,
    /// Shell lines L2 runs before the case (e.g. to make a disk image).
    pub setup: Vec<String>,
    /// Shell lines L2 runs after it, their output relayed (e.g. to read the image back).
    pub after: Vec<String>,
    /// How long the after-commands may take, beyond the case's own limit (for the L2 run's
    /// overall time limit).
    pub after_secs: u32,
    /// A line the after-commands' output must have.
    pub after_must_have: Option<&'static str>,
    /// RAM L2 needs for this case beyond its default (the benchmarks' many VMs at once), MiB.
    pub l2_memory_mib: u32,
    pub expect: Expect,
}

/// When L2 stops a guest that does not stop by itself.
#[derive(Clone, Debug, PartialEq)]
pub struct StopWhen {
    /// Text on the serial console (escape sequences count as line ends) that ends the wait.
    pub text: String,
    /// Seconds to wait for it at most: a few times what it took on the slowest host measured.
    pub limit_secs: u32,
}

impl Case {
    /// A run of `program` with `args` and nothing around it: no setup or after-commands, COM1
    /// to a file the script adds, killed as hung after the script's timeout.
    pub fn new(name: String, program: &'static str, args: Vec<String>, expect: Expect) -> Case {
        Case {
            name,
            program,
            args,
            serial_on_stdout: false,
            stop_when: None,
            hang_secs: CASE_TIMEOUT_SECS,
            setup: vec![],
            after: vec![],
            after_secs: 0,
            after_must_have: None,
            l2_memory_mib: 0,
            expect,
        }
    }

    /// Whether L2 needs QEMU for this case: as its VMM, or in its after-commands.
    pub fn uses_qemu(&self) -> bool {
        self.program == paths::QEMU || self.after.iter().any(|a| a.contains(paths::QEMU))
    }

    /// The longest L2 lets this case's VM run.
    pub fn limit_secs(&self) -> u32 {
        self.stop_when
            .as_ref()
            .map_or(self.hang_secs, |stop| stop.limit_secs)
    }
}

fn loader_name(l: Loader) -> &'static str {
    match l {
        Loader::MinnowRom => "minnowrom",
        Loader::Qboot => "qboot",
        Loader::SeaBios => "seabios",
        Loader::Direct => "direct",
    }
}

/// `-bios` for a loader; minnow.rom is the built-in default, so it needs none.
fn bios_args(l: Loader) -> Vec<String> {
    match l {
        Loader::MinnowRom => vec![],
        Loader::Qboot => vec!["-bios".into(), paths::QBOOT_ROM.into()],
        Loader::SeaBios => vec!["-bios".into(), paths::SEABIOS_ROM.into()],
        Loader::Direct => vec!["-bios".into(), "none".into()],
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// `pic=off` adds the split irqchip: KVM runs the local APICs and minnow the I/O APICs.
fn machine_args(acpi: bool, rtc: bool, pic: bool, smp: u32) -> Vec<String> {
    machine_args_with_memory(acpi, rtc, pic, smp, MEM_MIB)
}

fn machine_args_with_memory(acpi: bool, rtc: bool, pic: bool, smp: u32, mem_mib: u64) -> Vec<String> {
    let pic = if pic { "" } else { ",pic=off" };
    vec![
        "-M".into(),
        format!("microvm,acpi={},rtc={}{pic}", on_off(acpi), on_off(rtc)),
        "-m".into(),
        format!("{mem_mib}M"),
        "-smp".into(),
        smp.to_string(),
        "-nodefaults".into(),
        "-no-reboot".into(),
    ]
}

/// Gives a benchmark's guest `append` as its command line: drops `-append` and what follows it
/// (the cases' own arguments end with it), then adds `-append append`, so both VMMs get one line.
pub fn set_append(args: &mut Vec<String>, append: &str) {
    if let Some(i) = args.iter().position(|a| a == "-append") {
        args.truncate(i);
    }
    args.extend(["-append".to_string(), append.to_string()]);
}

pub fn linux_case(image: LinuxImage, loader: Loader, acpi: bool, rtc: bool, smp: u32) -> Case {
    linux_case_pic(image, loader, acpi, rtc, true, smp)
}

fn linux_case_pic(image: LinuxImage, loader: Loader, acpi: bool, rtc: bool, pic: bool, smp: u32) -> Case {
    let name = format!(
        "linux-{}-{}-acpi{}-rtc{}{}-smp{smp}",
        match image {
            LinuxImage::BzImage => "bzimage",
            LinuxImage::Pvh => "pvh",
        },
        loader_name(loader),
        on_off(acpi),
        on_off(rtc),
        if pic { "" } else { "-picoff" },
    );
    // loglevel=5 keeps the console short (each byte is a VM exit) but shows warnings, where
    // the RTC stall is reported.
    let append = format!("console=ttyS0 loglevel=5 panic=-1 minnow.case={name}");
    let kernel = match image {
        LinuxImage::BzImage => paths::VMLINUZ,
        LinuxImage::Pvh => paths::VMLINUX,
    };
    let mut args = machine_args(acpi, rtc, pic, smp);
    args.extend(bios_args(loader));
    args.extend(["-kernel", kernel, "-initrd", paths::INITRAMFS, "-append", &append].map(String::from));
    Case::new(
        name,
        paths::MINNOW,
        args,
        Expect::Linux {
            smp,
            acpi,
            rtc,
            rng: false,
            blk: false,
            net: false,
            dhcp: false,
            vsock: false,
            hvc_input: false,
            killed: false,
            monitor: None,
            snapshot: false,
            append,
        },
    )
}

/// QEMU's microvm (`machine`, e.g. "microvm,accel=kvm") in L2 with the same kernel, initramfs and
/// memory as [`linux_case`], for comparisons; only the guest's arrival at `/init` is checked.
pub fn qemu_linux_case(machine: &str, append: &str) -> Case {
    Case::new(
        String::new(),
        paths::QEMU,
        qemu_linux_args(machine, paths::VMLINUZ, append),
        Expect::Timing,
    )
}

/// QEMU's arguments for `kernel` with the test initramfs, on `machine`, one vCPU and the cases'
/// memory.
pub(crate) fn qemu_linux_args(machine: &str, kernel: &str, append: &str) -> Vec<String> {
    [
        "-M",
        machine,
        "-cpu",
        "host",
        "-m",
        &format!("{MEM_MIB}M"),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        kernel,
        "-initrd",
        paths::INITRAMFS,
        "-append",
        append,
    ]
    .map(String::from)
    .to_vec()
}

/// Checks that the L2 script with `case` is valid sh (busybox's ash is stricter than bash, not
/// looser).
#[cfg(test)]
pub(crate) fn assert_script_parses(case: Case) {
    let script = crate::nested::script::l2_init(&[], &[case]);
    let out = std::process::Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Names a variant of `case`: `suffix` goes on its name, also in the command line's
/// `minnow.case=`, and `cmdline` (what the guest's /init looks for) at the command line's end.
fn rename(case: &mut Case, suffix: &str, cmdline: &str) {
    let old = format!("minnow.case={}", case.name);
    case.name.push_str(suffix);
    let new = format!("minnow.case={}", case.name);
    let edit = |line: &mut String| {
        *line = line.replacen(&old, &new, 1);
        line.push_str(cmdline);
    };
    if let Expect::Linux { append, .. } = &mut case.expect {
        edit(append);
    }
    if let Some(a) = case.args.iter_mut().find(|a| a.starts_with("console=")) {
        edit(a);
    }
}

mod check;
mod monitor;
mod payload;
mod snapshot;
#[cfg(test)]
mod tests;
mod third_party;
mod urandom;
mod virtio;

pub use third_party::{memtest_case, xen_case};

pub use check::{check, HTTP_PAGE};
pub use monitor::MonitorKind;
pub use payload::{payload_cases, payload_not_supported};
pub use virtio::passt_for_stream;
use virtio::{
    linux_case_blk, linux_case_blk_killed, linux_case_fs_killed, linux_case_hvc, linux_case_hvc_stdio,
    linux_case_net, linux_case_passt, linux_case_rng, linux_case_vsock, linux_case_vsock_fd, seed_case,
    PasstLink,
};

/// Why a Linux image does not run through a loader here, if it does not.
fn linux_not_run_why(image: LinuxImage, loader: Loader) -> Option<&'static str> {
    match (image, loader) {
        (LinuxImage::Pvh, Loader::SeaBios) => Some(
            "Debian's 6.1.192 PVH vmlinux through SeaBIOS (QEMU's pvh.bin) stops after \"ACPI: Core \
             revision\" on L2's KVM, with QEMU 7.2 as the L3 VMM as with minnow, every time (it boots \
             under TCG); the bzImage runs through SeaBIOS, the PVH vmlinux through the other loaders",
        ),
        _ => None,
    }
}

/// The Linux cases left out, each with why (the run prints them).
pub fn linux_not_run() -> Vec<(String, &'static str)> {
    use LinuxImage::{BzImage, Pvh};
    use Loader::{Direct, MinnowRom, Qboot, SeaBios};
    let mut left = Vec::new();
    for image in [BzImage, Pvh] {
        for loader in [MinnowRom, Qboot, SeaBios, Direct] {
            if let Some(why) = linux_not_run_why(image, loader) {
                left.push((linux_case(image, loader, true, true, 2).name, why));
            }
        }
    }
    left
}

/// Real Linux: both images through every loader; then ACPI off, the RTC off, and one CPU.
/// Without ACPI Linux finds CPUs only through the MP table, which Debian's cloud kernel cannot
/// read (no CONFIG_X86_MPPARSE): those cases run one CPU, and the payload cases check the MP
/// table's CPU count instead.
pub fn linux_cases() -> Vec<Case> {
    use LinuxImage::{BzImage, Pvh};
    use Loader::{Direct, MinnowRom, Qboot, SeaBios};
    let mut cases = Vec::new();
    for image in [BzImage, Pvh] {
        for loader in [MinnowRom, Qboot, SeaBios, Direct] {
            if linux_not_run_why(image, loader).is_none() {
                cases.push(linux_case(image, loader, true, true, 2));
            }
        }
    }
    cases.extend([
        linux_case(BzImage, MinnowRom, false, true, 1),
        linux_case(Pvh, Direct, false, true, 1),
        linux_case(BzImage, Qboot, false, true, 1),
        linux_case(BzImage, MinnowRom, true, false, 1),
        linux_case(Pvh, Direct, true, false, 2),
        linux_case(BzImage, MinnowRom, false, false, 1),
        // The split irqchip: user-space output on the console needs COM1's interrupt, so the
        // report itself shows the I/O APIC routes work.
        linux_case_pic(BzImage, MinnowRom, true, true, false, 2),
        linux_case_pic(Pvh, Direct, true, true, false, 1),
        linux_case_pic(BzImage, Qboot, true, true, false, 1),
        // With ACPI only: Debian's virtio_mmio is built without CMDLINE_DEVICES, so it cannot
        // take the devices auto-kernel-cmdline names without ACPI (a unit test checks that line).
        linux_case_rng(BzImage, MinnowRom, true),
        linux_case_rng(Pvh, Direct, true),
        linux_case_blk(BzImage, MinnowRom, false),
        linux_case_blk(Pvh, Direct, false),
        linux_case_blk(BzImage, Direct, true),
        linux_case_blk_killed(BzImage, MinnowRom),
        linux_case_fs_killed("TERM"),
        linux_case_fs_killed("KILL"),
        linux_case_net(BzImage, MinnowRom),
        linux_case_passt(BzImage, MinnowRom, PasstLink::User),
        linux_case_passt(Pvh, Direct, PasstLink::Stream),
        linux_case_hvc(Pvh, Direct),
        linux_case_hvc_stdio(BzImage, MinnowRom),
        monitor::linux_case_hmp(),
        monitor::linux_case_qmp(),
        snapshot::linux_case_snapshot(),
        urandom::linux_case_snapshot_urandom(),
        linux_case_vsock(BzImage, MinnowRom),
        linux_case_vsock_fd(Pvh, Direct),
        seed_case(true),
        seed_case(false),
        // One Xen boot only: QEMU TCG's emulated SVM freezes L2 in about 4 of 10 of them (L2's
        // CPU halted, its timer never firing again; the harness retries). The multiboot 2 route
        // is Xen's QEMU test's (tests/tests/third_party_qemu.rs) and the fw_cfg payloads' here.
        xen_case(),
        memtest_case("x64"),
        memtest_case("ia32"),
    ]);
    cases
}
