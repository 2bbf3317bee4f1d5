//! Recovering the ELF `vmlinux` from a bzImage, so the same kernel can also be booted through PVH.
//!
//! A bzImage is the real-mode setup code followed by the protected-mode part, which holds the
//! compressed kernel (`vmlinux.bin`, a stripped ELF, possibly followed by relocation data). The
//! setup header says where that payload lies; its last 4 bytes are the uncompressed size.
use anyhow::{anyhow, bail, ensure, Context, Result};
use object::elf::{FileHeader64, EM_X86_64, PT_NOTE, SHT_NOBITS};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::Endianness;
use std::io::Read;

// Offsets in the Linux/x86 boot protocol's setup header (Documentation/arch/x86/boot.rst).
const SETUP_SECTS: usize = 0x1F1;
const HEADER_MAGIC: usize = 0x202; // "HdrS"
const VERSION: usize = 0x206;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24C;

/// Xen's ELF note type giving the 32-bit PVH entry point (xen/include/public/elfnote.h).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Decompressed kernels larger than this are refused rather than allocated.
const MAX_KERNEL: usize = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Lz4,
    Bzip2,
    Lzma,
    Lzo,
}

impl Compression {
    fn detect(data: &[u8]) -> Option<Self> {
        const MAGICS: [(&[u8], Compression); 7] = [
            (&[0x1F, 0x8B], Compression::Gzip),
            (&[0xFD, b'7', b'z', b'X', b'Z', 0], Compression::Xz),
            (&[0x28, 0xB5, 0x2F, 0xFD], Compression::Zstd),
            (&[0x02, 0x21, 0x4C, 0x18], Compression::Lz4), // the legacy frame `lz4 -l` writes
            (b"BZh", Compression::Bzip2),
            (&[0x5D, 0, 0], Compression::Lzma),
            (&[0x89, b'L', b'Z', b'O'], Compression::Lzo),
        ];
        MAGICS.iter().find(|(m, _)| data.starts_with(m)).map(|&(_, c)| c)
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "XZ",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "LZ4",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "LZMA",
            Compression::Lzo => "LZO",
        }
    }
}

/// The compressed kernel inside a bzImage.
#[derive(Debug)]
pub struct Payload<'a> {
    /// Offset of the payload in the bzImage file.
    pub file_offset: usize,
    /// The compressed stream, without the 4-byte size trailer.
    pub stream: &'a [u8],
    pub compression: Compression,
    /// The decompressed size recorded in the trailer.
    pub uncompressed_len: usize,
    /// Boot protocol version, e.g. 0x20F.
    pub protocol: u16,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Locates and identifies the compressed payload of a bzImage.
pub fn payload(bz: &[u8]) -> Result<Payload<'_>> {
    ensure!(bz.len() >= 0x250, "too short for a bzImage ({} bytes)", bz.len());
    ensure!(
        &bz[HEADER_MAGIC..HEADER_MAGIC + 4] == b"HdrS",
        "no Linux setup header (\"HdrS\" missing)"
    );
    let protocol = le16(bz, VERSION);
    // payload_offset/payload_length exist from boot protocol 2.08 (Linux 2.6.26) on.
    ensure!(
        protocol >= 0x208,
        "boot protocol {protocol:#x} predates payload_offset (needs 2.08)"
    );
    let setup_sects = match bz[SETUP_SECTS] {
        0 => 4, // historical meaning of 0
        n => n as usize,
    };
    let pm_start = (setup_sects + 1) * 512;
    let offset = le32(bz, PAYLOAD_OFFSET) as usize;
    let length = le32(bz, PAYLOAD_LENGTH) as usize;
    let start = pm_start + offset;
    let end = start
        .checked_add(length)
        .filter(|&e| e <= bz.len())
        .ok_or_else(|| {
            anyhow!(
                "payload {start:#x}+{length:#x} runs past the end of the file ({:#x} bytes)",
                bz.len()
            )
        })?;
    ensure!(length > 4, "payload of {length} bytes is too short");
    let stream = &bz[start..end - 4];
    let uncompressed_len = le32(bz, end - 4) as usize;
    let compression = Compression::detect(stream).ok_or_else(|| {
        anyhow!(
            "unknown payload compression (magic {:02x?})",
            &stream[..stream.len().min(6)]
        )
    })?;
    Ok(Payload {
        file_offset: start,
        stream,
        compression,
        uncompressed_len,
        protocol,
    })
}

/// Decompresses a payload and checks the result against the recorded size.
pub fn decompress(p: &Payload) -> Result<Vec<u8>> {
    ensure!(
        p.uncompressed_len <= MAX_KERNEL,
        "implausible uncompressed size {}",
        p.uncompressed_len
    );
    let mut out = Vec::with_capacity(p.uncompressed_len);
    let name = p.compression.name();
    // The limit makes a corrupt stream fail the size check below instead of exhausting memory.
    let read = |r: Box<dyn Read + '_>, out: &mut Vec<u8>| {
        r.take(MAX_KERNEL as u64 + 1)
            .read_to_end(out)
            .map(drop)
            .with_context(|| format!("decompressing the {name} payload"))
    };
    match p.compression {
        Compression::Gzip => read(Box::new(flate2::read::GzDecoder::new(p.stream)), &mut out)?,
        Compression::Xz => read(Box::new(lzma_rust2::XzReader::new(p.stream, true)), &mut out)?,
        Compression::Zstd => {
            // Kernels use `zstd -22 --ultra`, whose window exceeds ruzstd's default limit.
            let d = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(p.stream, 1 << 31)
                .map_err(|e| anyhow!("zstd frame header: {e}"))?;
            read(Box::new(d), &mut out)?
        }
        Compression::Lz4 => unlz4_legacy(p.stream, &mut out)?,
        Compression::Bzip2 | Compression::Lzma | Compression::Lzo => {
            bail!("{name}-compressed kernels are not supported (only gzip, XZ, zstd and LZ4)")
        }
    }
    ensure!(
        out.len() == p.uncompressed_len,
        "{name} payload decompressed to {} bytes, but the bzImage records {}",
        out.len(),
        p.uncompressed_len
    );
    Ok(out)
}

/// The LZ4 legacy frame: a magic, then blocks of [u32 compressed size][LZ4 block], each block
/// expanding to at most 8 MiB. A repeated magic starts another concatenated frame.
fn unlz4_legacy(stream: &[u8], out: &mut Vec<u8>) -> Result<()> {
    const MAGIC: u32 = 0x184C_2102;
    const BLOCK_MAX: usize = 8 << 20;
    let mut block = vec![0u8; BLOCK_MAX];
    let mut pos = 4; // past the magic Compression::detect matched
    while pos < stream.len() {
        ensure!(
            pos + 4 <= stream.len(),
            "LZ4 stream ends inside a block header at {pos:#x}"
        );
        let size = le32(stream, pos);
        pos += 4;
        if size == MAGIC {
            continue;
        }
        let end = pos
            .checked_add(size as usize)
            .filter(|&e| e <= stream.len())
            .ok_or_else(|| anyhow!("LZ4 block at {pos:#x} ({size} bytes) runs past the payload"))?;
        let n = lz4_flex::block::decompress_into(&stream[pos..end], &mut block)
            .map_err(|e| anyhow!("LZ4 block at {pos:#x}: {e}"))?;
        ensure!(
            out.len() + n <= MAX_KERNEL,
            "LZ4 stream expands past {MAX_KERNEL} bytes"
        );
        out.extend_from_slice(&block[..n]);
        pos = end;
    }
    Ok(())
}

fn parse_elf(elf: &[u8]) -> Result<(&FileHeader64<Endianness>, Endianness)> {
    let hdr = FileHeader64::<Endianness>::parse(elf).context("not an ELF64 file")?;
    let endian = hdr.endian().context("ELF byte order")?;
    ensure!(
        hdr.e_machine(endian) == EM_X86_64,
        "ELF machine {} is not x86_64",
        hdr.e_machine(endian)
    );
    Ok((hdr, endian))
}

/// The length of the ELF file proper: decompressed kernels may carry relocation data after it.
pub fn elf_len(elf: &[u8]) -> Result<usize> {
    let (hdr, e) = parse_elf(elf)?;
    let mut end = size_of::<FileHeader64<Endianness>>() as u64;
    let phs = hdr.program_headers(e, elf).context("ELF program headers")?;
    end = end.max(hdr.e_phoff(e) + phs.len() as u64 * u64::from(hdr.e_phentsize(e)));
    for ph in phs {
        end = end.max(ph.p_offset(e) + ph.p_filesz(e));
    }
    let shs = hdr.section_headers(e, elf).context("ELF section headers")?;
    end = end.max(hdr.e_shoff(e) + shs.len() as u64 * u64::from(hdr.e_shentsize(e)));
    for sh in shs.iter().filter(|sh| sh.sh_type(e) != SHT_NOBITS) {
        end = end.max(sh.sh_offset(e) + sh.sh_size(e));
    }
    usize::try_from(end)
        .ok()
        .filter(|&n| n <= elf.len())
        .context("ELF headers point past the file's end")
}

/// Finds the PVH entry point: a "Xen" note of type XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE segment.
pub fn pvh_entry(elf: &[u8]) -> Result<u64> {
    let (hdr, e) = parse_elf(elf)?;
    for ph in hdr.program_headers(e, elf).context("ELF program headers")? {
        if ph.p_type(e) != PT_NOTE {
            continue;
        }
        let Some(mut notes) = ph.notes(e, elf).context("reading a PT_NOTE segment")? else {
            continue;
        };
        while let Some(note) = notes.next().context("parsing an ELF note")? {
            if note.name() != b"Xen" || note.n_type(e) != XEN_ELFNOTE_PHYS32_ENTRY {
                continue;
            }
            // Linux stores the address as a pointer-sized value (8 bytes on x86_64); accept 4 too.
            return match *note.desc() {
                [a, b, c, d] => Ok(u32::from_le_bytes([a, b, c, d]).into()),
                [a, b, c, d, f, g, h, i] => Ok(u64::from_le_bytes([a, b, c, d, f, g, h, i])),
                ref d => bail!("PHYS32_ENTRY note has a {}-byte value", d.len()),
            };
        }
    }
    bail!("no Xen PHYS32_ENTRY (type 18) ELF note: this kernel cannot boot through PVH (needs CONFIG_PVH=y)")
}

/// What `extract_vmlinux` found.
pub struct Vmlinux {
    pub elf: Vec<u8>,
    pub compression: Compression,
    pub compressed_len: usize,
    /// Bytes after the ELF proper (relocation data) that were dropped.
    pub trailing: usize,
    pub pvh_entry: u64,
}

/// Decompresses a bzImage's payload into a PVH-bootable ELF.
pub fn extract_vmlinux(bz: &[u8]) -> Result<Vmlinux> {
    let p = payload(bz)?;
    let mut elf = decompress(&p)?;
    let len = elf_len(&elf).context("the decompressed payload is not a usable ELF")?;
    let trailing = elf.len() - len;
    elf.truncate(len);
    let pvh_entry = pvh_entry(&elf)?;
    Ok(Vmlinux {
        elf,
        compression: p.compression,
        compressed_len: p.stream.len(),
        trailing,
        pvh_entry,
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal x86_64 ELF: header, one PT_NOTE program header, one note.
    pub fn tiny_elf(note_name: &[u8], note_type: u32, desc: &[u8]) -> Vec<u8> {
        let pad4 = |v: &mut Vec<u8>| v.resize(v.len().next_multiple_of(4), 0);
        let mut note = Vec::new();
        note.extend_from_slice(&(note_name.len() as u32 + 1).to_le_bytes());
        note.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        note.extend_from_slice(&note_type.to_le_bytes());
        note.extend_from_slice(note_name);
        note.push(0);
        pad4(&mut note);
        note.extend_from_slice(desc);
        pad4(&mut note);

        let (ehsize, phentsize) = (64u16, 56u16);
        let note_off = u64::from(ehsize + phentsize);
        let mut f = Vec::new();
        f.extend_from_slice(&[0x7F, b'E', b'L', b'F', 2, 1, 1, 0]); // ELF64, little-endian, v1
        f.resize(16, 0);
        f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f.extend_from_slice(&EM_X86_64.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes()); // e_version
        f.extend_from_slice(&0x100_0000u64.to_le_bytes()); // e_entry
        f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        for v in [ehsize, phentsize, 1, 64, 0, 0] {
            // e_ehsize e_phentsize e_phnum e_shentsize e_shnum e_shstrndx
            f.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(f.len(), 64);
        f.extend_from_slice(&PT_NOTE.to_le_bytes());
        f.extend_from_slice(&4u32.to_le_bytes()); // p_flags: R
        for v in [note_off, 0, 0, note.len() as u64, note.len() as u64, 4] {
            // p_offset p_vaddr p_paddr p_filesz p_memsz p_align
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&note);
        f
    }

    /// A bzImage-shaped file: setup header fields, `setup_sects` sectors of setup, then the payload
    /// at `offset` into the protected-mode part, with the size trailer.
    fn fake_bzimage(setup_sects: u8, offset: usize, stream: &[u8], uncompressed_len: u32) -> Vec<u8> {
        let pm_start = (if setup_sects == 0 { 4 } else { setup_sects as usize } + 1) * 512;
        let mut bz = vec![0u8; pm_start + offset];
        bz[SETUP_SECTS] = setup_sects;
        bz[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        bz[VERSION..VERSION + 2].copy_from_slice(&0x20Fu16.to_le_bytes());
        bz[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&(offset as u32).to_le_bytes());
        let len = stream.len() as u32 + 4;
        bz[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&len.to_le_bytes());
        bz.extend_from_slice(stream);
        bz.extend_from_slice(&uncompressed_len.to_le_bytes());
        bz.extend_from_slice(&[0xAA; 100]); // what follows the payload in a real bzImage
        bz
    }

    fn sample_elf() -> Vec<u8> {
        tiny_elf(b"Xen", XEN_ELFNOTE_PHYS32_ENTRY, &0x1_234_560u64.to_le_bytes())
    }

    #[test]
    fn payload_location_and_trailer() {
        let stream = [0x1F, 0x8B, 8, 0, 1, 2, 3];
        let bz = fake_bzimage(3, 0x2CC, &stream, 1234);
        let p = payload(&bz).unwrap();
        assert_eq!(p.file_offset, 4 * 512 + 0x2CC);
        assert_eq!(p.stream, &stream);
        assert_eq!(p.uncompressed_len, 1234);
        assert_eq!(p.compression, Compression::Gzip);
        assert_eq!(p.protocol, 0x20F);
    }

    #[test]
    fn setup_sects_zero_means_four() {
        let stream = [0x28, 0xB5, 0x2F, 0xFD, 0];
        let bz = fake_bzimage(0, 0x10, &stream, 1);
        let p = payload(&bz).unwrap();
        assert_eq!(p.file_offset, 5 * 512 + 0x10);
        assert_eq!(p.compression, Compression::Zstd);
    }

    #[test]
    fn bad_headers_are_rejected() {
        let good = fake_bzimage(1, 0, &[0x02, 0x21, 0x4C, 0x18], 0);
        assert!(payload(&good).is_ok());
        let mut bad = good.clone();
        bad[HEADER_MAGIC] = b'X';
        assert!(payload(&bad).is_err(), "missing HdrS");
        let mut bad = good.clone();
        bad[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert!(payload(&bad).is_err(), "payload past the end");
        let mut bad = good.clone();
        bad[VERSION..VERSION + 2].copy_from_slice(&0x206u16.to_le_bytes());
        assert!(payload(&bad).is_err(), "protocol too old");
        let unknown = fake_bzimage(1, 0, b"what?", 0);
        assert!(payload(&unknown).is_err(), "unknown compression");
        assert!(payload(&good[..0x200]).is_err(), "truncated");
    }

    #[test]
    fn finds_the_pvh_note() {
        assert_eq!(pvh_entry(&sample_elf()).unwrap(), 0x1_234_560);
        let four = tiny_elf(b"Xen", XEN_ELFNOTE_PHYS32_ENTRY, &0x100_0000u32.to_le_bytes());
        assert_eq!(pvh_entry(&four).unwrap(), 0x100_0000);
    }

    #[test]
    fn rejects_elves_without_the_note() {
        let wrong_type = tiny_elf(b"Xen", 17, &[0; 8]);
        assert!(pvh_entry(&wrong_type).is_err());
        let wrong_name = tiny_elf(b"Linux", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 8]);
        assert!(pvh_entry(&wrong_name).is_err());
        let mut not_x86 = sample_elf();
        not_x86[18] = 183; // EM_AARCH64
        assert!(pvh_entry(&not_x86).is_err());
        assert!(pvh_entry(b"\x7fELF").is_err());
    }

    fn lz4_legacy(data: &[u8]) -> Vec<u8> {
        let mut out = 0x184C_2102u32.to_le_bytes().to_vec();
        for chunk in data.chunks(8 << 20) {
            let block = lz4_flex::block::compress(chunk);
            out.extend_from_slice(&(block.len() as u32).to_le_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    fn xz_like_linux(data: &[u8]) -> Vec<u8> {
        // scripts/xz_wrap.sh: --check=crc32 --x86 --lzma2
        let mut opts = lzma_rust2::XzOptions::with_preset(6);
        opts.set_check_sum_type(lzma_rust2::CheckType::Crc32);
        opts.prepend_pre_filter(lzma_rust2::FilterType::BcjX86, 0);
        let mut w = lzma_rust2::XzWriter::new(Vec::new(), opts).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn every_supported_compression_round_trips() {
        let elf = sample_elf();
        let relocs = [0x55u8; 40]; // stands in for the relocation data after vmlinux.bin
        let mut plain = elf.clone();
        plain.extend_from_slice(&relocs);
        type Compressor = fn(&[u8]) -> Vec<u8>;
        let cases: [(Compression, Compressor); 4] = [
            (Compression::Lz4, lz4_legacy),
            (Compression::Xz, xz_like_linux),
            (Compression::Gzip, gzip),
            (Compression::Zstd, zstd),
        ];
        for (want, compress) in cases {
            let bz = fake_bzimage(27, 0x2CC, &compress(&plain), plain.len() as u32);
            let v = extract_vmlinux(&bz).unwrap_or_else(|e| panic!("{want:?}: {e:#}"));
            assert_eq!(v.compression, want);
            assert_eq!(v.elf, elf, "{want:?}");
            assert_eq!(v.trailing, relocs.len(), "{want:?}");
            assert_eq!(v.pvh_entry, 0x1_234_560);
        }
    }

    #[test]
    fn lz4_blocks_and_wrong_sizes() {
        // More than one 8 MiB block, and a repeated magic between frames.
        let data: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
        let mut stream = lz4_legacy(&data);
        stream.extend_from_slice(&lz4_legacy(b"tail"));
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        let bz = fake_bzimage(1, 0, &stream, want.len() as u32);
        assert_eq!(decompress(&payload(&bz).unwrap()).unwrap(), want);

        let short = fake_bzimage(1, 0, &stream, want.len() as u32 + 1);
        assert!(
            decompress(&payload(&short).unwrap()).is_err(),
            "size trailer mismatch"
        );
        let cut = fake_bzimage(1, 0, &stream[..stream.len() - 3], want.len() as u32);
        assert!(decompress(&payload(&cut).unwrap()).is_err(), "truncated block");
    }

    #[test]
    fn unsupported_compression_is_named() {
        let bz = fake_bzimage(1, 0, b"BZh91AY", 10);
        let err = decompress(&payload(&bz).unwrap()).unwrap_err();
        assert!(format!("{err:#}").contains("bzip2"), "{err:#}");
    }
}
