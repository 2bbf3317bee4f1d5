//! `cargo xtask guest`: the guest the boot tests run, cached outside the work tree.
//!
//! * `vmlinuz`: Debian's cloud kernel (a bzImage), from the package `linux-image-cloud-amd64`
//!   currently points at;
//! * `vmlinux`: the ELF inside that bzImage, for PVH boots;
//! * `initramfs.cpio`: busybox and an `/init` that prints `MINNOW-INIT ...` lines, then powers off.
//!
//! Every step is skipped when its output is already there and valid.
use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "guest_bzimage.rs"]
pub(crate) mod bzimage;
#[path = "guest_cpio.rs"]
pub(crate) mod cpio;
#[path = "guest_modules.rs"]
pub(crate) mod modules;

/// The meta package that names the current cloud kernel.
const META_PACKAGE: &str = "linux-image-cloud-amd64";
/// Records which package `vmlinuz` came from, so a newer kernel in apt replaces it.
const KERNEL_STAMP: &str = "vmlinuz.package";
const BUSYBOX: &str = "/bin/busybox";

/// The guest's `/init`. The boot tests parse these lines; keep them in step with tests/.
const INIT_SCRIPT: &str = include_str!("guest_init.sh");

/// Prepares the kernel, its PVH ELF and the initramfs, and returns the cache directory.
pub fn prepare() -> Result<PathBuf> {
    let dir = cache_dir()?;
    fs::create_dir_all(&dir).with_context(|| format!("creating the cache directory {}", dir.display()))?;
    eprintln!("[guest] cache: {}", dir.display());
    let vmlinuz = fetch_kernel(&dir)?;
    extract_pvh(&dir, &vmlinuz)?;
    let modules = modules::prepare(&dir, modules::TEST_GUEST)?;
    build_initramfs(&dir, &modules)?;
    Ok(dir)
}

/// $MINNOW_CACHE, else $XDG_CACHE_HOME/minnow, else ~/.cache/minnow (tests/src/prerequisites.rs has the same rule).
pub fn cache_dir() -> Result<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name))
}

fn cache_dir_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf> {
    let var = |name| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("MINNOW_CACHE") {
        return Ok(dir);
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("minnow"));
    }
    match var("HOME") {
        Some(home) => Ok(home.join(".cache/minnow")),
        None => bail!("no cache directory: set MINNOW_CACHE (or HOME)"),
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Writes through a temporary file, so an interrupted run never leaves a truncated output behind.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Runs a command, turning "not installed" and failures into one line that says what to do.
pub(crate) fn run(cmd: &mut Command, fix: &str) -> Result<Output> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{name} not found: `bash scripts/setup.sh` installs what the tasks need")
        }
        Err(e) => return Err(e).with_context(|| format!("running {name}")),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let args: Vec<_> = cmd.get_args().map(OsStr::to_string_lossy).collect();
        bail!(
            "`{name} {}` failed ({}): {why}; {fix}",
            args.join(" "),
            out.status
        );
    }
    Ok(out)
}

/// The versioned kernel package a meta package (`linux-image-cloud-amd64`) depends on, as
/// ("linux-image-...", "6.1.x-y").
pub(crate) fn resolve_kernel_package(meta: &str) -> Result<(String, String)> {
    let fix = "run `apt-get update` (as root) so apt knows the Debian package lists";
    let out = run(
        Command::new("apt-cache").args(["show", "--no-all-versions", meta]),
        fix,
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let depends = text
        .lines()
        .find_map(|l| l.strip_prefix("Depends:"))
        .unwrap_or("");
    // e.g. "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"
    for dep in depends.split([',', '|']) {
        let mut words = dep.split_whitespace();
        let Some(name) = words.next().filter(|n| n.starts_with("linux-image-")) else {
            continue;
        };
        let rest: String = words.collect();
        let version = rest
            .strip_prefix("(=")
            .and_then(|v| v.strip_suffix(')'))
            .unwrap_or("");
        return Ok((name.to_string(), version.to_string()));
    }
    bail!("`apt-cache show {meta}` names no linux-image package; {fix}")
}

/// True if `path` holds a bzImage whose payload we can locate.
fn valid_bzimage(path: &Path) -> bool {
    fs::read(path).is_ok_and(|bz| bzimage::payload(&bz).is_ok())
}

/// Downloads and unpacks the cloud kernel unless the cached one is current. Returns its path.
fn fetch_kernel(dir: &Path) -> Result<PathBuf> {
    let vmlinuz = dir.join("vmlinuz");
    let stamp_path = dir.join(KERNEL_STAMP);
    let stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
    let (pkg, version) = match resolve_kernel_package(META_PACKAGE) {
        Ok(found) => found,
        // Offline, or apt lists gone: a kernel fetched earlier is still good enough.
        Err(e) if !stamp.is_empty() && valid_bzimage(&vmlinuz) => {
            eprintln!("[guest] warning: {e:#}");
            eprintln!(
                "[guest] kernel: keeping the cached {} ({})",
                stamp.trim(),
                vmlinuz.display()
            );
            return Ok(vmlinuz);
        }
        Err(e) => return Err(e),
    };
    let want = if version.is_empty() {
        pkg.clone()
    } else {
        format!("{pkg}={version}")
    };
    if stamp.trim() == want && valid_bzimage(&vmlinuz) {
        let size = fs::metadata(&vmlinuz).map(|m| m.len()).unwrap_or(0);
        eprintln!("[guest] kernel: {want} (cached, {})", mib(size as usize));
        return Ok(vmlinuz);
    }

    let deb = match find_deb(dir, &pkg, &version)? {
        Some(deb) => {
            eprintln!("[guest] {} already downloaded", deb.display());
            deb
        }
        None => {
            eprintln!("[guest] apt-get download {want} ...");
            run(
                Command::new("apt-get")
                    .arg("download")
                    .arg(&want)
                    .current_dir(dir),
                "check that apt can reach the Debian mirror (`apt-get update`)",
            )?;
            let deb = find_deb(dir, &pkg, &version)?
                .with_context(|| format!("apt-get download {want} left no .deb in {}", dir.display()))?;
            let size = fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
            eprintln!("[guest] downloaded {} ({})", deb.display(), mib(size as usize));
            deb
        }
    };

    let unpacked = dir.join("deb.unpacked");
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked).with_context(|| format!("removing {}", unpacked.display()))?;
    }
    eprintln!("[guest] dpkg-deb -x {} ...", deb.display());
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
        &format!("delete {} and run `cargo xtask guest` again", deb.display()),
    )?;
    let boot = unpacked.join("boot");
    let image = fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{} has no boot/vmlinuz-*", deb.display()))?;
    let bz = fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
    let p = bzimage::payload(&bz).with_context(|| format!("{} is not a usable bzImage", image.display()))?;
    eprintln!(
        "[guest] vmlinuz: {} (bzImage, boot protocol {}.{:02}, {} payload at {:#x})",
        mib(bz.len()),
        p.protocol >> 8,
        p.protocol & 0xFF,
        p.compression.name(),
        p.file_offset
    );
    write_atomic(&vmlinuz, &bz)?;
    write_atomic(&stamp_path, format!("{want}\n").as_bytes())?;
    // The modules are not needed; the .deb stays so a lost vmlinuz is rebuilt without a download.
    fs::remove_dir_all(&unpacked).with_context(|| format!("removing {}", unpacked.display()))?;
    Ok(vmlinuz)
}

/// The downloaded package file, if present: apt names it `<pkg>_<version>_<arch>.deb`, with the
/// version's ':' written as "%3a".
fn find_deb(dir: &Path, pkg: &str, version: &str) -> Result<Option<PathBuf>> {
    let prefix = match version {
        "" => format!("{pkg}_"),
        v => format!("{pkg}_{}_", v.replace(':', "%3a")),
    };
    let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
        p.file_name()
            .map(|n| n.to_string_lossy())
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
    }))
}

/// Writes `vmlinux` (the PVH-bootable ELF) unless a valid one newer than `vmlinuz` exists.
fn extract_pvh(dir: &Path, vmlinuz: &Path) -> Result<()> {
    let out = dir.join("vmlinux");
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(elf_time), Some(bz_time)) = (mtime(&out), mtime(vmlinuz)) {
        if elf_time >= bz_time {
            if let Ok(elf) = fs::read(&out) {
                if let Ok(entry) = bzimage::pvh_entry(&elf) {
                    eprintln!(
                        "[guest] vmlinux: cached ({}, PVH entry {entry:#x})",
                        mib(elf.len())
                    );
                    return Ok(());
                }
            }
        }
    }
    let bz = fs::read(vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let p =
        bzimage::payload(&bz).with_context(|| format!("{} is not a usable bzImage", vmlinuz.display()))?;
    eprintln!(
        "[guest] decompressing the {} {} payload of {} ...",
        mib(p.stream.len()),
        p.compression.name(),
        vmlinuz.display()
    );
    let v = bzimage::extract_vmlinux(&bz)
        .with_context(|| format!("extracting vmlinux from {}", vmlinuz.display()))?;
    write_atomic(&out, &v.elf)?;
    eprintln!(
        "[guest] vmlinux: {} ELF from {} {}, PVH entry {:#x} ({} bytes of relocation data dropped)",
        mib(v.elf.len()),
        mib(v.compressed_len),
        v.compression.name(),
        v.pvh_entry,
        v.trailing
    );
    Ok(())
}

/// Checks that busybox is the static build: a dynamic one would find no libc in the initramfs.
fn check_static(elf: &[u8]) -> Result<()> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let hdr = object::elf::FileHeader64::<object::Endianness>::parse(elf).context("not an ELF64 file")?;
    let e = hdr.endian().context("ELF byte order")?;
    let phs = hdr.program_headers(e, elf).context("ELF program headers")?;
    if phs.iter().any(|ph| ph.p_type(e) == object::elf::PT_INTERP) {
        bail!("{BUSYBOX} is dynamically linked: apt-get install busybox-static");
    }
    Ok(())
}

/// The initramfs contents, built in memory (the archive is deterministic).
/// `tools` are guest-tools programs, (name, bytes), installed in /bin.
fn initramfs_archive(
    busybox: &[u8],
    tools: &[(&str, &[u8])],
    modules: &[(String, Vec<u8>)],
) -> Result<Vec<u8>> {
    let mut c = cpio::Newc::new();
    for d in ["bin", "dev", "proc", "sys"] {
        c.dir(d, 0o755)?;
    }
    // Linux opens /dev/console for init before anything could mount devtmpfs: without this
    // node init runs with no stdout and the MINNOW-INIT lines are lost.
    c.char_dev("dev/console", 0o600, 5, 1)?;
    c.file("bin/busybox", 0o755, busybox)?;
    for (name, bytes) in tools {
        c.file(&format!("bin/{name}"), 0o755, bytes)?;
    }
    c.dir("lib", 0o755)?;
    c.dir("lib/modules", 0o755)?;
    for (name, bytes) in modules {
        c.file(&format!("lib/modules/{name}"), 0o644, bytes)?;
    }
    c.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    Ok(c.finish())
}

/// Builds guest-tools (`boot-done`, `vsock-echo`) static (musl), for the guest and the nested
/// host; returns the directory that holds them.
pub fn build_guest_tools() -> Result<PathBuf> {
    let target = crate::minnow_bin::STATIC_TARGET;
    let root = crate::workspace_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "minnow-guest-tools",
            "--target",
            target,
        ])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!(
            "building guest-tools for {target} failed (is the target installed? `rustup target add {target}`)"
        );
    }
    Ok(root.join("target").join(target).join("release"))
}

fn build_initramfs(dir: &Path, module_paths: &[PathBuf]) -> Result<()> {
    let busybox = match fs::read(BUSYBOX) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{BUSYBOX} is missing: apt-get install busybox-static")
        }
        Err(e) => return Err(e).with_context(|| format!("reading {BUSYBOX}")),
    };
    check_static(&busybox).with_context(|| format!("checking {BUSYBOX}"))?;
    let tools = build_guest_tools()?;
    let boot_done = fs::read(tools.join("boot-done")).context("reading boot-done")?;
    let vsock_echo = fs::read(tools.join("vsock-echo")).context("reading vsock-echo")?;
    let modules = module_paths
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            fs::read(p)
                .map(|b| (name, b))
                .with_context(|| format!("reading {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let archive = initramfs_archive(
        &busybox,
        &[("boot-done", &boot_done), ("vsock-echo", &vsock_echo)],
        &modules,
    )?;
    let out = dir.join("initramfs.cpio");
    if fs::read(&out).is_ok_and(|old| old == archive) {
        eprintln!("[guest] initramfs.cpio: up to date ({})", mib(archive.len()));
        return Ok(());
    }
    eprintln!(
        "[guest] writing initramfs.cpio (busybox {}, /init, /dev/console) ...",
        mib(busybox.len())
    );
    write_atomic(&out, &archive)?;
    eprintln!("[guest] initramfs.cpio: {}", mib(archive.len()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_rule() {
        fn with(vars: &[(&str, &str)]) -> Result<PathBuf> {
            cache_dir_from(|n| vars.iter().find(|v| v.0 == n).map(|v| v.1.into()))
        }
        let all = [("MINNOW_CACHE", "/m"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(with(&all).unwrap(), Path::new("/m"));
        assert_eq!(with(&all[1..]).unwrap(), Path::new("/x/minnow"));
        assert_eq!(
            with(&[("MINNOW_CACHE", ""), ("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]).unwrap(),
            Path::new("/h/.cache/minnow")
        );
        assert!(with(&[]).is_err());
    }

    #[test]
    fn init_script_prints_the_markers_and_powers_off() {
        assert!(INIT_SCRIPT.starts_with("#!/bin/busybox sh\n"));
        for marker in ["cmdline=", "mem_total_kb=", "cpus=", "rtc=", "done"] {
            assert!(
                INIT_SCRIPT.contains(&format!("echo \"MINNOW-INIT {marker}")),
                "{marker}"
            );
        }
        for end in ["echo b >/proc/sysrq-trigger", "$B poweroff -f", "$B reboot -f"] {
            assert!(INIT_SCRIPT.contains(end), "{end}");
        }
        assert!(INIT_SCRIPT.trim_end().ends_with("fi"));
    }

    #[test]
    fn archive_layout() {
        let modules = [("virtio.ko".to_string(), b"\x7fELF-ko".to_vec())];
        let a = initramfs_archive(
            b"\x7fELF-busybox",
            &[("boot-done", b"\x7fELF-boot-done")],
            &modules,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&a);
        let at = |name: &str| {
            text.find(&format!("{name}\0"))
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        // Directories precede their contents, and the archive ends with the trailer.
        assert!(at("dev") < at("dev/console"));
        assert!(at("bin") < at("bin/busybox"));
        assert!(at("bin") < at("bin/boot-done"));
        assert!(at("lib/modules") < at("lib/modules/virtio.ko"));
        assert!(text.contains("#!/bin/busybox sh"));
        assert!(at("TRAILER!!!") > at("init"));
    }

    #[test]
    fn dynamic_busybox_is_refused() {
        let mut elf = bzimage::tests::tiny_elf(b"Xen", 18, &[0; 8]);
        assert!(check_static(&elf).is_ok());
        elf[64..68].copy_from_slice(&object::elf::PT_INTERP.to_le_bytes()); // the only program header
        let err = check_static(&elf).unwrap_err();
        assert!(format!("{err}").contains("busybox-static"));
    }
}
