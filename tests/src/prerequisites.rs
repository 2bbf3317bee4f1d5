//! Where the ROM, the payloads and the guest files are, and checks that QEMU, KVM and those files
//! are there, each failing with the command that fixes it.
use crate::QEMU;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// $MINNOW_CACHE, else $XDG_CACHE_HOME/minnow, else ~/.cache/minnow: the rule of
/// xtask/src/guest.rs, which fills that directory.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("MINNOW_CACHE")
        .or_else(|| {
            var("XDG_CACHE_HOME")
                .filter(|p| p.is_absolute())
                .map(|p| p.join("minnow"))
        })
        .or_else(|| var("HOME").map(|h| h.join(".cache/minnow")))
}

/// The Minnow ROM: $MINNOW_ROM, else <workspace>/target/firmware/minnow.rom.
pub fn rom_path() -> PathBuf {
    std::env::var_os("MINNOW_ROM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/firmware/minnow.rom"))
}

/// The boot conformance payloads: $MINNOW_PAYLOAD_DIR, else <workspace>/target/payloads, where
/// `cargo xtask payloads` puts them.
pub fn payload_dir() -> PathBuf {
    std::env::var_os("MINNOW_PAYLOAD_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/payloads"))
}

/// Systems nobody here wrote, from Debian's packages: $MINNOW_THIRD_PARTY_DIR, else
/// `third-party/` in the cache directory, which `cargo xtask third-party` fills.
pub fn third_party_file(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::var_os("MINNOW_THIRD_PARTY_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| default_cache_dir().map(|d| d.join("third-party")))
        .ok_or("no cache directory: set MINNOW_THIRD_PARTY_DIR (or HOME)")?;
    require_file(&dir.join(name), name, "cargo xtask third-party")
}

/// Fails unless /dev/kvm can be opened for reading and writing, as QEMU's `-accel kvm` needs.
pub fn require_kvm() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| {
            format!(
                "/dev/kvm cannot be opened ({e}): this row needs KVM; load the kvm module \
                 (modprobe kvm_intel or kvm_amd) and give this user access to /dev/kvm"
            )
        })
}

/// The guest files: $MINNOW_GUEST_DIR, else the cache directory `cargo xtask guest` fills.
pub fn guest_dir() -> Result<PathBuf, String> {
    std::env::var_os("MINNOW_GUEST_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(default_cache_dir)
        .ok_or_else(|| {
            "no guest directory: set MINNOW_GUEST_DIR (or HOME); build it with `cargo xtask guest`".into()
        })
}

/// Returns `path` if it is a non-empty file, else a message naming it and the command that makes it.
pub fn require_file(path: &Path, what: &str, fix: &str) -> Result<PathBuf, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() > 0 => Ok(path.to_path_buf()),
        Ok(_) => Err(format!(
            "{what} {} is empty or not a file; rebuild it with `{fix}`",
            path.display()
        )),
        Err(e) => Err(format!(
            "{what} {} is missing ({e}); build it with `{fix}`",
            path.display()
        )),
    }
}

/// Fails unless qemu-system-x86_64 can be run.
pub fn require_qemu() -> Result<(), String> {
    match Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "`{QEMU} --version` failed ({s}); reinstall it: apt-get install qemu-system-x86"
        )),
        Err(e) => Err(format!(
            "{QEMU} cannot be run ({e}): apt-get install qemu-system-x86"
        )),
    }
}

/// The host TSC rate in kHz, for `tsc_early_khz=` (under TCG the guest reads the host's TSC).
/// $MINNOW_TSC_KHZ overrides; otherwise the first "cpu MHz" line of /proc/cpuinfo.
pub fn tsc_khz() -> Result<u64, String> {
    if let Some(v) = std::env::var("MINNOW_TSC_KHZ").ok().filter(|v| !v.is_empty()) {
        return v
            .parse()
            .map_err(|_| format!("MINNOW_TSC_KHZ={v:?} is not a number of kHz"));
    }
    let info = std::fs::read_to_string("/proc/cpuinfo").map_err(|e| format!("reading /proc/cpuinfo: {e}"))?;
    info.lines()
        .filter(|l| l.starts_with("cpu MHz"))
        .find_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .map(|mhz| (mhz * 1000.0) as u64)
        .ok_or_else(|| "no \"cpu MHz\" line in /proc/cpuinfo: set MINNOW_TSC_KHZ".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_fix() {
        let e = require_file(
            Path::new("/nonexistent/minnow.rom"),
            "Minnow ROM",
            "cargo xtask firmware",
        );
        let e = e.unwrap_err();
        assert!(
            e.contains("/nonexistent/minnow.rom") && e.contains("cargo xtask firmware"),
            "{e}"
        );
    }
}
