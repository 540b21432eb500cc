#!/usr/bin/env bash
# Build (once) a Debian trixie chroot holding GIMP 3 and its Python bindings, for `make test-gimp`.
# Debian 12 ships only GIMP 2.10, which has no Python plug-ins; trixie's GIMP 3.0 runs headless inside this
# chroot and reaches the host's `remaster serve` over loopback (a chroot shares the host's network).
# Usage: scripts/gimp3-chroot.sh DIR   (root; needs debootstrap; ~1 GB; reused when DIR/.ready exists)
set -euo pipefail
dir=${1:?usage: $0 DIR}
if [ -e "$dir/.ready" ]; then exit 0; fi
mkdir -p "$(dirname "$dir")"
# Why it failed goes to DIR.failed, which the GIMP test quotes when it skips.
fail() { echo "$1" | tee "$dir.failed" >&2; exit 3; }
rm -f "$dir.failed"
if [ "$(id -u)" != 0 ]; then fail "building the GIMP 3 chroot needs root (debootstrap, chroot)"; fi
if ! command -v debootstrap >/dev/null; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap; } \
    >/dev/null || fail "apt-get could not install debootstrap"
fi
log="$dir.log"
echo "gimp3-chroot: building $dir (Debian trixie + GIMP 3; a few minutes, once; log: $log)" >&2
# The mirror this machine's apt already uses (sources.list or deb822 .sources), so no other host is needed.
mirror=$({ grep -rhsE '^[[:space:]]*(URIs:|deb[[:space:]])' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
            /etc/apt/sources.list.d/*.list || true; } | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$dir.partial"
debootstrap --variant=minbase trixie "$dir.partial" "$mirror" >"$log" 2>&1 \
  || fail "debootstrap trixie from $mirror failed: $(tail -n1 "$log")"
# /proc only while installing, in a private mount namespace so nothing stays mounted if this is killed.
unshare --mount --propagation private sh -c 'mount --bind /proc "$1/proc" && chroot "$1" env \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    gimp python3-gi gir1.2-gimp-3.0 gir1.2-gegl-0.4 gir1.2-babl-0.1 && chroot "$1" apt-get clean' \
    install-gimp "$dir.partial" >>"$log" 2>&1 || fail "installing GIMP 3 in the chroot failed: $(tail -n1 "$log")"
touch "$dir.partial/.ready"
mv "$dir.partial" "$dir"
