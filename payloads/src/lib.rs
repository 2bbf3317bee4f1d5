//! Boot conformance payloads: tiny kernels that check and report, in one line on COM1, exactly what
//! their loader handed them, then leave QEMU through `isa-debug-exit`.
//!
//! Four images (`cargo xtask payloads` builds them into target/payloads/): `multiboot1.elf`,
//! `multiboot2.elf`, `pvh.elf` and `bzImage`. Each enters through the shared start-up code
//! (src/arch/start.S), which records the entry state and switches to long mode, then its protocol
//! module here ([`proto`]) reads the boot information into a [`proto::Handed`], and
//! [`analyze::analyze`] checks it (memory map, command line, initrd, ACPI, MP table) into a
//! [`report::Report`], printed as
//!
//! ```text
//! MINNOW-PAYLOAD proto=pvh entry=32 mode=ok magic=ok load=ok cmdline="..." initrd_len=102400
//!   initrd_sum=1a2b3c4d mem_kb=523892 e820=ok e820_entries=6 acpi=ok acpi_tables=FACP,APIC,DSDT
//!   madt_cpus=1 madt_ioapics=1 pcat=1 mp=none mp_cpus=none cr0=0x11 pages=2m result=pass
//! ```
//!
//! Everything but the start-up code and the port I/O ([`hw`]) is plain logic over the [`mem::Phys`]
//! trait, unit-tested on the host against byte buffers.
#![cfg_attr(not(test), no_std)]

pub mod acpi;
pub mod analyze;
pub mod blklog;
pub mod bzimage;
pub mod entry;
pub mod fnv;
#[cfg(target_os = "none")]
pub mod hw;
pub mod mem;
pub mod memmap;
pub mod mptable;
pub mod proto;
pub mod report;
pub mod virtio_blk;

/// Why a check failed: a short kebab-case token, optionally with the ACPI/MP signature involved.
/// Printed as `what` or `what:SIG`; never contains a space, so report lines split on spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason {
    pub what: &'static str,
    pub sig: Option<[u8; 4]>,
}

impl Reason {
    pub const fn new(what: &'static str) -> Self {
        Self { what, sig: None }
    }
    pub const fn with_sig(what: &'static str, sig: [u8; 4]) -> Self {
        Self { what, sig: Some(sig) }
    }
}

impl core::fmt::Display for Reason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.what)?;
        if let Some(sig) = self.sig {
            f.write_str(":")?;
            report::write_sig(f, sig)?;
        }
        Ok(())
    }
}

/// What a search-and-check found (the memory map, ACPI, the MP table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not there (no map from the protocol, no RSDP, no MP floating pointer).
    None,
    Ok,
    Bad(Reason),
}

impl Status {
    /// `Bad` as an error; absence is not one.
    pub fn check(self) -> Check {
        match self {
            Status::Bad(r) => Err(r),
            _ => Ok(()),
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Status::None => f.write_str("none"),
            Status::Ok => f.write_str("ok"),
            Status::Bad(r) => write!(f, "bad:{r}"),
        }
    }
}

/// The result of one check.
pub type Check = Result<(), Reason>;

/// Shorthand for a failed check.
pub const fn bad(what: &'static str) -> Check {
    Err(Reason::new(what))
}
