//! Direct boot against guest memory (the VMM's own, no KVM): what each protocol finds in RAM and
//! in its registers, the e820 map against minnow.rom's own carving, and the errors.
use super::*;
use cpu_entry::segment;
use kvm_bindings::{kvm_segment, kvm_sregs};
use minnow_bootproto::linux::{self as proto, loadflags, xloadflags, BootParams, SetupHeader};
use minnow_bootproto::pvh::{MemmapEntry, ModlistEntry, StartInfo, START_MAGIC};
use zerocopy::{FromBytes, IntoBytes};

const MIB: u64 = 1 << 20;
const PM_LEN: usize = 0x3000;

fn ram(size: u64) -> GuestMemoryMmap {
    memory::create(size, None).expect("guest memory")
}

fn bytes(ram: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    ram.read_slice(&mut buf, GuestAddress(addr))
        .expect("read guest memory");
    buf
}

fn obj<T: FromBytes + IntoBytes>(ram: &GuestMemoryMmap, addr: u64) -> T {
    T::read_from_bytes(&bytes(ram, addr, std::mem::size_of::<T>())).expect("size matches")
}

/// A bzImage: one setup sector after the boot sector, a `PM_LEN`-byte protected-mode part of
/// recognisable bytes.
fn bzimage(kernel_64: bool, init_size: u32) -> Vec<u8> {
    let hdr = SetupHeader {
        setup_sects: 1,
        boot_flag: proto::BOOT_FLAG.into(),
        jump: u16::from_le_bytes([0xEB, 0x6A]).into(), // header up to 0x26C
        header: proto::HEADER_MAGIC.into(),
        version: 0x020F.into(),
        loadflags: loadflags::LOADED_HIGH,
        code32_start: 0x10_0000.into(),
        initrd_addr_max: 0x7FFF_FFFF.into(),
        kernel_alignment: 0x20_0000.into(),
        xloadflags: (xloadflags::CAN_BE_LOADED_ABOVE_4G | if kernel_64 { xloadflags::KERNEL_64 } else { 0 })
            .into(),
        cmdline_size: 2047.into(),
        init_size: init_size.into(),
        kernel_info_offset: 0x1234.into(),
        ..Default::default()
    };
    let mut image = vec![0u8; 1024];
    image[proto::HEADER_OFFSET..0x26C].copy_from_slice(hdr.as_bytes());
    image.extend((0..PM_LEN).map(|i| (i * 7) as u8));
    image
}

const ELF_LOAD: u64 = 0x20_0000;
const ELF_ENTRY: u32 = 0x20_0020;

/// An x86-64 ELF: one PT_LOAD of 0x100 file bytes and 0x2000 in memory at `load`, and a PT_NOTE
/// with the Xen PVH entry note when `note`.
fn pvh_elf(load: u64, note: bool) -> Vec<u8> {
    let mut d = vec![0u8; 0x1100];
    d[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\0");
    let put = |d: &mut Vec<u8>, at: usize, v: &[u8]| d[at..at + v.len()].copy_from_slice(v);
    put(&mut d, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut d, 18, &62u16.to_le_bytes()); // EM_X86_64
    put(&mut d, 20, &1u32.to_le_bytes());
    put(&mut d, 24, &load.to_le_bytes()); // e_entry
    put(&mut d, 32, &64u64.to_le_bytes()); // e_phoff
    put(&mut d, 52, &64u16.to_le_bytes());
    put(&mut d, 54, &56u16.to_le_bytes());
    put(&mut d, 56, &2u16.to_le_bytes());
    let ph = |d: &mut Vec<u8>, at: usize, kind: u32, offset: u64, addr: u64, filesz: u64, memsz: u64| {
        put(d, at, &kind.to_le_bytes());
        put(d, at + 4, &7u32.to_le_bytes());
        put(d, at + 8, &offset.to_le_bytes());
        put(d, at + 16, &addr.to_le_bytes());
        put(d, at + 24, &addr.to_le_bytes());
        put(d, at + 32, &filesz.to_le_bytes());
        put(d, at + 40, &memsz.to_le_bytes());
        put(d, at + 48, &4u64.to_le_bytes());
    };
    ph(&mut d, 64, 1, 0x1000, load, 0x100, 0x2000);
    ph(&mut d, 120, 4, 0x200, 0, 20, 20);
    if note {
        put(&mut d, 0x200, &4u32.to_le_bytes());
        put(&mut d, 0x204, &4u32.to_le_bytes());
        put(&mut d, 0x208, &18u32.to_le_bytes());
        put(&mut d, 0x20C, b"Xen\0");
        put(&mut d, 0x210, &(load as u32 + 0x20).to_le_bytes());
    }
    for (i, b) in d[0x1000..0x1100].iter_mut().enumerate() {
        *b = 0xC0 ^ i as u8;
    }
    d
}

struct Files {
    kernel: Blob,
    initrd: Option<Blob>,
}

fn files(kernel: Vec<u8>, initrd_len: Option<usize>) -> Files {
    Files {
        kernel: Blob::new("/k/kernel", kernel),
        initrd: initrd_len.map(|n| Blob::new("/k/initrd.img", (0..n).map(|i| (i % 251) as u8).collect())),
    }
}

fn input<'a>(f: &'a Files, cmdline: &'a str, memory: u64, cpus: u8) -> Input<'a> {
    Input {
        kernel: &f.kernel,
        initrd: f.initrd.as_ref(),
        cmdline,
        memory,
        cpus,
        cpu_signature: (0x806F8, 0x178B_FBFF),
        acpi: None,
    }
}

/// The ACPI files the VMM serves for `cpus` CPUs (what direct boot installs).
fn acpi_files(cpus: u8) -> AcpiFiles {
    let c = Config {
        cpus,
        ..Config::default()
    };
    minnow_acpi::build(&crate::fw_cfg_setup::acpi_machine(&c)).expect("the tables build")
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
}

/// The ACPI tables in guest memory, walked from the RSDP at `rsdp` as a kernel (or the payloads)
/// would, every checksum verified: the signatures in XSDT order with the DSDT after the FACP,
/// the MADT's CPUs, and the lowest and highest byte any table occupies.
fn walk_acpi(ram: &GuestMemoryMmap, rsdp: u64) -> (Vec<String>, usize, (u64, u64)) {
    let r = bytes(ram, rsdp, 36);
    assert_eq!((&r[..8], r[15]), (&b"RSD PTR "[..], 2), "RSDP revision 2");
    assert_eq!((sum(&r[..20]), sum(&r)), (0, 0), "RSDP checksums");
    let u64_in = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (mut sigs, mut cpus, mut extent) = (Vec::new(), 0, (u64::MAX, 0));
    let mut table = |addr: u64| -> Vec<u8> {
        let len = u32::from_le_bytes(bytes(ram, addr + 4, 4).try_into().unwrap());
        let t = bytes(ram, addr, len as usize);
        let sig = String::from_utf8_lossy(&t[..4]).into_owned();
        assert_eq!(sum(&t), 0, "{sig} checksum");
        extent = (extent.0.min(addr), extent.1.max(addr + u64::from(len)));
        sigs.push(sig);
        t
    };
    let xsdt = table(u64_in(&r, 24));
    for entry in (36..xsdt.len()).step_by(8) {
        let t = table(u64_in(&xsdt, entry));
        match &t[..4] {
            b"FACP" => {
                table(u64_in(&t, minnow_acpi::fadt::X_DSDT));
            }
            b"APIC" => {
                let mut at = 44;
                while at + 2 <= t.len() {
                    cpus += usize::from(t[at] == 0 && t[at + 4] & 1 == 1);
                    at += usize::from(t[at + 1]).max(2);
                }
            }
            _ => {}
        }
    }
    (sigs, cpus, extent)
}

/// The e820 map as (start, end, kind).
fn ranges(map: &[E820Entry]) -> Vec<(u64, u64, u32)> {
    map.iter()
        .map(|e| (e.addr.get(), e.addr.get() + e.size.get(), e.kind.get()))
        .collect()
}

/// What KVM reports for a fresh vCPU, as far as `apply` is concerned.
fn reset_sregs() -> kvm_sregs {
    kvm_sregs {
        cr0: 0x6000_0010,
        apic_base: 0xFEE0_0900,
        ..Default::default()
    }
}

/// The segment a selector names, decoded from the GDT in guest memory as a kernel (or the
/// payloads) would read it.
fn segment_in_memory(ram: &GuestMemoryMmap, s: &kvm_sregs, selector: u16) -> kvm_segment {
    let gdt: Vec<u64> = bytes(ram, s.gdt.base, usize::from(s.gdt.limit) + 1)
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    segment(&gdt, selector)
}

/// The MP table minnow.rom would write for `cpus` CPUs is at 0x9E000, its pointer at 0x9FC00.
fn assert_mptable(ram: &GuestMemoryMmap, cpus: u16) {
    let want = mptable::build(
        &mptable::Machine {
            cpus,
            irq0_override: true,
            cpu_signature: 0x806F8,
            cpu_features: 0x178B_FBFF,
        },
        0x9E000,
    );
    assert_eq!(bytes(ram, 0x9E000, want.table().len()), want.table());
    assert_eq!(bytes(ram, 0x9FC00, 16), want.floating_pointer);
}

#[test]
fn a_bzimage_gets_boot_params_page_tables_and_the_64_bit_entry() {
    let ram = ram(256 * MIB);
    let f = files(bzimage(true, 0x40_0000), Some(0x1_2345));
    let entry = load(&input(&f, "console=ttyS0 a=\"b c\"", 256 * MIB, 2), &ram).unwrap();
    assert_eq!(
        entry,
        CpuEntry {
            mode: Mode::Long64,
            rip: 0x10_0200,
            rsp: 0x6000,
            rsi: 0x7000,
            rbx: 0
        }
    );
    let regs = entry.regs();
    assert_eq!(
        (regs.rip, regs.rsi, regs.rsp, regs.rflags),
        (0x10_0200, 0x7000, 0x6000, 0x2)
    );
    assert_eq!((regs.rbx, regs.rbp, regs.rdi, regs.rax), (0, 0, 0, 0));
    let mut s = reset_sregs();
    entry.apply(&mut s);
    assert_eq!((s.cr0, s.cr3, s.cr4, s.efer), (0x8000_0011, 0x9000, 0x20, 0x500));
    assert_eq!(s.apic_base, 0xFEE0_0900, "left as KVM set it");
    assert_eq!((s.gdt.base, s.gdt.limit), (0x500, 47));
    assert_eq!(
        (s.cs.selector, s.cs.l, s.cs.db, s.cs.type_, s.cs.present),
        (0x10, 1, 0, 0xB, 1)
    );
    for d in [s.ds, s.es, s.fs, s.gs, s.ss] {
        assert_eq!(
            (d.selector, d.type_, d.base, d.limit, d.db, d.s),
            (0x18, 3, 0, u32::MAX, 1, 1)
        );
    }
    assert_eq!(
        (s.tr.selector, s.tr.type_, s.tr.limit, s.tr.s),
        (0x20, 0xB, 0x67, 0)
    );
    // What the vCPU has loaded is what the GDT in memory says.
    assert_eq!(segment_in_memory(&ram, &s, 0x10), s.cs);
    assert_eq!(segment_in_memory(&ram, &s, 0x18), s.ds);
    assert_eq!(
        bytes(&ram, 0x510, 16),
        [0x00AF_9B00_0000_FFFFu64, 0x00CF_9300_0000_FFFF].as_bytes()
    );

    // The protected-mode part at 1 MiB; the command line at 0x20000 with its NUL.
    assert_eq!(bytes(&ram, 0x10_0000, PM_LEN), &f.kernel.bytes[1024..]);
    assert_eq!(bytes(&ram, 0x20000, 23), b"console=ttyS0 a=\"b c\"\0\0");
    // boot_params: the image's header with the loader's fields.
    // boot_params: the image's header with the loader's fields filled in; the initrd page-aligned,
    // as high as it fits below 256 MiB.
    let bp: BootParams = obj(&ram, 0x7000);
    let (addr, size) = ((256 * MIB - 0x1_2345) & !0xFFF, 0x1_2345);
    let mut want = SetupHeader::read_from_bytes(&f.kernel.bytes[0x1F1..0x26C]).unwrap();
    want.type_of_loader = 0xFF;
    want.vid_mode = 0xFFFF.into(); // 0 in the image: "normal"
    want.cmd_line_ptr = 0x20000.into();
    (want.ramdisk_image, want.ramdisk_size) = ((addr as u32).into(), size.into());
    assert_eq!(bp.hdr.as_bytes(), want.as_bytes());
    assert_eq!(
        (bp.hdr.code32_start.get(), bp.hdr.kernel_info_offset.get()),
        (0x10_0000, 0x1234)
    );
    assert_eq!((bp.ext_ramdisk_image.get(), bp.ext_cmd_line_ptr.get()), (0, 0));
    assert_eq!((bp.acpi_rsdp_addr.get(), bp.sentinel), (0, 0));
    assert_eq!(bytes(&ram, addr, 0x1_2345), f.initrd.as_ref().unwrap().bytes);
    // The e820 map: minnow.rom's.
    let map = e820_map(256 * MIB);
    assert_eq!(usize::from(bp.e820_entries), map.len());
    assert_eq!(&bp.e820_table[..map.len()], &map[..]);
    // Identity page tables for 0-4 GiB.
    let u64_at = |a: u64| u64::from_le_bytes(bytes(&ram, a, 8).try_into().unwrap());
    assert_eq!(u64_at(0x9000), 0xA003);
    assert_eq!(u64_at(0x9008), 0);
    assert_eq!(
        (u64_at(0xA000), u64_at(0xA018), u64_at(0xA020)),
        (0xB003, 0xE003, 0)
    );
    assert_eq!(u64_at(0xB000), 0x83);
    assert_eq!(u64_at(0xB008), 0x20_0083);
    assert_eq!(u64_at(0xEFF8), 0xFFE0_0083, "the last 2 MiB below 4 GiB");
    assert_mptable(&ram, 2);
}

#[test]
fn a_bzimage_without_the_64_bit_entry_gets_the_32_bit_one() {
    let ram = ram(64 * MIB);
    let f = files(bzimage(false, 0), None);
    let entry = load(&input(&f, "", 64 * MIB, 1), &ram).unwrap();
    assert_eq!(
        (entry.mode, entry.rip, entry.rsi),
        (Mode::Protected32, 0x10_0000, 0x7000)
    );
    let mut s = reset_sregs();
    entry.apply(&mut s);
    assert_eq!((s.cr0, s.cr4, s.efer), (0x11, 0, 0));
    assert_eq!(
        (s.cs.selector, s.cs.db, s.cs.l, s.ds.selector),
        (0x10, 1, 0, 0x18)
    );
    let bp: BootParams = obj(&ram, 0x7000);
    assert_eq!((bp.hdr.ramdisk_image.get(), bp.hdr.ramdisk_size.get()), (0, 0));
    assert_eq!(bytes(&ram, 0x20000, 1), [0], "an empty command line");
    assert_eq!(bytes(&ram, 0x9000, 8), [0; 8], "no page tables");
    assert_mptable(&ram, 1);
}

#[test]
fn a_pvh_kernel_gets_start_info_and_flat_protected_mode() {
    let ram = ram(512 * MIB);
    let f = files(pvh_elf(ELF_LOAD, true), Some(4096));
    let entry = load(&input(&f, "pvh", 512 * MIB, 2), &ram).unwrap();
    assert_eq!(
        entry,
        CpuEntry {
            mode: Mode::Protected32,
            rip: u64::from(ELF_ENTRY),
            rsp: 0x6000,
            rsi: 0,
            rbx: 0x6000
        }
    );
    assert_eq!(entry.regs().rbx, 0x6000);
    let mut s = reset_sregs();
    entry.apply(&mut s);
    assert_eq!((s.cr0, s.cr3, s.cr4, s.efer), (0x11, 0, 0, 0));
    assert_eq!(
        (s.cs.selector, s.cs.db, s.cs.l, s.cs.limit, s.cs.base),
        (0x10, 1, 0, u32::MAX, 0)
    );
    assert_eq!((s.ss.selector, s.ss.type_), (0x18, 3));
    assert_eq!(segment_in_memory(&ram, &s, 0x10), s.cs);
    assert_eq!(segment_in_memory(&ram, &s, 0x20), s.tr);

    assert_eq!(bytes(&ram, ELF_LOAD, 0x100), &f.kernel.bytes[0x1000..0x1100]);
    assert_eq!(
        bytes(&ram, ELF_LOAD + 0x100, 0x1F00),
        vec![0; 0x1F00],
        "bss is zero"
    );
    let si: StartInfo = obj(&ram, 0x6000);
    assert_eq!(
        (si.magic.get(), si.version.get(), si.flags.get()),
        (START_MAGIC, 1, 0)
    );
    assert_eq!((si.cmdline_paddr.get(), si.rsdp_paddr.get()), (0x20000, 0));
    assert_eq!(bytes(&ram, 0x20000, 4), b"pvh\0");
    assert_eq!((si.nr_modules.get(), si.modlist_paddr.get()), (1, 0x6040));
    let module: ModlistEntry = obj(&ram, 0x6040);
    assert_eq!((module.paddr.get(), module.size.get()), (512 * MIB - 4096, 4096));
    assert_eq!(
        bytes(&ram, 512 * MIB - 4096, 4096),
        f.initrd.as_ref().unwrap().bytes
    );
    let map = e820_map(512 * MIB);
    assert_eq!(
        (si.memmap_paddr.get(), si.memmap_entries.get() as usize),
        (0x6100, map.len())
    );
    for (i, e) in map.iter().enumerate() {
        let m: MemmapEntry = obj(&ram, 0x6100 + 24 * i as u64);
        assert_eq!(
            (m.addr, m.size, m.kind, m.reserved.get()),
            (e.addr, e.size, e.kind, 0)
        );
    }
    assert_mptable(&ram, 2);
}

/// fw_cfg files as the VMM serves them (etc/e820, the ACPI files), for minnow.rom's own code to
/// read: file `i` has key 0x20 + i.
struct FakeFwCfg {
    files: Vec<(&'static str, Vec<u8>)>,
    selected: usize,
    at: usize,
}

impl FakeFwCfg {
    fn new(memory: u64, acpi: Option<&AcpiFiles>) -> Self {
        let mut files = vec![("etc/e820", crate::fw_cfg_setup::e820(memory))];
        if let Some(a) = acpi {
            files.push(("etc/acpi/tables", a.tables.clone()));
            files.push(("etc/acpi/rsdp", a.rsdp.clone()));
            files.push(("etc/table-loader", a.table_loader.clone()));
        }
        Self {
            files,
            selected: usize::MAX,
            at: 0,
        }
    }

    fn next(&mut self) -> u8 {
        let b = self.files.get(self.selected).and_then(|f| f.1.get(self.at));
        self.at += 1;
        b.copied().unwrap_or(0)
    }
}

impl minnow_firmware::fw_cfg::FwCfg for FakeFwCfg {
    fn select(&mut self, key: u16) {
        self.selected = usize::from(key).wrapping_sub(0x20);
        self.at = 0;
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<(), minnow_firmware::fw_cfg::FwCfgError> {
        buf.iter_mut().for_each(|b| *b = self.next());
        Ok(())
    }
    fn skip(&mut self, len: u32) -> Result<(), minnow_firmware::fw_cfg::FwCfgError> {
        self.at += len as usize;
        Ok(())
    }
    fn load(
        &mut self,
        dest: u64,
        len: u32,
        mem: &mut dyn minnow_firmware::memory::Memory,
    ) -> Result<(), minnow_firmware::fw_cfg::FwCfgError> {
        let data: Vec<u8> = (0..len).map(|_| self.next()).collect();
        mem.write(dest, &data);
        Ok(())
    }
    fn write(&mut self, _data: &[u8]) -> Result<(), minnow_firmware::fw_cfg::FwCfgError> {
        unreachable!("the microvm's table-loader script has no WRITE_POINTER")
    }
    fn file_bytes(&self, name: &[u8]) -> Option<minnow_firmware::fw_cfg::File> {
        let i = self.files.iter().position(|f| f.0.as_bytes() == name)?;
        Some(minnow_firmware::fw_cfg::File {
            key: 0x20 + i as u16,
            size: self.files[i].1.len() as u32,
        })
    }
}

/// Sparse guest memory for minnow.rom's code: unwritten bytes read as 0.
#[derive(Default)]
struct SparseMemory(std::collections::HashMap<u64, u8>);

impl minnow_firmware::memory::Memory for SparseMemory {
    fn write(&mut self, addr: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.0.insert(addr + i as u64, b);
        }
    }
    fn read(&self, addr: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0.get(&(addr + i as u64)).copied().unwrap_or(0);
        }
    }
    fn fill(&mut self, addr: u64, len: u64, byte: u8) {
        self.write(addr, &vec![byte; len as usize]);
    }
}

#[test]
fn the_e820_map_is_the_one_minnow_rom_reports() {
    use minnow_firmware::memory_map;
    for memory in [
        2 * MIB,
        128 * MIB,
        256 * MIB,
        (3 << 30) - 4096,
        3 << 30,
        (3 << 30) + 4096,
        6 << 30,
    ] {
        let mut cfg = FakeFwCfg::new(memory, None);
        let mut map = memory_map::from_fw_cfg(&mut cfg).unwrap().unwrap();
        memory_map::carve_legacy(&mut map).unwrap();
        let firmware: Vec<E820Entry> = map.entries().collect();
        assert_eq!(e820_map(memory), firmware, "-m {memory:#x}");
    }
    let list = |m: u64| -> Vec<(u64, u64, u32)> {
        e820_map(m)
            .iter()
            .map(|e| (e.addr.get(), e.addr.get() + e.size.get(), e.kind.get()))
            .collect()
    };
    assert_eq!(
        list(4 << 30),
        [
            (0, 0x9E000, e820::RAM),
            (0x9E000, 0xA0000, e820::RESERVED),
            (0xE0000, 0x10_0000, e820::RESERVED),
            (0x10_0000, 3 << 30, e820::RAM),
            (1 << 32, (1 << 32) + (1 << 30), e820::RAM),
        ]
    );
}

#[test]
fn the_layout_is_the_firmwares_where_both_build_the_same_thing_and_nothing_overlaps() {
    use minnow_firmware::layout as fw;
    assert_eq!(
        (
            layout::PVH_START_INFO,
            layout::PVH_MODLIST,
            layout::PVH_MEMMAP,
            layout::PVH_MEMMAP_END
        ),
        (
            fw::PVH_START_INFO,
            fw::PVH_MODLIST,
            fw::PVH_MEMMAP,
            fw::PVH_MEMMAP_END
        )
    );
    assert_eq!(
        (layout::BOOT_PARAMS, layout::CMDLINE),
        (fw::LINUX_BOOT_PARAMS, fw::CMDLINE)
    );
    assert_eq!(layout::CMDLINE_MAX, fw::CMDLINE_MAX);
    assert_eq!(
        (legacy::MPTABLE, legacy::MP_FLOATING_POINTER),
        (fw::MPTABLE, fw::MP_FLOATING_POINTER)
    );
    assert_eq!(
        layout::RSDP,
        fw::FSEG_ZONE,
        "the table-loader's first F-segment address"
    );
    let mut ranges = [
        (layout::GDT, layout::GDT + 48),
        (0x1000, layout::STACK_TOP),
        (layout::PVH_START_INFO, layout::PVH_MEMMAP_END),
        (layout::BOOT_PARAMS, layout::BOOT_PARAMS + 4096),
        (layout::PML4, layout::PAGE_TABLES_END),
        (layout::CMDLINE, layout::CMDLINE + layout::CMDLINE_MAX),
    ];
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:x?}");
    assert_eq!(layout::PML4 + 0x1000, layout::PDPT);
    assert_eq!(
        (layout::PD, layout::PD + 4 * 0x1000),
        (layout::PDPT + 0x1000, layout::PAGE_TABLES_END)
    );
    // All of it in the RAM below the MP table that every map lists.
    let first = e820_map(64 * MIB)[0];
    assert_eq!((first.addr.get(), first.kind.get()), (0, e820::RAM));
    assert!(ranges.iter().all(|r| r.1 <= first.size.get()));
    assert_eq!(std::mem::size_of_val(&Mode::Long64.gdt()), 48);
}

fn err(f: &Files, cmdline: &str, memory: u64) -> String {
    load(&input(f, cmdline, memory, 1), &ram(memory))
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_the_file_or_the_size() {
    let e = err(&files(vec![0x55; 4096], None), "", 64 * MIB);
    assert!(e.contains("/k/kernel: neither a bzImage nor an ELF"), "{e}");
    // The initrd: 0x3F0_0000 bytes do not fit between the kernel's end and 64 MiB.
    let e = err(&files(bzimage(true, 0x40_0000), Some(0x3F0_0000)), "", 64 * MIB);
    assert!(
        e.contains("/k/initrd.img: initrd of 0x3f00000 bytes does not fit"),
        "{e}"
    );
    assert!(e.contains("kernel's end (0x500000)"), "{e}");
    let e = err(&files(pvh_elf(ELF_LOAD, true), Some(0x3F0_0000)), "", 64 * MIB);
    assert!(e.contains("/k/initrd.img: initrd of 0x3f00000 bytes"), "{e}");
    // The kernel: init_size beyond RAM, a segment beyond RAM.
    let e = err(&files(bzimage(true, 0x800_0000), None), "", 64 * MIB);
    assert!(
        e.contains("/k/kernel: the kernel needs 0x8000000 bytes of RAM from 0x100000, but RAM below 4 GiB ends at 0x4000000"),
        "{e}"
    );
    let e = err(&files(pvh_elf(0x3FF_F000, true), None), "", 64 * MIB);
    assert!(
        e.contains("/k/kernel: the kernel needs 0x2000 bytes of RAM from 0x3fff000"),
        "{e}"
    );
    assert!(e.contains("give the VM more memory (-m)"), "{e}");
    // Kernels direct boot cannot take.
    let e = err(&files(pvh_elf(ELF_LOAD, false), None), "", 64 * MIB);
    assert!(
        e.contains("/k/kernel: ELF kernel without a PVH entry note"),
        "{e}"
    );
    let e = err(&files(pvh_elf(0x8_0000, true), None), "", 64 * MIB);
    assert!(
        e.contains("/k/kernel: a segment loads at 0x80000, below 1 MiB"),
        "{e}"
    );
    let mut zimage = bzimage(true, 0);
    zimage[0x211] = 0;
    let e = err(&files(zimage, None), "", 64 * MIB);
    assert!(
        e.contains("/k/kernel: not a bzImage direct boot can load: a zImage"),
        "{e}"
    );
    let mut old = bzimage(true, 0);
    old[0x206] = 0x04;
    let e = err(&files(old, None), "", 64 * MIB);
    assert!(e.contains("boot protocol 2.04 is older than 2.06"), "{e}");
    let mut truncated = pvh_elf(ELF_LOAD, true);
    truncated.truncate(0x1080);
    let e = err(&files(truncated, None), "", 64 * MIB);
    assert!(e.contains("/k/kernel: malformed ELF: segment 0"), "{e}");
    // The command line.
    let long = "x".repeat(2048);
    let e = err(&files(bzimage(true, 0), None), &long, 64 * MIB);
    assert_eq!(
        e,
        "the kernel command line is 2048 bytes, longer than the 2047 this kernel takes"
    );
    let e = err(&files(pvh_elf(ELF_LOAD, true), None), "a\0b", 64 * MIB);
    assert!(e.contains("NUL byte at offset 1"), "{e}");
    assert!(load(
        &input(&files(pvh_elf(ELF_LOAD, true), None), &long, 64 * MIB, 1),
        &ram(64 * MIB)
    )
    .is_ok());
}

#[test]
fn the_files_are_read_from_the_config() {
    let c = Config {
        bios: crate::config::Bios::None,
        kernel: Some("/nonexistent/vmlinux".into()),
        ..Config::default()
    };
    let e = load_files(&c, &ram(64 * MIB), (0, 0)).unwrap_err().to_string();
    assert!(
        e.starts_with("could not open kernel file '/nonexistent/vmlinux': "),
        "{e}"
    );
    let c = Config { kernel: None, ..c };
    let e = load_files(&c, &ram(64 * MIB), (0, 0)).unwrap_err().to_string();
    assert_eq!(e, "-bios none boots a kernel directly: pass -kernel");
}

/// Corrupted images are errors, never panics (the loader reads untrusted files).
#[test]
fn corrupted_kernels_never_panic() {
    let memory = 64 * MIB;
    let ram = ram(memory);
    let mut seed = 0x9E37_79B9u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for image in [bzimage(true, 0x40_0000), pvh_elf(ELF_LOAD, true)] {
        for len in (0..image.len()).step_by(61) {
            let f = files(image[..len].to_vec(), Some(100));
            let _ = load(&input(&f, "", memory, 1), &ram);
        }
        for _ in 0..300 {
            let mut bad = image.clone();
            for _ in 0..1 + next(4) {
                let at = next(0x280);
                bad[at] = next(256) as u8;
            }
            let f = files(bad, Some(100));
            let _ = load(&input(&f, "", memory, 1), &ram);
        }
    }
}

// ACPI: the tables minnow.rom would install, where it would install them, and no MP table.

fn with_acpi<'a>(input: Input<'a>, acpi: &'a AcpiFiles) -> Input<'a> {
    Input {
        acpi: Some(acpi),
        ..input
    }
}

/// The tables' first page when they are installed at the top of `memory` (below 3 GiB).
fn tables_at(memory: u64, acpi: &AcpiFiles) -> u64 {
    memory.min(3 << 30) - (acpi.tables.len() as u64).next_multiple_of(0x1000)
}

#[test]
fn with_acpi_a_bzimage_gets_the_tables_at_the_top_of_ram_and_no_mp_table() {
    let memory = 256 * MIB;
    let ram = ram(memory);
    let f = files(bzimage(true, 0x40_0000), Some(0x1_2345));
    let acpi = acpi_files(2);
    let tables = tables_at(memory, &acpi);
    let entry = load(&with_acpi(input(&f, "acpi", memory, 2), &acpi), &ram).unwrap();
    assert_eq!((entry.mode, entry.rsi), (Mode::Long64, 0x7000));
    let bp: BootParams = obj(&ram, 0x7000);
    assert_eq!(bp.acpi_rsdp_addr.get(), 0xE0000);
    // What the table-loader would have made of the served files, at the same addresses...
    let linked = acpi.link(tables, 0xE0000).unwrap();
    assert_eq!(bytes(&ram, tables, linked.tables.len()), linked.tables);
    assert_eq!(bytes(&ram, 0xE0000, linked.rsdp.len()), linked.rsdp);
    // ...which a kernel walking from the RSDP finds whole, every checksum right.
    let (sigs, cpus, extent) = walk_acpi(&ram, bp.acpi_rsdp_addr.get());
    assert_eq!(sigs, ["XSDT", "FACP", "DSDT", "APIC"]);
    assert_eq!(cpus, 2);
    assert_eq!(extent, (tables, tables + acpi.tables.len() as u64));
    // The tables' whole pages reserved in e820, RAM up to them.
    let map = ranges(&bp.e820_table[..usize::from(bp.e820_entries)]);
    assert_eq!(
        map,
        [
            (0, 0x9E000, e820::RAM),
            (0x9E000, 0xA0000, e820::RESERVED),
            (0xE0000, 0x10_0000, e820::RESERVED),
            (0x10_0000, tables, e820::RAM),
            (tables, memory, e820::RESERVED),
        ]
    );
    // The initrd below the tables.
    let initrd = (tables - 0x1_2345) & !0xFFF;
    assert_eq!(
        (bp.hdr.ramdisk_image.get(), bp.hdr.ramdisk_size.get()),
        (initrd as u32, 0x1_2345)
    );
    assert_eq!(bytes(&ram, initrd, 0x1_2345), f.initrd.as_ref().unwrap().bytes);
    // No MP table, as minnow.rom writes none with ACPI.
    assert_eq!(bytes(&ram, 0x9E000, 0x2000), vec![0; 0x2000]);
}

#[test]
fn with_acpi_a_pvh_kernel_gets_rsdp_paddr_and_the_reserved_tables() {
    let memory = 512 * MIB;
    let ram = ram(memory);
    let f = files(pvh_elf(ELF_LOAD, true), Some(4096));
    let acpi = acpi_files(1);
    let tables = tables_at(memory, &acpi);
    load(&with_acpi(input(&f, "pvh", memory, 1), &acpi), &ram).unwrap();
    let si: StartInfo = obj(&ram, 0x6000);
    assert_eq!(si.rsdp_paddr.get(), 0xE0000);
    let (sigs, cpus, extent) = walk_acpi(&ram, si.rsdp_paddr.get());
    assert_eq!((sigs.join(","), cpus), ("XSDT,FACP,DSDT,APIC".into(), 1));
    assert_eq!(extent.0, tables);
    let module: ModlistEntry = obj(&ram, 0x6040);
    assert_eq!((module.paddr.get(), module.size.get()), (tables - 4096, 4096));
    let map = e820_map_reserving(memory, Some((tables, memory - tables)));
    assert_eq!(ranges(&map).last(), Some(&(tables, memory, e820::RESERVED)));
    assert_eq!(si.memmap_entries.get() as usize, map.len());
    for (i, e) in map.iter().enumerate() {
        let m: MemmapEntry = obj(&ram, 0x6100 + 24 * i as u64);
        assert_eq!((m.addr, m.size, m.kind), (e.addr, e.size, e.kind));
    }
    assert_eq!(bytes(&ram, 0x9FC00, 16), [0; 16], "no MP floating pointer");
}

/// minnow.rom's own table-loader and memory-map code, run on the files the VMM serves, puts the
/// tables and the RSDP at the same addresses, with the same bytes, and reports the same map.
#[test]
fn with_acpi_the_tables_and_the_map_are_the_ones_minnow_rom_installs() {
    use minnow_firmware::memory::Memory;
    use minnow_firmware::{acpi_loader, memory_map};
    let f = files(pvh_elf(ELF_LOAD, true), None);
    for memory in [
        16 * MIB,
        256 * MIB,
        (3 << 30) - 4096,
        3 << 30,
        (3 << 30) + 4096,
        6 << 30,
    ] {
        for cpus in [1, 2, 254] {
            let acpi = acpi_files(cpus);
            let mut cfg = FakeFwCfg::new(memory, Some(&acpi));
            let mut map = memory_map::from_fw_cfg(&mut cfg).unwrap().unwrap();
            memory_map::carve_legacy(&mut map).unwrap();
            let mut mem = SparseMemory::default();
            let rsdp = acpi_loader::install(&mut cfg, &mut mem, &mut map, &[]).unwrap();

            let plan = Plan::new(&with_acpi(input(&f, "", memory, cpus), &acpi)).unwrap();
            let (at, linked) = plan.acpi.as_ref().unwrap();
            let what = format!("-m {memory:#x} -smp {cpus}");
            assert_eq!(rsdp, Some(at.rsdp), "{what}");
            assert_eq!(plan.e820, map.entries().collect::<Vec<_>>(), "{what}");
            assert_eq!(
                (at.tables, plan.ram_end),
                (tables_at(memory, &acpi), at.tables),
                "{what}"
            );
            let mut placed = vec![0; linked.tables.len()];
            mem.read(at.tables, &mut placed);
            assert_eq!(placed, linked.tables, "{what}");
            let mut placed = vec![0; linked.rsdp.len()];
            mem.read(at.rsdp, &mut placed);
            assert_eq!(placed, linked.rsdp, "{what}");
        }
    }
}

#[test]
fn with_acpi_the_kernel_and_the_initrd_must_fit_below_the_tables() {
    let memory = 64 * MIB;
    let acpi = acpi_files(1);
    let tables = tables_at(memory, &acpi);
    let run = |f: &Files, acpi: Option<&AcpiFiles>| {
        let input = Input {
            acpi,
            ..input(f, "", memory, 1)
        };
        load(&input, &ram(memory)).map_err(|e| e.to_string())
    };
    // A bzImage running up to the top of RAM fits only without the tables.
    let f = files(bzimage(true, (memory - MIB) as u32), None);
    assert!(run(&f, None).is_ok());
    let e = run(&f, Some(&acpi)).unwrap_err();
    assert!(
        e.contains(&format!("but RAM below 4 GiB ends at {tables:#x}")),
        "{e}"
    );
    // So does a PVH segment in the last page.
    let f = files(pvh_elf(memory - 0x2000, true), None);
    assert!(run(&f, None).is_ok());
    let e = run(&f, Some(&acpi)).unwrap_err();
    assert!(
        e.contains("/k/kernel: the kernel needs 0x2000 bytes of RAM from 0x3ffe000"),
        "{e}"
    );
    // An initrd filling the RAM above the kernel.
    let f = files(bzimage(true, 0x40_0000), Some((memory - 0x50_0000) as usize));
    assert!(run(&f, None).is_ok());
    let e = run(&f, Some(&acpi)).unwrap_err();
    assert!(
        e.contains(&format!("kernel's end (0x500000) and {tables:#x}")),
        "{e}"
    );
}
