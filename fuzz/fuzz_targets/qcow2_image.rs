//! A qcow2 image is a user's file, possibly made by someone else, or one a guest wrote a header
//! into: a valid image (qemu-img's, with a backing file and without) with the input's bytes
//! written over it where the input says, or the input's bytes alone; opened as minnow opens a
//! `-drive format=qcow2` (which must refuse or open, and never follow a file the user did not
//! allow), then read, written, discarded and zeroed at the offsets the input gives. Nothing may
//! panic.
//!
//! A changed image is opened read-only: written to, a crafted refcount structure sends imago's
//! cluster allocator into recursion deep enough to overflow the stack (found here; the input is
//! fuzz/known/qcow2_image-imago-allocator-recursion, and docs/fuzzing.md says more). Writes are
//! fuzzed on qemu-img's own images, here and behind virtio-blk in `virtio_mmio`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::config::{DiskFormat, Drive};
use minnow_vmm::devices::virtio::block::disk;
use std::sync::OnceLock;

/// qemu-img's image of 1 MiB with 4 KiB clusters, with a few clusters written, and a backing
/// file with its format when `backed`.
fn pristine(backed: bool) -> &'static [u8] {
    static IMAGES: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    &IMAGES.get_or_init(|| {
        let dir = std::env::temp_dir();
        let base = dir.join(format!("minnow-fuzz-base-{}.raw", std::process::id()));
        std::fs::write(&base, vec![0x5Au8; 1 << 20]).expect("the backing file");
        let make = |name: &str, backing: bool| {
            let path = dir.join(format!("minnow-fuzz-{name}-{}.qcow2", std::process::id()));
            let mut args = vec!["create".to_string(), "-q".into(), "-f".into(), "qcow2".into()];
            args.extend(["-o".into(), "cluster_size=4096".into()]);
            if backing {
                args.extend(["-b".into(), base.display().to_string(), "-F".into(), "raw".into()]);
            }
            args.extend([path.display().to_string(), "1M".into()]);
            let ok = std::process::Command::new("qemu-img")
                .args(&args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "qemu-img create (apt-get install qemu-utils)");
            let io = std::process::Command::new("qemu-io")
                .args(["-f", "qcow2", "-c", "write -P 0x11 8k 12k"])
                .arg(&path)
                .output();
            let _ = io;
            let bytes = std::fs::read(&path).expect("the image");
            let _ = std::fs::remove_file(path);
            bytes
        };
        [make("plain", false), make("backed", true)]
    })[usize::from(backed)]
}

/// `image` with each patch (a little-endian u16 offset, a length byte, then that many bytes)
/// written over it.
fn patched(image: &[u8], mut patches: &[u8]) -> Vec<u8> {
    let mut image = image.to_vec();
    while let [lo, hi, len, rest @ ..] = patches {
        let at = usize::from(u16::from_le_bytes([*lo, *hi]));
        let n = usize::from(*len % 16).min(rest.len());
        if at + n <= image.len() {
            image[at..at + n].copy_from_slice(&rest[..n]);
        }
        patches = &rest[n..];
    }
    image
}

fuzz_target!(|data: &[u8]| {
    let [count, rest @ ..] = data else {
        return;
    };
    let ops_len = (usize::from(*count % 8) * 6).min(rest.len());
    let (ops, patches) = rest.split_at(ops_len);
    let (image, writable) = match count >> 6 {
        0 => (patches.to_vec(), false),
        n => (patched(pristine(n == 2), patches), patches.len() < 3),
    };
    let dir = std::path::Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("minnow-fuzz-image-{}.qcow2", std::process::id()));
    std::fs::write(&path, &image).expect("writing the image");
    let drive = Drive {
        file: path.clone(),
        format: DiskFormat::Qcow2,
        locking: false,
        read_only: !writable,
        ..Drive::default()
    };
    if let Ok(mut d) = disk::open(&drive) {
        let size = d.size();
        for op in ops.chunks_exact(6) {
            if size == 0 {
                break;
            }
            let offset = u64::from(u32::from_le_bytes([op[1], op[2], op[3], op[4]])) % size;
            let len = (u64::from(op[5]) * 64 + 1).min(size - offset);
            let mut buf = vec![0u8; len as usize];
            let _ = match op[0] % 5 {
                0 => d.read_at(&mut buf, offset),
                1 => d.write_at(&buf, offset),
                2 => d.discard(offset, len),
                3 => d.write_zeroes(offset, len),
                _ => d.flush(),
            };
        }
        let _ = d.close();
    }
    let _ = std::fs::remove_file(path);
});
