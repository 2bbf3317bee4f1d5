use super::*;

fn parse_str(s: &str) -> Result<Option<Config>, ConfigError> {
    parse(s.split_whitespace().map(String::from)).map(Parsed::config)
}

#[test]
fn the_ubuntu_microvm_guide_command_line_parses() {
    let c = parse_str(
        "-M microvm,accel=kvm,acpi=on -m 128M -bios /usr/share/qemu/qboot.rom -kernel vmlinuz \
         -append console=ttyS0 -nodefaults -no-user-config -display none -serial mon:stdio \
         -smp 2 -cpu host -no-reboot",
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.memory, 128 << 20);
    assert_eq!(c.cpus, 2);
    assert_eq!(c.machine.acpi, OnOffAuto::On);
    assert_eq!(c.bios, Bios::File("/usr/share/qemu/qboot.rom".into()));
    assert_eq!(c.serial, Serial::Stdio);
    assert!(c.no_reboot);
}

/// The two command lines of QEMU's docs/system/i386/microvm.rst, whole.
#[test]
fn the_qemu_microvm_docs_command_lines_parse() {
    let c = parse_str(
        "-M microvm -enable-kvm -cpu host -m 512m -smp 2 -kernel vmlinux \
         -append earlyprintk=ttyS0 -nodefaults -no-user-config -nographic -serial stdio \
         -drive id=test,file=test.img,format=raw,if=none -device virtio-blk-device,drive=test \
         -netdev tap,id=tap0,script=no,downscript=no -device virtio-net-device,netdev=tap0",
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.virtio.len(), 2);
    assert_eq!(
        c.netdevs[0].backend,
        NetBackend::Tap {
            ifname: String::new(),
            fd: None
        }
    );
    let c = parse_str(
        "-M microvm,x-option-roms=off,pit=off,pic=off,isa-serial=off,rtc=off -enable-kvm -cpu host \
         -m 512m -smp 2 -kernel vmlinux -append console=hvc0 -nodefaults -no-user-config -nographic \
         -chardev stdio,id=virtiocon0 -device virtio-serial-device -device virtconsole,chardev=virtiocon0 \
         -drive id=test,file=test.img,format=raw,if=none -device virtio-blk-device,drive=test \
         -netdev tap,id=tap0,script=no,downscript=no -device virtio-net-device,netdev=tap0",
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.virtio.len(), 3);
    assert!(crate::machine::validate(&c).is_ok());
}

#[test]
fn qemu_microvm_doc_options_parse() {
    let c = parse_str(
        "-M microvm,x-option-roms=off,pit=off,pic=off,isa-serial=off,rtc=off -enable-kvm -nographic",
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (c.machine.pit, c.machine.pic, c.machine.rtc),
        (OnOffAuto::Off, OnOffAuto::Off, OnOffAuto::Off)
    );
    assert!(!c.machine.isa_serial && !c.machine.option_roms);
}

#[test]
fn a_virtconsole_needs_its_bus_and_finds_its_chardev() {
    let c = parse_str(
        "-device virtio-serial-device -device virtconsole,chardev=c0 -chardev file,id=c0,path=/tmp/hvc0.log",
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.virtio, [VirtioDeviceConfig::Console { chardev: 0 }]);
    assert_eq!(
        c.chardevs[0].backend,
        ChardevBackend::File("/tmp/hvc0.log".into())
    );
    assert!(parse_str("-device virtconsole,chardev=c0").is_err());
    assert!(parse_str("-chardev pty,id=p").is_err());
    assert!(parse_str("-chardev file,id=f").is_err());
}

#[test]
fn the_microvm_docs_tap_network_parses() {
    let c = parse_str(
        "-netdev tap,id=tap0,script=no,downscript=no,ifname=tap0 -device virtio-net-device,netdev=tap0,mac=02:00:00:00:00:01",
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        c.virtio,
        [VirtioDeviceConfig::Net {
            netdev: 0,
            mac: [2, 0, 0, 0, 0, 1]
        }]
    );
    assert!(matches!(&c.netdevs[0].backend, NetBackend::Tap { ifname, .. } if ifname == "tap0"));
    for (line, says) in [
        ("-netdev socket,id=n", "tap"),
        (
            "-netdev tap,id=n,ifname=t,script=/etc/qemu-ifup",
            "runs no scripts",
        ),
        ("-netdev tap,ifname=t", "id=ID"),
        ("-netdev tap,id=n,ifname=t,fd=3", "give one"),
        ("-netdev tap,id=n,fd=-3", "file descriptor number"),
        ("-device virtio-net-device,netdev=n,mac=zz", "six hex bytes"),
        ("-device virtio-net-device,netdev=missing", "no -netdev"),
    ] {
        let e = parse_str(line).unwrap_err().to_string();
        assert!(e.contains(says), "{line}: {e}");
    }
}

#[test]
fn a_blk_device_finds_its_drive_in_either_order() {
    let c = parse_str("-device virtio-blk-device,drive=d1 -drive file=x.img,format=raw,if=none,id=d1")
        .unwrap()
        .unwrap();
    assert_eq!(c.virtio, [VirtioDeviceConfig::Block { drive: 0 }]);
    let e = parse_str("-device virtio-blk-device,drive=nope")
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("no -drive"), "{e}");
}

#[test]
fn minus_snapshot_puts_every_drive_on_a_throwaway_overlay() {
    let two = "-drive file=a,format=raw,id=a -drive file=b,format=qcow2,id=b";
    let c = parse_str(&format!("{two} -snapshot")).unwrap().unwrap();
    assert!(c.drives.iter().all(|d| d.snapshot));
    let c = parse_str(two).unwrap().unwrap();
    assert!(c.drives.iter().all(|d| !d.snapshot));
}

#[test]
fn virtio_rng_parses_with_its_rng_object() {
    let c = parse_str("-object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-device,rng=rng0")
        .unwrap()
        .unwrap();
    assert_eq!(c.virtio, [VirtioDeviceConfig::Rng]);
    assert!(parse_str("-device virtio-rng-device,max-bytes=9").is_err());
    assert!(parse_str("-object memory-backend-ram,id=m").is_err());
}

#[test]
fn vhost_vsock_takes_a_guest_cid_from_3() {
    let c = parse_str("-device vhost-vsock-device,id=v0,guest-cid=42")
        .unwrap()
        .unwrap();
    assert_eq!(
        c.virtio,
        [VirtioDeviceConfig::Vsock {
            cid: 42,
            vhostfd: None
        }]
    );
    let c = parse_str("-device vhost-vsock-device,guest-cid=3,vhostfd=7")
        .unwrap()
        .unwrap();
    assert_eq!(
        c.virtio,
        [VirtioDeviceConfig::Vsock {
            cid: 3,
            vhostfd: Some(7)
        }]
    );
    for (args, says) in [
        ("-device vhost-vsock-device", "it needs guest-cid=N"),
        (
            "-device vhost-vsock-device,guest-cid=2",
            "0-2 are the hypervisor, loopback and host",
        ),
        (
            "-device vhost-vsock-device,guest-cid=4294967295",
            "from 3 to 4294967294",
        ),
        ("-device vhost-vsock-device,guest-cid=x", "from 3 to 4294967294"),
        (
            "-device vhost-vsock-device,guest-cid=3,vhostfd=-1",
            "open file descriptor",
        ),
        (
            "-device vhost-vsock-device,guest-cid=3,vhostfd=x",
            "open file descriptor",
        ),
        ("-device vhost-vsock-device,guest-cid=3,fd=7", "use guest-cid=N"),
        (
            "-device vhost-vsock-device,guest-cid=3 -device vhost-vsock-device,guest-cid=4",
            "one vsock device",
        ),
    ] {
        let err = parse_str(args).unwrap_err().to_string();
        assert!(err.contains(says), "{args}: {err}");
    }
}

#[test]
fn both_spellings_of_the_boot_timeline_parse() {
    assert!(!parse_str("").unwrap().unwrap().firmware_milestones);
    let c = parse_str("-boot-timeline").unwrap().unwrap();
    assert_eq!(c.boot_timeline, Some(TimelineOutput::Stderr));
    assert!(c.firmware_milestones);
    let c = parse_str("--boot-timeline=json:/tmp/t.json").unwrap().unwrap();
    assert_eq!(c.boot_timeline, Some(TimelineOutput::Json("/tmp/t.json".into())));
    assert!(parse_str("-boot-timeline=yaml").is_err());
}

#[test]
fn a_doubled_comma_is_a_comma_inside_a_value() {
    let c = parse_str("-fw_cfg name=opt/x,string=a,,b;c,,,,d")
        .unwrap()
        .unwrap();
    assert_eq!(c.fw_cfg[0].source, FwCfgSource::String("a,b;c,,d".into()));
    assert_eq!(
        key_values("microvm,,x,acpi=off,"),
        [("microvm,x".into(), String::new()), ("acpi".into(), "off".into())]
    );
}

#[test]
fn values_and_devices_parse_as_qemu_does() {
    assert_eq!(parse_memory("512M").unwrap(), 512 << 20);
    assert_eq!(parse_memory("2G").unwrap(), 2 << 30);
    assert_eq!(parse_memory("256").unwrap(), 256 << 20);
    assert_eq!(parse_memory("1.5G").unwrap(), 3 << 29);
    let c = parse_str("-device isa-debug-exit,iobase=0xf4,iosize=4 -fw_cfg name=opt/x,string=hi")
        .unwrap()
        .unwrap();
    assert_eq!(
        c.debug_exit,
        Some(DebugExit {
            iobase: 0xf4,
            iosize: 4
        })
    );
    assert_eq!(
        c.fw_cfg[0],
        FwCfgFile {
            name: "opt/x".into(),
            source: FwCfgSource::String("hi".into())
        }
    );
    assert_eq!(parse_str("-smp cpus=3,sockets=1").unwrap().unwrap().cpus, 3);
    assert_eq!(parse_str("--help").unwrap(), None);
}

#[test]
fn acpi_auto_is_on_with_a_firmware_and_with_direct_boot() {
    let acpi = |s| parse_str(s).unwrap().unwrap().acpi();
    assert!(acpi("-kernel k"));
    assert!(acpi("-bios none -kernel k"));
    assert!(acpi("-M microvm,acpi=on -bios none -kernel k"));
    assert!(!acpi("-M microvm,acpi=off -bios none -kernel k"));
    assert!(!acpi("-M microvm,acpi=off"));
}

#[test]
fn mistakes_name_the_option() {
    let err = |s| parse_str(s).unwrap_err().to_string();
    assert!(err("-usb").contains("unsupported option -usb"));
    assert!(err("-m lots").contains("bad memory size \"lots\""));
    assert!(err("-m 0").contains("bad memory size"));
    assert!(err("-smp 0").contains("bad -smp \"0\""));
    assert!(err("-smp 300").contains("bad -smp"));
    assert!(err("-M pc").contains("microvm machine only"));
    assert!(err("-M microvm,accel=tcg").contains("KVM only"));
    assert!(err("-M microvm,rtc=maybe").contains("on, off or auto"));
    assert!(err("-serial pty").contains("stdio, file:PATH, chardev:ID or none"));
    assert!(err("-kernel").contains("needs a value"));
    assert!(err("-initrd x").contains("need -kernel"));
    assert!(err("-bios none").contains("pass -kernel"));
    assert!(err("-device virtio-blk-device").contains("needs drive=ID"));
    assert!(err("-device virtio-gpu-device").contains("virtio-net-device"));
}

#[test]
fn one_virtconsole_at_most_reads_stdin() {
    let two = "-device virtio-serial-device -chardev stdio,id=a -chardev stdio,id=b \
               -device virtconsole,chardev=a -device virtconsole,chardev=b";
    let err = parse_str(two).unwrap_err().to_string();
    assert!(err.contains("stdin can feed one console"), "{err}");
    let one = "-device virtio-serial-device -chardev stdio,id=a -chardev file,id=b,path=/tmp/x \
               -device virtconsole,chardev=a -device virtconsole,chardev=b";
    assert!(parse_str(one).is_ok());
}

#[test]
fn a_tap_can_come_from_the_caller_as_an_fd() {
    let c = parse_str("-netdev tap,id=n0,fd=5 -device virtio-net-device,netdev=n0")
        .unwrap()
        .unwrap();
    assert_eq!(
        c.netdevs[0].backend,
        NetBackend::Tap {
            ifname: String::new(),
            fd: Some(5)
        }
    );
}

#[test]
fn monitors_come_from_qmp_monitor_and_mon_in_order() {
    let c = parse_str(
        "-qmp unix:/tmp/q.sock,server=on,wait=off -monitor telnet:127.0.0.1:1234,server,nowait \
         -chardev socket,id=m,path=/tmp/m.sock,server=on,wait=off -mon chardev=m,mode=control,pretty=on \
         -S -no-shutdown -name guest=vm1,debug-threads=on",
    )
    .unwrap()
    .unwrap();
    let modes: Vec<(MonitorMode, bool)> = c.monitors.iter().map(|m| (m.mode, m.pretty)).collect();
    assert_eq!(
        modes,
        [
            (MonitorMode::Control, false),
            (MonitorMode::Readline, false),
            (MonitorMode::Control, true)
        ]
    );
    assert!(c.start_paused && c.no_shutdown);
    assert_eq!(c.name.as_deref(), Some("vm1"));
    assert_eq!(
        parse_str("-name plain").unwrap().unwrap().name.as_deref(),
        Some("plain")
    );
}

#[test]
fn stdio_serves_one_character_device() {
    let e = parse_str("-qmp stdio").unwrap_err().to_string();
    assert!(
        e.contains("cannot use stdio by multiple character devices"),
        "{e}"
    );
    assert!(parse_str("-qmp stdio -serial none").is_ok());
    assert!(parse_str("-monitor stdio -serial file:/tmp/s").is_ok());
    let e = parse_str("-chardev file,id=f,path=/tmp/x -mon chardev=f")
        .unwrap_err()
        .to_string();
    assert!(e.contains("socket or stdio"), "{e}");
}

/// The options QEMU users paste into every command line: each does what QEMU does on microvm,
/// or is refused in one line saying why.
#[test]
fn everyday_qemu_options_parse() {
    let c = parse_str(
        "-no-acpi -nic none -net none -vga none -k en-us -d guest_errors,unimp -D guest.log \
         -msg timestamp=on -chardev file,id=log0,path=com1.txt -serial chardev:log0",
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.machine.acpi, OnOffAuto::Off);
    assert!(c.log.items.guest_errors && c.log.items.unimp && c.log.timestamps);
    assert_eq!(c.log.file, Some("guest.log".into()));
    assert_eq!(c.serial, Serial::File("com1.txt".into()));
    let c = parse_str("-chardev stdio,id=s -serial chardev:s")
        .unwrap()
        .unwrap();
    assert_eq!(c.serial, Serial::Stdio);
    let c = parse_str("-serial mon:stdio").unwrap().unwrap();
    assert_eq!((c.serial.clone(), c.monitors.len()), (Serial::Stdio, 1));
    assert_eq!(c.monitors[0].channel, MonitorChannel::SerialMux);
    assert_eq!(c.monitors[0].mode, MonitorMode::Readline);
    for (line, says) in [
        ("-serial chardev:nope", "no -chardev has that id"),
        (
            "-chardev socket,id=m,path=/tmp/x,server=on,wait=off -serial chardev:m",
            "COM1 on a socket",
        ),
        ("-nic user", "-netdev tap"),
        ("-net nic", "-netdev tap"),
        ("-vga std", "no VGA"),
        ("-serial mon:file:x", "mon:stdio"),
        ("-d in_asm", "TCG"),
        ("-msg color=on", "timestamp"),
    ] {
        let e = parse_str(line).unwrap_err().to_string();
        assert!(e.contains(says), "{line}: {e}");
    }
}

/// -daemonize closes stdio: the default COM1 on stdio goes quietly (QEMU has none then either),
/// an explicit stdio user is refused.
#[test]
fn daemonize_takes_stdio_away() {
    let c = parse_str("-daemonize").unwrap().unwrap();
    assert!(c.daemonize);
    assert_eq!(c.serial, Serial::None);
    let c = parse_str("-daemonize -serial file:com1.txt").unwrap().unwrap();
    assert_eq!(c.serial, Serial::File("com1.txt".into()));
    for line in ["-daemonize -serial stdio", "-daemonize -serial none -qmp stdio"] {
        assert_eq!(parse_str(line), Err(ConfigError::StdioWithDaemonize), "{line}");
    }
}

/// As in QEMU, the first -serial is COM1's; a second would be COM2's, which microvm lacks.
#[test]
fn the_first_serial_is_com1s() {
    let c = parse_str("-serial file:a.txt -serial mon:stdio")
        .unwrap()
        .unwrap();
    assert_eq!(c.serial, Serial::File("a.txt".into()));
    assert!(c.monitors.is_empty());
    let c = parse_str("-chardev stdio,id=s -serial chardev:s -serial none")
        .unwrap()
        .unwrap();
    assert_eq!(c.serial, Serial::Stdio);
    assert!(parse_str("-serial none -serial bogus").is_err());
}

/// The snapshot issue's recipe (QEMU-lite's "fast launch by local migration"), word for word
/// but for the machine and device names: every option is taken; hot-plug slots and the RTC's
/// drift fix are noted as without effect.
#[test]
fn the_local_migration_recipe_parses() {
    let line = "-M microvm,accel=kvm -cpu host -kernel bzImage -initrd initramfs.cpio.gz -nographic \
         -nodefaults -no-user-config -m 256,maxmem=1G,slots=2 -smp 2 -rtc base=utc,driftfix=slew \
         -global kvm-pit.lost_tick_policy=discard -append console=hvc0 \
         -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
         -device virtio-serial-device -chardev stdio,id=charconsole0 \
         -device virtconsole,chardev=charconsole0,id=console0 \
         -monitor telnet:127.0.0.1:1234,server,nowait";
    let c = parse_str(line).unwrap().unwrap();
    assert_eq!((c.memory, c.cpus), (256 << 20, 2));
    assert_eq!(c.pit_lost_ticks, global::LostTickPolicy::Discard);
    assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
    assert!(c.notes[0].contains("maxmem=1G,slots=2") && c.notes[0].contains("no memory hot-plug"));
    let clone = parse_str(&format!("{line} -incoming exec:cat")).unwrap().unwrap();
    assert_eq!(
        clone.incoming,
        Some(crate::snapshot::uri::Incoming::Now(
            crate::snapshot::uri::MigrationUri::Exec("cat".into())
        ))
    );
    assert!(parse_str("-m 256,maxmem=128M").is_err());
    assert!(parse_str("-global isa-serial.x=1").is_err());
    assert!(parse_str("-incoming tcp:0:4444")
        .unwrap_err()
        .to_string()
        .starts_with("-incoming: "));
}

/// What kvm-unit-tests' x86 runner gives QEMU: minnow takes each, or says in one line why not.
#[test]
fn kvm_unit_tests_options_parse_or_say_why_not() {
    let c = parse_str("-cpu qemu64,-x2apic -overcommit cpu-pm=on -M microvm,vmport=off")
        .unwrap()
        .unwrap();
    assert!(c.cpu_pm);
    assert_eq!(c.cpu.model, cpu::CpuModel::Qemu64);
    assert_eq!(c.cpu.flags[0].0.name, "x2apic");
    let e = parse_str("-M microvm,vmport=on").unwrap_err().to_string();
    assert!(e.contains("VMware I/O port"), "{e}");
}
