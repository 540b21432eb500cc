#!/usr/bin/env bash
# Run a command inside the GIMP 3 chroot made by scripts/gimp3-chroot.sh, with /proc and /dev mounted
# for the command's lifetime only. The chroot shares the host's network, so loopback reaches the host's server.
# Usage: scripts/gimp3-run.sh DIR COMMAND [ARG...]
set -euo pipefail
dir=${1:?usage: $0 DIR COMMAND...}; shift
# A private mount namespace: the mounts vanish with the command, even if it is killed.
exec unshare --mount --propagation private bash -c '
  dir=$1; shift
  mount --bind /proc "$dir/proc"
  mount --bind /dev "$dir/dev"
  exec chroot "$dir" env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$@"
' run-in-chroot "$dir" "$@"
