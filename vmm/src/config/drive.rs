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

/// `cache=`: whether the host's page cache is used and when writes become durable, as in QEMU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// `writeback` (QEMU's default): through the page cache, durable on the guest's flush.
    #[default]
    Writeback,
    /// `none`: O_DIRECT, around the page cache; durable on the guest's flush.
    None,
    /// `writethrough`: through the page cache, every write durable when it completes.
    Writethrough,
    /// `directsync`: O_DIRECT and every write durable when it completes.
    Directsync,
    /// `unsafe`: the guest's flushes are ignored.
    Unsafe,
}

impl CacheMode {
    /// Whether the image is opened with O_DIRECT.
    pub fn direct(self) -> bool {
        matches!(self, Self::None | Self::Directsync)
    }

    /// Whether each write is durable before the guest hears it completed.
    pub fn flush_each_write(self) -> bool {
        matches!(self, Self::Writethrough | Self::Directsync)
    }

    pub fn ignore_flushes(self) -> bool {
        self == Self::Unsafe
    }

    /// The `cache=` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Writeback => "writeback",
            Self::None => "none",
            Self::Writethrough => "writethrough",
            Self::Directsync => "directsync",
            Self::Unsafe => "unsafe",
        }
    }
}

/// One `-drive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drive {
    pub id: String,
    pub file: PathBuf,
    pub format: DiskFormat,
    pub read_only: bool,
    pub cache: CacheMode,
    /// `locking=on|auto` (the default): the image is locked as QEMU locks it.
    pub locking: bool,
    /// `backing.file=PATH,backing.driver=FMT`: a qcow2 image's backing image, instead of the one
    /// it names.
    pub backing: Option<(PathBuf, DiskFormat)>,
    /// `snapshot=on` (or `-snapshot`): writes go to a throw-away overlay; the image is only read.
    pub snapshot: bool,
}

impl Default for Drive {
    fn default() -> Self {
        Self {
            id: String::new(),
            file: PathBuf::new(),
            format: DiskFormat::Raw,
            read_only: false,
            cache: CacheMode::Writeback,
            locking: true,
            backing: None,
            snapshot: false,
        }
    }
}

const HINT: &str =
    ": use file=PATH,format=raw|qcow2,if=none,id=ID[,readonly=on][,snapshot=on][,cache=...][,locking=off]";

fn format(option: &str, v: &str) -> Result<DiskFormat, ConfigError> {
    match v {
        "raw" => Ok(DiskFormat::Raw),
        "qcow2" => Ok(DiskFormat::Qcow2),
        _ => Err(bad(option, v, ": use raw or qcow2")),
    }
}

/// Parses `file=F,format=raw,if=none,id=D,...`.
pub fn parse_drive(s: &str) -> Result<Drive, ConfigError> {
    let mut d = Drive::default();
    let mut image_format = None;
    let (mut backing_file, mut backing_format) = (None, None);
    for (k, v) in key_values(s) {
        let option = format!("-drive {k}");
        match k.as_str() {
            "file" => d.file = v.into(),
            "id" => d.id = v,
            "format" => image_format = Some(format("-drive format", &v)?),
            "locking" => d.locking = super::parse::on_off_auto(&option, &v)?.or(true),
            "backing.file" | "backing.file.filename" => backing_file = Some(PathBuf::from(v)),
            "backing.driver" => backing_format = Some(format("-drive backing.driver", &v)?),
            "if" if v == "none" || v == "virtio" => {}
            "if" => {
                return Err(bad(
                    "-drive if",
                    &v,
                    ": use if=none with -device virtio-blk-device,drive=ID",
                ))
            }
            "readonly" => d.read_only = on_off(&option, &v)?,
            "snapshot" => d.snapshot = on_off(&option, &v)?,
            "cache" => {
                d.cache = match v.as_str() {
                    "writeback" => CacheMode::Writeback,
                    "none" => CacheMode::None,
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
    d.format = image_format.ok_or_else(|| bad("-drive", s, ": give format=raw or format=qcow2"))?;
    d.backing = match (backing_file, backing_format) {
        (None, None) => None,
        (Some(_), _) if d.format == DiskFormat::Raw => {
            return Err(bad(
                "-drive backing.file",
                s,
                ": only a qcow2 image has a backing image",
            ))
        }
        (Some(file), Some(fmt)) => Some((file, fmt)),
        (Some(_), None) => {
            return Err(bad(
                "-drive backing.file",
                s,
                ": give backing.driver=raw|qcow2 too",
            ))
        }
        (None, Some(_)) => {
            return Err(bad(
                "-drive backing.driver",
                s,
                ": it goes with backing.file=PATH",
            ))
        }
    };
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
        assert!(d.read_only && d.cache == CacheMode::Unsafe && d.locking);
        let d = parse_drive(
            "id=d,file=o.qcow2,format=qcow2,cache=none,locking=off,backing.file=b.raw,backing.driver=raw",
        )
        .unwrap();
        assert_eq!(d.cache, CacheMode::None);
        assert!(d.cache.direct() && !d.cache.flush_each_write() && !d.locking);
        assert_eq!(d.backing, Some((PathBuf::from("b.raw"), DiskFormat::Raw)));
        assert!(
            parse_drive("file=b,format=raw,id=d,snapshot=on")
                .unwrap()
                .snapshot
        );
        assert!(!parse_drive("file=b,format=raw,id=d").unwrap().snapshot);
        for (s, says) in [
            ("file=x,id=d", "format=raw or format=qcow2"),
            ("file=x,format=vmdk,id=d", "vmdk"),
            ("format=raw,id=d", "file=PATH"),
            ("file=x,format=raw", "id=ID"),
            ("file=x,format=raw,id=d,if=ide", "if=none"),
            ("file=x,format=qcow2,id=d,backing.file=b", "backing.driver"),
            (
                "file=x,format=raw,id=d,backing.file=b,backing.driver=raw",
                "only a qcow2",
            ),
        ] {
            let e = parse_drive(s).unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
        }
    }
}
