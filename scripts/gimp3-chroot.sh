#!/usr/bin/env bash
# Build (once) a Debian trixie chroot holding GIMP 3 and its Python bindings, for `make test-gimp`.
# Debian 12 ships only GIMP 2.10, which has no Python plug-ins; trixie's GIMP 3.0 runs headless inside this
# chroot and reaches the host's `remaster serve` over loopback (a chroot shares the host's network).
# Usage: scripts/gimp3-chroot.sh DIR   (root; needs debootstrap; ~1 GB; reused when DIR/.ready exists)
set -euo pipefail
dir=${1:?usage: $0 DIR}
if [ -e "$dir/.ready" ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "gimp3-chroot: needs root (debootstrap, chroot)" >&2; exit 3; fi
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
fi
# The mirror this machine's apt already uses (sources.list or deb822 .sources), so no other host is needed.
mirror=$({ grep -rhsE '^[[:space:]]*(URIs:|deb[[:space:]])' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
            /etc/apt/sources.list.d/*.list || true; } | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$dir.partial"
mkdir -p "$(dirname "$dir")"
debootstrap --variant=minbase trixie "$dir.partial" "$mirror"
mount --bind /proc "$dir.partial/proc"
trap 'umount "$dir.partial/proc" 2>/dev/null || true' EXIT
chroot "$dir.partial" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  gimp python3-gi gir1.2-gimp-3.0 gir1.2-gegl-0.4 gir1.2-babl-0.1 >/dev/null
chroot "$dir.partial" apt-get clean
umount "$dir.partial/proc"
trap - EXIT
touch "$dir.partial/.ready"
mv "$dir.partial" "$dir"
