//! The seed workload's disk, `hello.qcow2`: an ext4 file system holding guest-tools' static
//! `hello` at /usr/bin/hello (the guide's init=), made with Debian's tools, `mkfs.ext4 -d` and
//! `qemu-img convert`, into target/seed/.
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Room for the program and the file system's own metadata.
const SIZE: &str = "16M";

fn run(cmd: &mut Command, what: &str, fix: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what} ({fix})"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Builds hello.qcow2 around the static `hello` binary; returns its path.
pub fn build(hello: &Path) -> Result<PathBuf> {
    let dir = crate::workspace_root().join("target/seed");
    let root = dir.join("root");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    // /dev is where the kernel mounts devtmpfs, which gives init its console.
    for d in ["usr/bin", "dev", "proc", "sys"] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy(hello, root.join("usr/bin/hello")).with_context(|| format!("copying {}", hello.display()))?;
    let raw = dir.join("hello.raw");
    let qcow2 = dir.join("hello.qcow2");
    let _ = fs::remove_file(&raw);
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "hello", "-E", "root_owner=0:0", "-d"])
            .arg(&root)
            .arg(&raw)
            .arg(SIZE),
        "mkfs.ext4",
        "apt-get install e2fsprogs",
    )?;
    run(
        Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow2),
        "qemu-img convert",
        "apt-get install qemu-utils",
    )?;
    fs::remove_file(&raw)?;
    eprintln!(
        "[seed] {} (ext4 with /usr/bin/hello, {} bytes)",
        qcow2.display(),
        fs::metadata(&qcow2)?.len()
    );
    Ok(qcow2)
}
