#!/usr/bin/env bash
# Installs the machine-level tools the test suite uses, from Debian's packages, and makes
# podman usable (../shared/containers/podman-setup.sh). Idempotent: fast when all present.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# command -> Debian package
declare -A NEED=(
  [age]=age
  [promtool]=prometheus
  [curl]=curl
  [openssl]=openssl
  [ip]=iproute2
  [ssh-keygen]=openssh-client
  # The socket-takeover tests run their attacker with the system's python3 under another
  # uid, which cannot reach a virtualenv in root's home.
  [/usr/bin/python3]=python3
  # the scrubber's leak tests print values with the real dump tools
  [xxd]=xxd
  [hexdump]=bsdextrautils
  [valgrind]=valgrind  # bench/core/request_instructions.py
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # prometheus pulls in a daemon we never start; only promtool is used.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# podman + docker-compose + the local python:3.11-slim base image (container tests).
SHARED="${PATINA_SHARED_DIR:-../shared}"
if [ "${PATINA_SKIP_CONTAINERS:-0}" != 1 ]; then
  if [ -x "$SHARED/containers/podman-setup.sh" ]; then
    # podman-setup.sh tests cgroup.controllers with `-s`, but sysfs files report size 0, so on
    # a hybrid-cgroup host it never moves the cgroup2 controllers (hugetlb) to v1 and crun
    # refuses every container. Do that step here first, reading the file instead.
    U=/sys/fs/cgroup/unified
    if [ -r "$U/cgroup.controllers" ] && [ -n "$(cat "$U/cgroup.controllers")" ]; then
      for c in $(cat "$U/cgroup.controllers"); do
        $SUDO mkdir -p "/sys/fs/cgroup/$c"
        mountpoint -q "/sys/fs/cgroup/$c" || $SUDO mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
      done
    fi
    $SUDO bash "$SHARED/containers/podman-setup.sh" >/dev/null
  else
    echo "error: $SHARED/containers/podman-setup.sh not found; container tests need it" >&2
    exit 1
  fi
fi
