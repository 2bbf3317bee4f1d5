//! `cargo xtask demo --linux`: real Linux on Minnow's VMM on a machine whose /dev/kvm cannot run
//! it: inside the nested KVM host, minnow boots Debian's cloud kernel through minnow.rom and
//! directly, each with `-boot-timeline`; the guest's last console lines and minnow's timeline
//! come back here.
use super::cases::{linux_case, Case, Expect, LinuxImage};
use anyhow::{bail, Result};
use minnow_tests::payload_check::Loader;

pub fn run() -> Result<()> {
    let cases: Vec<Case> = [Loader::MinnowRom, Loader::Direct]
        .into_iter()
        .map(|loader| {
            let mut case = linux_case(LinuxImage::BzImage, loader, true, true, 2);
            case.args.push("-boot-timeline".into());
            case.expect = Expect::Timing;
            case
        })
        .collect();
    let inputs = super::prepare(false)?;
    let outcome = super::boot(&inputs, &cases, "demo")?;
    for case in &cases {
        println!("\n== minnow {}", case.args.join(" "));
        let Some(out) = outcome.results.get(&case.name) else {
            bail!("{} did not finish (see {})", case.name, outcome.log.display());
        };
        // Leave out the XSAVE dump this test bed causes (see cases.rs, KNOWN_WARNINGS).
        for l in out.tail.iter().filter(|l| !l.contains("CPUID[0d")) {
            println!("  guest| {l}");
        }
        for l in &out.stderr {
            println!("  {l}");
        }
    }
    Ok(())
}
