#!/usr/bin/env bash
# The fresh-machine check: `make run ARGS=--version` and `make test TESTS=smoke` from scratch, in a minimal chroot of
# this machine's own Debian (or Ubuntu) release, into which the working tree is copied.
#
# "Fresh" means what `debootstrap --variant=minbase` gives (dpkg, apt, bash, coreutils: no Python, no D-Bus, no X)
# plus `make`, which must exist to type `make`. Everything else (Python, venv, D-Bus, gnome-keyring, Xvfb, fonts...)
# the two commands install themselves. Nothing is cached: the chroot, its packages and the venv are made anew each
# time and removed afterwards. Needs root (debootstrap, chroot, mounts) and the package archive and PyPI. Only the
# network's settings travel in: DNS, proxy variables and locally added certificate authorities.
#
#   FRESH_SUITE, FRESH_MIRROR   the release and mirror (default: this machine's, from /etc/os-release and apt)
#   FRESH_BASE=FILE.tar         start from a tarball of a minbase root instead of running debootstrap (to iterate)
#   FRESH_TESTS                 what `make test TESTS=...` runs inside (default: smoke)
#   FRESH_KEEP=1                keep the chroot afterwards (its path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "fresh-machine: needs root (debootstrap, chroot): run it as root" >&2; exit 1; }
  exec sudo --preserve-env=FRESH_SUITE,FRESH_MIRROR,FRESH_BASE,FRESH_TESTS,FRESH_KEEP "$0" "$@"
fi

. /etc/os-release
suite=${FRESH_SUITE:-${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release: set FRESH_SUITE}}
if [ -z "${FRESH_MIRROR:-}" ]; then
  # The first main archive apt uses here (deb822 or one-line sources), else the distribution's default.
  FRESH_MIRROR=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && !/security/ {print $2; exit}')
  [ -n "$FRESH_MIRROR" ] || FRESH_MIRROR=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$FRESH_MIRROR" ] || FRESH_MIRROR=$([ "$ID" = ubuntu ] && echo http://archive.ubuntu.com/ubuntu || echo http://deb.debian.org/debian)
fi
tests=${FRESH_TESTS:-smoke}

started=$(date +%s)
say() { echo "fresh-machine: [$(( $(date +%s) - started )) s] $*"; }

root=$(mktemp -d "${TMPDIR:-/var/tmp}/noizylab-fresh.XXXXXX")
cleanup() {
  local code=$?
  # What the suite left running inside (an Xvfb ending by itself, a keyring daemon) holds the mounts: end it.
  for link in /proc/[0-9]*/root; do
    if [ "$(readlink "$link" 2>/dev/null)" = "$root" ]; then
      pid=${link#/proc/}; kill -9 "${pid%/root}" 2>/dev/null || true
    fi
  done
  for mounted in dev/pts dev/shm dev sys proc; do
    mountpoint -q "$root/$mounted" && umount -l "$root/$mounted"
  done
  if [ "${FRESH_KEEP:-}" = 1 ]; then
    say "kept the chroot in $root"
  elif ! grep -q " $root/" /proc/mounts; then
    rm -rf --one-file-system "$root"
  else
    say "left $root: something is still mounted there"
  fi
  exit "$code"
}
trap cleanup EXIT

if [ -n "${FRESH_BASE:-}" ]; then
  say "unpacking $FRESH_BASE into $root"
  tar -C "$root" -xf "$FRESH_BASE"
else
  command -v debootstrap >/dev/null || { say "installing debootstrap"; apt-get install -y -qq debootstrap >/dev/null; }
  say "debootstrap --variant=minbase --include=make $suite $FRESH_MIRROR"
  debootstrap --variant=minbase --include=make "$suite" "$root" "$FRESH_MIRROR" >"$root.debootstrap.log" 2>&1 || {
    tail -20 "$root.debootstrap.log"; rm -f "$root.debootstrap.log"; exit 1
  }
  rm -f "$root.debootstrap.log"
fi

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs shm "$root/dev/shm"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# The network's own certificate authorities (a proxy that inspects TLS) are part of the network, not of the machine:
# they go where a person would put them, and the ca-certificates package, once installed, adds them to the bundle.
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
network=()
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_DEFAULT_TIMEOUT; do
  [ -n "${!name:-}" ] && network+=("$name=${!name}")
done
# pip trusts its own bundle unless told otherwise; the system's, with those CAs in it, exists once make has run.
ls "$root"/usr/local/share/ca-certificates/*.crt >/dev/null 2>&1 && network+=(PIP_CERT=/etc/ssl/certs/ca-certificates.crt)

say "copying the working tree (tracked and untracked files git does not ignore) to /src"
mkdir "$root/src"
git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null \
  | tar -x -C "$root/src"

inside() {
  # A clean environment: nothing of this machine's (DISPLAY, a session bus, a venv) leaks in.
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb "${network[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "cd /src && $1"
}
say "in the chroot: make run ARGS=--version (installs what running needs, then the venv)"
inside 'make run ARGS=--version'
say "in the chroot: make test TESTS=$tests (installs what testing needs, then ruff, mypy and the tests)"
inside "make test TESTS='$tests'"
say "passed"
