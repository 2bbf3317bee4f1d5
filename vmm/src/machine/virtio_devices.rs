//! The machine's virtio-mmio devices, made from the command line's -device, -drive, -netdev and
//! -chardev options and put on their transports.
use super::{io, open_output, MachineError};
use crate::bus::Bus;
use crate::config::{Chardev, ChardevBackend, Config, Drive, NetDev, Serial, VirtioDeviceConfig};
use crate::devices::virtio::block::{self, Block};
use crate::devices::virtio::console::{Console, ConsoleInput};
use crate::devices::virtio::net::Net;
use crate::devices::virtio::{self, mmio::MmioTransport, placement, rng::Rng, vsock::Vsock, VirtioDevice};
use crate::irq::LevelIrq;
use crate::runtime::guest_log::GuestLog;
use crate::runtime::output::GuestOutput;
use crate::vstate::vm::KvmIrqLines;
use kvm_ioctls::VmFd;
use std::sync::{Arc, Mutex};
use vm_memory::GuestMemoryMmap;

/// The machine's virtio transports.
pub(super) struct VirtioDevices {
    pub all: Vec<Arc<Mutex<MmioTransport>>>,
    /// Those whose device has a host fd for the event loop.
    pub with_io: Vec<Arc<Mutex<MmioTransport>>>,
    /// The input of the virtio console on stdio, if there is one.
    pub console_input: Option<ConsoleInput>,
}

/// The virtio devices, each on its transport (see `devices/virtio/placement.rs`), their
/// interrupts level-triggered lines through KVM. Consoles' outputs join `outputs`.
pub(super) fn attach_virtio(
    mmio: &mut Bus,
    vm: &Arc<VmFd>,
    c: &Config,
    ram: &GuestMemoryMmap,
    log: &GuestLog,
    outputs: &mut Vec<GuestOutput>,
) -> Result<VirtioDevices, MachineError> {
    let transports = placement::transports(c).unwrap_or_default();
    let lines = Arc::new(KvmIrqLines(vm.clone()));
    let mut made = VirtioDevices {
        all: Vec::new(),
        with_io: Vec::new(),
        console_input: None,
    };
    for (device, t) in c.virtio.iter().zip(transports) {
        let device: Box<dyn VirtioDevice> = match device {
            VirtioDeviceConfig::Rng => Box::new(Rng),
            VirtioDeviceConfig::Block { drive } => block_device(c.drives.get(*drive))?,
            VirtioDeviceConfig::Net { netdev, mac } => net_device(c.netdevs.get(*netdev), *mac, log)?,
            VirtioDeviceConfig::Console { chardev } => {
                let (console, input) = console_device(c.chardevs.get(*chardev), outputs)?;
                made.console_input = made.console_input.or(input);
                console
            }
            VirtioDeviceConfig::Vsock { cid, vhostfd } => Box::new(Vsock::new(*cid, *vhostfd, ram)?),
        };
        let irq = LevelIrq::new(t.gsi, lines.clone());
        let transport = MmioTransport::new(device, ram.clone(), irq, log.clone())
            .map_err(io("creating a virtio transport's eventfd"))?;
        let has_io = transport.has_io();
        let transport = Arc::new(Mutex::new(transport));
        mmio.insert(t.base, virtio::mmio::MMIO_LEN, transport.clone())?;
        if has_io {
            made.with_io.push(transport.clone());
        }
        made.all.push(transport);
    }
    Ok(made)
}

/// A virtio console writing to the chardev `chardev` names, and its input when the chardev is
/// stdio.
fn console_device(
    chardev: Option<&Chardev>,
    outputs: &mut Vec<GuestOutput>,
) -> Result<(Box<dyn VirtioDevice>, Option<ConsoleInput>), MachineError> {
    let ch = chardev.ok_or_else(|| MachineError::Unsupported("a virtconsole without a -chardev".into()))?;
    let name = format!("virtio console {}", ch.id);
    let (output, input) = match &ch.backend {
        ChardevBackend::Stdio => (
            open_output(&name, &Serial::Stdio)?,
            Some(ConsoleInput::new().map_err(io("creating the console's input queue"))?),
        ),
        ChardevBackend::File(path) => (open_output(&name, &Serial::File(path.clone()))?, None),
        ChardevBackend::Socket(_) => {
            return Err(MachineError::Unsupported(format!(
                "-device virtconsole,chardev={}: a virtio console writes to a stdio or file chardev, not a socket",
                ch.id
            )))
        }
    };
    outputs.push(output.clone());
    Ok((Box::new(Console::new(output, input.clone())), input))
}

/// A virtio-net device on what `netdev` names.
fn net_device(
    netdev: Option<&NetDev>,
    mac: [u8; 6],
    log: &GuestLog,
) -> Result<Box<dyn VirtioDevice>, MachineError> {
    let n =
        netdev.ok_or_else(|| MachineError::Unsupported("a virtio-net device without a -netdev".into()))?;
    Ok(Box::new(Net::new(
        super::net_backends::open(n)?,
        mac,
        log.clone(),
    )))
}

/// A virtio-blk device over `drive`'s image.
fn block_device(drive: Option<&Drive>) -> Result<Box<dyn VirtioDevice>, MachineError> {
    let drive =
        drive.ok_or_else(|| MachineError::Unsupported("a virtio-blk device without a -drive".into()))?;
    let disk = block::disk::open(drive).map_err(|source| MachineError::Disk {
        id: drive.id.clone(),
        source,
    })?;
    Ok(Box::new(Block::new(disk, drive.read_only, &drive.id)))
}
