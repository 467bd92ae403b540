#!/bin/bash
# Prints the path of a minimal Debian 12 root that boots with systemd as PID 1 (for the
# booted-package test), building it with mmdebstrap from Debian's mirror on first use.
#
# The root is cached under $SMTPI_BOOT_CACHE (default /var/cache/smtp-interceptor-tests), in a
# directory named by a hash of everything that shapes it (suite, package list, this script), so a
# changed list builds a new root and an unchanged one is reused. The cached root is never booted
# itself: the test mounts an overlay on it per run. A lock serialises concurrent builders.
set -euo pipefail

suite=bookworm
mirror="${SMTPI_BOOT_MIRROR:-http://deb.debian.org/debian}"
cache="${SMTPI_BOOT_CACHE:-/var/cache/smtp-interceptor-tests}"
# systemd + dbus: a booted system (systemctl, journalctl, systemd-analyze).
# The package's Depends (adduser, nftables, libssl3, libc6, libgcc-s1, libstdc++6) so apt can
# install the local .deb offline; ca-certificates is its Recommends.
# postfix: its user is the MTA the postinst exempts (the service itself is masked: the test's
# fake MX owns port 25); swaks and python3 (the fake MX) are the test's client and server;
# iproute2 for ss and ip; procps for pgrep/ps.
packages="systemd,systemd-sysv,dbus,nftables,adduser,libssl3,libc6,libgcc-s1,libstdc++6,ca-certificates,postfix,swaks,python3,iproute2,procps"

key="$( { echo "$suite $mirror $packages"; cat "$0"; } | sha256sum | cut -c1-16)"
root="$cache/root-$key"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$root/.complete" ]; then
    echo "$root"
    exit 0
fi

command -v mmdebstrap >/dev/null || {
    echo "installing mmdebstrap and systemd-container" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap systemd-container >&2
}

building="$root.building"
rm -rf "$building"
echo "building $root with mmdebstrap (first use of this package list; a few minutes)" >&2
# - postfix: "Internet Site" is its non-interactive default; its units are masked so nothing but
#   the test's fake MX listens on port 25.
# - a machine-id so journald keeps one journal across the reboot test (persistent in /var/log/journal).
mmdebstrap --variant=minbase --include="$packages" \
    --customize-hook='chroot "$1" systemctl mask postfix.service postfix@-.service' \
    --customize-hook='chroot "$1" systemd-machine-id-setup' \
    --customize-hook='mkdir -p "$1/var/log/journal"' \
    --customize-hook='echo smtpi-booted > "$1/etc/hostname"' \
    "$suite" "$building" "$mirror" >&2
touch "$building/.complete"
mv "$building" "$root"
echo "$root"
