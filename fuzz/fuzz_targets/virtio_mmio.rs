//! A guest's whole view of a virtio-mmio transport and the device behind it, as its vCPU sees
//! them: register accesses of any width, queue set-up anywhere in its memory (which the input
//! fills), notifications, and the host side's events (a frame arriving, console input). The
//! first byte picks the device: entropy, console, net, blk on a raw file, blk on a qcow2 image,
//! or vhost-vsock over a stand-in host that checks what activation hands it. Nothing may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::bus::BusDevice;
use minnow_vmm::config::{DiskFormat, Drive};
use minnow_vmm::devices::virtio::block::{disk, Block};
use minnow_vmm::devices::virtio::console::{Console, ConsoleInput};
use minnow_vmm::devices::virtio::mmio::MmioTransport;
use minnow_vmm::devices::virtio::net::dgram::DgramFrames;
use minnow_vmm::devices::virtio::net::{Net, DEFAULT_MAC};
use minnow_vmm::devices::virtio::rng::Rng;
use minnow_vmm::devices::virtio::vsock::{Vsock, VsockError, VsockHost};
use minnow_vmm::devices::virtio::VirtioDevice;
use minnow_vmm::irq::{LevelIrq, RecordedLevels};
use minnow_vmm::runtime::guest_log::GuestLog;
use minnow_vmm::runtime::output::GuestOutput;
use minnow_vmm::runtime::stdin::InputSink;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use vhost::VringConfigData;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const MEM_LEN: u64 = 0x1_0000;

/// Stands in for the host's vhost-vsock: every ring it is handed must lie in guest memory.
struct CheckingHost;

impl VsockHost for CheckingHost {
    fn start(
        &mut self,
        _features: u64,
        mem: &GuestMemoryMmap,
        rings: &[(VringConfigData, u16)],
        _kicks: &[EventFd],
        _call: &EventFd,
    ) -> Result<(), VsockError> {
        for (r, _) in rings {
            let n = u64::from(r.queue_size);
            for (addr, len) in [
                (r.desc_table_addr, 16 * n),
                (r.avail_ring_addr, 6 + 2 * n),
                (r.used_ring_addr, 6 + 8 * n),
            ] {
                assert!(
                    mem.get_slice(GuestAddress(addr), len as usize).is_ok(),
                    "vhost was handed a ring at {addr:#x} outside guest memory"
                );
            }
        }
        Ok(())
    }
    fn stop(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn ring_base(&mut self, _index: usize) -> Result<u16, VsockError> {
        Ok(0)
    }
}

/// A fresh image file in tmpfs for each run, so runs do not depend on each other.
fn image(bytes: &[u8], suffix: &str) -> PathBuf {
    let dir = std::path::Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("minnow-fuzz-{}.{suffix}", std::process::id()));
    std::fs::write(&path, bytes).expect("writing the fuzz image");
    path
}

/// A small empty qcow2 image, made once by qemu-img.
fn pristine_qcow2() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("minnow-fuzz-pristine-{}.qcow2", std::process::id()));
        let ok = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096"])
            .arg(&path)
            .arg("1M")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "qemu-img create (apt-get install qemu-utils)");
        let bytes = std::fs::read(&path).expect("the pristine image");
        let _ = std::fs::remove_file(path);
        bytes
    })
}

fn block(format: DiskFormat) -> Box<dyn VirtioDevice> {
    let (bytes, suffix) = match format {
        DiskFormat::Raw => (vec![0u8; 64 * 1024], "raw"),
        DiskFormat::Qcow2 => (pristine_qcow2().to_vec(), "qcow2"),
    };
    let drive = Drive {
        file: image(&bytes, suffix),
        format,
        locking: false,
        ..Drive::default()
    };
    let disk = disk::open(&drive).expect("the fuzz image opens");
    Box::new(Block::new(disk, false, "fuzz"))
}

/// The device the first byte picks, with its host-side handles.
fn device(pick: u8) -> (Box<dyn VirtioDevice>, Option<ConsoleInput>, Option<UnixDatagram>) {
    let log = GuestLog::new(Box::new(std::io::sink()), Default::default());
    match pick % 6 {
        0 => (Box::new(Rng), None, None),
        1 => {
            let input = ConsoleInput::new().expect("input queue");
            let out = GuestOutput::null("console").expect("output");
            (
                Box::new(Console::new(out, Some(input.clone()))),
                Some(input),
                None,
            )
        }
        2 => {
            let (ours, host) = UnixDatagram::pair().expect("socketpair");
            ours.set_nonblocking(true).expect("non-blocking");
            host.set_nonblocking(true).expect("non-blocking");
            (
                Box::new(Net::new(
                    Box::new(DgramFrames::connected(ours).expect("a datagram link")),
                    DEFAULT_MAC,
                    log,
                )),
                None,
                Some(host),
            )
        }
        3 => (block(DiskFormat::Raw), None, None),
        4 => (block(DiskFormat::Qcow2), None, None),
        _ => (
            Box::new(Vsock::with_host(3, Box::new(CheckingHost)).expect("eventfds")),
            None,
            None,
        ),
    }
}

/// The registers a driver writes, and a few it does not.
const REGS: [u64; 20] = [
    0x000, 0x004, 0x008, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044, 0x050, 0x060, 0x064, 0x070,
    0x080, 0x090, 0x0A0, 0x0FC, 0x100,
];

/// The Linux driver's set-up of queue `q` at addresses the input chose, up to DRIVER_OK.
fn set_up(t: &mut MmioTransport, q: u32, size: u32, rings: [u32; 3]) {
    let w = |t: &mut MmioTransport, reg: u64, v: u32| t.write(reg, &v.to_le_bytes());
    w(t, 0x070, 1 | 2);
    w(t, 0x024, 1);
    w(t, 0x020, 1);
    w(t, 0x070, 1 | 2 | 8);
    w(t, 0x030, q);
    w(t, 0x038, size);
    w(t, 0x080, rings[0]);
    w(t, 0x090, rings[1]);
    w(t, 0x0A0, rings[2]);
    w(t, 0x044, 1);
    w(t, 0x070, 1 | 2 | 8 | 4);
}

fuzz_target!(|data: &[u8]| {
    let [pick, ops_count, rest @ ..] = data else {
        return;
    };
    let ops_len = (usize::from(*ops_count) * 8).min(rest.len());
    let (ops, fill) = rest.split_at(ops_len);
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_LEN as usize)]).unwrap();
    let fill: Vec<u8> = fill.iter().copied().cycle().take(MEM_LEN as usize).collect();
    if !fill.is_empty() {
        mem.write_slice(&fill, GuestAddress(0)).unwrap();
    }
    let (device, mut input, host) = device(*pick);
    let irq = LevelIrq::new(16, Arc::new(RecordedLevels::default()));
    let log = GuestLog::new(Box::new(std::io::sink()), Default::default());
    let mut t = MmioTransport::new(device, mem, irq, log).expect("transport");
    for op in ops.chunks_exact(8) {
        let value = u32::from_le_bytes([op[4], op[5], op[6], op[7]]);
        let reg = REGS[usize::from(op[1]) % REGS.len()] + u64::from(op[2] & 0x3);
        let width = [1usize, 2, 4, 8][usize::from(op[2] >> 6)];
        match op[0] % 8 {
            0 => t.read(reg, &mut [0u8; 8][..width]),
            1 | 2 => t.write(reg, &value.to_le_bytes().repeat(2)[..width]),
            3 => t.write(0x050, &u32::from(op[1] % 4).to_le_bytes()),
            4 => {
                let at = |b: u8| u32::from(b) * 256;
                set_up(
                    &mut t,
                    u32::from(op[1] % 3),
                    1 << (op[2] % 9),
                    [at(op[3]), at(op[4]), at(op[5])],
                );
            }
            5 => t.handle_io(),
            6 => {
                if let Some(i) = input.as_mut() {
                    i.offer(&op[1..]);
                }
                if let Some(h) = &host {
                    let _ = h.send(&op.repeat(usize::from(op[1] % 16) + 1));
                }
            }
            _ => t.write(0x100 + u64::from(op[1]), &op[4..8]),
        }
    }
    let _ = t.flush();
});
