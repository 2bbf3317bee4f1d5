use super::*;
use crate::config::CacheMode;
use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_image(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("minnow-disk-{name}-{}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn qemu_img(args: &[&str]) -> String {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img runs (apt-get install qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn drive(path: &Path, format: DiskFormat) -> Drive {
    Drive {
        file: path.to_path_buf(),
        format,
        ..Drive::default()
    }
}
#[test]
fn a_raw_file_reads_writes_discards_and_zeroes() {
    let path = temp_image("raw", &[0xAB; 8192]);
    let drive = Drive {
        file: path.clone(),
        ..Drive::default()
    };
    let mut d = RawFile::open(&drive).unwrap();
    assert_eq!(d.size(), 8192);
    d.write_at(b"minnow", 4096).unwrap();
    d.flush().unwrap();
    let mut buf = [0u8; 6];
    d.read_at(&mut buf, 4096).unwrap();
    assert_eq!(&buf, b"minnow");
    d.write_zeroes(0, 4096).unwrap();
    let mut head = [1u8; 16];
    d.read_at(&mut head, 0).unwrap();
    assert_eq!(head, [0; 16]);
    assert!(d.read_at(&mut [0u8; 16], 8190).is_err(), "past the end");
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[4096..4102], b"minnow");
    std::fs::remove_file(path).unwrap();
}

/// Interoperates with QEMU's own tools: an image qemu-img made, written here, reads back
/// through `qemu-img convert` with what was written.
#[test]
fn a_qcow2_image_is_read_and_written_as_qemu_img_sees_it() {
    let path = std::env::temp_dir().join(format!("minnow-disk-q-{}.qcow2", std::process::id()));
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg("1M")
        .status()
        .expect("qemu-img runs (apt-get install qemu-utils)");
    assert!(status.success());
    let drive = Drive {
        file: path.clone(),
        format: DiskFormat::Qcow2,
        ..Drive::default()
    };
    let mut d = open(&drive).unwrap();
    assert_eq!(d.size(), 1 << 20);
    let mut fresh = [1u8; 512];
    d.read_at(&mut fresh, 65536).unwrap();
    assert_eq!(fresh, [0; 512]);
    d.write_at(&[0x42; 4096], 131072).unwrap();
    d.flush().unwrap();
    drop(d);
    let raw = path.with_extension("raw");
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&path)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&raw).unwrap();
    assert!(bytes[131072..135168].iter().all(|&b| b == 0x42));
    assert!(bytes[..131072].iter().all(|&b| b == 0));
    std::fs::remove_file(path).unwrap();
    std::fs::remove_file(raw).unwrap();
}

#[test]
fn cache_none_uses_o_direct_through_unaligned_buffers_and_ranges() {
    let path = temp_image("direct", &[0x5A; 64 * 1024]);
    let d = Drive {
        cache: CacheMode::None,
        ..drive(&path, DiskFormat::Raw)
    };
    let mut disk = RawFile::open(&d).unwrap();
    assert!(disk.block_size() >= 512);
    // Odd offsets and lengths, from a buffer of any alignment.
    let mut buf = vec![0u8; 1000];
    disk.read_at(&mut buf[1..], 4097).unwrap();
    assert!(buf[1..].iter().all(|&b| b == 0x5A));
    disk.write_at(b"direct", 10_001).unwrap();
    disk.flush().unwrap();
    drop(disk);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[10_001..10_007], b"direct");
    assert_eq!(bytes[10_000], 0x5A);
    assert_eq!(bytes[10_007], 0x5A);
    std::fs::remove_file(path).unwrap();
}

/// A file system that refuses O_DIRECT (EINVAL at open; tmpfs before Linux 6.6) gets a line that
/// says so and what to use instead.
#[test]
fn cache_none_on_a_file_system_without_o_direct_says_so() {
    let d = Drive {
        cache: CacheMode::Directsync,
        ..drive(Path::new("/dev/shm/image"), DiskFormat::Raw)
    };
    let e = raw::open_error(&d, std::io::Error::from_raw_os_error(libc::EINVAL)).to_string();
    assert!(
        e.contains("cache=directsync needs O_DIRECT") && e.contains("cache=writeback"),
        "{e}"
    );
    let d = Drive {
        cache: CacheMode::Writeback,
        ..d
    };
    let e = raw::open_error(&d, std::io::Error::from_raw_os_error(libc::EINVAL)).to_string();
    assert!(!e.contains("O_DIRECT"), "{e}");
}

#[test]
fn writethrough_opens_the_image_for_durable_writes() {
    let path = temp_image("writethrough", &[0u8; 4096]);
    for (cache, dsync) in [(CacheMode::Writethrough, true), (CacheMode::Writeback, false)] {
        let file = raw::open_file(
            &Drive {
                cache,
                ..drive(&path, DiskFormat::Raw)
            },
            true,
        )
        .unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: F_GETFL only reads the descriptor's flags.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_DSYNC != 0, dsync, "{cache:?}");
    }
    std::fs::remove_file(path).unwrap();
}

#[test]
fn an_image_in_use_is_refused_to_a_second_writer_unless_locking_is_off() {
    let path = temp_image("inuse", &[0u8; 4096]);
    let first = open(&drive(&path, DiskFormat::Raw)).unwrap();
    let e = open(&drive(&path, DiskFormat::Raw))
        .err()
        .expect("locked")
        .to_string();
    assert!(e.contains("failed to get \"write\" lock"), "{e}");
    let reader = Drive {
        read_only: true,
        ..drive(&path, DiskFormat::Raw)
    };
    let e = open(&reader).err().expect("locked").to_string();
    assert!(e.contains("shared \"write\" lock"), "{e}");
    let unlocked = Drive {
        locking: false,
        ..drive(&path, DiskFormat::Raw)
    };
    assert!(open(&unlocked).is_ok(), "locking=off shares it");
    drop(first);
    assert!(
        open(&drive(&path, DiskFormat::Raw)).is_ok(),
        "free again once closed"
    );
    std::fs::remove_file(path).unwrap();
}

/// A raw block device (a loop device here) is as large as the kernel says, where its inode says 0.
#[test]
fn a_block_device_has_its_real_size() {
    let backing = temp_image("loop", &vec![0u8; 3 << 20]);
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&backing)
        .output();
    let dev = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            eprintln!("not supported here: losetup needs root and the loop module");
            std::fs::remove_file(backing).unwrap();
            return;
        }
    };
    let disk = open(&drive(Path::new(&dev), DiskFormat::Raw));
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    std::fs::remove_file(backing).unwrap();
    assert_eq!(disk.unwrap().size(), 3 << 20);
}

fn qcow2_over(name: &str, backing: &Path, backing_format: Option<&str>) -> PathBuf {
    let path = std::env::temp_dir().join(format!("minnow-disk-{name}-{}.qcow2", std::process::id()));
    let b = backing.to_string_lossy();
    let mut args = vec!["create", "-q", "-f", "qcow2", "-b", &b];
    if let Some(f) = backing_format {
        args.extend(["-F", f]);
    }
    let p = path.to_string_lossy().into_owned();
    args.push(&p);
    if backing_format.is_none() {
        // qemu-img refuses to make such an image now; old images have them: write the name
        // into a fresh image's header instead.
        qemu_img(&["create", "-q", "-f", "qcow2", &p, "1M"]);
        set_backing_name(&path, &b);
    } else {
        qemu_img(&args);
    }
    path
}

/// Points a qcow2 header's backing file at `name` (no format extension), as old images are.
fn set_backing_name(image: &Path, name: &str) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .unwrap();
    let at: u64 = 0x400; // inside the header cluster, past the header and its extensions
    f.write_all_at(name.as_bytes(), at).unwrap();
    f.write_all_at(&at.to_be_bytes(), 8).unwrap();
    f.write_all_at(&(name.len() as u32).to_be_bytes(), 16).unwrap();
}

#[test]
fn a_qcow2_overlay_reads_its_backing_chain_read_only_and_locks_it() {
    let base = temp_image("base.raw", &[0xBB; 1 << 20]);
    let top = qcow2_over("overlay", &base, Some("raw"));
    let mut disk = open(&drive(&top, DiskFormat::Qcow2)).unwrap();
    let mut buf = [0u8; 16];
    disk.read_at(&mut buf, 4096).unwrap();
    assert_eq!(buf, [0xBB; 16], "unwritten clusters read from the backing file");
    disk.write_at(&[0x11; 512], 4096).unwrap();
    disk.close().unwrap();
    // The backing file is in use: nobody may write it meanwhile.
    let out = Command::new("qemu-io")
        .args(["-f", "raw", "-c", "write 0 512"])
        .arg(&base)
        .output();
    if let Ok(o) = out {
        assert!(
            !o.status.success(),
            "the backing file could be written while in use"
        );
    }
    drop(disk);
    assert!(
        std::fs::read(&base).unwrap().iter().all(|&b| b == 0xBB),
        "the backing file changed"
    );
    assert!(qemu_img(&["check", &top.to_string_lossy()]).contains("No errors"));
    std::fs::remove_file(base).unwrap();
    std::fs::remove_file(top).unwrap();
}

/// A raw backing file a guest wrote a qcow2 header into stays raw: its format is never guessed.
#[test]
fn a_backing_file_without_a_format_is_refused_not_probed() {
    let fake = temp_image("fake.raw", &[0u8; 1 << 20]);
    // What a guest could write at the start of its raw disk.
    qemu_img(&["create", "-q", "-f", "qcow2", &fake.to_string_lossy(), "1M"]);
    let top = qcow2_over("noformat", &fake, None);
    let e = open(&drive(&top, DiskFormat::Qcow2))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("has no format") && e.contains("qemu-img rebase -u -F raw"),
        "{e}"
    );
    // The user may name it: then it is what the user says, header or not.
    let named = Drive {
        backing: Some((fake.clone(), DiskFormat::Raw)),
        ..drive(&top, DiskFormat::Qcow2)
    };
    let mut disk = open(&named).unwrap();
    let mut magic = [0u8; 4];
    disk.read_at(&mut magic, 0).unwrap();
    assert_eq!(&magic, b"QFI\xfb", "read as raw bytes");
    drop(disk);
    std::fs::remove_file(fake).unwrap();
    std::fs::remove_file(top).unwrap();
}

#[test]
fn an_external_data_file_is_never_opened() {
    let data = temp_image("data.raw", &[0u8; 1 << 20]);
    let top = std::env::temp_dir().join(format!("minnow-disk-extdata-{}.qcow2", std::process::id()));
    let opts = format!("data_file={}", data.display());
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        &opts,
        &top.to_string_lossy(),
        "1M",
    ]);
    let e = open(&drive(&top, DiskFormat::Qcow2))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("external file") && e.contains(&data.display().to_string()),
        "{e}"
    );
    std::fs::remove_file(data).unwrap();
    std::fs::remove_file(top).unwrap();
}

/// cache=unsafe skips the guest's flushes, but the metadata still reaches the file at exit.
#[test]
fn a_qcow2_image_closed_under_cache_unsafe_checks_clean() {
    let path = std::env::temp_dir().join(format!("minnow-disk-unsafe-{}.qcow2", std::process::id()));
    qemu_img(&["create", "-q", "-f", "qcow2", &path.to_string_lossy(), "4M"]);
    let d = Drive {
        cache: CacheMode::Unsafe,
        ..drive(&path, DiskFormat::Qcow2)
    };
    let mut disk = open(&d).unwrap();
    for i in 0..32u64 {
        disk.write_at(&[i as u8 + 1; 4096], i * 65536).unwrap();
    }
    disk.flush().unwrap();
    disk.close().unwrap();
    drop(disk);
    assert!(qemu_img(&["check", &path.to_string_lossy()]).contains("No errors"));
    let map = qemu_img(&["map", "--output=json", &path.to_string_lossy()]);
    assert!(map.matches("\"data\": true").count() >= 1, "{map}");
    std::fs::remove_file(path).unwrap();
}

/// `snapshot=on`: the guest reads the image and its own writes; the image never changes; a
/// second VM may open the same image the same way at once (clones share one base disk), while
/// a writer is still kept out.
#[test]
fn snapshot_on_writes_to_a_throwaway_overlay_and_leaves_the_image_alone() {
    for format in [DiskFormat::Raw, DiskFormat::Qcow2] {
        let raw = temp_image(&format!("snap-{format:?}"), &[0x5A; 3 * 65536]);
        let path = match format {
            DiskFormat::Raw => raw.clone(),
            DiskFormat::Qcow2 => {
                let q = raw.with_extension("qcow2");
                qemu_img(&[
                    "convert",
                    "-f",
                    "raw",
                    "-O",
                    "qcow2",
                    raw.to_str().unwrap(),
                    q.to_str().unwrap(),
                ]);
                q
            }
        };
        let before = std::fs::read(&path).unwrap();
        let d = Drive {
            snapshot: true,
            ..drive(&path, format)
        };
        let mut one = open(&d).unwrap();
        let mut two = open(&d).unwrap();
        assert_eq!(one.size(), 3 * 65536);
        one.write_at(b"clone one", 65536 + 512).unwrap();
        one.write_zeroes(0, 4096).unwrap();
        one.flush().unwrap();
        let mut buf = [0u8; 9];
        one.read_at(&mut buf, 65536 + 512).unwrap();
        assert_eq!(&buf, b"clone one");
        one.read_at(&mut buf, 65536 + 512 - 9).unwrap();
        assert_eq!(
            buf, [0x5A; 9],
            "{format:?}: the rest of the cluster is the image's"
        );
        one.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0; 9]);
        two.read_at(&mut buf, 65536 + 512).unwrap();
        assert_eq!(
            buf, [0x5A; 9],
            "{format:?}: a second overlay sees none of the first's writes"
        );
        one.close().unwrap();
        drop((one, two));
        assert!(
            std::fs::read(&path).unwrap() == before,
            "{format:?}: the image changed"
        );
        let writer = open(&drive(&path, format)).unwrap();
        let err = open(&d)
            .err()
            .expect("an image with a writer is refused")
            .to_string();
        assert!(err.contains("lock"), "{err}");
        drop(writer);
        std::fs::remove_file(&raw).unwrap();
        let _ = std::fs::remove_file(raw.with_extension("qcow2"));
    }
}
