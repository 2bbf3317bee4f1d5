//! kvm-unit-tests' x86 suite, built from the pinned source tarball in `third_party/` (the suite
//! is in no registry this project can reach: not crates.io, not Debian): unpacked into
//! `target/kvm-unit-tests/<commit>/`, configured for x86_64 and built with Debian's gcc. A stamp
//! file marks a finished build, so the next run reuses it.
use crate::guest::run;
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The upstream commit the tarball holds (gitlab.com/kvm-unit-tests/kvm-unit-tests, mirrored on
/// GitHub), and the tarball: its x86, lib, common and scripts folders and top-level build files.
pub const COMMIT: &str = "1da1819e49fc4938985edca67df669099b4c87a7";
const TARBALL: &str = "third_party/kvm-unit-tests-1da1819e.tar.gz";
const STAMP: &str = ".minnow-built";

/// Builds the suite (once) and returns its directory, where `run_tests.sh` runs.
pub fn build() -> Result<PathBuf> {
    let root = crate::workspace_root();
    let dir = root.join("target/kvm-unit-tests").join(&COMMIT[..8]);
    let src = dir.join("kvm-unit-tests");
    if src.join(STAMP).exists() {
        return Ok(src);
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tarball = root.join(TARBALL);
    eprintln!(
        "[kvm-unit-tests] unpacking {} ({})",
        tarball.display(),
        &COMMIT[..8]
    );
    let fix = "the suite builds with Debian's build-essential (`bash scripts/setup.sh`)";
    run(
        Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&dir),
        fix,
    )?;
    run(
        Command::new("./configure").arg("--arch=x86_64").current_dir(&src),
        fix,
    )?;
    eprintln!("[kvm-unit-tests] make -j2");
    run(Command::new("make").arg("-j2").current_dir(&src), fix)?;
    fs::write(src.join(STAMP), COMMIT)?;
    Ok(src)
}

/// The test images `make` left, for a check that the build is whole.
pub fn images(src: &Path) -> Result<Vec<PathBuf>> {
    let mut flats: Vec<PathBuf> = fs::read_dir(src.join("x86"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flat"))
        .collect();
    flats.sort();
    Ok(flats)
}
