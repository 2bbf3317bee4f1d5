//! QEMU's firmware data directory and the option ROMs microvm serves from it
//! (`x-option-roms=on`, the default): `genroms/linuxboot_dma.bin`, `pvh.bin` or
//! `multiboot_dma.bin` for the `-kernel` format, and a `bootorder` that boots it first. SeaBIOS
//! boots `-kernel` only through them; minnow.rom and qboot load the kernel themselves and ignore
//! them.
//!
//! The ROMs are QEMU's own (Debian's qemu-system-data), read at start from `-L` directories and
//! then QEMU's default data directory, never copied into Minnow.
use crate::config::{Bios, Config};
use crate::kernel_layout::KernelFormat;
use std::path::{Path, PathBuf};

/// Searched after the `-L` directories, as QEMU's own build searches its data directory.
pub const DEFAULT_DATA_DIRS: &[&str] = &["/usr/share/qemu", "/usr/local/share/qemu"];

/// Where `name` is: itself when it names a path (it has a '/', or exists), else the first data
/// directory holding it, as QEMU finds `-bios qboot.rom`.
pub fn find(c: &Config, name: &str) -> Option<PathBuf> {
    let direct = Path::new(name);
    if name.contains('/') || direct.exists() {
        return direct.exists().then(|| direct.to_path_buf());
    }
    c.data_dirs
        .iter()
        .map(PathBuf::as_path)
        .chain(DEFAULT_DATA_DIRS.iter().map(Path::new))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The option ROM QEMU's microvm offers for a kernel format.
pub fn for_format(format: KernelFormat) -> &'static str {
    match format {
        KernelFormat::BzImage { .. } => "linuxboot_dma.bin",
        KernelFormat::Pvh => "pvh.bin",
        KernelFormat::Multiboot => "multiboot_dma.bin",
    }
}

/// QEMU's `bootorder` for one device path: entries separated by '\n', the last ended by NUL.
pub fn bootorder(rom: &str) -> Vec<u8> {
    format!("/rom@genroms/{rom}\0").into_bytes()
}

/// The option ROM to serve for `format`, as (fw_cfg file name, bytes); None when
/// `x-option-roms=off` or QEMU's copy is not installed. A user-chosen firmware that may need it
/// (SeaBIOS) gets a warning when it is missing.
pub fn load(c: &Config, format: KernelFormat) -> Option<(String, Vec<u8>)> {
    if !c.machine.option_roms {
        return None;
    }
    let name = for_format(format);
    match find(c, name).and_then(|p| std::fs::read(p).ok()) {
        Some(bytes) => Some((format!("genroms/{name}"), bytes)),
        None => {
            if matches!(c.bios, Bios::File(_)) {
                crate::report!(
                    "warning: no option ROM {name} (x-option-roms): a firmware that boots -kernel \
                     through QEMU's option ROMs, like SeaBIOS, will not find the kernel; install \
                     qemu-system-data or pass -L DIR"
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_search_the_data_directories_and_paths_are_taken_as_given() {
        let dir = std::env::temp_dir().join(format!("minnow-datadir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x-test.bin"), b"rom").unwrap();
        let c = Config {
            data_dirs: vec![dir.clone()],
            ..Config::default()
        };
        assert_eq!(find(&c, "x-test.bin"), Some(dir.join("x-test.bin")));
        assert_eq!(find(&c, "no-such-rom.bin"), None);
        let path = dir.join("x-test.bin");
        assert_eq!(
            find(&Config::default(), path.to_str().unwrap()),
            Some(path.clone())
        );
        assert_eq!(find(&c, "/nonexistent/x-test.bin"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_kernel_format_has_qemus_rom_and_boot_order() {
        assert_eq!(for_format(KernelFormat::Pvh), "pvh.bin");
        assert_eq!(
            for_format(KernelFormat::BzImage { protocol: 0x20f }),
            "linuxboot_dma.bin"
        );
        assert_eq!(for_format(KernelFormat::Multiboot), "multiboot_dma.bin");
        assert_eq!(bootorder("pvh.bin"), b"/rom@genroms/pvh.bin\0");
    }
}
