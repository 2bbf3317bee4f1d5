//! The text of `minnow --help`: every option the parser takes, in QEMU's spelling.
/// What `minnow --help` prints.
pub const HELP: &str = "\
usage: minnow [options]   (QEMU's microvm command line, on KVM)

  -M, -machine microvm[,opt=val...]   pic, pit, rtc, acpi, ioapic2=on|off|auto;
                                      isa-serial, auto-kernel-cmdline, x-option-roms=on|off;
                                      accel=kvm; vmport=off (microvm has no VMware port)
  -accel kvm, -enable-kvm             accepted (KVM only)
  -cpu MODEL[,+FLAG|-FLAG|FLAG=on|off|vendor=STRING...]
                                      host or max: all KVM supports (default); qemu64,
                                      kvm64: QEMU's models; FLAG: QEMU's CPUID feature names
  -overcommit cpu-pm=on|off[,mem-lock=off]
                                      cpu-pm=on: HLT, MWAIT, PAUSE stay in the guest
  -m SIZE[,slots=N,maxmem=SIZE]       guest RAM (default 128M; K, M, G, T suffixes); slots
                                      and maxmem accepted, without effect (no hot-plug)
  -rtc base=utc|localtime|DATE[,clock=host][,driftfix=none|slew]
                                      where the RTC starts (DATE: 2006-06-17T16:01:21);
                                      driftfix=slew accepted, without effect
  -global kvm-pit.lost_tick_policy=delay|discard
                                      discard: the PIT drops ticks the guest missed
  -smp N                              vCPUs (1-254)
  -bios FILE|none                     firmware ROM (default: Minnow's built-in ROM);
                                      none: boot -kernel directly
  -L DIR                              look here first for -bios names and option ROMs
                                      (then /usr/share/qemu); x-option-roms=on serves
                                      QEMU's linuxboot_dma.bin/pvh.bin/multiboot_dma.bin
  -kernel FILE                        bzImage, ELF with a PVH note, or multiboot kernel
  -initrd FILE, -append CMDLINE       initrd and kernel command line; for a multiboot kernel,
                                      -initrd lists modules as QEMU does: 'file args,file2'
  -fw_cfg name=NAME,file=PATH|string=TEXT
  -serial stdio|mon:stdio|file:PATH|chardev:ID|none
                                      COM1 (default stdio; ID: a stdio or file -chardev);
                                      mon:stdio shares stdio with HMP: Ctrl-A c switches,
                                      Ctrl-A x quits, Ctrl-A h lists the keys
  -device isa-debug-exit,iobase=PORT,iosize=N
                                      a guest write of V exits with status (V << 1) | 1
  -device pc-testdev                  QEMU's test device (kvm-unit-tests): ports 0xe0-0xeb,
                                      0x2000-0x2017, memory at 0xff000000
  -drive file=F,format=raw|qcow2,if=none,id=ID[,readonly=on][,cache=MODE][,locking=off]
        [,backing.file=PATH,backing.driver=raw|qcow2][,snapshot=on]
                                      cache= as QEMU: writeback (default), none (O_DIRECT),
                                      writethrough, directsync (O_DIRECT, each write durable),
                                      unsafe (flushes ignored); images are locked as QEMU
                                      locks them; a qcow2 backing file opens read-only and
                                      only with a format (the image's, or backing.driver=);
                                      snapshot=on: writes go to a throw-away qcow2 overlay
                                      in $TMPDIR (else /var/tmp), the image is only read
  -snapshot                           snapshot=on for every drive
  -device virtio-blk-device,drive=ID  virtio disk (flush, discard, write-zeroes)
  -netdev tap,id=ID,ifname=TAP|fd=FD[,script=no,downscript=no]
  -netdev user,id=ID[,hostfwd=tcp|udp:[ADDR]:HPORT-:GPORT][,ipv4=off|ipv6=off]
                                      no root: passt, with QEMU's 10.0.2.x addresses
  -netdev stream,id=ID,server=off,addr.type=unix|inet|fd,addr.path=P|addr.host=H,addr.port=N|addr.str=FD
  -netdev dgram,id=ID,local.type=unix|inet|fd,...,remote.type=unix|inet,...
  -device virtio-net-device,netdev=ID[,mac=52:54:00:12:34:56]
                                      virtio NIC on a host TAP interface
  -chardev stdio|file,id=ID[,path=P] -device virtio-serial-device -device virtconsole,chardev=ID
                                      virtio console (hvc0), output to stdio or a file
  -device virtio-rng-device[,rng=ID]  virtio entropy device, fed from getrandom(2)
                                      (-object rng-random|rng-builtin,id=ID accepted)
  -device vhost-vsock-device,guest-cid=N[,vhostfd=FD]
                                      vsock through the host's vhost_vsock module (FD: an
                                      open /dev/vhost-vsock, so minnow needs no access to it)
  -no-reboot                          a guest reset ends minnow (otherwise it reboots in
                                      place, reopening nothing)
  -qmp[-pretty] unix:PATH|tcp:HOST:PORT,server=on,wait=off | stdio
                                      a QMP monitor (QEMU 7.2's protocol; one client at a time)
  -monitor telnet:HOST:PORT|unix:PATH,server,nowait | stdio | none
                                      an HMP monitor (the human one)
  -chardev socket,id=ID,path=P|host=H,port=N,server=on,wait=off[,telnet=on]
  -mon chardev=ID,mode=control|readline[,pretty=on]
                                      a monitor on a named chardev
  -S                                  start with the vCPUs paused (a monitor's cont runs them)
  -incoming file:PATH|exec:CMD|defer  start from a snapshot a monitor's `migrate` saved
                                      (file: maps its memory copy-on-write, so clones share
                                      it); defer waits for QMP migrate-incoming. Monitors:
                                      migrate file:PATH|exec:CMD (the VM stops for the copy),
                                      info migrate, query-migrate; local only (no tcp:)
  -no-shutdown                        a guest power-off leaves the VM stopped in state
                                      shutdown, its monitors alive
  -sandbox on|off[,obsolete=..,elevateprivileges=..,spawn=..,resourcecontrol=..]
                                      seccomp filters, one per thread kind, on by default;
                                      off runs without (the sub-options change nothing here)
  -run-with user=USER|UID:GID[,chroot=DIR], -runas USER, -chroot DIR
                                      become USER and make DIR the root once every file,
                                      device and socket is open, before the guest runs
  -boot-timeline[=json:PATH]          when the VM stops, print each boot phase's host time
                                      and VM exits (or write them as JSON); a guest marks
                                      the end of its boot by writing 123 to port 0x3f0
                                      (Firecracker's convention); minnow.rom reports its
                                      start and handoff there too (only with this option)
  -name NAME|guest=NAME, -pidfile PATH
  -daemonize                          detach once the VM runs (the caller gets 0, or 1 and
                                      the reason); stdio closes, so the default COM1 is none
  -d guest_errors,unimp               what to log: the guest's mistakes (logged by default)
                                      and accesses where no device sits; rate-limited
  -D FILE                             log those to FILE instead of stderr
  -msg timestamp=on[,guest-name=on]   begin each stderr line with the UTC time (and -name)
  -no-acpi                            as -M acpi=off
  -nodefaults, -no-user-config, -display none, -nographic, -nic none, -net none,
  -vga none, -k LANG                  accepted (microvm has no default NIC, no VGA, no keymap)

exit status: 0 guest power-off (or reset with -no-reboot), ((V << 1) | 1) & 0xff
             isa-debug-exit (as QEMU),
             2 triple fault (minnow stops, where QEMU would reboot),
             128+N signal N (SIGTERM, SIGINT and SIGHUP stop the VM cleanly: disks flushed,
             guest output written out), 1 error before the guest runs,
             4 the VM failed while running (KVM internal or emulation error; even, so never
             an isa-debug-exit status).
";

/// What `minnow -device help` (or `-device ?`) prints: the devices `-device` takes, in QEMU's
/// format, so tools that look for a device there (kvm-unit-tests' runner) find it.
pub const DEVICES: &str = "\
Misc devices:
name \"isa-debug-exit\", bus ISA
name \"pc-testdev\", bus ISA
name \"vmgenid\", desc \"VM Generation ID\"

Virtio devices (virtio-mmio):
name \"vhost-vsock-device\", bus virtio-bus
name \"virtconsole\", bus virtio-serial-bus
name \"virtio-blk-device\", bus virtio-bus
name \"virtio-net-device\", bus virtio-bus
name \"virtio-rng-device\", bus virtio-bus
name \"virtio-serial-device\", bus virtio-bus
";
