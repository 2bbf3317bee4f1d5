//! Why a boot failed. Each variant prints as the one line a user sees on COM1.
use crate::acpi_loader::AcpiError;
use crate::fw_cfg::FwCfgError;
use crate::memory_map::MapError;
use minnow_bootproto::elf::ElfError;
use minnow_bootproto::linux::HeaderError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    NoKernel,
    LinuxHeader(HeaderError),
    /// An ELF kernel without XEN_ELFNOTE_PHYS32_ENTRY (and no multiboot header).
    NoPvhNote,
    UnknownFormat,
    /// `what` would occupy `start..end`, which is not RAM.
    DoesNotFit {
        what: &'static str,
        start: u64,
        end: u64,
    },
    /// `what` would be loaded over memory the firmware is using.
    OverlapsFirmware {
        what: &'static str,
        start: u64,
        end: u64,
    },
    Elf(ElfError),
    /// An ELF kernel for a machine other than x86.
    ElfMachine(u16),
    /// An ELF kernel with more program headers than the firmware reads.
    ElfSegments(u16),
    /// A PVH note whose descriptor is shorter than the 4-byte entry.
    PvhNoteTruncated,
    Multiboot(&'static str),
    /// A multiboot2 kernel requires an information tag we do not provide.
    Multiboot2Request(u32),
    CmdlineTooLong {
        len: u64,
        max: u64,
    },
    /// More than `raw::modules::MAX_MODULES` multiboot modules.
    TooManyModules(usize),
    /// `opt/org.minnow/module/N` given to a kernel that takes one initrd (Linux, PVH).
    ModulesNeedMultiboot,
    /// Both `opt/org.minnow/initrd` and `opt/org.minnow/module/0`.
    InitrdAndModules,
    FwCfg(FwCfgError),
    Map(MapError),
    Acpi(AcpiError),
}

macro_rules! from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for BootError {
            fn from(e: $t) -> Self { Self::$v(e) }
        }
    )*};
}
from!(FwCfgError => FwCfg, MapError => Map, AcpiError => Acpi, ElfError => Elf, HeaderError => LinuxHeader);

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoKernel => write!(
                f,
                "no kernel in fw_cfg: pass -kernel FILE, or -fw_cfg name=opt/org.minnow/kernel,file=FILE"
            ),
            Self::LinuxHeader(e @ HeaderError::NoProtectedModeEntry(_)) => write!(f, "kernel is {e}"),
            Self::LinuxHeader(e) => write!(f, "corrupt Linux setup header: {e}"),
            Self::NoPvhNote => write!(
                f,
                "ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) and no multiboot header"
            ),
            Self::UnknownFormat => write!(
                f,
                "kernel is not a bzImage, an ELF with a PVH note, or a multiboot image"
            ),
            Self::DoesNotFit { what, start, end } => {
                write!(
                    f,
                    "{what} at {start:#x}..{end:#x} does not fit in RAM: give the VM more memory (-m)"
                )
            }
            Self::OverlapsFirmware { what, start, end } => {
                write!(
                    f,
                    "{what} at {start:#x}..{end:#x} overlaps memory the firmware is using"
                )
            }
            Self::Elf(e) => write!(f, "bad ELF kernel: {e}"),
            Self::ElfMachine(m) => write!(f, "ELF kernel for machine {m}, not x86"),
            Self::ElfSegments(n) => write!(
                f,
                "ELF kernel with {n} program headers: the firmware reads at most {}",
                crate::boot::raw::MAX_PHDRS
            ),
            Self::PvhNoteTruncated => write!(f, "ELF kernel's PVH entry note is shorter than 4 bytes"),
            Self::Multiboot(why) => write!(f, "bad multiboot kernel: {why}"),
            Self::Multiboot2Request(tag) => {
                write!(
                    f,
                    "multiboot2 kernel requires boot information tag {tag}, which Minnow does not provide"
                )
            }
            Self::TooManyModules(max) => write!(
                f,
                "more than {max} multiboot modules (opt/org.minnow/module/0 to /{})",
                max - 1
            ),
            Self::ModulesNeedMultiboot => write!(
                f,
                "opt/org.minnow/module/N is for multiboot kernels; a Linux or PVH kernel takes one \
                 initrd: opt/org.minnow/initrd"
            ),
            Self::InitrdAndModules => write!(
                f,
                "both opt/org.minnow/initrd and opt/org.minnow/module/0: give the modules one way"
            ),
            Self::CmdlineTooLong { len, max } => {
                write!(f, "command line of {len} bytes is longer than {max}")
            }
            Self::FwCfg(e) => write!(f, "{e}"),
            Self::Map(e) => write!(f, "{e}"),
            Self::Acpi(e) => write!(f, "{e}"),
        }
    }
}
