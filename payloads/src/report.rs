//! The one line a payload prints, and its exit code.
use crate::acpi::Acpi;
use crate::mptable::Mp;
use crate::{Check, Reason, Status};
use core::fmt::{self, Write};

/// Every report line starts with this.
pub const PREFIX: &str = "MINNOW-PAYLOAD";
/// Written to the isa-debug-exit port (0x501): QEMU exits with status (value << 1) | 1.
pub const EXIT_PASS: u8 = 0x10;
pub const EXIT_FAIL: u8 = 0x11;
pub const DEBUG_EXIT_PORT: u16 = 0x501;

/// The initrd (first module) as found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initrd {
    None,
    Ok {
        len: u64,
        fnv: u32,
    },
    /// Described but not readable through the identity map.
    Unreadable {
        len: u64,
    },
}

/// Everything the line says.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    pub proto: &'static str,
    /// 16 (the bzImage's own real-mode setup ran), 32 or 64.
    pub entry: u64,
    /// CPU mode and segments at entry.
    pub mode: Check,
    /// The protocol's magic values and boot information structure.
    pub magic: Check,
    /// Where things were put: the payload and initrd in RAM, .bss zeroed, nothing on top of us.
    pub load: Check,
    /// `Err` when a command line is described but unreadable.
    pub cmdline: Result<Option<&'a [u8]>, Reason>,
    pub initrd: Initrd,
    pub mem_kb: u64,
    /// `None`: the protocol gave no map (multiboot without mmap, PVH start_info version 0).
    pub e820: Status,
    pub e820_entries: usize,
    pub acpi: Acpi,
    pub mp: Mp,
    pub cr0: u64,
    /// The payload's identity map: 1 GiB pages (CPUID says so) or 2 MiB ones.
    pub gib_pages: bool,
}

impl Report<'_> {
    /// The first failed check, in the order the line prints them.
    pub fn failure(&self) -> Option<Reason> {
        let initrd = match self.initrd {
            Initrd::Unreadable { .. } => Err(Reason::new("initrd-unreadable")),
            _ => Ok(()),
        };
        [
            self.mode,
            self.magic,
            self.load,
            self.cmdline.map(|_| ()),
            initrd,
            self.e820.check(),
            self.acpi.status.check(),
            self.mp.status.check(),
        ]
        .into_iter()
        .find_map(Result::err)
    }

    pub fn passed(&self) -> bool {
        self.failure().is_none()
    }

    pub fn exit_code(&self) -> u8 {
        if self.passed() {
            EXIT_PASS
        } else {
            EXIT_FAIL
        }
    }

    /// Writes the line, with its "\n".
    pub fn write(&self, w: &mut dyn Write) -> fmt::Result {
        write!(
            w,
            "{PREFIX} proto={} entry={} mode={} magic={} load={} cmdline=",
            self.proto,
            self.entry,
            CheckFmt(self.mode),
            CheckFmt(self.magic),
            CheckFmt(self.load)
        )?;
        match self.cmdline {
            Ok(Some(c)) => {
                w.write_char('"')?;
                escape(w, c)?;
                w.write_char('"')?;
            }
            Ok(None) => w.write_str("none")?,
            Err(r) => write!(w, "bad:{r}")?,
        }
        match self.initrd {
            Initrd::None => w.write_str(" initrd_len=none initrd_sum=none")?,
            Initrd::Ok { len, fnv } => write!(w, " initrd_len={len} initrd_sum={fnv:08x}")?,
            Initrd::Unreadable { len } => write!(w, " initrd_len={len} initrd_sum=unreadable")?,
        }
        write!(
            w,
            " mem_kb={} e820={} e820_entries={} acpi={} acpi_tables=",
            self.mem_kb, self.e820, self.e820_entries, self.acpi.status
        )?;
        if self.acpi.count == 0 {
            w.write_str("none")?;
        }
        for (i, sig) in self.acpi.tables().iter().enumerate() {
            if i > 0 {
                w.write_char(',')?;
            }
            write_sig(w, *sig)?;
        }
        w.write_str(" madt_cpus=")?;
        match self.acpi.madt_cpus {
            Some(n) => write!(w, "{n}")?,
            None => w.write_str("none")?,
        }
        w.write_str(" madt_ioapics=")?;
        match self.acpi.madt_ioapics {
            Some(n) => write!(w, "{n}")?,
            None => w.write_str("none")?,
        }
        w.write_str(" pcat=")?;
        match self.acpi.madt_pcat {
            Some(p) => write!(w, "{}", u8::from(p))?,
            None => w.write_str("none")?,
        }
        write!(w, " mp={} mp_cpus=", self.mp.status)?;
        match self.mp.cpus {
            Some(n) => write!(w, "{n}")?,
            None => w.write_str("none")?,
        }
        let pages = if self.gib_pages { "1g" } else { "2m" };
        write!(w, " cr0={:#x} pages={pages} result=", self.cr0)?;
        match self.failure() {
            None => w.write_str("pass\n"),
            Some(r) => writeln!(w, "fail:{r}"),
        }
    }
}

struct CheckFmt(Check);

impl fmt::Display for CheckFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(()) => f.write_str("ok"),
            Err(r) => write!(f, "bad:{r}"),
        }
    }
}

/// Writes the memory map as one diagnostic line, `MINNOW-PAYLOAD-E820 <start>-<end>:<type> ...`
/// (end exclusive, hex), printed before the report when the map fails its checks.
pub fn write_map(w: &mut dyn Write, map: &crate::memmap::MemMap) -> fmt::Result {
    w.write_str("MINNOW-PAYLOAD-E820")?;
    for r in map.entries() {
        write!(w, " {:#x}-{:#x}:{}", r.addr, r.end(), r.kind)?;
    }
    w.write_str("\n")
}

/// Writes `bytes` with `"`, `\` and everything outside printable ASCII as `\xNN`.
pub fn escape(w: &mut dyn Write, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        if (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\' {
            w.write_char(char::from(b))?;
        } else {
            write!(w, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// Writes a table signature, non-printable bytes as `?`.
pub fn write_sig(w: &mut dyn Write, sig: [u8; 4]) -> fmt::Result {
    for b in sig {
        w.write_char(if b.is_ascii_graphic() { char::from(b) } else { '?' })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::Acpi;

    fn acpi_none() -> Acpi {
        crate::acpi::walk(
            &crate::mem::FakeMem::default(),
            crate::acpi::RsdpSource::Scan,
            None,
        )
    }

    fn report<'a>(cmdline: &'a [u8]) -> Report<'a> {
        Report {
            proto: "pvh",
            entry: 32,
            mode: Ok(()),
            magic: Ok(()),
            load: Ok(()),
            cmdline: Ok(Some(cmdline)),
            initrd: Initrd::Ok {
                len: 102400,
                fnv: 0x0badcafe,
            },
            mem_kb: 523_000,
            e820: Status::Ok,
            e820_entries: 6,
            acpi: acpi_none(),
            mp: Mp {
                status: Status::Ok,
                cpus: Some(2),
            },
            cr0: 0x11,
            gib_pages: false,
        }
    }

    fn line(r: &Report) -> String {
        let mut s = String::new();
        r.write(&mut s).unwrap();
        s
    }

    #[test]
    fn a_passing_report_is_one_line() {
        let r = report(b"a \"b\" c\\d\x01\xff");
        assert_eq!(
            line(&r),
            "MINNOW-PAYLOAD proto=pvh entry=32 mode=ok magic=ok load=ok \
             cmdline=\"a \\x22b\\x22 c\\x5cd\\x01\\xff\" initrd_len=102400 initrd_sum=0badcafe \
             mem_kb=523000 e820=ok e820_entries=6 acpi=none acpi_tables=none madt_cpus=none \
             madt_ioapics=none pcat=none mp=ok mp_cpus=2 cr0=0x11 pages=2m result=pass\n"
        );
        assert_eq!(r.exit_code(), EXIT_PASS);
    }

    #[test]
    fn the_first_failure_is_the_result() {
        let mut r = report(b"x");
        r.e820 = Status::Bad(Reason::new("overlap"));
        r.mp.status = Status::Bad(Reason::with_sig("checksum", *b"PCMP"));
        r.initrd = Initrd::None;
        r.cmdline = Ok(None);
        let l = line(&r);
        assert!(
            l.contains(" cmdline=none initrd_len=none initrd_sum=none "),
            "{l}"
        );
        assert!(l.contains(" e820=bad:overlap "), "{l}");
        assert!(l.contains(" mp=bad:checksum:PCMP mp_cpus=2 "), "{l}");
        assert!(l.ends_with(" result=fail:overlap\n"), "{l}");
        assert_eq!(r.exit_code(), EXIT_FAIL);
        r.mode = Err(Reason::new("paging-on"));
        assert!(line(&r).ends_with(" result=fail:paging-on\n"));
    }

    #[test]
    fn maps_print_as_ranges() {
        let mut map = crate::memmap::MemMap::default();
        map.push(0, 0x9FC00, 1);
        map.push(0xF0000, 0x10000, 2);
        let mut s = String::new();
        write_map(&mut s, &map).unwrap();
        assert_eq!(s, "MINNOW-PAYLOAD-E820 0x0-0x9fc00:1 0xf0000-0x100000:2\n");
    }

    #[test]
    fn signatures_print_safely() {
        let mut s = String::new();
        write_sig(&mut s, *b"AP\0C").unwrap();
        assert_eq!(s, "AP?C");
    }
}
