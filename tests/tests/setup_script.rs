//! `scripts/setup.sh` against a model of apt: fake `dpkg-query`, `apt-cache`, `apt-get`, `sudo`,
//! `rustup` and `cargo` first on PATH, each scenario saying which packages are installed and which
//! versions the apt sources offer. The fake `apt-get install` refuses, as apt does, to leave a
//! qemu-utils of 8.0 or newer beside a qemu-system-common older than 8.0 ("held broken
//! packages"), which is what a Debian 12 image with qemu-utils from bookworm-backports hit.
use std::path::{Path, PathBuf};
use std::process::Command;

const BOOKWORM: &str = "1:7.2+dfsg-7+deb12u18+b3";
const BACKPORTS: &str = "1:10.0.2+ds-2+deb13u1~bpo12+1";

/// Every package setup.sh wants, so a scenario can mark them all installed.
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-data",
    "qemu-utils",
    "seabios",
    "busybox-static",
    "acpica-tools",
    "gdb",
    "e2fsprogs",
    "linux-source",
    "build-essential",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "xz-utils",
    "socat",
    "python3-venv",
    "passt",
];

const FAKE_DPKG_QUERY: &str = r#"#!/bin/sh
# dpkg-query -W -f=FORMAT PKG, from $FAKE/installed ("pkg version" lines)
fmt=$2; pkg=$3
v=$(awk -v p="$pkg" '$1 == p {print $2}' "$FAKE/installed")
[ -n "$v" ] || exit 1
case "$fmt" in *Status*) printf 'install ok installed' ;; *) printf '%s' "$v" ;; esac
"#;

const FAKE_APT_CACHE: &str = r#"#!/bin/sh
# apt-cache madison PKG, from $FAKE/offered ("pkg version suite" lines, newest first)
[ "$1" = madison ] || exit 1
awk -v p="$2" '$1 == p {printf " %s | %s | http://deb.debian.org/debian %s/main amd64 Packages\n", $1, $2, $3}' "$FAKE/offered"
"#;

/// The resolver model: each requested QEMU package gets the version of the suite it names (or,
/// unnamed, the newest offered, but an installed package stays as it is unless named with a
/// suite); a downgrade needs --allow-downgrades; qemu-utils >= 8 breaks qemu-system-common < 8.
const FAKE_APT_GET: &str = r#"#!/bin/bash
echo "$*" >> "$FAKE/apt-get.log"
[ "$1" = install ] || exit 0
shift
downgrade=no
declare -A want
for a in "$@"; do
    case "$a" in
    --allow-downgrades) downgrade=yes ;;
    -*) ;;
    */*) want[${a%/*}]=$(awk -v p="${a%/*}" -v s="${a#*/}" '$1 == p && $3 == s {print $2; exit}' "$FAKE/offered") ;;
    *) v=$(awk -v p="$a" '$1 == p {print $2}' "$FAKE/installed")
       [ -n "$v" ] || v=$(awk -v p="$a" '$1 == p {print $2; exit}' "$FAKE/offered")
       want[$a]=$v ;;
    esac
done
utils=${want[qemu-utils]:-$(awk '$1 == "qemu-utils" {print $2}' "$FAKE/installed")}
common=${want[qemu-system-common]:-${want[qemu-system-x86]:-}}
installed_utils=$(awk '$1 == "qemu-utils" {print $2}' "$FAKE/installed")
if [ -n "$installed_utils" ] && [ "$utils" != "$installed_utils" ] && [[ "$utils" == 1:7* ]] && [ $downgrade = no ]; then
    echo "E: Packages were downgraded and -y was used without --allow-downgrades." >&2; exit 100
fi
if [[ "$utils" == 1:10* ]] && [[ "$common" == 1:7* ]]; then
    echo "E: Unable to correct problems, you have held broken packages." >&2; exit 100
fi
"#;

/// `python3 -m venv DIR` makes DIR/bin/pip, which logs what it is asked to install.
const FAKE_PYTHON3: &str = r#"#!/bin/sh
echo "python3 $*" >> "$FAKE/python.log"
[ "$1 $2" = "-m venv" ] || exit 1
mkdir -p "$3/bin"
printf '#!/bin/sh\necho "pip $*" >> "$FAKE/python.log"\n' > "$3/bin/pip"
chmod +x "$3/bin/pip"
"#;

const FAKE_OK: &str = "#!/bin/sh\nexit 0\n";
const FAKE_SUDO: &str = "#!/bin/sh\nexec \"$@\"\n";

struct Scenario {
    dir: PathBuf,
}

impl Scenario {
    fn new(name: &str, installed: &[(&str, &str)], offered: &[(&str, &str, &str)]) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("setup-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("temp dir");
        let lines = |rows: Vec<String>| rows.iter().map(|r| format!("{r}\n")).collect::<String>();
        let installed = lines(installed.iter().map(|(p, v)| format!("{p} {v}")).collect());
        let offered = lines(offered.iter().map(|(p, v, s)| format!("{p} {v} {s}")).collect());
        std::fs::write(dir.join("installed"), installed).expect("write");
        std::fs::write(dir.join("offered"), offered).expect("write");
        std::fs::write(dir.join("apt-get.log"), "").expect("write");
        for (name, text) in [
            ("dpkg-query", FAKE_DPKG_QUERY),
            ("apt-cache", FAKE_APT_CACHE),
            ("apt-get", FAKE_APT_GET),
            ("sudo", FAKE_SUDO),
            ("rustup", FAKE_OK),
            ("cargo", FAKE_OK),
            ("python3", FAKE_PYTHON3),
        ] {
            write_executable(&bin.join(name), text);
        }
        Self { dir }
    }

    /// Runs setup.sh; returns (success, its output, the apt-get calls).
    fn run(&self) -> (bool, String, Vec<String>) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup.sh");
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .arg(&script)
            .env("PATH", path)
            .env("FAKE", &self.dir)
            .env("MINNOW_CACHE", self.dir.join("cache"))
            .output()
            .expect("running bash");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::read_to_string(self.dir.join("apt-get.log")).unwrap_or_default();
        (
            out.status.success(),
            text,
            log.lines().map(str::to_string).collect(),
        )
    }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write fake");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn bookworm_qemu() -> Vec<(&'static str, &'static str, &'static str)> {
    [
        "qemu-system-x86",
        "qemu-system-data",
        "qemu-utils",
        "qemu-system-common",
    ]
    .into_iter()
    .map(|p| (p, BOOKWORM, "bookworm"))
    .collect()
}

fn the_install(calls: &[String]) -> String {
    calls
        .iter()
        .find(|c| c.starts_with("install"))
        .cloned()
        .unwrap_or_default()
}

/// The image from the report: qemu-utils 10.0 from backports, backports no longer in the sources.
#[test]
fn a_backports_qemu_utils_without_backports_in_the_sources_is_aligned_down() {
    let s = Scenario::new("bpo-gone", &[("qemu-utils", BACKPORTS)], &bookworm_qemu());
    let (ok, out, calls) = s.run();
    assert!(ok, "setup.sh failed:\n{out}");
    let install = the_install(&calls);
    assert!(install.contains("qemu-utils/bookworm"), "{install}");
    assert!(install.contains("qemu-system-x86/bookworm"), "{install}");
    assert!(install.contains("--allow-downgrades"), "{install}");
    assert!(out.contains("no apt source offers qemu-system-x86"), "{out}");
}

/// The same image with bookworm-backports still configured: QEMU comes from there, nothing is
/// downgraded.
#[test]
fn a_backports_qemu_utils_with_backports_configured_pulls_qemu_from_backports() {
    let mut offered: Vec<_> = [
        "qemu-system-x86",
        "qemu-system-data",
        "qemu-utils",
        "qemu-system-common",
    ]
    .into_iter()
    .map(|p| (p, BACKPORTS, "bookworm-backports"))
    .collect();
    offered.extend(bookworm_qemu());
    let s = Scenario::new("bpo", &[("qemu-utils", BACKPORTS)], &offered);
    let (ok, out, calls) = s.run();
    assert!(ok, "setup.sh failed:\n{out}");
    let install = the_install(&calls);
    assert!(
        install.contains("qemu-system-x86/bookworm-backports"),
        "{install}"
    );
    assert!(!install.contains("--allow-downgrades"), "{install}");
}

/// Plain Debian 12: nothing of QEMU installed.
#[test]
fn a_plain_debian_12_installs_everything() {
    let s = Scenario::new("plain", &[], &bookworm_qemu());
    let (ok, out, calls) = s.run();
    assert!(ok, "setup.sh failed:\n{out}");
    let install = the_install(&calls);
    for p in PACKAGES {
        assert!(install.contains(p), "{p} missing from: {install}");
    }
}

/// Run again on a set-up machine: apt installs nothing.
#[test]
fn a_second_run_installs_nothing() {
    let installed: Vec<(&str, &str)> = PACKAGES.iter().map(|p| (*p, BOOKWORM)).collect();
    let s = Scenario::new("again", &installed, &bookworm_qemu());
    let (ok, out, calls) = s.run();
    assert!(ok, "setup.sh failed:\n{out}");
    assert_eq!(the_install(&calls), "", "{calls:?}");
}

/// A fresh machine gets the QMP clients' virtualenv in the cache directory, with the pinned
/// qemu.qmp; a machine that has it is left alone.
#[test]
fn the_qmp_clients_virtualenv_is_made_once() {
    let s = Scenario::new("venv", &[], &bookworm_qemu());
    let (ok, out, _) = s.run();
    assert!(ok, "setup.sh failed:\n{out}");
    let venv = s.dir.join("cache/venv");
    let log = std::fs::read_to_string(s.dir.join("python.log")).unwrap_or_default();
    assert!(
        log.contains(&format!("python3 -m venv {}", venv.display())),
        "{log}"
    );
    assert!(log.contains("pip install") && log.contains("qemu.qmp=="), "{log}");

    write_executable(&venv.join("bin/python"), FAKE_OK);
    std::fs::remove_file(s.dir.join("python.log")).expect("remove log");
    let (ok, out, _) = s.run();
    assert!(ok, "setup.sh failed:\n{out}");
    assert!(!s.dir.join("python.log").exists(), "{out}");
}
