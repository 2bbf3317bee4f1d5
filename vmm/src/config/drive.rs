//! `-drive` (QEMU's syntax, the subset a virtio-blk disk needs) and the drive a
//! `-device virtio-blk-device,drive=ID` names.
use super::{bad, key_values, on_off, ConfigError};
use std::path::PathBuf;

/// The image format (`format=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

/// `cache=`: when writes become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// `writeback` (QEMU's default) and `none`: on the guest's flush.
    #[default]
    Writeback,
    /// `writethrough`: every write, when it completes (O_DSYNC).
    Writethrough,
    /// `directsync`: as writethrough.
    Directsync,
    /// `unsafe`: never; the guest's flushes are ignored.
    Unsafe,
}

/// One `-drive`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drive {
    pub id: String,
    pub file: PathBuf,
    pub format: DiskFormat,
    pub read_only: bool,
    pub cache: CacheMode,
}

const HINT: &str = ": use file=PATH,format=raw|qcow2,if=none,id=ID[,readonly=on][,cache=...]";

/// Parses `file=F,format=raw,if=none,id=D,...`.
pub fn parse_drive(s: &str) -> Result<Drive, ConfigError> {
    let mut d = Drive::default();
    let mut format = None;
    for (k, v) in key_values(s) {
        let option = format!("-drive {k}");
        match k.as_str() {
            "file" => d.file = v.into(),
            "id" => d.id = v,
            "format" => {
                format = Some(match v.as_str() {
                    "raw" => DiskFormat::Raw,
                    "qcow2" => DiskFormat::Qcow2,
                    _ => return Err(bad("-drive format", &v, ": use raw or qcow2")),
                })
            }
            "if" if v == "none" || v == "virtio" => {}
            "if" => {
                return Err(bad(
                    "-drive if",
                    &v,
                    ": use if=none with -device virtio-blk-device,drive=ID",
                ))
            }
            "readonly" => d.read_only = on_off(&option, &v)?,
            "cache" => {
                d.cache = match v.as_str() {
                    "writeback" | "none" => CacheMode::Writeback,
                    "writethrough" => CacheMode::Writethrough,
                    "directsync" => CacheMode::Directsync,
                    "unsafe" => CacheMode::Unsafe,
                    _ => {
                        return Err(bad(
                            "-drive cache",
                            &v,
                            ": use writeback, none, writethrough, directsync or unsafe",
                        ))
                    }
                }
            }
            // Accepted for QEMU compatibility; they change nothing here.
            "index" | "media" | "discard" | "aio" | "detect-zeroes" => {}
            _ => return Err(bad("-drive", &k, HINT)),
        }
    }
    if d.file.as_os_str().is_empty() {
        return Err(bad("-drive", s, ": it needs file=PATH"));
    }
    if d.id.is_empty() {
        return Err(bad(
            "-drive",
            s,
            ": it needs id=ID, for -device virtio-blk-device,drive=ID",
        ));
    }
    // QEMU guesses the format when none is given; we do not guess: a raw guess on a qcow2 file
    // would let the guest overwrite its header.
    d.format = format.ok_or_else(|| bad("-drive", s, ": give format=raw or format=qcow2"))?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ubuntu_guides_drive_parses_and_mistakes_name_themselves() {
        let d = parse_drive("file=hello.qcow2,index=0,format=qcow2,media=disk,if=none,id=virtio1").unwrap();
        assert_eq!((d.id.as_str(), d.format), ("virtio1", DiskFormat::Qcow2));
        let d = parse_drive("id=d,file=a,,b.img,format=raw,readonly=on,cache=unsafe").unwrap();
        assert_eq!(d.file, PathBuf::from("a,b.img"));
        assert!(d.read_only && d.cache == CacheMode::Unsafe);
        for (s, says) in [
            ("file=x,id=d", "format=raw or format=qcow2"),
            ("file=x,format=vmdk,id=d", "vmdk"),
            ("format=raw,id=d", "file=PATH"),
            ("file=x,format=raw", "id=ID"),
            ("file=x,format=raw,id=d,if=ide", "if=none"),
            ("file=x,format=raw,id=d,snapshot=on", "snapshot"),
        ] {
            let e = parse_drive(s).unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
        }
    }
}
