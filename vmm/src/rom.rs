//! Which firmware image the VM starts.
use crate::config::{Bios, Config};
use std::path::PathBuf;

/// Minnow's ROM, embedded when the binary was built after `cargo xtask firmware`.
#[cfg(builtin_rom)]
pub const BUILTIN: Option<&[u8]> = Some(include_bytes!(env!("MINNOW_BUILTIN_ROM")));
#[cfg(not(builtin_rom))]
pub const BUILTIN: Option<&[u8]> = None;

#[derive(Debug, thiserror::Error)]
pub enum RomError {
    #[error(
        "this minnow was built without its ROM: run `cargo xtask firmware` and rebuild, or pass -bios FILE"
    )]
    NoBuiltin,
    #[error("reading the ROM {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// The ROM image to map, or `None` for direct boot. A `-bios` name without a path is looked
/// up in the data directories, as QEMU does (`-bios qboot.rom`).
pub fn image(c: &Config) -> Result<Option<Vec<u8>>, RomError> {
    match &c.bios {
        Bios::Builtin => BUILTIN.map(|r| Some(r.to_vec())).ok_or(RomError::NoBuiltin),
        Bios::File(path) => {
            let found = path.to_str().and_then(|name| crate::option_roms::find(c, name));
            let path = found.as_ref().unwrap_or(path);
            std::fs::read(path).map(Some).map_err(|source| RomError::Read {
                path: path.clone(),
                source,
            })
        }
        Bios::None => Ok(None),
    }
}
