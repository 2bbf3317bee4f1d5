#!/bin/busybox sh
# Minnow test guest: report what the kernel saw, then power off.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
# Only warnings and worse reach the console from here: an info line printed while a report line
# is half written lands inside it (CI once read "...minnow.test=X[ 2.59] tsc: Refined TSC ...").
echo 5 >/proc/sys/kernel/printk
echo "MINNOW-INIT cmdline=$($B cat /proc/cmdline)"
echo "MINNOW-INIT mem_total_kb=$($B awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
echo "MINNOW-INIT cpus=$($B grep -c '^processor' /proc/cpuinfo)"
# "xen" when this kernel is Xen's dom0 (the third-party Xen tests boot this /init there).
echo "MINNOW-INIT hypervisor=$($B cat /sys/hypervisor/type 2>/dev/null || echo none)"
# Debian's virtio drivers are modules. virtio_mmio takes the devices named on the command line
# (auto-kernel-cmdline, without ACPI) as insmod arguments; with ACPI it finds them in the DSDT.
for m in virtio_ring virtio; do $B insmod /lib/modules/$m.ko 2>/dev/null; done
$B insmod /lib/modules/virtio_mmio.ko $($B tr ' ' '\n' </proc/cmdline | $B sed -n 's/^virtio_mmio\.//p') 2>/dev/null
$B insmod /lib/modules/virtio-rng.ko 2>/dev/null
$B insmod /lib/modules/virtio_blk.ko 2>/dev/null
for m in failover net_failover virtio_net virtio_console vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport button evdev; do
    $B insmod /lib/modules/$m.ko 2>/dev/null
done
# minnow.hvc: a line on the virtio console, which minnow writes to its chardev.
# minnow.hvcin: the host types a line into the console. hvc0 is held open from here, as a getty
# would hold it: a tty drops unread input when its last user closes it, as the echo below does.
$B grep -q minnow.hvcin /proc/cmdline && exec 3</dev/hvc0
$B grep -q minnow.hvc /proc/cmdline && echo MINNOW-HVC0-SAYS-HELLO >/dev/hvc0
if $B grep -q minnow.hvcin /proc/cmdline; then
    echo "MINNOW-INIT hvc0_input=$($B timeout 20 $B head -n 1 <&3 | $B tr -d '\r')"
fi
hwrng=$($B cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
echo "MINNOW-INIT hwrng=${hwrng:-none} bytes=$($B dd if=/dev/hwrng bs=16 count=1 2>/dev/null | $B wc -c)"
# minnow.net: bring eth0 up and ping the host's end of the TAP.
if $B grep -q minnow.net /proc/cmdline; then
    $B ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up 2>/dev/null
    if $B ping -c 1 -W 5 10.0.2.1 >/dev/null 2>&1; then net=ok; else net=fail; fi
    echo "MINNOW-INIT net_ping=$net"
fi
# lease: an address for eth0 by DHCP (udhcpc runs /dhcp.sh with the lease); sets ip and router.
lease() {
    printf '#!/bin/busybox sh\n[ "$1" = bound ] || exit 0\n/bin/busybox ifconfig $interface $ip netmask $subnet up\n/bin/busybox route add default gw $router dev $interface\necho "$ip $router" >/lease\n' >/dhcp.sh
    $B chmod 755 /dhcp.sh
    $B ifconfig eth0 up 2>/dev/null
    $B timeout 30 $B udhcpc -i eth0 -f -q -n -t 5 -T 2 -s /dhcp.sh >/dev/null 2>&1
    read -r ip router </lease 2>/dev/null
}
# minnow.dhcp: a DHCP lease, then a page from the gateway (the host, through passt) on port 8080.
if $B grep -q minnow.dhcp /proc/cmdline; then
    lease
    echo "MINNOW-INIT dhcp=${ip:-none} gateway=${router:-none}"
    echo "MINNOW-INIT http=$($B timeout 20 $B wget -q -O - "http://${router:-10.0.2.2}:8080/minnow.txt" 2>/dev/null | $B head -n 1)"
fi
# minnow.netbench=tap|dhcp: time fetching big.bin (8 MiB) from the host's HTTP server (cargo xtask bench
# net), over a TAP (the host is 10.0.2.1) or through passt (the gateway).
netbench=$($B tr ' ' '\n' </proc/cmdline | $B sed -n 's/^minnow\.netbench=//p')
if [ -n "$netbench" ]; then
    if [ "$netbench" = tap ]; then
        $B ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up
        server=10.0.2.1
    else
        lease
        server=${router:-10.0.2.2}
    fi
    t0=$($B cut -d' ' -f1 /proc/uptime)
    bytes=$($B timeout 120 $B wget -q -O - "http://$server:8080/big.bin" 2>/dev/null | $B wc -c)
    t1=$($B cut -d' ' -f1 /proc/uptime)
    echo "MINNOW-NETBENCH t0=$t0 t1=$t1 bytes=$bytes"
fi
# minnow.vsock: echo one connection from the host on vsock port 1234 (the host sends first).
if $B grep -q minnow.vsock /proc/cmdline; then
    echo "MINNOW-INIT vsock=$($B timeout 40 /bin/vsock-echo listen 1234 2>&1 | $B tail -n 1)"
fi
# minnow.blk: read /dev/vda at two offsets, then write a line at sector 100 and flush it.
if $B grep -q minnow.blk /proc/cmdline; then
    for skip in 0 3200; do
        echo "MINNOW-INIT blk_read@$skip=$($B dd if=/dev/vda bs=16 skip=$skip count=1 2>/dev/null | $B od -An -tx1 | $B tr -d ' \n')"
    done
    echo MINNOW-GUEST-WROTE-THIS | $B dd of=/dev/vda bs=512 seek=100 conv=fsync 2>/dev/null
    echo "MINNOW-INIT blk_write=$?"
    # minnow.blkkill: the host kills the VMM now; nothing after the flush may be needed.
    $B grep -q minnow.blkkill /proc/cmdline && $B sleep 3600
fi
# minnow.fswriter: mount the ext4 file system on /dev/vda and write files into it until the host
# stops the VMM; each one is synced, then reported with its checksum (the host checks that every
# reported file survived).
if $B grep -q minnow.fswriter /proc/cmdline; then
    $B mkdir -p /mnt
    $B mount -t ext4 /dev/vda /mnt || echo "MINNOW-INIT fswriter=no-mount"
    i=0
    while :; do
        $B dd if=/dev/urandom of=/mnt/f$i bs=64k count=16 2>/dev/null
        $B sync
        echo "MINNOW-SYNCED f$i $($B md5sum </mnt/f$i | $B cut -d' ' -f1)"
        i=$((i + 1))
    done
fi
# minnow.diskbench: time dd with O_DIRECT on /dev/vda (cargo xtask bench disk reads the stamps):
# 64 MiB written in 1 MiB blocks and flushed, read back, then 1024 4 KiB reads and writes.
if $B grep -q minnow.diskbench /proc/cmdline; then
    t() { $B cut -d' ' -f1 /proc/uptime; }
    t0=$(t); $B dd if=/dev/zero of=/dev/vda bs=1M count=64 oflag=direct conv=fsync 2>/dev/null
    t1=$(t); $B dd if=/dev/vda of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null
    t2=$(t); $B dd if=/dev/vda of=/dev/null bs=4k count=1024 iflag=direct 2>/dev/null
    t3=$(t); $B dd if=/dev/zero of=/dev/vda bs=4k count=1024 oflag=direct 2>/dev/null
    t4=$(t); echo "MINNOW-DISKBENCH t0=$t0 t1=$t1 t2=$t2 t3=$t3 t4=$t4"
fi
# rtc=ok when the RTC driver found the clock; epoch is the system time it set at boot.
if $B hwclock -r -u -f /dev/rtc0 >/dev/null 2>&1; then rtc=ok; else rtc=none; fi
echo "MINNOW-INIT rtc=$rtc epoch=$($B date +%s)"
echo "MINNOW-INIT uptime=$($B cut -d' ' -f1 /proc/uptime)"
echo "MINNOW-INIT done"
# The end of the boot, for minnow's -boot-timeline: 123 to port 0x3f0 (Firecracker's convention).
/bin/boot-done 2>/dev/null
# minnow.monitor: a shell on the console for the host (each line it types is run) until the ACPI
# power button is pressed (the host's system_powerdown): then power off, as a distribution's
# acpid would.
if $B grep -q minnow.monitor /proc/cmdline; then
    for e in /sys/class/input/event*; do
        $B grep -q "Power Button" $e/device/name 2>/dev/null && button=/dev/input/${e##*/}
    done
    echo "MINNOW-INIT powerbutton=${button:-none}"
    if [ -n "$button" ]; then
        ($B dd if=$button bs=24 count=1 of=/dev/null 2>/dev/null
         echo "MINNOW-INIT powerbutton=pressed"
         $B poweroff -f) &
    fi
    $B stty -echo 2>/dev/null
    echo "MINNOW-INIT shell=ready"
    while read -r line; do eval "$line"; done
fi
# Without ACPI there is no power-off: a reset ends a VMM run with -no-reboot. minnow.reboot asks
# for an immediate reset anyway (Xen's dom0 on microvm: Xen drives only I/O-port ACPI sleep
# registers, and microvm's are MMIO).
if $B grep -q minnow.reboot /proc/cmdline; then
    echo "MINNOW-INIT end=reset"
    echo b >/proc/sysrq-trigger
elif [ -d /sys/firmware/acpi/tables ]; then
    echo "MINNOW-INIT end=poweroff"
    $B poweroff -f
else
    echo "MINNOW-INIT end=reboot"
    $B reboot -f
fi
