//! `cargo xtask third-party`: systems nobody here wrote, from Debian's packages, for the tests that
//! boot them through minnow.rom: memtest86+ (x64 and ia32), iPXE's `ipxe.lkrn` (which must be
//! refused with the true reason), and Xen.
//!
//! Each package is fetched with `apt-get download` (no root needed) into `<cache>/third-party/`,
//! unpacked with `dpkg-deb -x`, and the files the tests use are copied out under stable names. A
//! stamp records the package version, so a newer one in apt replaces the files, and an offline
//! machine keeps what it has.
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One Debian package and the files taken from it: (path inside the package, name in the cache).
struct Package {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const PACKAGES: &[Package] = &[
    Package {
        name: "memtest86+",
        files: &[
            ("boot/memtest86+x64.bin", "memtest86+x64.bin"),
            ("boot/memtest86+ia32.bin", "memtest86+ia32.bin"),
        ],
    },
    Package {
        name: "ipxe",
        files: &[("boot/ipxe.lkrn", "ipxe.lkrn")],
    },
];

/// Fetches every package (or keeps the cached files) and returns the directory that holds them.
pub fn prepare() -> Result<PathBuf> {
    let dir = crate::guest::cache_dir()?.join("third-party");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for p in PACKAGES {
        fetch(&dir, p).with_context(|| format!("fetching the Debian package {}", p.name))?;
    }
    Ok(dir)
}

/// The candidate version apt would download, or `None` when apt cannot say (offline, no lists).
fn candidate(pkg: &str) -> Option<String> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", pkg])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
}

fn have_files(dir: &Path, p: &Package) -> bool {
    p.files
        .iter()
        .all(|(_, name)| fs::metadata(dir.join(name)).is_ok_and(|m| m.len() > 0))
}

fn fetch(dir: &Path, p: &Package) -> Result<()> {
    let stamp_path = dir.join(format!("{}.package", p.name));
    let stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
    let Some(version) = candidate(p.name) else {
        if have_files(dir, p) {
            eprintln!(
                "[third-party] {}: apt cannot say which version is current; keeping {}",
                p.name,
                stamp.trim()
            );
            return Ok(());
        }
        bail!(
            "`apt-cache show {}` gives no version: run `apt-get update` (as root)",
            p.name
        );
    };
    let want = format!("{}={version}", p.name);
    if stamp.trim() == want && have_files(dir, p) {
        eprintln!("[third-party] {want} (cached)");
        return Ok(());
    }
    let work = dir.join(format!("{}.download", p.name));
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    fs::create_dir_all(&work)?;
    eprintln!("[third-party] apt-get download {want} ...");
    crate::guest::run(
        Command::new("apt-get")
            .arg("download")
            .arg(&want)
            .current_dir(&work),
        "check that apt can reach the Debian mirror (`apt-get update`)",
    )?;
    let deb = fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {want} left no .deb in {}", work.display()))?;
    let unpacked = work.join("unpacked");
    crate::guest::run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
        "apt-get install dpkg",
    )?;
    for (inside, name) in p.files {
        let from = unpacked.join(inside);
        fs::copy(&from, dir.join(name))
            .with_context(|| format!("copying {} out of {}", from.display(), deb.display()))?;
    }
    fs::write(&stamp_path, &want)?;
    fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    eprintln!(
        "[third-party] {want}: {}",
        p.files.iter().map(|f| f.1).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
