//! Finds the ACPI RSDP, verifies every checksum from it down (RSDP, XSDT or RSDT, each table, the
//! DSDT), lists the signatures, and counts the CPUs in the MADT.
use crate::mem::{paragraphs_starting_with, read_u32, sum8, Phys};
use crate::memmap::MemMap;
use crate::{Reason, Status};

/// Where the legacy BIOS area RSDP scan looks (ACPI 6.5, 5.2.5.1), on 16-byte boundaries.
pub const SCAN: (u64, u64) = (0xE_0000, 0x10_0000);
/// Most table signatures listed.
pub const MAX_TABLES: usize = 32;
/// Tables longer than this are rejected as corrupt (QEMU's largest, the q35 DSDT, is ~8 KiB).
pub const MAX_TABLE_LEN: u32 = 1 << 20;
const HEADER_LEN: usize = 36;

/// Where the RSDP comes from.
#[derive(Clone, Copy, Debug)]
pub enum RsdpSource<'a> {
    /// A physical address from the protocol (PVH rsdp_paddr, boot_params acpi_rsdp_addr).
    Given(u64),
    /// A copy of the RSDP in the boot information (multiboot 2 ACPI tags).
    Copy(&'a [u8]),
    /// Nothing from the protocol: scan the BIOS area.
    Scan,
}

/// What the walk found.
#[derive(Clone, Copy, Debug)]
pub struct Acpi {
    /// `None`: no RSDP anywhere.
    pub status: Status,
    /// Signatures in XSDT/RSDT order, with DSDT (and FACS) after the FADT.
    pub tables: [[u8; 4]; MAX_TABLES],
    pub count: usize,
    /// Enabled processors in the MADT (local APIC and x2APIC entries).
    pub madt_cpus: Option<u32>,
    /// I/O APIC entries in the MADT.
    pub madt_ioapics: Option<u32>,
    /// The MADT's PCAT_COMPAT flag: dual 8259 PICs present.
    pub madt_pcat: Option<bool>,
    /// Where the RSDP was (0 for a copy).
    pub rsdp: u64,
}

impl Acpi {
    fn new() -> Self {
        Self {
            status: Status::None,
            tables: [[0; 4]; MAX_TABLES],
            count: 0,
            madt_cpus: None,
            madt_ioapics: None,
            madt_pcat: None,
            rsdp: 0,
        }
    }
    pub fn tables(&self) -> &[[u8; 4]] {
        &self.tables[..self.count]
    }
    fn push(&mut self, sig: [u8; 4]) -> Result<(), Reason> {
        let slot = self
            .tables
            .get_mut(self.count)
            .ok_or(Reason::new("too-many-tables"))?;
        *slot = sig;
        self.count += 1;
        Ok(())
    }
}

/// Scans the BIOS area for "RSD PTR " with a valid ACPI 1.0 checksum.
pub fn scan(m: &dyn Phys) -> Option<u64> {
    let area = m.bytes(SCAN.0, (SCAN.1 - SCAN.0) as usize)?;
    paragraphs_starting_with(area, b"RSD ")
        .find(|&off| {
            area[off..].starts_with(b"RSD PTR ") && area.get(off..off + 20).is_some_and(|b| sum8(b) == 0)
        })
        .map(|off| SCAN.0 + off as u64)
}

/// Finds and walks the tables. `map`, when given, is checked to reserve every table (an OS must
/// not reuse their memory as RAM).
pub fn walk(m: &dyn Phys, source: RsdpSource, map: Option<&MemMap>) -> Acpi {
    let mut acpi = Acpi::new();
    let (rsdp, at) = match source {
        RsdpSource::Copy(bytes) => (Some(bytes), 0),
        RsdpSource::Given(addr) => (m.bytes(addr, 20), addr),
        RsdpSource::Scan => match scan(m) {
            Some(addr) => (m.bytes(addr, 20), addr),
            None => return acpi,
        },
    };
    acpi.rsdp = at;
    acpi.status = match rsdp.ok_or(Reason::new("rsdp-unreadable")).and_then(|r| {
        let r = if at != 0 && r.get(15).is_some_and(|&rev| rev >= 2) {
            m.bytes(at, 36).ok_or(Reason::new("rsdp-unreadable"))?
        } else {
            r
        };
        walk_from_rsdp(m, r, at, map, &mut acpi)
    }) {
        Ok(()) => Status::Ok,
        Err(reason) => Status::Bad(reason),
    };
    acpi
}

fn not_ram(map: Option<&MemMap>, addr: u64, len: u64, sig: [u8; 4]) -> Result<(), Reason> {
    match map {
        Some(map) if map.touches_ram(addr, len) => Err(Reason::with_sig("table-in-ram", sig)),
        _ => Ok(()),
    }
}

fn walk_from_rsdp(
    m: &dyn Phys,
    rsdp: &[u8],
    at: u64,
    map: Option<&MemMap>,
    acpi: &mut Acpi,
) -> Result<(), Reason> {
    const RSDP: [u8; 4] = *b"RSDP";
    if rsdp.len() < 20 || &rsdp[..8] != b"RSD PTR " {
        return Err(Reason::new("rsdp-signature"));
    }
    if sum8(&rsdp[..20]) != 0 {
        return Err(Reason::new("rsdp-checksum"));
    }
    let revision = rsdp[15];
    let rsdt = u64::from(u32::from_le_bytes([rsdp[16], rsdp[17], rsdp[18], rsdp[19]]));
    let mut xsdt = 0;
    let mut len = 20;
    if revision >= 2 {
        let ext = rsdp.get(..36).ok_or(Reason::new("rsdp-short"))?;
        len = u32::from_le_bytes([ext[20], ext[21], ext[22], ext[23]]) as usize;
        if len < 36 {
            return Err(Reason::new("rsdp-length"));
        }
        let full = if at == 0 {
            rsdp.get(..len)
        } else {
            m.bytes(at, len)
        };
        if full.is_none_or(|b| sum8(b) != 0) {
            return Err(Reason::new("rsdp-extended-checksum"));
        }
        xsdt = u64::from_le_bytes(ext[24..32].try_into().map_err(|_| Reason::new("rsdp-short"))?);
    }
    if at != 0 {
        not_ram(map, at, len as u64, RSDP)?;
    }
    let (root, entry_len, sig) = if xsdt != 0 {
        (xsdt, 8, *b"XSDT")
    } else {
        (rsdt, 4, *b"RSDT")
    };
    let body = table(m, root, Some(sig), map)?;
    for entry in body[HEADER_LEN..].chunks_exact(entry_len) {
        let addr = entry.iter().rev().fold(0u64, |a, &b| (a << 8) | u64::from(b));
        let t = table(m, addr, None, map)?;
        let sig: [u8; 4] = [t[0], t[1], t[2], t[3]];
        acpi.push(sig)?;
        match &sig {
            b"FACP" => fadt(m, t, map, acpi)?,
            b"APIC" => {
                acpi.madt_cpus = Some(madt_count(t, &[0, 9], true));
                acpi.madt_ioapics = Some(madt_count(t, &[1], false));
                acpi.madt_pcat = le_u32(t, HEADER_LEN + 4).map(|f| f & 1 != 0);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads a table at `addr`: its signature (if `want`), length and checksum, and that it is not RAM.
fn table<'m>(
    m: &'m dyn Phys,
    addr: u64,
    want: Option<[u8; 4]>,
    map: Option<&MemMap>,
) -> Result<&'m [u8], Reason> {
    let what = want.unwrap_or(*b"????");
    let head = m
        .bytes(addr, HEADER_LEN)
        .ok_or(Reason::with_sig("table-unreadable", what))?;
    let sig = [head[0], head[1], head[2], head[3]];
    if want.is_some_and(|w| w != sig) {
        return Err(Reason::with_sig("wrong-signature", what));
    }
    let len = read_u32(m, addr + 4).unwrap_or(0);
    if (len as usize) < HEADER_LEN || len > MAX_TABLE_LEN {
        return Err(Reason::with_sig("table-length", sig));
    }
    let t = m
        .bytes(addr, len as usize)
        .ok_or(Reason::with_sig("table-unreadable", sig))?;
    if sum8(t) != 0 {
        return Err(Reason::with_sig("checksum", sig));
    }
    not_ram(map, addr, u64::from(len), sig)?;
    Ok(t)
}

fn le_u32(t: &[u8], off: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        t.get(off..off + 4)?.try_into().ok()?,
    )))
}

fn le_u64(t: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(t.get(off..off + 8)?.try_into().ok()?))
}

/// The FADT points at the DSDT (X_DSDT wins when set) and the FACS (which has no checksum).
fn fadt(m: &dyn Phys, t: &[u8], map: Option<&MemMap>, acpi: &mut Acpi) -> Result<(), Reason> {
    let dsdt = le_u64(t, 140)
        .filter(|&a| a != 0)
        .or_else(|| le_u32(t, 40))
        .unwrap_or(0);
    if dsdt == 0 {
        return Err(Reason::new("fadt-without-dsdt"));
    }
    table(m, dsdt, Some(*b"DSDT"), map)?;
    acpi.push(*b"DSDT")?;
    let facs = le_u64(t, 132)
        .filter(|&a| a != 0)
        .or_else(|| le_u32(t, 36))
        .unwrap_or(0);
    if facs != 0 {
        const FACS: [u8; 4] = *b"FACS";
        let head = m
            .bytes(facs, 8)
            .ok_or(Reason::with_sig("table-unreadable", FACS))?;
        if head[..4] != FACS {
            return Err(Reason::with_sig("wrong-signature", FACS));
        }
        let len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        if len < 64 {
            return Err(Reason::with_sig("table-length", FACS));
        }
        not_ram(map, facs, len, FACS)?;
        acpi.push(FACS)?;
    }
    Ok(())
}

/// MADT entries of the given types; with `enabled`, only processors whose flag bit 0 is set
/// (type 0, local APIC, has its flags at +4; type 9, x2APIC, at +8).
fn madt_count(t: &[u8], kinds: &[u8], enabled: bool) -> u32 {
    let mut n = 0;
    let mut at = HEADER_LEN + 8;
    while let (Some(&kind), Some(&len)) = (t.get(at), t.get(at + 1)) {
        if len < 2 {
            break;
        }
        let counted = kinds.contains(&kind)
            && (!enabled
                || match kind {
                    0 => le_u32(t, at + 4),
                    9 => le_u32(t, at + 8),
                    _ => None,
                }
                .is_some_and(|f| f & 1 != 0));
        n += u32::from(counted);
        at += usize::from(len);
    }
    n
}

/// Table builders for the tests here and in `analyze`.
#[cfg(test)]
pub mod build {
    use crate::mem::{sum8, FakeMem};

    pub fn table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 36];
        t[..4].copy_from_slice(sig);
        t[4..8].copy_from_slice(&((36 + body.len()) as u32).to_le_bytes());
        t[8] = 2;
        t[10..16].copy_from_slice(b"MINNOW");
        t.extend_from_slice(body);
        t[9] = 0u8.wrapping_sub(sum8(&t));
        t
    }

    pub fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut r = vec![0u8; if revision >= 2 { 36 } else { 20 }];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[9..15].copy_from_slice(b"MINNOW");
        r[15] = revision;
        r[16..20].copy_from_slice(&rsdt.to_le_bytes());
        if revision >= 2 {
            r[20..24].copy_from_slice(&36u32.to_le_bytes());
            r[24..32].copy_from_slice(&xsdt.to_le_bytes());
        }
        r[8] = 0u8.wrapping_sub(sum8(&r[..20]));
        if revision >= 2 {
            r[32] = 0u8.wrapping_sub(sum8(&r[..36]));
        }
        r
    }

    /// I/O APICs in [`microvm`]'s MADT.
    pub const MICROVM_IOAPICS: u32 = 2;

    /// A microvm-like set: RSDP rev 2 at 0xE0000 (scannable), XSDT -> FACP (-> DSDT), APIC with
    /// `cpus` enabled local APICs and one disabled, two I/O APICs and PCAT_COMPAT. Tables at
    /// 0x1FFF0000.
    pub fn microvm(cpus: u8) -> FakeMem {
        let mut m = FakeMem::default();
        m.zeroed(0xE0000, 0x20000);
        m.zeroed(0x1FFF_0000, 0x10000);
        let dsdt = table(b"DSDT", &[0x10, 0x20]);
        let mut fadt_body = vec![0u8; 276 - 36];
        fadt_body[140 - 36..148 - 36].copy_from_slice(&0x1FFF_0000u64.to_le_bytes());
        let fadt = table(b"FACP", &fadt_body);
        let mut madt_body = vec![0, 0, 0xE0, 0xFE, 1, 0, 0, 0];
        for id in 0..=cpus {
            let enabled = u8::from(id < cpus);
            madt_body.extend_from_slice(&[0, 8, id, id, enabled, 0, 0, 0]);
        }
        madt_body.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0]);
        madt_body.extend_from_slice(&[1, 12, 1, 0, 0, 0, 0xC1, 0xFE, 24, 0, 0, 0]);
        let madt = table(b"APIC", &madt_body);
        let mut xsdt_body = Vec::new();
        xsdt_body.extend_from_slice(&0x1FFF_1000u64.to_le_bytes());
        xsdt_body.extend_from_slice(&0x1FFF_2000u64.to_le_bytes());
        let xsdt = table(b"XSDT", &xsdt_body);
        m.put(0x1FFF_0000, &dsdt);
        m.put(0x1FFF_1000, &fadt);
        m.put(0x1FFF_2000, &madt);
        m.put(0x1FFF_3000, &xsdt);
        m.put(0xE0000, &rsdp(2, 0, 0x1FFF_3000));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeMem;
    use minnow_bootproto::e820;

    fn sigs(a: &Acpi) -> Vec<String> {
        a.tables()
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    #[test]
    fn walks_a_scanned_xsdt_and_counts_enabled_cpus() {
        let m = microvm(2);
        let a = walk(&m, RsdpSource::Scan, None);
        assert_eq!(a.status, Status::Ok);
        assert_eq!(a.rsdp, 0xE0000);
        assert_eq!(sigs(&a), ["FACP", "DSDT", "APIC"]);
        assert_eq!(a.madt_cpus, Some(2));
        assert_eq!(a.madt_ioapics, Some(build::MICROVM_IOAPICS));
        assert_eq!(a.madt_pcat, Some(true));
    }

    fn microvm(cpus: u8) -> FakeMem {
        build::microvm(cpus)
    }

    #[test]
    fn walks_an_rsdt_from_a_given_address_and_a_copy() {
        let mut m = FakeMem::default();
        m.zeroed(0xF0000, 0x1000);
        let dsdt = build::table(b"DSDT", &[]);
        let mut fadt_body = vec![0u8; 116 - 36];
        fadt_body[40 - 36..44 - 36].copy_from_slice(&0xF0100u32.to_le_bytes());
        m.put(0xF0100, &dsdt);
        m.put(0xF0200, &build::table(b"FACP", &fadt_body));
        m.put(0xF0400, &build::table(b"RSDT", &0xF0200u32.to_le_bytes()));
        let r = build::rsdp(0, 0xF0400, 0);
        m.put(0xF0800, &r);
        let a = walk(&m, RsdpSource::Given(0xF0800), None);
        assert_eq!(
            (a.status, sigs(&a)),
            (Status::Ok, vec!["FACP".into(), "DSDT".into()])
        );
        let a = walk(&m, RsdpSource::Copy(&r), None);
        assert_eq!(a.status, Status::Ok);
        assert_eq!(a.madt_cpus, None);
    }

    #[test]
    fn no_rsdp_is_none_and_bad_checksums_are_named() {
        let mut m = FakeMem::default();
        m.zeroed(0xE0000, 0x20000);
        assert_eq!(walk(&m, RsdpSource::Scan, None).status, Status::None);

        let mut m = microvm(1);
        let t = m.bytes(0x1FFF_2000, 40).unwrap().to_vec();
        let mut t2 = t.clone();
        t2[37] ^= 0xFF;
        m.put(0x1FFF_2000, &t2);
        assert_eq!(
            walk(&m, RsdpSource::Scan, None).status,
            Status::Bad(Reason::with_sig("checksum", *b"APIC"))
        );

        let mut m = microvm(1);
        m.put(0xE0000 + 32, &[0x55]); // extended checksum byte
        assert_eq!(
            walk(&m, RsdpSource::Given(0xE0000), None).status,
            Status::Bad(Reason::new("rsdp-extended-checksum"))
        );
        // The v1 checksum still finds it in a scan, and the extended one still fails.
        assert_eq!(
            walk(&m, RsdpSource::Scan, None).status,
            Status::Bad(Reason::new("rsdp-extended-checksum"))
        );
        assert_eq!(
            walk(&m, RsdpSource::Given(0x5000), None).status,
            Status::Bad(Reason::new("rsdp-unreadable"))
        );
    }

    #[test]
    fn tables_in_ram_are_reported() {
        let m = microvm(1);
        let mut map = MemMap::default();
        map.push(0, 0x9FC00, e820::RAM);
        map.push(0xE0000, 0x20000, e820::RESERVED);
        map.push(0x10_0000, 0x1FEF_0000, e820::RAM);
        assert_eq!(walk(&m, RsdpSource::Scan, Some(&map)).status, Status::Ok);
        let mut map = MemMap::default();
        map.push(0, 0x9FC00, e820::RAM);
        map.push(0xE0000, 0x20000, e820::RESERVED);
        map.push(0x10_0000, 0x1FEF_1000, e820::RAM); // runs over the DSDT
        assert_eq!(
            walk(&m, RsdpSource::Scan, Some(&map)).status,
            Status::Bad(Reason::with_sig("table-in-ram", *b"DSDT"))
        );
    }
}
