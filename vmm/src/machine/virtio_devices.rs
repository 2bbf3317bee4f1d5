//! The machine's virtio-mmio devices, made from the command line's -device, -drive, -netdev and
//! -chardev options and put on their transports.
use super::{io, irq_line, MachineError};
use crate::bus::Bus;
use crate::config::{Chardev, Config, DiskFormat, Drive, NetDev, VirtioDeviceConfig};
use crate::devices::virtio::block::{self, Block};
use crate::devices::virtio::console::Console;
use crate::devices::virtio::net::{tap::Tap, Net};
use crate::devices::virtio::{self, mmio::MmioTransport, placement, rng::Rng, vsock::Vsock, VirtioDevice};
use kvm_ioctls::VmFd;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use vm_memory::GuestMemoryMmap;

/// The virtio devices, each on its transport (see `devices/virtio/placement.rs`). Returns the
/// transports whose device needs an I/O thread.
pub(super) fn attach_virtio(
    mmio: &mut Bus,
    vm: &VmFd,
    c: &Config,
    ram: &GuestMemoryMmap,
) -> Result<Vec<Arc<Mutex<MmioTransport>>>, MachineError> {
    let transports = placement::transports(c).unwrap_or_default();
    let mut with_io = Vec::new();
    for (device, t) in c.virtio.iter().zip(transports) {
        let device: Box<dyn VirtioDevice> = match device {
            VirtioDeviceConfig::Rng => Box::new(Rng),
            VirtioDeviceConfig::Block { drive } => block_device(c.drives.get(*drive))?,
            VirtioDeviceConfig::Net { netdev, mac } => net_device(c.netdevs.get(*netdev), *mac)?,
            VirtioDeviceConfig::Console { chardev } => console_device(c.chardevs.get(*chardev))?,
            VirtioDeviceConfig::Vsock { cid, vhostfd } => Box::new(Vsock::new(*cid, *vhostfd, ram)?),
        };
        let transport = MmioTransport::new(device, ram.clone(), irq_line(vm, t.gsi)?)
            .map_err(io("creating a virtio transport's eventfd"))?;
        let has_io = transport.has_io();
        let transport = Arc::new(Mutex::new(transport));
        mmio.insert(t.base, virtio::mmio::MMIO_LEN, transport.clone())?;
        if has_io {
            with_io.push(transport);
        }
    }
    Ok(with_io)
}

/// A virtio console writing to the chardev `chardev` names.
fn console_device(chardev: Option<&Chardev>) -> Result<Box<dyn VirtioDevice>, MachineError> {
    let ch = chardev.ok_or_else(|| MachineError::Unsupported("a virtconsole without a -chardev".into()))?;
    let out: Box<dyn Write + Send> = match &ch.path {
        None => Box::new(std::io::stdout()),
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io(format!("opening the console file {}", path.display())))?,
        ),
    };
    // A stdio console also takes the guest's input from stdin (a duplicate, so the device's
    // reads cannot close the process's own fd 0).
    let input = match &ch.path {
        None => Some(std::fs::File::from(
            std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(io("duplicating stdin for the virtio console"))?,
        )),
        Some(_) => None,
    };
    Ok(Box::new(Console::new(out, input)))
}

/// A virtio-net device on the TAP `netdev` names.
fn net_device(netdev: Option<&NetDev>, mac: [u8; 6]) -> Result<Box<dyn VirtioDevice>, MachineError> {
    let n =
        netdev.ok_or_else(|| MachineError::Unsupported("a virtio-net device without a -netdev".into()))?;
    if let Some(fd) = n.fd {
        let (tap, name) = Tap::adopt(fd).map_err(io(format!(
            "-netdev {},fd={fd} (it must be an open TAP, IFF_TAP | IFF_NO_PI)",
            n.id
        )))?;
        eprintln!(
            "minnow: -netdev {}: using the TAP interface {name} (fd {fd})",
            n.id
        );
        return Ok(Box::new(Net::new(Box::new(tap), mac)));
    }
    let name = if n.ifname.is_empty() {
        "tapN"
    } else {
        n.ifname.as_str()
    };
    let (tap, opened) = Tap::open(&n.ifname).map_err(io(format!(
        "opening the TAP interface {name} (minnow needs CAP_NET_ADMIN, or an existing TAP it may use: \
         `ip tuntap add {name} mode tap user $USER`, then ifname={name})"
    )))?;
    if n.ifname.is_empty() {
        eprintln!("minnow: -netdev {}: using the TAP interface {opened}", n.id);
    }
    Ok(Box::new(Net::new(Box::new(tap), mac)))
}

/// A virtio-blk device over `drive`'s image.
fn block_device(drive: Option<&Drive>) -> Result<Box<dyn VirtioDevice>, MachineError> {
    let drive =
        drive.ok_or_else(|| MachineError::Unsupported("a virtio-blk device without a -drive".into()))?;
    let disk = block::disk::open(drive).map_err(io(format!(
        "opening the drive {} ({}, {}; check the path, its permissions and its format)",
        drive.file.display(),
        if drive.format == DiskFormat::Qcow2 {
            "qcow2"
        } else {
            "raw"
        },
        if drive.read_only {
            "read-only"
        } else {
            "read-write"
        }
    )))?;
    Ok(Box::new(Block::new(disk, drive.read_only, &drive.id)))
}
