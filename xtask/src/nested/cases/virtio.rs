//! Linux cases with virtio devices, and the seed workload: what each adds to the command line,
//! what L2 sets up around the run, and what the guest is asked to do.
use super::*;

/// Linux with `-device virtio-rng-device`: its driver must find the device (in the DSDT with
/// ACPI, on the command line without) and read entropy from it.
pub(super) fn linux_case_rng(image: LinuxImage, loader: Loader, acpi: bool) -> Case {
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
pub(super) const DISK: &str = "/tmp/disk.img";
/// What the guest writes at sector 100.
pub(super) const GUEST_LINE: &str = "MINNOW-GUEST-WROTE-THIS";

/// Linux with a raw virtio-blk disk (`-drive ... -device virtio-blk-device`): the guest reads
/// known bytes at two offsets, writes a line with fsync, and L2 reads it back from the image
/// after minnow has exited.
pub(super) fn linux_case_blk(image: LinuxImage, loader: Loader, qcow2: bool) -> Case {
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
pub(super) fn linux_case_net(image: LinuxImage, loader: Loader) -> Case {
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
        // A TAP the case's user may open: the VMM runs without CAP_NET_ADMIN.
        format!("{} tap0 {}", paths::TAP_ADD, super::super::script::L2_UID),
        "ifconfig tap0 10.0.2.1 netmask 255.255.255.0 up".into(),
    ];
    case
}

/// How a passt case's NIC reaches passt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PasstLink {
    /// `-netdev user`: minnow starts passt and ends it.
    User,
    /// `-netdev stream` to a passt L2 started on a Unix socket, as libvirt and podman run it.
    Stream,
}

/// passt's socket for the stream case.
const PASST_SOCKET: &str = "/tmp/passt.sock";

/// Linux with a virtio-net NIC through passt, run (as every case) by a user who is not root and
/// with no TAP: the guest gets 10.0.2.15 by DHCP and fetches a page from L2's HTTP server
/// through the gateway, 10.0.2.2 (L2's loopback, as QEMU's slirp maps it).
pub(super) fn linux_case_passt(image: LinuxImage, loader: Loader, link: PasstLink) -> Case {
    let mut case = linux_case(image, loader, true, true, 1);
    let (suffix, netdev) = match link {
        PasstLink::User => ("-user", "user,id=n0".to_string()),
        PasstLink::Stream => (
            "-stream",
            format!("stream,id=n0,server=off,addr.type=unix,addr.path={PASST_SOCKET}"),
        ),
    };
    rename(&mut case, suffix, " minnow.dhcp=1");
    if let Expect::Linux { dhcp, .. } = &mut case.expect {
        *dhcp = true;
    }
    case.args
        .extend(["-netdev", &netdev, "-device", "virtio-net-device,netdev=n0"].map(String::from));
    if link == PasstLink::Stream {
        case.setup = passt_for_stream(PASST_SOCKET);
        case.after = vec![format!("grep -v syslog {PASST_SOCKET}.log")];
    }
    case
}

/// L2's setup lines that start passt on `socket`, with QEMU's user-network addresses, for one
/// client, as the case's user (its log in `socket`.log), and wait for it to listen.
pub fn passt_for_stream(socket: &str) -> Vec<String> {
    let passt = format!(
        "{} --foreground --quiet --one-off --socket {socket} --address 10.0.2.15 --netmask 24 \
         --gateway 10.0.2.2 --dns 10.0.2.3 --dns-forward 10.0.2.3 --ipv4-only",
        paths::PASST
    );
    vec![
        format!("rm -f {socket}"),
        format!(
            "su -s /bin/sh -c '{passt}' -- {} >{socket}.log 2>&1 &",
            super::super::script::L2_USER
        ),
        format!("for i in 1 2 3 4 5 6 7 8 9 10; do [ -S {socket} ] && break; sleep 0.5; done"),
    ]
}

/// Linux with a virtio console on a file chardev: the guest writes a line to /dev/hvc0 and L2
/// finds it in the file.
pub(super) fn linux_case_hvc(image: LinuxImage, loader: Loader) -> Case {
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
pub(super) fn linux_case_hvc_stdio(image: LinuxImage, loader: Loader) -> Case {
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
pub(super) const HVC_INPUT: &str = "MINNOW-HVC0-INPUT";

/// The guest's vsock CID in the vsock case.
const VSOCK_CID: u32 = 3;
/// What L2 sends the guest over vsock, and must get back.
pub(super) const VSOCK_MESSAGE: &str = "MINNOW-VSOCK-ECHO";

/// Linux with `-device vhost-vsock-device` on L2's vhost_vsock: the guest listens on port 1234,
/// L2 connects to its CID, sends a line and must read it back.
pub(super) fn linux_case_vsock(image: LinuxImage, loader: Loader) -> Case {
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

/// The vsock echo with `vhostfd=3`: a shell opens /dev/vhost-vsock as fd 3 and execs minnow with
/// it, as a sandbox's launcher would hand minnow the device without giving it the node.
pub(super) fn linux_case_vsock_fd(image: LinuxImage, loader: Loader) -> Case {
    let mut case = linux_case_vsock(image, loader);
    rename(&mut case, "-vhostfd", "");
    let device = format!("vhost-vsock-device,guest-cid={VSOCK_CID}");
    for a in case.args.iter_mut().filter(|a| **a == device) {
        a.push_str(",vhostfd=3");
    }
    let script = format!("exec {} \"$@\" 3<>/dev/vhost-vsock", paths::MINNOW);
    case.args
        .splice(0..0, ["-c".to_string(), script, "minnow".to_string()]);
    case.program = "/bin/sh";
    case
}

/// The seed workload of the Ubuntu microvm guide, word for word but for the binary's name, the
/// ROM's path and, for `acpi=off`, `-M microvm,acpi=off` in front. It runs in /tmp on a fresh copy
/// of hello.qcow2 (the guide names it relative to the working directory).
pub(super) fn seed_case(acpi: bool) -> Case {
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
    let mut case = Case::new(
        format!("seed-hello-qcow2-acpi{}", on_off(acpi)),
        paths::MINNOW,
        args,
        Expect::Seed { acpi },
    );
    case.serial_on_stdout = true;
    // Without ACPI the guest cannot power off: it halts after its greeting, which took 5 s here.
    case.stop_when = (!acpi).then(|| StopWhen {
        text: minnow_guest_tools::SEED_GREETING.into(),
        limit_secs: 30,
    });
    case.setup = vec![format!("cd /tmp && cp {} hello.qcow2", paths::SEED_DISK)];
    case.after = vec!["cd /".into()];
    case
}

/// The crash test: like [`linux_case_blk`] on qcow2 (whose metadata minnow caches), but the
/// guest stops after its fsynced write and L2 kills minnow with SIGKILL as soon as the guest
/// reports it. The line must be in the image all the same.
pub(super) fn linux_case_blk_killed(image: LinuxImage, loader: Loader) -> Case {
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

/// How many synced files L2 waits for before it stops minnow: enough that the kill lands in the
/// middle of the guest's writes, which never pause. The serial log does not exist until the case
/// starts: a missing count is 0, not "stop now" (an empty `[ -lt ]` ended the wait at once).
const FS_FILES_BEFORE_KILL: u32 = 3;

/// "Nothing lost": the guest writes 1 MiB files into ext4 on a qcow2 disk without pause, each
/// synced and reported; after the third, L2 stops minnow with SIGTERM (minnow flushes what it
/// caches) or SIGKILL (what the guest synced must already be on the disk), then checks the
/// image with qemu-img, the file system with e2fsck, and reads every reported file back.
pub(super) fn linux_case_fs_killed(signal: &'static str) -> Case {
    const IMAGE: &str = "/tmp/fs.qcow2";
    let mut case = linux_case(LinuxImage::BzImage, Loader::MinnowRom, true, true, 1);
    rename(
        &mut case,
        &format!("-fs-sig{}", signal.to_lowercase()),
        " minnow.fswriter=1",
    );
    case.args.extend(
        [
            "-drive",
            &format!("file={IMAGE},format=qcow2,if=none,id=fs"),
            "-device",
            "virtio-blk-device,drive=fs",
        ]
        .map(String::from),
    );
    case.expect = Expect::FsKilled { signal };
    case.setup = vec![
        format!("cp {} {IMAGE}", paths::EXT4_QCOW2),
        format!(
            "(i=0; while n=$(grep -c MINNOW-SYNCED /tmp/serial.log 2>/dev/null); \
             [ \"${{n:-0}}\" -lt {FS_FILES_BEFORE_KILL} ] && [ $i -lt 450 ]; do sleep 0.1; i=$((i+1)); done; \
             killall -{signal} minnow) &"
        ),
    ];
    case.after = vec![
        format!("{} check {IMAGE} 2>&1", paths::QEMU_IMG),
        format!(
            "{} convert -O raw {IMAGE} /tmp/fs.raw && {} -fy /tmp/fs.raw >/tmp/fsck.log 2>&1; \
             echo \"MINNOW-L2 e2fsck rc=$?\"; grep -i -E 'inconsisten|error' /tmp/fsck.log",
            paths::QEMU_IMG,
            paths::E2FSCK
        ),
        format!(
            "for f in $({debugfs} -R 'ls -p /' /tmp/fs.raw 2>/dev/null | cut -d/ -f6 | grep '^f[0-9]'); do \
             echo \"MINNOW-L2 $f $({debugfs} -R \"cat /$f\" /tmp/fs.raw 2>/dev/null | md5sum | cut -d' ' -f1)\"; done; \
             rm -f {IMAGE} /tmp/fs.raw /tmp/fsck.log",
            debugfs = paths::DEBUGFS
        ),
    ];
    case
}
