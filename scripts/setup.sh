#!/usr/bin/env bash
# Installs what Minnow needs on a fresh Debian machine: QEMU (the reference machine, and qboot.rom
# and SeaBIOS as reference firmware; qemu-img to check qcow2 images), busybox-static for guest
# initramfs images, linux-source and a C toolchain for the seed workload's kernel, e2fsprogs for
# its disk, socat and a virtualenv with PyPI's qemu.qmp for the monitor clients, passt for
# networking without root, the pinned Rust
# toolchain with its bare-metal and musl targets, and nightly with cargo-fuzz for the fuzz
# targets. Safe to run again.
set -euo pipefail

packages=(qemu-system-x86 qemu-system-data qemu-utils seabios busybox-static acpica-tools gdb
    e2fsprogs linux-source build-essential bc flex bison libelf-dev xz-utils socat python3-venv passt)
missing=()
install_flags=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
# apt-get download (cargo xtask guest) needs package lists even when nothing is missing.
if [ ${#missing[@]} -gt 0 ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    echo "[setup] apt-get update"
    $sudo apt-get update -qq
fi
# QEMU's packages must all be one version (qemu-utils Breaks older qemu-system-common). An image may
# already hold a newer qemu-utils, e.g. from bookworm-backports: then take QEMU from the release that
# offers that version, or, if no configured source does, the whole family from the newest release
# that offers qemu-system-x86 (which downgrades qemu-utils).
qemu_family=(qemu-system-x86 qemu-system-data qemu-utils qemu-system-common qemu-block-extra)
installed_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
# The suite ("bookworm", "bookworm-backports") offering package $1 at version $2, or the newest.
suite_offering() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' -v v="${2:-}" '
        { gsub(/ /, "", $2); split($3, w, " "); sub(/\/.*/, "", w[2]) }
        v == "" || $2 == v { print w[2]; exit }'
}
if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]]; then
    for q in qemu-utils qemu-block-extra; do
        v=$(installed_version "$q")
        [ -n "$v" ] || continue
        suite=$(suite_offering qemu-system-x86 "$v")
        if [ -z "$suite" ]; then
            suite=$(suite_offering qemu-system-x86)
            echo "[setup] no apt source offers qemu-system-x86 $v to match $q $v:" \
                "installing all of QEMU from $suite"
            install_flags+=(--allow-downgrades)
        fi
        keep=()
        for p in "${packages[@]}"; do [[ " ${qemu_family[*]} " == *" $p "* ]] || keep+=("$p"); done
        packages=("${keep[@]}")
        for f in "${qemu_family[@]}"; do
            [ "$f" = qemu-block-extra ] && [ -z "$(installed_version qemu-block-extra)" ] && continue
            packages+=("$f/$suite")
        done
        break
    done
fi
# Install the whole list, not only what is missing: apt may otherwise remove an installed package
# (qemu-utils) whose version no longer matches a newly installed sibling (qemu-block-extra).
if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] apt-get install ${packages[*]} (missing: ${missing[*]})"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "${install_flags[@]}" "${packages[@]}" >/dev/null
fi

# RUSTUP_AUTO_INSTALL may be 0, so install the pinned toolchain and its targets explicitly.
cd "$(dirname "$0")/.."
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
echo "[setup] rustup toolchain $toolchain with x86_64-unknown-none and x86_64-unknown-linux-musl"
rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy \
    --target x86_64-unknown-none,x86_64-unknown-linux-musl >/dev/null 2>&1 ||
    rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy \
        --target x86_64-unknown-none,x86_64-unknown-linux-musl
# cargo fuzz (cargo xtask fuzz, part of cargo xtask test) needs a nightly toolchain.
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "[setup] rustup toolchain nightly (for cargo fuzz)"
    rustup toolchain install nightly --profile minimal >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "[setup] cargo install cargo-fuzz"
    cargo install --quiet --locked cargo-fuzz
fi
# QEMU's own QMP clients (QMPClient, QEMUMonitorProtocol, qmp-shell) for vmm/tests/qmp_clients.rs.
bash "$(dirname "$0")/setup-venv.sh"
echo "[setup] done"
