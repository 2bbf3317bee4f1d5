//! What runs inside the nested KVM host, and what each run must show.
//!
//! Two kinds of case, each one `minnow` run in L2:
//! * **Linux**: the cloud kernel (bzImage or PVH vmlinux) to the test initramfs's `/init`, which
//!   prints `MINNOW-INIT` lines: command line, memory, CPUs, whether the RTC works, the time it
//!   read, then powers off (ACPI) or resets (no ACPI).
//! * **Payload**: a boot conformance payload, checked by the rules the QEMU matrix uses
//!   (`minnow_tests::payload_check`).
use super::console::CaseOutput;
use minnow_tests::payload_check::{
    self, cmdline as payload_cmdline, not_supported, qboot_deviations, Expected, Loader, Payload, Route,
    DEBUG_EXIT_DEVICE,
};

/// Where things are inside the L2 initramfs (the image builder puts them there).
pub mod paths {
    pub const MINNOW: &str = "/bin/minnow";
    pub const VSOCK_ECHO: &str = "/bin/vsock-echo";
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
        /// A vhost-vsock device: the guest echoes what L2 sends it.
        vsock: bool,
        /// L2 typed a line into a stdio virtio console: the guest must have read it.
        hvc_input: bool,
        /// L2 kills minnow (SIGKILL) once the guest's disk write is flushed: only the write and
        /// the image are checked.
        killed: bool,
        append: String,
    },
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
    /// Stop the VM with SIGTERM after this many seconds (a guest that halts instead of powering
    /// off); otherwise it gets SIGKILL after the script's CASE_TIMEOUT_SECS, as a hang.
    pub stop_after: Option<u32>,
    /// Shell lines L2 runs before the case (e.g. to make a disk image).
    pub setup: Vec<String>,
    /// Shell lines L2 runs after it, their output relayed (e.g. to read the image back).
    pub after: Vec<String>,
    /// A line the after-commands' output must have.
    pub after_must_have: Option<&'static str>,
    pub expect: Expect,
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
    let pic = if pic { "" } else { ",pic=off" };
    vec![
        "-M".into(),
        format!("microvm,acpi={},rtc={}{pic}", on_off(acpi), on_off(rtc)),
        "-m".into(),
        format!("{MEM_MIB}M"),
        "-smp".into(),
        smp.to_string(),
        "-nodefaults".into(),
        "-no-reboot".into(),
    ]
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
    Case {
        name,
        program: paths::MINNOW,
        args,
        setup: vec![],
        serial_on_stdout: false,
        stop_after: None,
        after: vec![],
        after_must_have: None,
        expect: Expect::Linux {
            smp,
            acpi,
            rtc,
            rng: false,
            blk: false,
            net: false,
            vsock: false,
            hvc_input: false,
            killed: false,
            append,
        },
    }
}

/// QEMU's microvm (`machine`, e.g. "microvm,accel=kvm") in L2 with the same kernel, initramfs and
/// memory as [`linux_case`], for comparisons; only the guest's arrival at `/init` is checked.
pub fn qemu_linux_case(machine: &str, append: &str) -> Case {
    let args = [
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
        paths::VMLINUZ,
        "-initrd",
        paths::INITRAMFS,
        "-append",
        append,
    ];
    Case {
        name: String::new(),
        program: paths::QEMU,
        args: args.map(String::from).to_vec(),
        serial_on_stdout: false,
        stop_after: None,
        setup: vec![],
        after: vec![],
        after_must_have: None,
        expect: Expect::Timing,
    }
}

/// Names a variant of `case`: `suffix` goes on its name and on the command line (which carries
/// the name), followed by `cmdline` (what the guest's /init looks for).
fn rename(case: &mut Case, suffix: &str, cmdline: &str) {
    case.name.push_str(suffix);
    let tail = format!("{suffix}{cmdline}");
    if let Expect::Linux { append, .. } = &mut case.expect {
        append.push_str(&tail);
    }
    if let Some(a) = case.args.iter_mut().find(|a| a.starts_with("console=")) {
        a.push_str(&tail);
    }
}

/// Linux with `-device virtio-rng-device`: its driver must find the device (in the DSDT with
/// ACPI, on the command line without) and read entropy from it.
fn linux_case_rng(image: LinuxImage, loader: Loader, acpi: bool) -> Case {
    let mut case = linux_case(image, loader, acpi, true, 1);
    rename(&mut case, "-rng", "");
    case.args
        .extend(["-device".to_string(), "virtio-rng-device".to_string()]);
    if let Expect::Linux { rng, .. } = &mut case.expect {
        *rng = true;
    }
    case
}

/// The disk image the block cases give the guest: the payload initrd's known bytes.
const DISK: &str = "/tmp/disk.img";
/// What the guest writes at sector 100.
const GUEST_LINE: &str = "MINNOW-GUEST-WROTE-THIS";

/// Linux with a raw virtio-blk disk (`-drive ... -device virtio-blk-device`): the guest reads
/// known bytes at two offsets, writes a line with fsync, and L2 reads it back from the image
/// after minnow has exited.
fn linux_case_blk(image: LinuxImage, loader: Loader, qcow2: bool) -> Case {
    let format = if qcow2 { "qcow2" } else { "raw" };
    let mut case = linux_case(image, loader, true, true, 1);
    rename(&mut case, &format!("-blk{format}"), " minnow.blk=1");
    if let Expect::Linux { blk, .. } = &mut case.expect {
        *blk = true;
    }
    case.args.extend(
        [
            "-drive",
            &format!("file={DISK},format={format},if=none,id=disk0"),
            "-device",
            "virtio-blk-device,drive=disk0",
        ]
        .map(String::from),
    );
    let source = if qcow2 {
        paths::PAYLOAD_QCOW2
    } else {
        paths::PAYLOAD_INITRD
    };
    case.setup = vec![format!("cp {source} {DISK}")];
    // A qcow2 image is read back through QEMU's own qemu-img.
    let raw = if qcow2 {
        format!("{} convert -O raw {DISK} /tmp/back.raw && ", paths::QEMU_IMG)
    } else {
        String::new()
    };
    let back = if qcow2 { "/tmp/back.raw" } else { DISK };
    case.after = vec![format!(
        "{raw}dd if={back} bs=512 skip=100 count=1 2>/dev/null | head -c {}",
        GUEST_LINE.len()
    )];
    case
}

/// Linux with a virtio-net NIC on a TAP in L2 (10.0.2.1/24): the guest sets 10.0.2.15 and
/// pings L2.
fn linux_case_net(image: LinuxImage, loader: Loader) -> Case {
    let mut case = linux_case(image, loader, true, true, 1);
    rename(&mut case, "-net", " minnow.net=1");
    if let Expect::Linux { net, .. } = &mut case.expect {
        *net = true;
    }
    case.args.extend(
        [
            "-netdev",
            "tap,id=n0,ifname=tap0,script=no,downscript=no",
            "-device",
            "virtio-net-device,netdev=n0",
        ]
        .map(String::from),
    );
    case.setup = vec![
        "tunctl -t tap0 >/dev/null 2>&1".into(),
        "ifconfig tap0 10.0.2.1 netmask 255.255.255.0 up".into(),
    ];
    case
}

/// Linux with a virtio console on a file chardev: the guest writes a line to /dev/hvc0 and L2
/// finds it in the file.
fn linux_case_hvc(image: LinuxImage, loader: Loader) -> Case {
    const LOG: &str = "/tmp/hvc0.log";
    let mut case = linux_case(image, loader, true, true, 1);
    rename(&mut case, "-hvc", " minnow.hvc=1");
    case.args.extend(
        [
            "-device",
            "virtio-serial-device",
            "-chardev",
            &format!("file,id=c0,path={LOG}"),
            "-device",
            "virtconsole,chardev=c0",
        ]
        .map(String::from),
    );
    case.setup = vec![format!("rm -f {LOG}")];
    case.after = vec![format!("cat {LOG}")];
    case.after_must_have = Some("MINNOW-HVC0-SAYS-HELLO");
    case
}

/// Linux with a virtio console on stdio: L2 feeds minnow's stdin a line, which the guest must
/// read from /dev/hvc0; what the guest writes to hvc0 must reach minnow's stdout.
fn linux_case_hvc_stdio(image: LinuxImage, loader: Loader) -> Case {
    let mut case = linux_case(image, loader, true, true, 1);
    rename(&mut case, "-hvcstdio", " minnow.hvcin=1");
    case.args.extend(
        [
            "-device",
            "virtio-serial-device",
            "-chardev",
            "stdio,id=c0",
            "-device",
            "virtconsole,chardev=c0",
        ]
        .map(String::from),
    );
    // Typed once the guest's console is up, as a user would: a console without multiport has no
    // "port open" message, and Linux drops input that arrives before its hvc0 tty exists. The
    // FIFO's writer waits for the guest's greeting on minnow's stdout.
    case.setup = vec![
        "rm -f /tmp/case.stdin && mkfifo /tmp/case.stdin".into(),
        format!(
            "(i=0; while ! grep -q MINNOW-HVC0-SAYS-HELLO /tmp/stdout.log 2>/dev/null && [ $i -lt 450 ]; \
             do sleep 0.1; i=$((i+1)); done; echo {HVC_INPUT}) >/tmp/case.stdin &"
        ),
    ];
    case.after = vec!["tr -d '\\r' </tmp/stdout.log".into()];
    case.after_must_have = Some("MINNOW-HVC0-SAYS-HELLO");
    if let Expect::Linux { hvc_input, .. } = &mut case.expect {
        *hvc_input = true;
    }
    case
}

/// What L2 types into the stdio virtio console.
const HVC_INPUT: &str = "MINNOW-HVC0-INPUT";

/// The guest's vsock CID in the vsock case.
const VSOCK_CID: u32 = 3;
/// What L2 sends the guest over vsock, and must get back.
const VSOCK_MESSAGE: &str = "MINNOW-VSOCK-ECHO";

/// Linux with `-device vhost-vsock-device` on L2's vhost_vsock: the guest listens on port 1234,
/// L2 connects to its CID, sends a line and must read it back.
fn linux_case_vsock(image: LinuxImage, loader: Loader) -> Case {
    const OUT: &str = "/tmp/vsock.out";
    let mut case = linux_case(image, loader, true, true, 1);
    rename(&mut case, "-vsock", " minnow.vsock=1");
    if let Expect::Linux { vsock, .. } = &mut case.expect {
        *vsock = true;
    }
    case.args
        .extend(["-device", &format!("vhost-vsock-device,guest-cid={VSOCK_CID}")].map(String::from));
    // L2's end starts before the guest and retries until the guest listens.
    case.setup = vec![format!(
        "rm -f {OUT}; ({} send {VSOCK_CID} 1234 {VSOCK_MESSAGE} 45 >{OUT} 2>&1 &)",
        paths::VSOCK_ECHO
    )];
    case.after = vec![format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do [ -s {OUT} ] && break; sleep 0.5; done; cat {OUT}"
    )];
    case.after_must_have = Some(VSOCK_MESSAGE);
    case
}

/// The seed workload of the Ubuntu microvm guide, word for word but for the binary's name, the
/// ROM's path and, for `acpi=off`, `-M microvm,acpi=off` in front. It runs in /tmp on a fresh copy
/// of hello.qcow2 (the guide names it relative to the working directory).
fn seed_case(acpi: bool) -> Case {
    let mut args: Vec<String> = if acpi {
        vec![]
    } else {
        vec!["-M".into(), "microvm,acpi=off".into()]
    };
    args.extend(
        [
            "-m",
            "128M",
            "-machine",
            "accel=kvm",
            "-bios",
            paths::MINNOW_ROM,
            "-kernel",
            paths::SEED_KERNEL,
            "-append",
            "console=ttyS0 root=/dev/vda fsck.mode=skip init=/usr/bin/hello",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "mon:stdio",
            "-drive",
            "file=hello.qcow2,index=0,format=qcow2,media=disk,if=none,id=virtio1",
            "-device",
            "virtio-blk-device,drive=virtio1",
        ]
        .map(String::from),
    );
    Case {
        name: format!("seed-hello-qcow2-acpi{}", on_off(acpi)),
        program: paths::MINNOW,
        args,
        serial_on_stdout: true,
        stop_after: (!acpi).then_some(30),
        setup: vec![format!("cd /tmp && cp {} hello.qcow2", paths::SEED_DISK)],
        after: vec!["cd /".into()],
        after_must_have: None,
        expect: Expect::Seed { acpi },
    }
}

/// The crash test: like [`linux_case_blk`] on qcow2 (whose metadata minnow caches), but the
/// guest stops after its fsynced write and L2 kills minnow with SIGKILL as soon as the guest
/// reports it. The line must be in the image all the same.
fn linux_case_blk_killed(image: LinuxImage, loader: Loader) -> Case {
    let mut case = linux_case_blk(image, loader, true);
    rename(&mut case, "-kill9", " minnow.blkkill=1");
    if let Expect::Linux { killed, .. } = &mut case.expect {
        *killed = true;
    }
    case.setup.push(
        "(i=0; while ! grep -q 'MINNOW-INIT blk_write=' /tmp/serial.log 2>/dev/null && [ $i -lt 450 ]; \
         do sleep 0.1; i=$((i+1)); done; killall -9 minnow) &"
            .into(),
    );
    case
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_blk(bad: &mut Vec<String>, out: &CaseOutput) {
    let disk = minnow_tests::payload_check::initrd_bytes();
    for at in [0usize, 51200] {
        let want = hex(&disk[at..at + 16]);
        let got = field(out, &format!("MINNOW-INIT blk_read@{}=", at / 16));
        if got != Some(want.as_str()) {
            bad.push(format!(
                "the guest read {got:?} at byte {at} of its disk, expected {want}"
            ));
        }
    }
    if field(out, "MINNOW-INIT blk_write=") != Some("0") {
        bad.push(format!(
            "the guest's write failed: {:?}",
            field(out, "MINNOW-INIT blk_write=")
        ));
    }
    if !out.after.iter().any(|l| l.trim() == GUEST_LINE) {
        bad.push(format!(
            "the disk image does not hold the guest's {GUEST_LINE:?} after minnow exited: {:?}",
            out.after
        ));
    }
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
            cases.push(linux_case(image, loader, true, true, 2));
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
        linux_case_net(BzImage, MinnowRom),
        linux_case_hvc(Pvh, Direct),
        linux_case_hvc_stdio(BzImage, MinnowRom),
        linux_case_vsock(BzImage, MinnowRom),
        seed_case(true),
        seed_case(false),
    ]);
    cases
}

fn payload_case(loader: Loader, route: Route, payload: Payload, acpi: bool, smp: u32) -> Case {
    let name = format!(
        "payload-{}-{}-{}-acpi{}-smp{smp}",
        loader_name(loader),
        match route {
            Route::Kernel => "kernel",
            Route::FwCfg => "fwcfg",
        },
        payload.file().replace('.', "_"),
        on_off(acpi),
    );
    let cmdline = payload_cmdline(&name);
    let kernel_arg = format!("{}/{}", paths::PAYLOAD_DIR, payload.file());
    let mut args = machine_args(acpi, true, true, smp);
    args.extend(bios_args(loader));
    args.extend(["-device".to_string(), DEBUG_EXIT_DEVICE.to_string()]);
    match route {
        Route::Kernel => args.extend(
            [
                "-kernel",
                &kernel_arg,
                "-initrd",
                paths::PAYLOAD_INITRD,
                "-append",
                &cmdline,
            ]
            .map(String::from),
        ),
        Route::FwCfg => {
            for (item, value) in [
                ("kernel", format!("file={kernel_arg}")),
                ("initrd", format!("file={}", paths::PAYLOAD_INITRD)),
                ("cmdline", format!("string={}", cmdline.replace(',', ",,"))),
            ] {
                args.push("-fw_cfg".into());
                args.push(format!("name=opt/org.minnow/{item},{value}"));
            }
        }
    }
    Case {
        name,
        program: paths::MINNOW,
        args,
        setup: vec![],
        serial_on_stdout: false,
        stop_after: None,
        after: vec![],
        after_must_have: None,
        expect: Expect::Payload {
            loader,
            route,
            payload,
            smp,
            acpi,
            kernel_arg,
            cmdline,
        },
    }
}

/// Every payload through every loader that supports it, with ACPI (one CPU) and without (two,
/// so the MP table's CPU count is checked).
pub fn payload_cases() -> Vec<Case> {
    payload_matrix().0
}

/// The payload combinations left out, each with why (the run prints them).
pub fn payload_not_supported() -> Vec<(String, &'static str)> {
    payload_matrix().1
}

fn payload_matrix() -> (Vec<Case>, Vec<(String, &'static str)>) {
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for loader in [Loader::MinnowRom, Loader::Qboot, Loader::SeaBios, Loader::Direct] {
        for route in [Route::Kernel, Route::FwCfg] {
            for payload in Payload::ALL {
                // The fw_cfg route is for what -kernel cannot carry: multiboot 2.
                if route == Route::FwCfg && payload != Payload::Multiboot2 {
                    continue;
                }
                if let Some(why) = not_supported(loader, route, payload) {
                    let route = if route == Route::Kernel { "kernel" } else { "fwcfg" };
                    skipped.push((
                        format!("payload-{}-{route}-{}", loader_name(loader), payload.file()),
                        why,
                    ));
                    continue;
                }
                cases.push(payload_case(loader, route, payload, true, 1));
                cases.push(payload_case(loader, route, payload, false, 2));
            }
        }
    }
    (cases, skipped)
}

/// The value after `prefix` on the first serial line that starts with it.
fn field<'a>(out: &'a CaseOutput, prefix: &str) -> Option<&'a str> {
    out.serial.iter().find_map(|l| l.strip_prefix(prefix))
}

/// What is wrong with a case's output; empty when it passed. `now` is the host's Unix time.
pub fn check(case: &Case, out: &CaseOutput, now: i64) -> Vec<String> {
    let mut bad = check_expect(case, out, now);
    if let Some(line) = case.after_must_have {
        if !out.after.iter().any(|l| l.trim() == line) {
            bad.push(format!("L2 did not find {line:?} after the run: {:?}", out.after));
        }
    }
    bad
}

fn check_expect(case: &Case, out: &CaseOutput, now: i64) -> Vec<String> {
    match &case.expect {
        Expect::Timing if field(out, "MINNOW-INIT done").is_some() => vec![],
        Expect::Timing => vec!["the guest's /init never reported done".into()],
        Expect::Seed { acpi } => {
            let mut bad = Vec::new();
            let greeting = minnow_guest_tools::SEED_GREETING;
            if !out.serial.iter().chain(&out.tail).any(|l| l.trim() == greeting) {
                bad.push(format!("no {greeting:?} on the console"));
            }
            let want = if *acpi { 0 } else { 128 + 15 };
            if out.rc != want {
                bad.push(format!("minnow exited with {}, expected {want}", out.rc));
            }
            bad
        }
        Expect::Linux {
            smp,
            acpi,
            rtc,
            rng,
            blk,
            net,
            vsock,
            hvc_input,
            killed,
            append,
        } => {
            if *killed {
                let mut bad = Vec::new();
                check_blk(&mut bad, out);
                if out.rc != 128 + 9 {
                    bad.push(format!("minnow exited with {}, expected 137 (SIGKILL)", out.rc));
                }
                return bad;
            }
            let mut bad = check_linux(out, *smp, *acpi, *rtc, append, now);
            if *blk {
                check_blk(&mut bad, out);
            }
            if *net && field(out, "MINNOW-INIT net_ping=") != Some("ok") {
                bad.push(format!(
                    "the guest could not ping the TAP's host end: net_ping={:?}",
                    field(out, "MINNOW-INIT net_ping=")
                ));
            }
            if *hvc_input && field(out, "MINNOW-INIT hvc0_input=") != Some(HVC_INPUT) {
                bad.push(format!(
                    "the guest did not read L2's line from hvc0: hvc0_input={:?}",
                    field(out, "MINNOW-INIT hvc0_input=")
                ));
            }
            let echoed = format!("vsock-echo: echoed {} bytes", VSOCK_MESSAGE.len());
            if *vsock && field(out, "MINNOW-INIT vsock=") != Some(echoed.as_str()) {
                bad.push(format!(
                    "the guest did not echo L2's vsock message: vsock={:?}",
                    field(out, "MINNOW-INIT vsock=")
                ));
            }
            let want = if *rng {
                "virtio_rng.0 bytes=16"
            } else {
                "none bytes=0"
            };
            match field(out, "MINNOW-INIT hwrng=") {
                Some(got) if got == want => {}
                got => bad.push(format!("hwrng={got:?}, expected {want:?}")),
            }
            bad
        }
        Expect::Payload {
            loader,
            route,
            payload,
            smp,
            acpi,
            kernel_arg,
            cmdline,
        } => {
            let deviations = qboot_deviations(*loader, false);
            let expected = Expected {
                loader: *loader,
                route: *route,
                payload: *payload,
                kernel_arg,
                cmdline,
                mem_mib: MEM_MIB,
                smp: *smp,
                acpi_tables: acpi.then_some(MICROVM_TABLES),
                pages: None,
                deviations: &deviations,
            };
            let mut bad = payload_check::check(out.serial.iter().map(String::as_str), &expected);
            let want = expected.exit_status();
            if out.rc != want {
                bad.push(format!("minnow exited with {}, expected {want}", out.rc));
            }
            bad
        }
    }
}

fn check_linux(out: &CaseOutput, smp: u32, acpi: bool, rtc: bool, append: &str, now: i64) -> Vec<String> {
    let mut bad = Vec::new();
    if out.rc != 0 {
        bad.push(format!(
            "minnow exited with {}, expected 0 (guest power-off or reset)",
            out.rc
        ));
    }
    if field(out, "MINNOW-INIT done").is_none() {
        bad.push("the guest's /init never reported done".into());
        return bad;
    }
    if field(out, "MINNOW-INIT cmdline=") != Some(append) {
        bad.push(format!(
            "cmdline {:?}, expected {append:?}",
            field(out, "MINNOW-INIT cmdline=")
        ));
    }
    if field(out, "MINNOW-INIT cpus=") != Some(smp.to_string().as_str()) {
        bad.push(format!(
            "cpus={:?}, expected {smp}",
            field(out, "MINNOW-INIT cpus=")
        ));
    }
    let mem_kib = MEM_MIB * 1024;
    match field(out, "MINNOW-INIT mem_total_kb=").and_then(|v| v.parse::<u64>().ok()) {
        Some(kb) if kb * 10 >= mem_kib * 7 && kb <= mem_kib => {}
        other => bad.push(format!("MemTotal {other:?} kB: expected 70%..100% of {mem_kib}")),
    }
    check_rtc(&mut bad, out, acpi, rtc, now);
    for l in out.serial.iter().filter(|l| l.contains("WARNING:")) {
        if !KNOWN_WARNINGS.iter().any(|(at, _)| l.contains(at)) {
            bad.push(format!("the guest kernel warned: {l}"));
        }
    }
    bad
}

/// The RTC fixups as the guest sees them: a working /dev/rtc0 with the host's time when the RTC
/// is on; no RTC and no probe stall when it is off but ACPI can say so; and a warning from minnow
/// when nothing can tell the guest.
fn check_rtc(bad: &mut Vec<String>, out: &CaseOutput, acpi: bool, rtc: bool, now: i64) {
    let line = field(out, "MINNOW-INIT rtc=").unwrap_or("");
    let mut words = line.split_whitespace();
    let state = words.next().unwrap_or("");
    let epoch: Option<i64> = words
        .next()
        .and_then(|w| w.strip_prefix("epoch="))
        .and_then(|v| v.parse().ok());
    let want = if rtc { "ok" } else { "none" };
    if state != want {
        bad.push(format!("rtc={state:?}, expected {want}"));
    }
    if rtc {
        match epoch {
            Some(t) if (t - now).abs() <= CLOCK_SLACK_SECS => {}
            _ => bad.push(format!(
                "the guest's clock says {epoch:?}, the host's {now}: the RTC does not give the host's time"
            )),
        }
    }
    let stalled = out.serial.iter().any(|l| l.contains(RTC_STALL));
    let guest_can_know = rtc || acpi;
    if guest_can_know && stalled {
        bad.push(format!("the guest logged {RTC_STALL:?}: the RTC fixups failed"));
    }
    if !guest_can_know && !out.stderr.iter().any(|l| l.contains("rtc=off without ACPI")) {
        bad.push("rtc=off without ACPI, but minnow did not warn about it".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(rc: i32, serial: &[&str], stderr: &[&str]) -> CaseOutput {
        CaseOutput {
            rc,
            seconds: 1.0,
            serial: serial.iter().map(|s| s.to_string()).collect(),
            tail: vec![],
            stderr: stderr.iter().map(|s| s.to_string()).collect(),
            after: vec![],
        }
    }

    #[test]
    fn a_linux_case_passes_only_with_the_whole_report() {
        let case = linux_case(LinuxImage::Pvh, Loader::Direct, true, true, 2);
        let Expect::Linux { append, .. } = &case.expect else {
            unreachable!()
        };
        let cmdline = format!("MINNOW-INIT cmdline={append}");
        let good = [
            cmdline.as_str(),
            "MINNOW-INIT mem_total_kb=222504",
            "MINNOW-INIT cpus=2",
            "MINNOW-INIT rtc=ok epoch=1000",
            "MINNOW-INIT done",
            "MINNOW-INIT hwrng=none bytes=0",
        ];
        assert!(check(&case, &output(0, &good, &[]), 1010).is_empty());
        // A clock far from the host's, a stall line, a lost CPU, a bad exit: each is named.
        let bad = check(&case, &output(0, &good, &[]), 100_000);
        assert!(
            bad[0].contains("the RTC does not give the host's time"),
            "{bad:?}"
        );
        let mut stalled = good.to_vec();
        stalled.push("[    1.0] rtc_cmos rtc_cmos: rtc_cmos: broken or not accessible");
        assert_eq!(check(&case, &output(0, &stalled, &[]), 1000).len(), 1);
        let mut one_cpu = good.to_vec();
        one_cpu[2] = "MINNOW-INIT cpus=1";
        assert!(check(&case, &output(0, &one_cpu, &[]), 1000)[0].starts_with("cpus="));
        assert_eq!(check(&case, &output(1, &good, &[]), 1000).len(), 1);
        let no_done = [&good[..4], &good[5..]].concat();
        assert_eq!(check(&case, &output(0, &no_done, &[]), 1000).len(), 1);
        let mut warned = good.to_vec();
        warned.push("[    0.4] WARNING: CPU: 0 PID: 0 at arch/x86/kernel/fpu/xstate.c:606 x+0x1");
        assert!(check(&case, &output(0, &warned, &[]), 1000).is_empty());
        warned.push("[    0.5] WARNING: CPU: 0 PID: 1 at arch/x86/kernel/apic/apic.c:1 y+0x2");
        assert_eq!(check(&case, &output(0, &warned, &[]), 1000).len(), 1);
    }

    #[test]
    fn without_acpi_or_rtc_minnow_must_warn() {
        let case = linux_case(LinuxImage::BzImage, Loader::MinnowRom, false, false, 1);
        let Expect::Linux { append, .. } = &case.expect else {
            unreachable!()
        };
        let cmdline = format!("MINNOW-INIT cmdline={append}");
        let serial = [
            cmdline.as_str(),
            "MINNOW-INIT mem_total_kb=222504",
            "MINNOW-INIT cpus=1",
            "MINNOW-INIT rtc=none epoch=0",
            "MINNOW-INIT done",
            "MINNOW-INIT hwrng=none bytes=0",
        ];
        let warning = "minnow: warning: rtc=off without ACPI: Linux will probe the missing RTC";
        assert!(check(&case, &output(0, &serial, &[warning]), 0).is_empty());
        assert_eq!(check(&case, &output(0, &serial, &[]), 0).len(), 1);
    }

    #[test]
    fn an_rng_case_needs_the_virtio_rng_driver_and_its_bytes() {
        let case = linux_case_rng(LinuxImage::Pvh, Loader::Direct, true);
        assert!(case.args.join(" ").contains("-device virtio-rng-device"));
        let Expect::Linux { append, .. } = &case.expect else {
            unreachable!()
        };
        assert!(case.args.contains(append) && append.ends_with(&case.name));
        let cmdline = format!("MINNOW-INIT cmdline={append}");
        let mut serial = vec![
            cmdline.as_str(),
            "MINNOW-INIT mem_total_kb=222504",
            "MINNOW-INIT cpus=1",
            "MINNOW-INIT rtc=ok epoch=1000",
            "MINNOW-INIT done",
            "MINNOW-INIT hwrng=virtio_rng.0 bytes=16",
        ];
        assert!(check(&case, &output(0, &serial, &[]), 1000).is_empty());
        serial[5] = "MINNOW-INIT hwrng=none bytes=0";
        assert_eq!(check(&case, &output(0, &serial, &[]), 1000).len(), 1);
    }

    #[test]
    fn the_matrix_covers_every_loader_and_skips_what_cannot_work() {
        let names: Vec<String> = linux_cases().into_iter().map(|c| c.name).collect();
        for want in ["bzimage-minnowrom", "pvh-qboot", "pvh-direct", "rtcoff"] {
            assert!(names.iter().any(|n| n.contains(want)), "{want}");
        }
        let payloads = payload_cases();
        assert!(payloads
            .iter()
            .any(|c| c.name.contains("direct-kernel-bzImage32")));
        assert!(payloads
            .iter()
            .any(|c| c.name.contains("minnowrom-fwcfg-multiboot2")));
        assert!(!payloads
            .iter()
            .any(|c| c.name.contains("direct-kernel-multiboot")));
        let all: Vec<String> = payloads.iter().map(|c| c.name.clone()).chain(names).collect();
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "case names must be unique");
    }
}
