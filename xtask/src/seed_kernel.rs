//! `cargo xtask seed-kernel`: the seed workload's guest kernel, built from Debian's
//! `linux-source` with `xtask/kernel/seed-guest.config` on top of `make tinyconfig`.
//!
//! Debian's own kernels build virtio-blk and virtio-mmio as modules and lack
//! VIRTIO_MMIO_CMDLINE_DEVICES, so they cannot boot the Ubuntu microvm guide's command line
//! (root=/dev/vda, no initramfs), and cannot find virtio devices at all without ACPI. The build
//! takes 6–10 minutes on two cores; its result is cached by source version and fragment, outside
//! the work tree (`<cache>/seed-kernel/<source>-<fragment hash>/bzImage`).
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FRAGMENT: &str = include_str!("../kernel/seed-guest.config");
const SOURCES: &str = "/usr/src";

/// The newest `/usr/src/linux-source-*.tar.xz`.
fn source_tarball() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(SOURCES)
        .with_context(|| format!("reading {SOURCES}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux-source-") && n.ends_with(".tar.xz"))
        })
        .collect();
    found.sort();
    found
        .pop()
        .context("no /usr/src/linux-source-*.tar.xz: apt-get install linux-source (scripts/setup.sh does)")
}

/// FNV-1a, enough to tell fragments apart in a directory name.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The last lines of a build log, to show with a failure.
fn last_lines(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Runs `make` in `src`, its output kept in `log`; a failure shows the log's end.
fn make(src: &Path, args: &[&str], log: &Path) -> Result<()> {
    let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = Command::new("make")
        .current_dir(src)
        .arg("ARCH=x86_64")
        .args(args)
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("running make (apt-get install build-essential)")?;
    if !status.success() {
        bail!(
            "make {} failed ({status}); the end of {}:\n{}",
            args.join(" "),
            log.display(),
            last_lines(log)
        );
    }
    Ok(())
}

/// `make bzImage`, with a progress line every 30 s (objects built so far).
fn make_bzimage(src: &Path, log: &Path) -> Result<()> {
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut child = Command::new("make")
        .current_dir(src)
        .args(["ARCH=x86_64", &format!("-j{jobs}"), "bzImage"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running make (apt-get install build-essential bc flex bison libelf-dev)")?;
    let stderr = child.stderr.take().context("make's stderr")?;
    let err_log = log.with_extension("stderr");
    let err_path = err_log.clone();
    let errors = std::thread::spawn(move || -> std::io::Result<()> {
        let mut f = fs::File::create(err_path)?;
        std::io::copy(&mut BufReader::new(stderr), &mut f).map(|_| ())
    });
    let mut out = fs::File::create(log)?;
    let start = Instant::now();
    let mut last = Instant::now();
    let mut built = 0usize;
    for line in BufReader::new(child.stdout.take().context("make's stdout")?).lines() {
        let line = line?;
        std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())?;
        if line.trim_start().starts_with("CC") {
            built += 1;
        }
        if last.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "[seed-kernel] make bzImage: {built} files compiled, {:.0} s",
                start.elapsed().as_secs_f64()
            );
            last = Instant::now();
        }
    }
    let status = child.wait()?;
    let _ = errors.join();
    if !status.success() {
        bail!("make bzImage failed ({status}):\n{}", last_lines(&err_log));
    }
    eprintln!(
        "[seed-kernel] make bzImage: {built} files in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every `CONFIG_X=y` of the fragment must have survived olddefconfig.
fn check_config(config: &str) -> Result<()> {
    let have: std::collections::HashSet<&str> = config.lines().collect();
    let lost: Vec<&str> = FRAGMENT
        .lines()
        .filter(|l| l.starts_with("CONFIG_") && l.ends_with("=y"))
        .filter(|l| !have.contains(l))
        .collect();
    if !lost.is_empty() {
        bail!(
            "the kernel configuration dropped {} (a dependency is missing from xtask/kernel/seed-guest.config)",
            lost.join(", ")
        );
    }
    Ok(())
}

/// Builds (or finds in the cache) the seed kernel; returns its bzImage.
pub fn build() -> Result<PathBuf> {
    let tarball = source_tarball()?;
    let name = tarball
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.xz"))
        .context("source tarball name")?
        .to_string();
    let out = crate::guest::cache_dir()?
        .join("seed-kernel")
        .join(format!("{name}-{:016x}", fnv(FRAGMENT)));
    let bzimage = out.join("bzImage");
    if bzimage.is_file() {
        eprintln!("[seed-kernel] {}: cached", bzimage.display());
        return Ok(bzimage);
    }
    let work = crate::guest::cache_dir()?.join("seed-kernel/src");
    let src = work.join(&name);
    if !src.join("Makefile").is_file() {
        fs::create_dir_all(&work)?;
        eprintln!(
            "[seed-kernel] unpacking {} into {} ...",
            tarball.display(),
            work.display()
        );
        let status = Command::new("tar")
            .arg("-C")
            .arg(&work)
            .arg("-xf")
            .arg(&tarball)
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("unpacking {} failed ({status})", tarball.display());
        }
    }
    fs::create_dir_all(&out)?;
    let log = out.join("build.log");
    eprintln!("[seed-kernel] make tinyconfig + xtask/kernel/seed-guest.config");
    make(&src, &["tinyconfig"], &log)?;
    let fragment = out.join("seed-guest.config");
    fs::write(&fragment, FRAGMENT)?;
    let status = Command::new("scripts/kconfig/merge_config.sh")
        .current_dir(&src)
        .env("ARCH", "x86_64")
        .args(["-m", ".config"])
        .arg(&fragment)
        .stdout(Stdio::null())
        .status()
        .context("running merge_config.sh")?;
    if !status.success() {
        bail!("merge_config.sh failed ({status})");
    }
    make(&src, &["olddefconfig"], &log)?;
    check_config(&fs::read_to_string(src.join(".config"))?)?;
    eprintln!(
        "[seed-kernel] make bzImage (6-10 minutes on two cores; log: {})",
        log.display()
    );
    make_bzimage(&src, &log)?;
    fs::copy(src.join(".config"), out.join("config"))?;
    let partial = out.join("bzImage.partial");
    fs::copy(src.join("arch/x86/boot/bzImage"), &partial)?;
    fs::rename(&partial, &bzimage)?;
    eprintln!("[seed-kernel] {}", bzimage.display());
    Ok(bzimage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_asks_for_what_the_seed_command_line_needs() {
        for needed in [
            "CONFIG_VIRTIO_MMIO=y",
            "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y",
            "CONFIG_VIRTIO_BLK=y",
            "CONFIG_EXT4_FS=y",
            "CONFIG_SERIAL_8250_CONSOLE=y",
            "CONFIG_PVH=y",
        ] {
            assert!(FRAGMENT.lines().any(|l| l == needed), "{needed}");
        }
    }

    #[test]
    fn a_lost_option_is_named() {
        let err = check_config("CONFIG_64BIT=y\n").unwrap_err().to_string();
        assert!(err.contains("CONFIG_VIRTIO_BLK=y"), "{err}");
        let all: String = FRAGMENT.lines().map(|l| format!("{l}\n")).collect();
        check_config(&all).unwrap();
    }
}
