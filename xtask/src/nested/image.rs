//! The L2 initramfs: busybox, the KVM modules, minnow, its ROM, qboot.rom, the L3 kernel and
//! initramfs, the seed workload's kernel and disk,
//! the payloads and their initrd, the generated `/init`, and for comparisons Debian's QEMU with
//! the libraries `ldd` names and the ROMs it loads.
use super::cases::paths;
use super::Inputs;
use crate::guest::cpio::Newc;
use anyhow::{Context, Result};
use minnow_tests::payload_check::{initrd_bytes, Payload};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

/// QEMU's option ROMs for -kernel, which minnow serves to SeaBIOS (x-option-roms) from the same
/// place QEMU keeps them.
const OPTION_ROMS: &[&str] = &[
    "/usr/share/qemu/linuxboot_dma.bin",
    "/usr/share/qemu/pvh.bin",
    "/usr/share/qemu/multiboot_dma.bin",
];
/// The other ROMs QEMU's microvm loads by default (qboot as its BIOS).
const QEMU_DATA: &[&str] = &[
    "/usr/share/qemu/qboot.rom",
    "/usr/share/qemu/bios-microvm.bin",
    "/usr/share/qemu/kvmvapic.bin",
];

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// An archive that adds each file's parent directories before it, once.
struct Image {
    cpio: Newc,
    dirs: BTreeSet<String>,
    /// Host files already added (QEMU and qemu-img share libraries).
    host_files: BTreeSet<String>,
}

impl Image {
    fn new() -> Self {
        Image {
            cpio: Newc::new(),
            dirs: BTreeSet::new(),
            host_files: BTreeSet::new(),
        }
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return Ok(());
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.dirs.insert(path.to_string());
        self.cpio.dir(path, 0o755)
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.cpio.file(path, mode, data)
    }

    /// A host file at the same path inside the image.
    fn host_file(&mut self, path: &str, mode: u32) -> Result<()> {
        if !self.host_files.insert(path.to_string()) {
            return Ok(());
        }
        self.file(path, mode, &read(Path::new(path))?)
    }
}

pub fn build(inputs: &Inputs, init: &str) -> Result<Vec<u8>> {
    let mut img = Image::new();
    for d in ["dev", "proc", "sys", "tmp"] {
        img.dir(d)?;
    }
    img.cpio.char_dev("dev/console", 0o600, 5, 1)?;
    img.file("bin/busybox", 0o755, &read(Path::new("/bin/busybox"))?)?;
    img.file(paths::MINNOW, 0o755, &read(&inputs.minnow)?)?;
    img.file(
        paths::VSOCK_ECHO,
        0o755,
        &read(&inputs.guest_tools.join("vsock-echo"))?,
    )?;
    img.file(
        paths::QMP_CALL,
        0o755,
        &read(&inputs.guest_tools.join("qmp-call"))?,
    )?;
    img.file(paths::TAP_ADD, 0o755, &read(&inputs.guest_tools.join("tap-add"))?)?;
    img.file(
        paths::SNAPSHOT_BENCH,
        0o755,
        &read(&inputs.guest_tools.join("snapshot-bench"))?,
    )?;
    img.file(paths::MINNOW_ROM, 0o644, &read(&inputs.rom)?)?;
    img.file(paths::SEED_KERNEL, 0o644, &read(&inputs.seed_kernel)?)?;
    img.file(paths::SEED_DISK, 0o644, &read(&inputs.seed_disk)?)?;
    for m in &inputs.modules {
        let name = m.file_name().context("module path")?.to_string_lossy();
        img.file(&format!("lib/modules/{name}"), 0o644, &read(m)?)?;
    }
    let qboot = read(Path::new(minnow_tests::QBOOT_ROM)).context("qboot.rom comes with qemu-system-data")?;
    img.file(paths::QBOOT_ROM, 0o644, &qboot)?;
    let seabios = read(Path::new(minnow_tests::SEABIOS_MICROVM_ROM)).context("SeaBIOS comes with seabios")?;
    img.file(paths::SEABIOS_ROM, 0o644, &seabios)?;
    for rom in OPTION_ROMS {
        img.host_file(rom, 0o644)
            .context("QEMU's option ROMs come with qemu-system-data")?;
    }
    for (dest, src) in [
        (paths::VMLINUZ, "vmlinuz"),
        (paths::VMLINUX, "vmlinux"),
        (paths::INITRAMFS, "initramfs.cpio"),
    ] {
        img.file(dest, 0o644, &read(&inputs.guest_dir.join(src))?)?;
    }
    for p in Payload::ALL {
        let dest = format!("{}/{}", paths::PAYLOAD_DIR, p.file());
        img.file(&dest, 0o755, &read(&inputs.payload_dir.join(p.file()))?)?;
    }
    for name in [
        "xen-4.17-amd64",
        "dom0-vmlinuz",
        "memtest86+x64.bin",
        "memtest86+ia32.bin",
    ] {
        let dest = format!("{}/{name}", paths::THIRD_PARTY);
        img.file(&dest, 0o644, &read(&inputs.third_party.join(name))?)?;
    }
    img.file(paths::PAYLOAD_INITRD, 0o644, &initrd_bytes())?;
    img.file(paths::PAYLOAD_QCOW2, 0o644, &qcow2_of(&initrd_bytes())?)?;
    // qemu-img, to read qcow2 images back after a guest wrote them; e2fsck and debugfs, to
    // check and read the file systems guests wrote; passt, for networking without root.
    img.file(paths::EXT4_QCOW2, 0o644, &empty_ext4_qcow2()?)?;
    for (tool, package) in [
        (paths::QEMU_IMG, "qemu-utils"),
        (paths::E2FSCK, "e2fsprogs"),
        (paths::DEBUGFS, "e2fsprogs"),
        (paths::PASST, "passt"),
        (paths::PASST_AVX2, "passt"),
    ] {
        img.host_file(tool, 0o755)
            .with_context(|| format!("{tool} comes with {package}"))?;
        for lib in shared_libraries(tool)? {
            img.host_file(&lib, 0o755)?;
        }
    }
    if inputs.with_qemu {
        add_qemu(&mut img)?;
    }
    img.file("init", 0o755, init.as_bytes())?;
    Ok(img.cpio.finish())
}

/// `bytes` as a qcow2 image, made by qemu-img.
fn qcow2_of(bytes: &[u8]) -> Result<Vec<u8>> {
    let dir = crate::workspace_root().join("target/nested");
    std::fs::create_dir_all(&dir)?;
    let (raw, qcow2) = (dir.join("disk.raw"), dir.join("disk.qcow2"));
    std::fs::write(&raw, bytes)?;
    to_qcow2(&raw, &qcow2)?;
    read(&qcow2)
}

/// Converts the raw image `raw` to the qcow2 image `qcow2` with qemu-img.
fn to_qcow2(raw: &Path, qcow2: &Path) -> Result<()> {
    let status = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(qcow2)
        .status()
        .context("running qemu-img (apt-get install qemu-utils)")?;
    if !status.success() {
        anyhow::bail!("qemu-img convert failed ({status})");
    }
    Ok(())
}

/// An empty 64 MiB ext4 file system as a qcow2 image, made with mkfs.ext4 and qemu-img.
fn empty_ext4_qcow2() -> Result<Vec<u8>> {
    let dir = crate::workspace_root().join("target/nested");
    std::fs::create_dir_all(&dir)?;
    let (raw, qcow2) = (dir.join("ext4.raw"), dir.join("ext4.qcow2"));
    let _ = std::fs::remove_file(&raw);
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "fswriter"])
        .arg(&raw)
        .arg("64M")
        .status()
        .context("running mkfs.ext4 (apt-get install e2fsprogs)")?;
    if !status.success() {
        anyhow::bail!("mkfs.ext4 failed ({status})");
    }
    to_qcow2(&raw, &qcow2)?;
    let _ = std::fs::remove_file(&raw);
    read(&qcow2)
}

/// QEMU, its shared libraries (with the dynamic loader) and its ROMs.
fn add_qemu(img: &mut Image) -> Result<()> {
    img.host_file(paths::QEMU, 0o755)
        .context("QEMU comes with qemu-system-x86")?;
    for lib in shared_libraries(paths::QEMU)? {
        img.host_file(&lib, 0o755)?;
    }
    for rom in QEMU_DATA {
        img.host_file(rom, 0o644)?;
    }
    Ok(())
}

/// The absolute paths `ldd` lists for a dynamic executable.
fn shared_libraries(exe: &str) -> Result<Vec<String>> {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .context("running ldd (libc-bin)")?;
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_ldd(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_library_and_loader_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            ["/lib/x86_64-linux-gnu/libz.so.1", "/lib64/ld-linux-x86-64.so.2"]
        );
    }

    #[test]
    fn parents_come_before_their_files_once() {
        let mut img = Image::new();
        img.file("a/b/c", 0o644, b"x").unwrap();
        img.file("a/b/d", 0o644, b"y").unwrap();
        assert_eq!(img.dirs.iter().collect::<Vec<_>>(), ["a", "a/b"]);
    }
}
