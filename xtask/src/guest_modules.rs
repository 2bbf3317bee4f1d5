//! Kernel modules from the cloud kernel's package, for guests that need more than the built-in
//! drivers: the nested KVM host loads kvm and kvm-amd from them.
//!
//! They are copied out of the cached .deb once, into `modules/<package>/`, next to the kernel
//! they belong to; a newer kernel package gets a new directory.
use super::{find_deb, mib, run, KERNEL_STAMP};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The drivers the test guest loads (Debian builds them as modules), in load order: virtio's,
/// and the ACPI power button with evdev, which makes it an input device the guest can wait on.
pub const TEST_GUEST: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio-rng",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_console",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "button",
    "evdev",
];
/// The nested KVM host's modules, in load order: KVM on AMD (QEMU TCG emulates SVM), TUN for the
/// guests' TAP interfaces, and vhost-vsock for their sockets.
pub const NESTED_HOST: &[&str] = &[
    "irqbypass",
    "kvm",
    "kvm-amd",
    "tun",
    "vhost_iotlb",
    "vhost",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vhost_vsock",
    // A host interface with a default route, which passt needs to give guests an address.
    "dummy",
];

/// Returns the paths of `names` (module names without `.ko`), in the same order, extracting them
/// from the kernel package when they are not cached yet.
pub fn prepare(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>> {
    let stamp = fs::read_to_string(dir.join(KERNEL_STAMP))
        .context("no kernel fetched yet: run `cargo xtask guest`")?;
    let package = stamp.trim().to_string();
    let out = dir.join("modules").join(package.replace('=', "_"));
    let paths: Vec<PathBuf> = names.iter().map(|n| out.join(format!("{n}.ko"))).collect();
    if paths.iter().all(|p| p.is_file()) {
        eprintln!(
            "[guest] modules: {} (cached in {})",
            names.join(", "),
            out.display()
        );
        return Ok(paths);
    }
    let (pkg, version) = package.split_once('=').unwrap_or((package.as_str(), ""));
    let deb = find_deb(dir, pkg, version)?.with_context(|| {
        format!(
            "the package {package} is gone from {}: run `cargo xtask guest`",
            dir.display()
        )
    })?;
    let unpacked = dir.join("modules.unpacked");
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked).with_context(|| format!("removing {}", unpacked.display()))?;
    }
    eprintln!(
        "[guest] dpkg-deb -x {} (for {}) ...",
        deb.display(),
        names.join(", ")
    );
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
        &format!("delete {} and run `cargo xtask guest` again", deb.display()),
    )?;
    let found = find_modules(&unpacked.join("lib/modules"))?;
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (name, dest) in names.iter().zip(&paths) {
        let Some(src) = found.iter().find(|p| module_name(p).as_deref() == Some(*name)) else {
            bail!("{} has no module {name}.ko", deb.display());
        };
        let bytes = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        super::write_atomic(dest, &bytes)?;
        eprintln!("[guest] module {name}: {}", mib(bytes.len()));
    }
    fs::remove_dir_all(&unpacked).with_context(|| format!("removing {}", unpacked.display()))?;
    Ok(paths)
}

/// The module name a file carries: `kvm-amd.ko` is `kvm-amd`.
fn module_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".ko").map(str::to_string)
}

/// Every `*.ko` under `root`.
fn find_modules(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if module_name(&path).is_some() {
                found.push(path);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_come_from_file_names() {
        assert_eq!(
            module_name(Path::new("a/b/kvm-amd.ko")).as_deref(),
            Some("kvm-amd")
        );
        assert_eq!(module_name(Path::new("a/modules.order")), None);
    }
}
