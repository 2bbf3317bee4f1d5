//! The little of a PC BIOS that kernels read even when no BIOS runs: the BIOS data area's size of
//! base memory and EBDA segment, and a real-mode interrupt vector table.
//!
//! Xen is the kernel that needs them: it places its real-mode trampoline below the base memory
//! the BDA reports (0 there put it over the IVT and triple-faulted), and from that trampoline it
//! calls BIOS services (video, EDD, the e820 call) before it has handlers of its own. Every
//! vector points at one stub in the ROM that returns with CF set, the BIOS convention for
//! "unsupported", so each call fails cleanly and Xen carries on with what multiboot gave it.
use crate::layout;
use crate::memory::{write_obj, Memory};
use crate::memory_map::MemoryMap;

/// A real-mode `segment:offset` address, as an IVT entry stores it (offset first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FarPointer {
    pub segment: u16,
    pub offset: u16,
}

impl FarPointer {
    /// The real-mode address of a linear address in the ROM's low alias (0xF0000-0xFFFFF).
    pub fn in_rom(linear: u64) -> Self {
        Self {
            segment: (layout::ROM_LOW >> 4) as u16,
            offset: (linear - layout::ROM_LOW) as u16,
        }
    }

    fn to_ivt_entry(self) -> u32 {
        u32::from(self.segment) << 16 | u32::from(self.offset)
    }
}

/// Writes the IVT (every vector to `stub`) and the BDA's base memory size and EBDA segment.
pub fn install(mem: &mut dyn Memory, map: &MemoryMap, stub: FarPointer) {
    let ivt = [stub.to_ivt_entry(); 256];
    write_obj(mem, layout::REAL_MODE_IVT, &ivt);
    // No EBDA: 0 tells Linux and Xen to look no further (they then trust the base memory size).
    write_obj(mem, layout::BDA_EBDA_SEGMENT, &0u16);
    write_obj(mem, layout::BDA_BASE_MEMORY_KIB, &base_memory_kib(map));
}

/// KiB of RAM from address 0, capped at 640 KiB: the BDA's word at 0x413 and multiboot's mem_lower.
pub fn base_memory_kib(map: &MemoryMap) -> u16 {
    let end = map.ram_end_from(0).unwrap_or(0).min(layout::BASE_MEMORY_END);
    (end / 1024) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeMemory;
    use crate::memory::read_obj;
    use crate::memory_map::{carve_legacy, MemoryMap};
    use minnow_bootproto::e820;

    fn qemu_map() -> MemoryMap {
        let mut map = MemoryMap::new();
        map.set(0, 0x1000_0000, e820::RAM).unwrap();
        carve_legacy(&mut map).unwrap();
        map
    }

    #[test]
    fn every_vector_points_at_the_stub_and_the_bda_reports_base_memory() {
        let mut mem = FakeMemory::default();
        let stub = FarPointer::in_rom(0xF_FF40);
        assert_eq!(
            stub,
            FarPointer {
                segment: 0xF000,
                offset: 0xFF40
            }
        );
        install(&mut mem, &qemu_map(), stub);
        let ivt: [u32; 256] = read_obj(&mem, 0);
        assert!(ivt.iter().all(|&v| v == 0xF000_FF40), "{ivt:x?}");
        // Base memory ends where the MP table area is reserved: 0x9E000 = 632 KiB.
        assert_eq!(read_obj::<u16>(&mem, 0x413), 632);
        assert_eq!(read_obj::<u16>(&mem, 0x40E), 0);
        // Nothing past the two BDA words is touched.
        assert_eq!(read_obj::<u16>(&mem, 0x415), 0);
    }

    #[test]
    fn no_ram_at_zero_reports_no_base_memory() {
        let mut map = MemoryMap::new();
        map.set(0x10_0000, 0x100_0000, e820::RAM).unwrap();
        assert_eq!(base_memory_kib(&map), 0);
    }
}
