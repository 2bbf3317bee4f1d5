#!/usr/bin/env bash
# The virtualenv with PyPI's qemu.qmp (QMPClient, QEMUMonitorProtocol, qmp-shell) that
# vmm/tests/qmp_clients.rs runs, for the user running this, in the cache directory xtask uses:
# $MINNOW_CACHE, else $XDG_CACHE_HOME/minnow, else ~/.cache/minnow. setup.sh runs it; so does
# unprivileged-user.sh, as that user.
set -euo pipefail
qemu_qmp_version=0.0.6
if [ -n "${MINNOW_CACHE:-}" ]; then
    cache=$MINNOW_CACHE
elif [[ "${XDG_CACHE_HOME:-}" == /* ]]; then
    cache=$XDG_CACHE_HOME/minnow
else
    cache=$HOME/.cache/minnow
fi
venv=$cache/venv
if ! "$venv/bin/python" -c 'import qemu.qmp' >/dev/null 2>&1; then
    echo "[setup] virtualenv $venv with PyPI's qemu.qmp $qemu_qmp_version"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "qemu.qmp==$qemu_qmp_version"
fi
