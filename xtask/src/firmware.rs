//! `cargo xtask firmware`: build the ROM for x86_64-unknown-none and flatten it into a 64 KiB image.
use anyhow::{bail, Context, Result};
use object::{Object, ObjectSegment};
use std::path::PathBuf;
use std::process::Command;

/// The ROM is linked at its low alias; see firmware/firmware.ld.
const ROM_LINK_BASE: u64 = 0xF_0000;
const ROM_SIZE: u64 = 0x1_0000;

/// Builds the ROM and returns the path of the flat image.
pub fn build() -> Result<PathBuf> {
    let root = crate::workspace_root();
    eprintln!("[firmware] cargo build --profile rom --target x86_64-unknown-none");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--package",
            "minnow-firmware",
            "--bin",
            "minnow-firmware",
        ])
        .args(["--profile", "rom", "--target", "x86_64-unknown-none"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!(
            "building the firmware failed (is the target installed? rustup target add x86_64-unknown-none)"
        );
    }
    let elf_path = root.join("target/x86_64-unknown-none/rom/minnow-firmware");
    let elf = std::fs::read(&elf_path).with_context(|| format!("reading {}", elf_path.display()))?;
    let (image, used) = flatten(&elf)?;
    let out_dir = root.join("target/firmware");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("minnow.rom");
    std::fs::write(&out, &image).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "[firmware] {}: {} bytes ({} used by code, data and page tables, {} free)",
        out.display(),
        image.len(),
        used,
        image.len() as u64 - used
    );
    Ok(out)
}

/// Copies the ELF's loadable segments that fall in the ROM window into a flat image.
/// Returns the image and how many of its bytes segments occupy.
fn flatten(elf: &[u8]) -> Result<(Vec<u8>, u64)> {
    let file = object::File::parse(elf).context("parsing the firmware ELF")?;
    let mut image = vec![0xFFu8; ROM_SIZE as usize];
    let mut used = 0;
    for seg in file.segments() {
        let (addr, data) = (seg.address(), seg.data().context("reading a segment")?);
        if data.is_empty() {
            continue; // .bss and the stack: RAM, not ROM
        }
        let end = addr + data.len() as u64;
        if addr < ROM_LINK_BASE || end > ROM_LINK_BASE + ROM_SIZE {
            bail!("segment {addr:#x}..{end:#x} lies outside the ROM window: the ROM has outgrown 64 KiB");
        }
        let off = (addr - ROM_LINK_BASE) as usize;
        image[off..off + data.len()].copy_from_slice(data);
        used += data.len() as u64;
    }
    if image[image.len() - 16] == 0xFF {
        bail!("no reset vector in the ROM's last 16 bytes");
    }
    Ok((image, used))
}
