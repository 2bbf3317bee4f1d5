//! The fw_cfg route's modules: several, each with its command line, for multiboot 1 and 2; the
//! combinations that cannot work are refused by name.
use super::super::tests::{bzimage, multiboot1_aout, multiboot2};
use super::super::tests_support::boot_with_ram;
use crate::boot::Handoff;
use crate::error::BootError;
use crate::layout;
use crate::memory::read_obj;
use minnow_bootproto::fw_cfg::file;
use minnow_bootproto::multiboot1::{header_flags, Info, Module as MbModule};
use minnow_bootproto::multiboot2::{info_tag, InfoTag};

const RAM: u64 = 0x100_0000;

/// Xen's shape: a kernel line, then the dom0 kernel with its line and the dom0 initrd without one.
fn xen_like() -> Vec<(&'static str, &'static [u8])> {
    vec![
        (file::MINNOW_CMDLINE, b"console=com1"),
        ("opt/org.minnow/module/0", &[0xAA; 0x1800]),
        ("opt/org.minnow/module/0/cmdline", b"console=hvc0 root=/dev/ram0"),
        ("opt/org.minnow/module/1", &[0xBB; 0x100]),
    ]
}

fn cstr(mem: &crate::fakes::FakeMemory, addr: u64) -> String {
    let bytes = mem.bytes(addr, 256);
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .expect("a NUL within 256 bytes");
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[test]
fn multiboot1_gets_every_module_in_order_with_its_name_and_command_line() {
    let img = multiboot1_aout(header_flags::AOUT_KLUDGE);
    let (h, mem) = boot_with_ram(RAM, img, &xen_like());
    assert!(matches!(h.unwrap(), Handoff::Multiboot1 { .. }));
    let info: Info = read_obj(&mem, layout::MULTIBOOT_INFO);
    assert_eq!(
        cstr(&mem, u64::from(info.cmdline.get())),
        "opt/org.minnow/kernel console=com1"
    );
    assert_eq!(info.mods_count.get(), 2);
    let list: [MbModule; 2] = read_obj(&mem, u64::from(info.mods_addr.get()));
    let strings: Vec<_> = list
        .iter()
        .map(|m| cstr(&mem, u64::from(m.string.get())))
        .collect();
    assert_eq!(
        strings,
        [
            "opt/org.minnow/module/0 console=hvc0 root=/dev/ram0",
            "opt/org.minnow/module/1"
        ]
    );
    for (m, (byte, len)) in list.iter().zip([(0xAA, 0x1800), (0xBB, 0x100)]) {
        let (start, end) = (u64::from(m.mod_start.get()), u64::from(m.mod_end.get()));
        assert_eq!(end - start, len, "{m:?}");
        assert_eq!(start % 4096, 0);
        assert!(start >= layout::HIGH_MEMORY && end <= RAM);
        assert!(mem.bytes(start, len as usize).iter().all(|&b| b == byte));
    }
    let (a, b) = (&list[0], &list[1]);
    assert!(
        a.mod_end.get() <= b.mod_start.get() || b.mod_end.get() <= a.mod_start.get(),
        "modules overlap: {list:?}"
    );
}

#[test]
fn multiboot2_gets_one_module_tag_per_module_with_its_string() {
    let (h, mem) = boot_with_ram(RAM, multiboot2(&[]), &xen_like());
    assert!(matches!(h.unwrap(), Handoff::Multiboot2 { .. }));
    let mut at = layout::MULTIBOOT_INFO + 8;
    let (mut cmdline, mut modules) = (None, Vec::new());
    loop {
        let tag: InfoTag = read_obj(&mem, at);
        match tag.kind.get() {
            info_tag::CMDLINE => cmdline = Some(cstr(&mem, at + 8)),
            info_tag::MODULE => modules.push(cstr(&mem, at + 16)),
            info_tag::END => break,
            _ => {}
        }
        at = (at + u64::from(tag.size.get())).next_multiple_of(8);
    }
    assert_eq!(cmdline.as_deref(), Some("opt/org.minnow/kernel console=com1"));
    assert_eq!(
        modules,
        [
            "opt/org.minnow/module/0 console=hvc0 root=/dev/ram0",
            "opt/org.minnow/module/1"
        ]
    );
}

#[test]
fn the_single_initrd_is_still_module_0() {
    let img = multiboot1_aout(header_flags::AOUT_KLUDGE);
    let (h, mem) = boot_with_ram(RAM, img, &[(file::MINNOW_INITRD, b"module")]);
    h.unwrap();
    let info: Info = read_obj(&mem, layout::MULTIBOOT_INFO);
    assert_eq!(info.mods_count.get(), 1);
    let m: MbModule = read_obj(&mem, u64::from(info.mods_addr.get()));
    assert_eq!(cstr(&mem, u64::from(m.string.get())), "opt/org.minnow/initrd");
}

#[test]
fn combinations_that_cannot_work_are_refused_by_name() {
    let module: (&str, &[u8]) = ("opt/org.minnow/module/0", b"m");
    let (h, _) = boot_with_ram(RAM, multiboot2(&[]), &[(file::MINNOW_INITRD, b"i"), module]);
    assert_eq!(h.unwrap_err(), BootError::InitrdAndModules);
    let (h, _) = boot_with_ram(RAM, bzimage(), &[module]);
    assert_eq!(h.unwrap_err(), BootError::ModulesNeedMultiboot);
    let names: Vec<String> = (0..17).map(|i| format!("opt/org.minnow/module/{i}")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"m"[..])).collect();
    let (h, _) = boot_with_ram(RAM, multiboot2(&[]), &many);
    assert_eq!(h.unwrap_err(), BootError::TooManyModules(16));
    // Sixteen is the most, and works.
    let (h, _) = boot_with_ram(RAM, multiboot2(&[]), &many[..16]);
    assert!(h.is_ok(), "{h:?}");
    let too_long = vec![b'x'; 4096];
    let (h, _) = boot_with_ram(
        RAM,
        multiboot2(&[]),
        &[module, ("opt/org.minnow/module/0/cmdline", &too_long)],
    );
    assert!(matches!(h.unwrap_err(), BootError::CmdlineTooLong { .. }));
}
