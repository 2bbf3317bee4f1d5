//! A writer for "newc" cpio archives, the format Linux unpacks as an initramfs.
//!
//! Each entry is a 110-byte ASCII header ("070701" and 13 eight-digit hex fields), the NUL-terminated
//! name padded to 4 bytes, then the data padded to 4 bytes. The archive ends with an entry named
//! "TRAILER!!!". Timestamps and owners are zero so the output is reproducible.
use anyhow::{bail, Result};

pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFCHR: u32 = 0o020_000;

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

/// Builds an archive in memory. Parent directories must be added before their contents.
pub struct Newc {
    buf: Vec<u8>,
    next_ino: u32,
}

impl Newc {
    pub fn new() -> Self {
        // Inode 0 is avoided: some unpackers treat it specially.
        Newc {
            buf: Vec::new(),
            next_ino: 1,
        }
    }

    pub fn dir(&mut self, path: &str, perm: u32) -> Result<()> {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// A character device node; the kernel creates it with mknod while unpacking.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(path, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.header(TRAILER, 0, 0, 1, (0, 0), 0);
        self.buf
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> Result<()> {
        // Names are stored relative ("bin/busybox"), as `find . | cpio` would after stripping "./".
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') || name == TRAILER {
            bail!("invalid cpio entry name {path:?}");
        }
        let Ok(size) = u32::try_from(data.len()) else {
            bail!(
                "{path}: {} bytes is too large for a newc entry (4 GiB limit)",
                data.len()
            );
        };
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(name, ino, mode, nlink, rdev, size);
        self.buf.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    fn header(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, rdev: (u32, u32), size: u32) {
        let namesize = name.len() as u32 + 1; // includes the NUL
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0];
        self.buf.extend_from_slice(MAGIC.as_bytes());
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed entry: (name, fields, data).
    type Entry = (String, [u32; 13], Vec<u8>);

    /// An independent reader, so the tests check the format, not the writer against itself.
    fn parse(mut a: &[u8]) -> Vec<Entry> {
        let total = a.len();
        let mut out = Vec::new();
        loop {
            let at = total - a.len();
            assert_eq!(at % 4, 0, "entry at {at} is not 4-byte aligned");
            assert_eq!(&a[..6], b"070701");
            let mut f = [0u32; 13];
            for (i, v) in f.iter_mut().enumerate() {
                let hex = std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap();
                assert!(hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
                *v = u32::from_str_radix(hex, 16).unwrap();
            }
            let namesize = f[11] as usize;
            assert_eq!(a[110 + namesize - 1], 0, "name must be NUL-terminated");
            let name = String::from_utf8(a[110..110 + namesize - 1].to_vec()).unwrap();
            let data_at = (110 + namesize).next_multiple_of(4);
            assert!(a[110 + namesize..data_at].iter().all(|&b| b == 0));
            let size = f[6] as usize;
            let data = a[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(4);
            a = &a[next.min(a.len())..];
            let done = name == TRAILER;
            out.push((name, f, data));
            if done {
                assert!(a.is_empty(), "nothing may follow the trailer");
                return out;
            }
        }
    }

    #[test]
    fn exact_bytes_of_one_file() {
        let mut c = Newc::new();
        c.file("/a", 0o644, b"hi").unwrap();
        let out = c.finish();
        let mut want = String::from("070701");
        // ino mode uid gid nlink mtime size devmaj devmin rdevmaj rdevmin namesize check
        for f in [1, 0o100644, 0, 0, 1, 0, 2, 0, 0, 0, 0, 2, 0] {
            want.push_str(&format!("{f:08X}"));
        }
        let mut want = want.into_bytes();
        want.extend_from_slice(b"a\0"); // 110 + 2 = 112: already aligned
        want.extend_from_slice(b"hi\0\0");
        assert_eq!(&out[..want.len()], &want[..]);
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn entries_round_trip() {
        let mut c = Newc::new();
        c.dir("dev", 0o755).unwrap();
        c.char_dev("/dev/console", 0o600, 5, 1).unwrap();
        c.dir("/bin", 0o755).unwrap();
        c.file("bin/busybox", 0o755, &[0x7f, b'E', b'L', b'F', 1])
            .unwrap();
        c.file("init", 0o755, b"#!/bin/busybox sh\n").unwrap();
        let entries = parse(&c.finish());
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["dev", "dev/console", "bin", "bin/busybox", "init", TRAILER]
        );

        let (_, f, data) = &entries[1];
        assert_eq!(f[1], S_IFCHR | 0o600);
        assert_eq!((f[9], f[10]), (5, 1), "rdevmajor, rdevminor");
        assert!(data.is_empty());
        assert_eq!(entries[0].1[1], S_IFDIR | 0o755);
        assert_eq!(entries[3].1[1], S_IFREG | 0o755);
        assert_eq!(entries[3].2, [0x7f, b'E', b'L', b'F', 1]);
        // Every inode is distinct and non-zero, except the trailer's.
        let mut inos: Vec<_> = entries[..5].iter().map(|e| e.1[0]).collect();
        inos.sort();
        inos.dedup();
        assert_eq!(inos.len(), 5);
        assert!(!inos.contains(&0));
        assert_eq!(entries[5].1[0], 0);
    }

    #[test]
    fn rejects_bad_names() {
        let mut c = Newc::new();
        assert!(c.file("", 0o644, b"").is_err());
        assert!(c.file("/", 0o644, b"").is_err());
        assert!(c.file("a\0b", 0o644, b"").is_err());
        assert!(c.file("TRAILER!!!", 0o644, b"").is_err());
    }
}
