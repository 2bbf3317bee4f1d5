//! Test helper: disassembles tables with ACPICA's `iasl -d`, which must succeed.
use std::path::PathBuf;
use std::process::Command;

/// Disassembles each `(name, bytes)` as `<name>.dat` in a fresh directory and returns each
/// `(name, disassembly)`. Panics, saying why, if iasl is missing or fails on any table.
pub fn disassemble(case: &str, tables: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let dir: PathBuf = std::env::temp_dir().join(format!("minnow-acpi-{case}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let mut out = Vec::new();
    for (name, bytes) in tables {
        let dat = dir.join(format!("{name}.dat"));
        std::fs::write(&dat, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", dat.display()));
        let run = Command::new("iasl")
            .arg("-d")
            .arg(&dat)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("running iasl ({e}): the ACPI tests need ACPICA's iasl: apt-get install acpica-tools")
            });
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            run.status.success(),
            "iasl -d {name}.dat failed ({}):\n{log}",
            run.status
        );
        let dsl = dir.join(format!("{name}.dsl"));
        let text = std::fs::read_to_string(&dsl)
            .unwrap_or_else(|e| panic!("iasl -d {name}.dat wrote no {}: {e}\n{log}", dsl.display()));
        // iasl flags problems it tolerates (a wrong checksum, a short table) in `/****` comments.
        // One is expected: iasl 20200925 reads a revision-5 FADT as if it had ACPI 6.0's 8-byte
        // Hypervisor Vendor Identity after the sleep registers, and says a 268-byte ACPI 5.0
        // FADT (QEMU's microvm's too) "terminates in the middle of a data structure".
        let complaints: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("/****"))
            .filter(|l| !(name == "facp" && l.contains("terminates in the middle of a data structure")))
            .collect();
        assert!(
            complaints.is_empty(),
            "iasl -d {name}.dat complains: {complaints:?}\n{text}"
        );
        out.push((name.clone(), text));
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}
