#!/usr/bin/env bash
# Installs what Minnow needs on a fresh Debian machine: QEMU (the reference machine, and qboot.rom
# and SeaBIOS as reference firmware; qemu-img to check qcow2 images), busybox-static for guest
# initramfs images, linux-source and a C toolchain for the seed workload's kernel, e2fsprogs for
# its disk, the pinned Rust toolchain with its bare-metal and musl targets, and nightly
# with cargo-fuzz for the fuzz targets. Safe to run again.
set -euo pipefail

packages=(qemu-system-x86 qemu-system-data qemu-utils seabios busybox-static acpica-tools gdb
    e2fsprogs linux-source build-essential bc flex bison libelf-dev xz-utils)
missing=()
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
# Install the whole list, not only what is missing: apt may otherwise remove an installed package
# (qemu-utils) whose version no longer matches a newly installed sibling (qemu-block-extra).
if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] apt-get install ${packages[*]} (missing: ${missing[*]})"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
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
echo "[setup] done"
