//! Runs the suite's own `run_tests.sh` with its `QEMU=` variable pointed at a VMM: minnow as it
//! is, and QEMU 7.2 through a wrapper that adds `-M microvm` and drops `-device pci-testdev`
//! (the runner adds it because QEMU lists it; microvm has no PCI bus to put it on). Everything
//! else on the command line is the runner's, the same for both.
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `run_tests.sh` said of one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub class: Class,
    /// Its words in parentheses, such as "1910 tests, 7 unexpected failures".
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Pass,
    Fail,
    Skip,
}

/// The suite's tests and their outcome on one VMM.
pub type Results = BTreeMap<String, Outcome>;

/// The wrapper that runs QEMU 7.2's microvm for the runner.
const QEMU_MICROVM: &str = r#"#!/bin/bash
# kvm-unit-tests' runner starts "$QEMU ARGS": QEMU's microvm, without the PCI test device
# (microvm has no PCI bus).
args=()
while [ $# -gt 0 ]; do
    if [ "$1" = -device ] && [ "$2" = pci-testdev ]; then
        shift 2
        continue
    fi
    args+=("$1")
    shift
done
exec qemu-system-x86_64 -M microvm "${args[@]}"
"#;

/// Writes the QEMU wrapper beside the suite and returns its path.
pub fn qemu_microvm(src: &Path) -> Result<PathBuf> {
    let path = src.join("qemu-microvm");
    fs::write(&path, QEMU_MICROVM)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Runs `tests` (all when empty) on `vmm` and returns what the runner said of each.
pub fn run(src: &Path, vmm: &Path, tests: &[String]) -> Result<Results> {
    eprintln!(
        "[kvm-unit-tests] QEMU={} ./run_tests.sh -j2 {}",
        vmm.display(),
        tests.join(" ")
    );
    let out = Command::new("./run_tests.sh")
        .current_dir(src)
        // Two at a time, one per core of this machine; both VMMs the same.
        .arg("-j2")
        .args(tests)
        .env("QEMU", vmm)
        .env("ACCEL", "kvm")
        .output()
        .with_context(|| format!("running run_tests.sh in {}", src.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let results = parse(&text);
    if results.is_empty() {
        bail!(
            "run_tests.sh with QEMU={} reported no test ({}): {}",
            vmm.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(results)
}

/// The runner's summary lines: `PASS name`, `FAIL name (detail)`, `SKIP name (detail)`, in
/// colour or not.
pub fn parse(text: &str) -> Results {
    text.lines()
        .filter_map(|line| {
            let line = strip_colour(line);
            let (word, rest) = line.split_once(' ')?;
            let class = match word {
                "PASS" => Class::Pass,
                "FAIL" => Class::Fail,
                "SKIP" => Class::Skip,
                _ => return None,
            };
            let (name, detail) = match rest.split_once(" (") {
                Some((name, detail)) => (name, detail.trim_end_matches(')')),
                None => (rest.trim(), ""),
            };
            let outcome = Outcome {
                class,
                detail: detail.to_string(),
            };
            Some((name.to_string(), outcome))
        })
        .collect()
}

/// Drops ANSI colour sequences (`ESC [ ... m`).
fn strip_colour(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runners_summary_lines_parse_in_colour_or_not() {
        let text = "TESTNAME=msr TIMEOUT=90s ./x86/run x86/msr.flat -smp 1\n\
                    \u{1b}[31mFAIL\u{1b}[0m msr (1910 tests, 7 unexpected failures)\n\
                    \u{1b}[33mSKIP\u{1b}[0m tsc (0 tests)\n\
                    PASS rmap_chain\n\
                    PASS apic-split (52 tests)\n";
        let r = parse(text);
        assert_eq!(r.len(), 4);
        assert_eq!(r["msr"].class, Class::Fail);
        assert_eq!(r["msr"].detail, "1910 tests, 7 unexpected failures");
        assert_eq!(r["tsc"].class, Class::Skip);
        assert_eq!(r["rmap_chain"].class, Class::Pass);
        assert_eq!(r["apic-split"].detail, "52 tests");
    }
}
