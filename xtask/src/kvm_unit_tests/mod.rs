//! `cargo xtask kvm-unit-tests [TEST...]`: kvm-unit-tests' x86 suite as a conformance check. It
//! builds the pinned suite, runs it with its own `run_tests.sh` on minnow and on QEMU 7.2's
//! microvm (this host's `/dev/kvm`, the same runner and arguments), prints both side by side and
//! fails when a test that passes on QEMU does not pass on minnow.
pub mod build;
pub mod run;

use anyhow::{bail, Result};
use run::{Class, Outcome, Results};

pub fn run(tests: &[String]) -> Result<()> {
    let src = build::build()?;
    let images = build::images(&src)?;
    if images.is_empty() {
        bail!("the kvm-unit-tests build in {} left no x86/*.flat", src.display());
    }
    // Without QEMU every test would "fail" on it, and nothing could regress: refuse instead.
    let version = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output();
    if !version.is_ok_and(|o| o.status.success()) {
        bail!("qemu-system-x86_64 does not run: the comparison needs it (apt-get install qemu-system-x86)");
    }
    let minnow = crate::minnow_bin::build()?;
    let qemu = run::qemu_microvm(&src)?;
    let on_minnow = run::run(&src, &minnow, tests)?;
    let on_qemu = run::run(&src, &qemu, tests)?;
    let table = table(&on_minnow, &on_qemu);
    print!("{table}");
    let out = crate::workspace_root().join("target/kvm-unit-tests/results.md");
    std::fs::write(&out, &table)?;
    eprintln!("[kvm-unit-tests] table: {}", out.display());
    let worse = regressions(&on_minnow, &on_qemu);
    if !worse.is_empty() {
        bail!("pass on QEMU but not on minnow: {}", worse.join(", "));
    }
    Ok(())
}

/// The tests QEMU passes and minnow does not (or did not run).
pub fn regressions(minnow: &Results, qemu: &Results) -> Vec<String> {
    qemu.iter()
        .filter(|(_, q)| q.class == Class::Pass)
        .filter(|(name, _)| minnow.get(*name).is_none_or(|m| m.class != Class::Pass))
        .map(|(name, _)| name.clone())
        .collect()
}

/// A markdown table of every test on both VMMs, and the counts.
fn table(minnow: &Results, qemu: &Results) -> String {
    let cell = |o: Option<&Outcome>| match o {
        None => "not run".to_string(),
        Some(o) if o.detail.is_empty() => format!("{:?}", o.class).to_uppercase(),
        Some(o) => format!("{} ({})", format!("{:?}", o.class).to_uppercase(), o.detail),
    };
    let mut names: Vec<&String> = minnow.keys().chain(qemu.keys()).collect();
    names.sort();
    names.dedup();
    let count = |r: &Results, c: Class| r.values().filter(|o| o.class == c).count();
    let mut text = format!(
        "kvm-unit-tests {} (x86), run_tests.sh on this host's /dev/kvm:\n\n\
         | | PASS | FAIL | SKIP |\n|---|---:|---:|---:|\n\
         | minnow | {} | {} | {} |\n| QEMU 7.2 microvm | {} | {} | {} |\n\n\
         | test | minnow | QEMU 7.2 microvm |\n|---|---|---|\n",
        &build::COMMIT[..8],
        count(minnow, Class::Pass),
        count(minnow, Class::Fail),
        count(minnow, Class::Skip),
        count(qemu, Class::Pass),
        count(qemu, Class::Fail),
        count(qemu, Class::Skip),
    );
    for name in names {
        text += &format!(
            "| {name} | {} | {} |\n",
            cell(minnow.get(name)),
            cell(qemu.get(name))
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(list: &[(&str, Class)]) -> Results {
        list.iter()
            .map(|(n, c)| {
                let o = Outcome {
                    class: *c,
                    detail: String::new(),
                };
                (n.to_string(), o)
            })
            .collect()
    }

    #[test]
    fn a_test_qemu_passes_must_pass_on_minnow_and_nothing_else_counts() {
        let qemu = results(&[
            ("a", Class::Pass),
            ("b", Class::Pass),
            ("c", Class::Fail),
            ("d", Class::Pass),
        ]);
        let minnow = results(&[("a", Class::Pass), ("b", Class::Skip), ("c", Class::Pass)]);
        assert_eq!(regressions(&minnow, &qemu), ["b", "d"]);
        let t = table(&minnow, &qemu);
        assert!(t.contains("| b | SKIP | PASS |"), "{t}");
        assert!(t.contains("| d | not run | PASS |"), "{t}");
    }
}
