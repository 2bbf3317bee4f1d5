//! blklog.elf: a PVH payload that writes a log through virtio-blk (`minnow_payloads::blklog`):
//! record after record, each flushed, a console line after each, with a pause between them so a
//! test can save the VM half way; then `MINNOW-BLKLOG done` and isa-debug-exit (pass), or
//! `MINNOW-BLKLOG error=...` and exit (fail).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod payload {
    use core::fmt::Write;
    use minnow_payloads::blklog::{record, DONE, RECORDS, WROTE};
    use minnow_payloads::entry::EntryState;
    use minnow_payloads::hw::{self, Com1, Identity};
    use minnow_payloads::mem::Phys;
    use minnow_payloads::proto::pvh;
    use minnow_payloads::report::{EXIT_FAIL, EXIT_PASS};
    use minnow_payloads::virtio_blk::{transports, Blk};

    core::arch::global_asm!(include_str!("../arch/pvh.S"), options(att_syntax));

    /// Spins between records: a few tenths of a second under instruction emulation.
    const PAUSE: u32 = 50_000;

    /// The NUL-terminated command line at `at`, up to 4 KiB.
    fn cmdline(at: Option<u64>) -> &'static [u8] {
        let bytes = at.and_then(|a| Identity.bytes(a, 4096)).unwrap_or_default();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        // SAFETY: the identity map maps the command line for the payload's life, and nothing
        // writes it.
        unsafe { core::slice::from_raw_parts(bytes.as_ptr(), end) }
    }

    /// Called by start.S in long mode, with the state it recorded at entry.
    #[no_mangle]
    extern "C" fn payload_main(state: &EntryState) -> ! {
        let mut com = Com1::new();
        let handed = pvh::gather(&Identity, state);
        let mut blk = match Blk::find(transports(cmdline(handed.cmdline))) {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(com, "MINNOW-BLKLOG error={e:?}");
                hw::exit(EXIT_FAIL)
            }
        };
        for n in 0..RECORDS {
            if let Err(e) = blk.write_sector(n, &record(n)).and_then(|()| blk.flush()) {
                let _ = writeln!(com, "MINNOW-BLKLOG error={e:?} record={n}");
                hw::exit(EXIT_FAIL)
            }
            let _ = writeln!(com, "{WROTE}{n}");
            for _ in 0..PAUSE {
                core::hint::spin_loop();
            }
        }
        let _ = writeln!(com, "{DONE} records={RECORDS}");
        hw::exit(EXIT_PASS)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the payloads run on bare metal: build them with `cargo xtask payloads`");
    std::process::exit(2);
}
