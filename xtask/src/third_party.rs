//! `cargo xtask third-party`: systems nobody here wrote, from Debian's packages, for the tests that
//! boot them through minnow.rom: memtest86+ (x64 and ia32), iPXE's `ipxe.lkrn` (which must be
//! refused with the true reason), and Xen 4.17 with a dom0 kernel (Debian's generic kernel: the
//! cloud kernel the other tests boot is built without CONFIG_XEN_DOM0).
//!
//! Each package is fetched with `apt-get download` (no root needed) into `<cache>/third-party/`,
//! unpacked with `dpkg-deb -x`, and the files the tests use are copied out under stable names. A
//! stamp records the package version, so a newer one in apt replaces the files, and an offline
//! machine keeps what it has.
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One Debian package and the files taken from it.
struct Package {
    /// The package, or for [`Source::KernelOf`] the meta package that names the current kernel.
    source: Source,
    files: &'static [Extract],
}

#[derive(Clone, Copy)]
enum Source {
    Package(&'static str),
    /// The versioned `linux-image-*` package a meta package depends on.
    KernelOf(&'static str),
}

/// A file taken out of a package: its path inside (a trailing `*` matches the rest of a name,
/// for kernels named by version), its name in the cache, and whether it is gzipped there.
struct Extract {
    inside: &'static str,
    name: &'static str,
    gunzip: bool,
}

const fn copy(inside: &'static str, name: &'static str) -> Extract {
    Extract {
        inside,
        name,
        gunzip: false,
    }
}

const PACKAGES: &[Package] = &[
    Package {
        source: Source::Package("memtest86+"),
        files: &[
            copy("boot/memtest86+x64.bin", "memtest86+x64.bin"),
            copy("boot/memtest86+ia32.bin", "memtest86+ia32.bin"),
        ],
    },
    Package {
        source: Source::Package("ipxe"),
        files: &[copy("boot/ipxe.lkrn", "ipxe.lkrn")],
    },
    // Xen ships gzipped; multiboot loaders (QEMU's, minnow.rom's) take the ELF itself.
    Package {
        source: Source::Package("xen-hypervisor-4.17-amd64"),
        files: &[Extract {
            inside: "boot/xen-4.17-amd64.gz",
            name: "xen-4.17-amd64",
            gunzip: true,
        }],
    },
    Package {
        source: Source::KernelOf("linux-image-amd64"),
        files: &[copy("boot/vmlinuz-*", "dom0-vmlinuz")],
    },
];

/// Fetches every package (or keeps the cached files) and returns the directory that holds them.
pub fn prepare() -> Result<PathBuf> {
    let dir = crate::guest::cache_dir()?.join("third-party");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for p in PACKAGES {
        fetch(&dir, p).with_context(|| format!("fetching the Debian package {}", p.source.name()))?;
    }
    Ok(dir)
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Self::Package(n) | Self::KernelOf(n) => n,
        }
    }

    /// What `apt-get download` is given ("name=version"), or `None` when apt cannot say.
    fn resolve(self) -> Option<String> {
        match self {
            Self::Package(name) => candidate(name).map(|v| format!("{name}={v}")),
            Self::KernelOf(meta) => match crate::guest::resolve_kernel_package(meta) {
                Ok((pkg, v)) if !v.is_empty() => Some(format!("{pkg}={v}")),
                Ok((pkg, _)) => candidate(&pkg).map(|v| format!("{pkg}={v}")),
                Err(_) => None,
            },
        }
    }
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
        .all(|f| fs::metadata(dir.join(f.name)).is_ok_and(|m| m.len() > 0))
}

fn fetch(dir: &Path, p: &Package) -> Result<()> {
    let name = p.source.name();
    let stamp_path = dir.join(format!("{name}.package"));
    let stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
    let Some(want) = p.source.resolve() else {
        if have_files(dir, p) {
            eprintln!(
                "[third-party] {name}: apt cannot say which version is current; keeping {}",
                stamp.trim()
            );
            return Ok(());
        }
        bail!("`apt-cache show {name}` gives no version: run `apt-get update` (as root)");
    };
    if stamp.trim() == want && have_files(dir, p) {
        eprintln!("[third-party] {want} (cached)");
        return Ok(());
    }
    let work = dir.join(format!("{name}.download"));
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
    for f in p.files {
        let from = find(&unpacked, f.inside)?;
        extract(&from, &dir.join(f.name), f.gunzip)
            .with_context(|| format!("taking {} out of {}", from.display(), deb.display()))?;
    }
    fs::write(&stamp_path, &want)?;
    fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    eprintln!(
        "[third-party] {want}: {}",
        p.files.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// The one file at `inside` (a trailing `*` matches the rest of its name) under `unpacked`.
fn find(unpacked: &Path, inside: &str) -> Result<PathBuf> {
    let Some(prefix) = inside.strip_suffix('*') else {
        return Ok(unpacked.join(inside));
    };
    let (dir, stem) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let mut found = fs::read_dir(unpacked.join(dir))
        .with_context(|| format!("listing {dir} in the package"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(stem))
        });
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => bail!("the package has no {inside}"),
        (Some(a), Some(b)) => bail!("{inside} matches both {} and {}", a.display(), b.display()),
    }
}

fn extract(from: &Path, to: &Path, gunzip: bool) -> Result<()> {
    if !gunzip {
        fs::copy(from, to)?;
        return Ok(());
    }
    let out = crate::guest::run(Command::new("gzip").arg("-dc").arg(from), "apt-get install gzip")?;
    fs::write(to, out.stdout)?;
    Ok(())
}
