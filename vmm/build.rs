//! Embeds Minnow's ROM (target/firmware/minnow.rom, or $MINNOW_ROM) so an installed `minnow` needs
//! no -bios. Without one, `minnow` says how to build it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(builtin_rom)");
    println!("cargo:rerun-if-env-changed=MINNOW_ROM");
    let rom = std::env::var("MINNOW_ROM")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
            format!("{dir}/../target/firmware/minnow.rom")
        });
    println!("cargo:rerun-if-changed={rom}");
    if std::path::Path::new(&rom).is_file() {
        println!("cargo:rustc-cfg=builtin_rom");
        println!("cargo:rustc-env=MINNOW_BUILTIN_ROM={rom}");
    }
}
