//! `cargo xtask payloads`: build the boot conformance payloads (payloads/) for x86_64-unknown-none
//! into target/payloads/: `multiboot1.elf`, `multiboot2.elf`, `pvh.elf` (the ELFs as linked,
//! checked the way a loader reads them), `pvh32.elf` (the PVH payload in an ELF32 container, as
//! some kernels ship, from `objcopy -O elf32-i386`), `bzImage` (flattened from its ELF here) and
//! `bzImage32`, the same without the 64-bit entry (XLF_KERNEL_64 clear), so loaders must take the
//! 32-bit one.
use anyhow::{bail, ensure, Context, Result};
use minnow_bootproto::{linux, multiboot1, multiboot2, pvh};
use minnow_payloads::bzimage;
use object::{Object, ObjectSection, ObjectSegment};
use std::path::{Path, PathBuf};
use std::process::Command;
use zerocopy::IntoBytes;

/// The payloads and their file names in target/payloads/.
const ELFS: [(&str, &str); 5] = [
    ("multiboot1", "multiboot1.elf"),
    ("multiboot2", "multiboot2.elf"),
    ("pvh", "pvh.elf"),
    // The demo's guest: a PVH payload that greets.
    ("hello", "hello.elf"),
    // The snapshot tests' disk writer: a PVH payload with a virtio-blk driver.
    ("blklog", "blklog.elf"),
];
pub const PVH32: &str = "pvh32.elf";
pub const BZIMAGE: &str = "bzImage";
pub const BZIMAGE32: &str = "bzImage32";
/// Loaders place nothing of the kernel's below 1 MiB.
const ONE_MIB: u64 = 0x10_0000;

/// Builds every payload and returns the directory that holds them.
pub fn build() -> Result<PathBuf> {
    let root = crate::workspace_root();
    eprintln!("[payloads] cargo build --profile rom --target x86_64-unknown-none -p minnow-payloads --bins");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--quiet", "--package", "minnow-payloads", "--bins"])
        .args(["--profile", "rom", "--target", "x86_64-unknown-none"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!(
            "building the payloads failed (is the target installed? rustup target add x86_64-unknown-none)"
        );
    }
    let built = root.join("target/x86_64-unknown-none/rom");
    let out = root.join("target/payloads");
    std::fs::create_dir_all(&out)?;
    for (bin, name) in ELFS {
        let elf = read(&built.join(bin))?;
        match bin {
            "multiboot1" => check_multiboot1(&elf),
            "multiboot2" => check_multiboot2(&elf),
            _ => check_pvh(&elf),
        }
        .with_context(|| format!("checking {bin}"))?;
        write(&out.join(name), &elf)?;
    }
    elf32(&out.join("pvh.elf"), &out.join(PVH32))?;
    let elf = read(&built.join("bzimage"))?;
    for (name, kernel_64) in [(BZIMAGE, true), (BZIMAGE32, false)] {
        let image = flatten_bzimage(&elf, kernel_64).with_context(|| format!("building {name}"))?;
        write(&out.join(name), &image)?;
    }
    Ok(out)
}

/// The same image in an ELF32 container (the code inside is unchanged: it enters in 32-bit mode).
fn elf32(elf64: &Path, out: &Path) -> Result<()> {
    let status = Command::new("objcopy")
        .args(["-O", "elf32-i386"])
        .arg(elf64)
        .arg(out)
        .status()
        .context("running objcopy (apt-get install binutils)")?;
    ensure!(
        status.success(),
        "objcopy -O elf32-i386 {} failed",
        elf64.display()
    );
    let elf = read(out)?;
    ensure!(elf.get(4) == Some(&1), "{} is not ELF32", out.display());
    check_pvh(&elf).with_context(|| format!("checking {}", out.display()))?;
    eprintln!("[payloads] {}: {} bytes", out.display(), elf.len());
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("[payloads] {}: {} bytes", path.display(), bytes.len());
    Ok(())
}

/// The one PT_LOAD segment that holds the image: its address, file offset and file/memory sizes.
#[derive(Clone, Copy)]
struct Load {
    addr: u64,
    offset: u64,
    filesz: u64,
    memsz: u64,
}

fn image_segment(file: &object::File) -> Result<Load> {
    let loads: Vec<_> = file
        .segments()
        .filter(|s| s.address() >= ONE_MIB)
        .map(|s| {
            let (offset, filesz) = s.file_range();
            Load {
                addr: s.address(),
                offset,
                filesz,
                memsz: s.size(),
            }
        })
        .collect();
    match loads.as_slice() {
        [one] => Ok(*one),
        _ => bail!(
            "expected one loadable segment at or above 1 MiB, found {}",
            loads.len()
        ),
    }
}

/// Checks an a.out-kludge header the way QEMU's multiboot loader reads it: the file data from
/// `header offset - (header_addr - load_addr)` is what loads at load_addr.
fn check_kludge(elf: &[u8], offset: usize, header_addr: u32, load_addr: u32, load_end: u32) -> Result<()> {
    let file = object::File::parse(elf)?;
    let seg = image_segment(&file)?;
    let text = (offset as u64)
        .checked_sub(u64::from(header_addr - load_addr))
        .context("header_addr - load_addr exceeds the header's offset")?;
    ensure!(
        u64::from(load_addr) == seg.addr && text == seg.offset,
        "load_addr {load_addr:#x} at file offset {text:#x}, but the segment is {:#x} at {:#x}",
        seg.addr,
        seg.offset
    );
    ensure!(
        u64::from(load_end) == seg.addr + seg.filesz,
        "load_end_addr {load_end:#x} is not the end of the segment's file data"
    );
    Ok(())
}

fn check_multiboot1(elf: &[u8]) -> Result<()> {
    let (offset, h) = multiboot1::find_header(elf).context("no multiboot 1 header in the first 8 KiB")?;
    use multiboot1::header_flags::{AOUT_KLUDGE, MEMORY_INFO};
    ensure!(
        h.flags.get() == AOUT_KLUDGE | MEMORY_INFO,
        "flags {:#x}",
        h.flags.get()
    );
    check_kludge(
        elf,
        offset,
        h.header_addr.get(),
        h.load_addr.get(),
        h.load_end_addr.get(),
    )
}

fn check_multiboot2(elf: &[u8]) -> Result<()> {
    let (offset, h) = multiboot2::find_header(elf).context("no multiboot 2 header in the first 32 KiB")?;
    ensure!(h.architecture.get() == multiboot2::ARCH_I386, "architecture");
    ensure!(
        multiboot1::find_header(elf).is_none(),
        "a multiboot 1 header too: loaders would pick either"
    );
    let tags = &elf[offset + 16..offset + h.header_length.get() as usize];
    let mut at = 0;
    while at + 8 <= tags.len() {
        let kind = u16::from_le_bytes([tags[at], tags[at + 1]]);
        let size = u32::from_le_bytes(tags[at + 4..at + 8].try_into()?) as usize;
        if kind == multiboot2::header_tag::ADDRESS {
            let word =
                |i: usize| u32::from_le_bytes(tags[at + 8 + 4 * i..at + 12 + 4 * i].try_into().unwrap());
            return check_kludge(elf, offset, word(0), word(1), word(2));
        }
        at += size.next_multiple_of(8);
    }
    bail!("no address tag")
}

fn check_pvh(elf: &[u8]) -> Result<()> {
    let file = object::File::parse(elf)?;
    ensure!(
        multiboot1::find_header(elf).is_none() && multiboot2::find_header(elf).is_none(),
        "a multiboot header: QEMU would boot it as multiboot"
    );
    let seg = image_segment(&file)?;
    // PT_NOTE: object exposes the note through its section; check the descriptor is the entry.
    let note = file
        .section_by_name(".note.Xen")
        .context("no .note.Xen section")?;
    let data = note.data()?;
    let word = |i: usize| u32::from_le_bytes(data[4 * i..4 * i + 4].try_into().unwrap());
    ensure!(
        word(0) == 4 && word(1) == 4 && word(2) == pvh::XEN_ELFNOTE_PHYS32_ENTRY && &data[12..16] == b"Xen\0",
        "not a Xen PHYS32_ENTRY note with a 4-byte descriptor"
    );
    let entry = u64::from(word(4));
    ensure!(
        (seg.addr..seg.addr + seg.filesz).contains(&entry),
        "entry {entry:#x} outside the image"
    );
    ensure!(
        word(5) == 0,
        "QEMU reads the descriptor as 8 bytes: the next 4 must be 0"
    );
    Ok(())
}

/// Lays out the bzImage: the boot sector and setup header, the real-mode setup code (.setup16, at
/// its link offset), then the protected-mode part as it sits in memory from 1 MiB.
fn flatten_bzimage(elf: &[u8], kernel_64: bool) -> Result<Vec<u8>> {
    let file = object::File::parse(elf)?;
    let seg = image_segment(&file)?;
    ensure!(
        seg.addr == u64::from(bzimage::CODE32_START),
        "image not at code32_start"
    );
    let setup16 = file.section_by_name(".setup16").context("no .setup16 section")?;
    ensure!(
        setup16.address() == bzimage::SETUP_CODE_OFFSET as u64,
        ".setup16 linked at {:#x}",
        setup16.address()
    );
    let code = setup16.data()?;
    let setup_len = (bzimage::SETUP_CODE_OFFSET + code.len()).next_multiple_of(512);
    let setup_sects = u8::try_from(setup_len / 512 - 1)?.max(1);
    let setup_len = (usize::from(setup_sects) + 1) * 512;
    let pm = &elf[seg.offset as usize..(seg.offset + seg.filesz) as usize];
    let header = bzimage::setup_header(
        setup_sects,
        u32::try_from(pm.len())?,
        u32::try_from(seg.memsz)?,
        kernel_64,
    );

    let mut image = vec![0u8; setup_len];
    image[..bzimage::BOOT_SECTOR_CODE.len()].copy_from_slice(&bzimage::BOOT_SECTOR_CODE);
    image[linux::HEADER_OFFSET..bzimage::SETUP_CODE_OFFSET].copy_from_slice(header.as_bytes());
    image[bzimage::SETUP_CODE_OFFSET..bzimage::SETUP_CODE_OFFSET + code.len()].copy_from_slice(code);
    image.extend_from_slice(pm);

    // Read it back as a loader would.
    let parsed = linux::parse_header(&image, image.len()).map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(parsed.setup_size() == setup_len, "setup size");
    Ok(image)
}
