//! QEMU's own monitor clients (PyPI's qemu.qmp: QMPClient, QEMUMonitorProtocol, qmp-shell; and
//! socat as a telnet client for HMP) drive QEMU 7.2 and minnow through `tests/qmp/compat.py`, the
//! same checks and the same command line for both. QEMU passing shows the checks say what QEMU
//! does; minnow passing shows clients written for QEMU drive minnow unchanged.
//!
//! Needs /dev/kvm, qemu-system-x86_64, socat and the virtualenv `./setup.sh` makes
//! (`$MINNOW_QMP_PYTHON` names another interpreter with qemu.qmp installed).
use std::path::PathBuf;
use std::process::Command;

/// $MINNOW_QMP_PYTHON, else the virtualenv in minnow's cache directory.
fn python() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var("MINNOW_QMP_PYTHON") {
        return p.into();
    }
    let cache = var("MINNOW_CACHE")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("minnow")))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/minnow")))
        .expect("no cache directory: set MINNOW_QMP_PYTHON or HOME");
    let python = cache.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: ./setup.sh makes the virtualenv with PyPI's qemu.qmp \
         (or set MINNOW_QMP_PYTHON)",
        python.display()
    );
    python
}

fn run_compat(vmm: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/qmp/compat.py");
    let out = Command::new(python())
        .arg(&script)
        .args(["--vmm", vmm])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let said = String::from_utf8_lossy(&out.stdout);
    print!("{said}");
    assert!(
        out.status.success(),
        "compat.py against {vmm} failed ({}):\n{said}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("checks passed"), "compat.py said nothing: {said}");
}

#[test]
fn qemus_clients_drive_qemu() {
    run_compat("qemu-system-x86_64");
}

#[test]
fn qemus_clients_drive_minnow() {
    run_compat(env!("CARGO_BIN_EXE_minnow"));
}
