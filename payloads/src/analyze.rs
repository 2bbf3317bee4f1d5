//! Turns what a loader handed over into the report: checks the memory map and where everything
//! was put, reads the command line and initrd, walks ACPI and the MP table.
use crate::acpi;
use crate::fnv::fnv1a32;
use crate::mem::{cstr, Phys};
use crate::memmap::MemMap;
use crate::mptable;
use crate::proto::Handed;
use crate::report::{Initrd, Report};
use crate::{bad, Check, Reason, Status};

/// Longest command line read (longer ones, or unterminated, are reported unreadable).
pub const CMDLINE_MAX: usize = 64 * 1024;

/// Where the payload itself lives: `[start, end)`, .bss and stack included.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    pub start: u64,
    pub end: u64,
    /// .bss held non-zero bytes at entry.
    pub bss_dirty: bool,
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.1 > 0 && b.1 > 0 && a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

pub fn analyze<'m>(m: &'m dyn Phys, h: &Handed<'m>, image: Image) -> Report<'m> {
    let payload = (image.start, image.end - image.start);
    // RAM questions go to a sorted copy whose layout is sound: a map that is only out of order
    // is reported, but still says where RAM is.
    let sorted = h.map.as_ref().map(MemMap::sorted);
    let layout = sorted.as_ref().map(MemMap::check_layout);
    let e820 = match (&h.map, &sorted, layout, h.map_error) {
        (_, _, _, Some(r)) => Status::Bad(r),
        (Some(map), Some(sorted), Some(layout), None) => {
            let order = if map.is_sorted() { Ok(()) } else { bad("unsorted") };
            match layout.and_then(|()| meminfo_agrees(sorted, h.meminfo)).and(order) {
                Ok(()) => Status::Ok,
                Err(r) => Status::Bad(r),
            }
        }
        _ => Status::None,
    };
    let map = sorted
        .as_ref()
        .filter(|_| layout == Some(Ok(())) && h.map_error.is_none());
    let mem_kb = match (&h.map, h.meminfo) {
        (Some(map), _) => map.ram_bytes() / 1024,
        (None, Some((lower, upper))) => u64::from(lower) + u64::from(upper),
        (None, None) => 0,
    };

    let cmdline = match h.cmdline {
        None => Ok(None),
        Some(addr) => cstr(m, addr, CMDLINE_MAX)
            .map(Some)
            .ok_or(Reason::new("cmdline-unreadable")),
    };
    let initrd = match h.initrd {
        None => Initrd::None,
        Some((addr, len)) => match usize::try_from(len).ok().and_then(|n| m.bytes(addr, n)) {
            Some(bytes) => Initrd::Ok {
                len,
                fnv: fnv1a32(bytes),
            },
            None => Initrd::Unreadable { len },
        },
    };

    let mut regions = [(0u64, 0u64); crate::proto::MAX_REGIONS + 1];
    let n = h.regions().len();
    regions[..n].copy_from_slice(h.regions());
    if let (Some(addr), Ok(Some(c))) = (h.cmdline, cmdline) {
        regions[n] = (addr, c.len() as u64 + 1);
    }
    let too_long = match (cmdline, h.cmdline_max) {
        (Ok(Some(c)), Some(max)) if c.len() as u64 > max => bad("cmdline-exceeds-cmdline-size"),
        _ => Ok(()),
    };
    let load = load_check(h, image, payload, map, &regions[..=n]).and(too_long);

    Report {
        proto: h.proto,
        entry: h.entry,
        mode: h.mode,
        magic: h.magic,
        load,
        cmdline,
        initrd,
        mem_kb,
        e820,
        e820_entries: h.map.as_ref().map_or(0, MemMap::len),
        acpi: acpi::walk(m, h.rsdp, map),
        mp: mptable::find(m, map),
        cr0: h.cr0,
        gib_pages: h.gib_pages,
    }
}

/// mem_lower and mem_upper must describe RAM the map agrees is RAM.
fn meminfo_agrees(map: &MemMap, meminfo: Option<(u32, u32)>) -> Check {
    let Some((lower, upper)) = meminfo else {
        return Ok(());
    };
    if lower > 640 || !map.is_ram(0, u64::from(lower) * 1024) {
        return bad("mem-lower-not-ram");
    }
    if !map.is_ram(0x10_0000, u64::from(upper) * 1024) {
        return bad("mem-upper-not-ram");
    }
    Ok(())
}

fn load_check(
    h: &Handed,
    image: Image,
    payload: (u64, u64),
    map: Option<&MemMap>,
    regions: &[(u64, u64)],
) -> Check {
    if h.bss_must_be_zero && image.bss_dirty {
        return bad("bss-not-zeroed");
    }
    if let Some(map) = map {
        if !map.is_ram(payload.0, payload.1) {
            return bad("payload-not-in-ram");
        }
        if h.initrd.is_some_and(|(a, l)| !map.is_ram(a, l)) {
            return bad("initrd-not-in-ram");
        }
    }
    if h.initrd.is_some_and(|i| overlaps(i, payload)) {
        return bad("initrd-overlaps-payload");
    }
    if regions.iter().any(|&r| overlaps(r, payload)) {
        return bad("bootinfo-overlaps-payload");
    }
    if h.initrd.is_some_and(|i| regions.iter().any(|&r| overlaps(r, i))) {
        return bad("bootinfo-overlaps-initrd");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::{build, RsdpSource};
    use crate::entry::tests::protected32;
    use minnow_bootproto::e820;

    const IMAGE: Image = Image {
        start: 0x20_0000,
        end: 0x21_0000,
        bss_dirty: false,
    };

    fn handed<'m>() -> Handed<'m> {
        let mut h = Handed::new("pvh", &protected32());
        let mut map = MemMap::default();
        map.push(0, 0x9FC00, e820::RAM);
        map.push(0x9FC00, 0x400, e820::RESERVED);
        map.push(0xE0000, 0x20000, e820::RESERVED);
        map.push(0x10_0000, 0x1FEF_0000, e820::RAM);
        map.push(0x1FFF_0000, 0x1_0000, e820::RESERVED);
        h.map = Some(map);
        h.cmdline = Some(0x20000);
        h.initrd = Some((0x1F00_0000, 8));
        h.region(0x6000, 56);
        h
    }

    fn mem() -> crate::mem::FakeMem {
        let mut m = build::microvm(1);
        for (i, d) in [0u64, 0, 0x00CF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF]
            .iter()
            .enumerate()
        {
            m.put(crate::entry::tests::GDT + 8 * i as u64, &d.to_le_bytes());
        }
        m.put(0x20000, b"console=ttyS0 x=\"y\"\0");
        m.put(0x1F00_0000, b"initrd!!");
        m.zeroed(0x9FC00, 0x400);
        m
    }

    #[test]
    fn a_good_handoff_passes() {
        let m = mem();
        let h = handed();
        let r = analyze(&m, &h, IMAGE);
        assert_eq!(r.failure(), None, "{r:?}");
        assert_eq!(r.cmdline, Ok(Some(&b"console=ttyS0 x=\"y\""[..])));
        assert_eq!(
            r.initrd,
            Initrd::Ok {
                len: 8,
                fnv: fnv1a32(b"initrd!!")
            }
        );
        assert_eq!(r.mem_kb, (0x9FC00 + 0x1FEF_0000) / 1024);
        assert_eq!(r.acpi.status, Status::Ok);
        assert_eq!(r.mp.status, Status::None);
        assert_eq!(r.e820_entries, 5);
    }

    #[test]
    fn misplaced_things_fail_the_load_check() {
        let m = mem();
        let mut h = handed();
        h.initrd = Some((0x20_F000, 8));
        assert_eq!(
            analyze(&m, &h, IMAGE).load,
            Err(Reason::new("initrd-overlaps-payload"))
        );
        let mut h = handed();
        h.region(0x20_0100, 0x100);
        assert_eq!(
            analyze(&m, &h, IMAGE).load,
            Err(Reason::new("bootinfo-overlaps-payload"))
        );
        let h = handed();
        let dirty = Image {
            bss_dirty: true,
            ..IMAGE
        };
        assert_eq!(analyze(&m, &h, dirty).load, Err(Reason::new("bss-not-zeroed")));
        let mut h = handed();
        h.initrd = Some((0xA0000, 8));
        assert_eq!(analyze(&m, &h, IMAGE).load, Err(Reason::new("initrd-not-in-ram")));
    }

    #[test]
    fn a_command_line_longer_than_the_kernel_accepts_fails() {
        let m = mem();
        let mut h = handed();
        h.cmdline_max = Some(5);
        assert_eq!(
            analyze(&m, &h, IMAGE).load,
            Err(Reason::new("cmdline-exceeds-cmdline-size"))
        );
        h.cmdline_max = Some(2047);
        assert_eq!(analyze(&m, &h, IMAGE).load, Ok(()));
    }

    #[test]
    fn meminfo_must_match_the_map() {
        let m = mem();
        let mut h = handed();
        h.meminfo = Some((639, 0x1FEF_0000 / 1024));
        assert_eq!(analyze(&m, &h, IMAGE).e820, Status::Ok);
        h.meminfo = Some((639, 0x1FF0_0000 / 1024));
        assert_eq!(
            analyze(&m, &h, IMAGE).e820,
            Status::Bad(Reason::new("mem-upper-not-ram"))
        );
    }

    #[test]
    fn an_unsorted_map_is_reported_but_still_used() {
        let m = mem();
        let mut h = handed();
        let mut map = MemMap::default();
        for r in h.map.as_ref().unwrap().entries().iter().rev() {
            map.push(r.addr, r.size, r.kind);
        }
        h.map = Some(map);
        h.initrd = Some((0xA0000, 8));
        let r = analyze(&m, &h, IMAGE);
        assert_eq!(r.e820, Status::Bad(Reason::new("unsorted")));
        assert_eq!(r.load, Err(Reason::new("initrd-not-in-ram")));
    }

    #[test]
    fn no_map_means_e820_none_and_meminfo_for_the_total() {
        let m = mem();
        let mut h = handed();
        h.map = None;
        h.meminfo = Some((639, 1000));
        h.rsdp = RsdpSource::Scan;
        let r = analyze(&m, &h, IMAGE);
        assert_eq!((r.e820, r.mem_kb), (Status::None, 1639));
        assert_eq!(r.failure(), None);
    }
}
