//! Links the ROM with its own script, only when building for bare metal.
fn main() {
    println!("cargo:rerun-if-changed=firmware.ld");
    println!("cargo:rerun-if-changed=src/arch/x86_64/reset.S");
    println!("cargo:rerun-if-changed=src/arch/x86_64/handoff.S");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/firmware.ld");
        println!("cargo:rustc-link-arg-bins=--gc-sections");
        println!("cargo:rustc-link-arg-bins=-znorelro");
    }
}
