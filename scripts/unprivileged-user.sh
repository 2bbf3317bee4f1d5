#!/usr/bin/env bash
# Makes USER (default minnow-ci), a system user in the kvm group, and gives the group the KVM and
# vhost devices as Debian's udev rules do (root:kvm 0660), for running minnow without root, and
# gives it the virtualenv the QMP client tests use.
# Run as root; running it again changes nothing.
set -euo pipefail
user=${1:-minnow-ci}
getent group kvm >/dev/null || groupadd --system kvm
id -u "$user" >/dev/null 2>&1 ||
    useradd --system --create-home --home-dir "/var/lib/$user" --shell /bin/sh --groups kvm "$user"
for dev in /dev/kvm /dev/vhost-net /dev/vhost-vsock; do
    if [ -c "$dev" ]; then
        chown root:kvm "$dev"
        chmod 0660 "$dev"
    fi
done
# Its own virtualenv with qemu.qmp, for the QMP client tests.
runuser -u "$user" -- env -u MINNOW_CACHE -u XDG_CACHE_HOME bash "$(dirname "$0")/setup-venv.sh"
echo "unprivileged-user: $user ($(id "$user")); $(ls -l /dev/kvm)"
