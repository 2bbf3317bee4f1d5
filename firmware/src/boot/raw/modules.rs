//! Multiboot modules on the fw_cfg route: `opt/org.minnow/module/0`, `/1`, ... in order, each with
//! an optional command line in `opt/org.minnow/module/N/cmdline`; or, as before, the single
//! `opt/org.minnow/initrd`. Xen needs two (the dom0 kernel and its initrd), each with its own line.
//!
//! Every string a multiboot kernel gets starts with the image's name, as QEMU's `-kernel` and
//! GRUB legacy give them: "opt/org.minnow/module/0 console=hvc0". Kernels that assume it drop the
//! first word (Xen does unless the loader calls itself GRUB 2); without the name they would drop
//! the first option instead.
use super::super::multiboot2::STRING_MAX;
use super::super::{load_checked, write_named_string, Env};
use crate::error::BootError;
use crate::fw_cfg::File;
use crate::layout;
use minnow_bootproto::fw_cfg::file;

/// Most modules a kernel gets (the multiboot 1 module list has room for 16).
pub const MAX_MODULES: usize = 16;
/// Longest fw_cfg name built here ("opt/org.minnow/module/15/cmdline" is 32 bytes).
const NAME_MAX: usize = 40;

/// One loaded module: `[start, end)` in RAM and its NUL-terminated string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    pub string: u64,
}

/// The modules loaded, in order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Modules {
    list: [Module; MAX_MODULES],
    len: usize,
}

impl Modules {
    pub fn as_slice(&self) -> &[Module] {
        &self.list[..self.len]
    }
}

/// A fw_cfg name assembled from parts, on the stack.
struct Name {
    buf: [u8; NAME_MAX],
    len: usize,
}

impl Name {
    fn module(index: usize, suffix: &str) -> Self {
        let mut n = Self {
            buf: [0; NAME_MAX],
            len: 0,
        };
        n.push(file::MINNOW_MODULE_PREFIX.as_bytes());
        if index >= 10 {
            n.push(&[b'0' + (index / 10) as u8]);
        }
        n.push(&[b'0' + (index % 10) as u8]);
        n.push(suffix.as_bytes());
        n
    }
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Whether any `opt/org.minnow/module/N` is present (kernels that take one initrd refuse them).
pub fn any(env: &Env) -> bool {
    env.cfg.file_bytes(Name::module(0, "").as_bytes()).is_some()
}

/// Loads every module, page-aligned, as high as each fits below `limit` and clear of the kernel
/// at `kernel` and of each other; writes their strings to `layout::MODULE_STRINGS`.
pub fn load(env: &mut Env, limit: u64, kernel: (u64, u64)) -> Result<Modules, BootError> {
    let initrd = env.cfg.file(file::MINNOW_INITRD);
    if initrd.is_some() && any(env) {
        return Err(BootError::InitrdAndModules);
    }
    let mut modules = Modules::default();
    let mut strings = Strings {
        at: layout::MODULE_STRINGS,
    };
    if let Some(f) = initrd {
        let (start, end) = place(env, &modules, limit, kernel, f)?;
        let string = strings.add(env, file::MINNOW_INITRD.as_bytes(), None)?;
        modules.list[0] = Module { start, end, string };
        modules.len = 1;
        return Ok(modules);
    }
    for index in 0.. {
        let name = Name::module(index, "");
        let Some(f) = env.cfg.file_bytes(name.as_bytes()) else {
            break;
        };
        if index == MAX_MODULES {
            return Err(BootError::TooManyModules(MAX_MODULES));
        }
        let (start, end) = place(env, &modules, limit, kernel, f)?;
        let cmdline = env
            .cfg
            .file_bytes(Name::module(index, file::MINNOW_MODULE_CMDLINE_SUFFIX).as_bytes());
        let string = strings.add(env, name.as_bytes(), cmdline)?;
        modules.list[index] = Module { start, end, string };
        modules.len = index + 1;
    }
    Ok(modules)
}

/// Finds room for module `f` and loads it there.
fn place(
    env: &mut Env,
    loaded: &Modules,
    limit: u64,
    kernel: (u64, u64),
    f: File,
) -> Result<(u64, u64), BootError> {
    let size = u64::from(f.size);
    let mut avoid = [(0u64, 0u64); MAX_MODULES + 1];
    avoid[0] = (kernel.0, kernel.1.saturating_sub(kernel.0));
    for (slot, m) in avoid[1..].iter_mut().zip(loaded.as_slice()) {
        *slot = (m.start, m.end - m.start);
    }
    let start = env
        .map
        .highest_fit_avoiding(size, 4096, limit, &avoid)
        .ok_or(BootError::DoesNotFit {
            what: "multiboot module",
            start: 0,
            end: size,
        })?;
    load_checked(env, "multiboot module", f.key, 0, start, f.size)?;
    Ok((start, start + size))
}

/// Appends NUL-terminated module strings in `layout::MODULE_STRINGS`.
struct Strings {
    at: u64,
}

impl Strings {
    /// Writes "`name` `cmdline`" (or just the name) and returns its address.
    fn add(&mut self, env: &mut Env, name: &[u8], cmdline: Option<File>) -> Result<u64, BootError> {
        let start = self.at;
        // Room for the string and its NUL.
        let max = (STRING_MAX as u64)
            .min(layout::MODULE_STRINGS_END - start)
            .saturating_sub(1);
        let item = cmdline.map(|f| (f.key, f.size));
        let nul = write_named_string(env, "module command line", start, name, item, max)?;
        self.at = nul + 1;
        Ok(start)
    }
}

#[cfg(test)]
mod tests;
