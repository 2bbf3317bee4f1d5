//! Links each payload with its own script (payloads/<bin>.ld, which INCLUDEs sections.ld), only
//! when building for bare metal.
fn main() {
    const BINS: [&str; 4] = ["multiboot1", "multiboot2", "pvh", "bzimage"];
    println!("cargo:rerun-if-changed=sections.ld");
    for bin in BINS {
        println!("cargo:rerun-if-changed={bin}.ld");
        println!("cargo:rerun-if-changed=src/arch/{bin}.S");
    }
    // The demo's hello.elf and the snapshot tests' blklog.elf are PVH payloads: same entry,
    // same layout.
    const LIKE_PVH: [&str; 2] = ["hello", "blklog"];
    println!("cargo:rerun-if-changed=src/arch/start.S");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        for bin in BINS {
            println!("cargo:rustc-link-arg-bin={bin}=-T{dir}/{bin}.ld");
        }
        for bin in LIKE_PVH {
            println!("cargo:rustc-link-arg-bin={bin}=-T{dir}/pvh.ld");
        }
        // INCLUDE "sections.ld" is looked up in the -L directories.
        println!("cargo:rustc-link-arg-bins=-L{dir}");
        println!("cargo:rustc-link-arg-bins=--gc-sections");
        println!("cargo:rustc-link-arg-bins=-znorelro");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
        // The precompiled core library brings debug info: keep the files small (QEMU and the
        // firmware read whole images through fw_cfg). Symbols stay, for disassembly.
        println!("cargo:rustc-link-arg-bins=--strip-debug");
    }
}
