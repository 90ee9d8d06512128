#!/usr/bin/env bash
# The .deb on a fresh machine: `apt-get install ./noizylab_*.deb` in a minimal chroot of this machine's Debian (or
# Ubuntu) release, the installed app run by an ordinary user, the package removed, and what is left written down.
#
#   scripts/deb-check.sh DEB OUT      DEB: the package (packaging/deb.py); OUT: a folder for the report files
#
# The chroot is `debootstrap --variant=minbase` (no Python, no X: the package must bring what the frozen app needs)
# plus the test's own tools: dbus and gnome-keyring for the keychain (scripts/with-keyring.sh, copied in). It is
# built once and kept under DEB_CHECK_DIR keyed by its inputs, as the Windows tier keeps its chroot; each run gets a
# throwaway overlay on top of it, so the base never changes, and downloaded packages are kept beside it
# (apt-archives/) so a second run fetches nothing but the index. Needs root (debootstrap, chroot, mounts) and the
# package archive; without either it prints one line starting "deb-check: skipped:" and exits 0.
#
# What OUT holds afterwards (the test, tests/integration/test_deb.py, reads them):
#   version.txt     `noizylab --version` as alice
#   status.json     `noizylab status --json` as alice, between `start` and `stop`
#   installed.txt   the package's paths after install (links shown as "path -> target")
#   left.txt        which of those paths exist after `apt-get remove`
#   user-data.txt   alice's noizylab files after the removal
#
#   DEB_CHECK_DIR     where the base chroot and the downloaded packages live (default
#                     ~/.cache/noizylab-tests/deb-check, outside the checkout: CI clones afresh for every run)
#   DEB_CHECK_SUITE, DEB_CHECK_MIRROR   the release and mirror (default: this machine's, as scripts/fresh-machine.sh)
#   DEB_CHECK_REBUILD=1                 build the base afresh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ $# = 2 ] || { echo "usage: $0 DEB OUT" >&2; exit 2; }
deb=$(realpath "$1")
out=$(realpath -m "$2")
[ -f "$deb" ] || { echo "deb-check: no package at $1: build it with make deb" >&2; exit 1; }

main() {
started=$(date +%s)
say() { echo "deb-check: [$(( $(date +%s) - started )) s] $*"; }
skip() { echo "deb-check: skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot and mounts)"

. /etc/os-release
suite=${DEB_CHECK_SUITE:-${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release: set DEB_CHECK_SUITE}}
mirror=${DEB_CHECK_MIRROR:-}
if [ -z "$mirror" ]; then  # the first main archive apt uses here, as scripts/fresh-machine.sh finds it
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && !/security/ {print $2; exit}')
  [ -n "$mirror" ] || mirror=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$([ "$ID" = ubuntu ] && echo http://archive.ubuntu.com/ubuntu || echo http://deb.debian.org/debian)
fi
timeout 10 bash -c "exec 3<>/dev/tcp/$(echo "$mirror" | sed -E 's#^[a-z]+://([^/:]+).*#\1#')/80" 2>/dev/null \
  || skip "the package archive ($mirror) cannot be reached"

dir=$(realpath -m "${DEB_CHECK_DIR:-${NOIZYLAB_TEST_CACHE:-$HOME/.cache/noizylab-tests}/deb-check}")
base=$dir/base
tools="dbus gnome-keyring"  # the keychain for the check itself; everything else comes from the package's Depends
key=$(printf '%s\n' 1 "$suite" "$mirror" "$tools" | sha256sum | cut -c1-16)
mkdir -p "$dir/apt-archives/partial" "$dir/runs"
exec 9> "$dir/.lock"  # runs share the base and the downloaded packages: one at a time, the next one waits
flock -w 1200 9 || { say "another run held $dir for 20 minutes" >&2; exit 1; }

run=$(mktemp -d "$dir/runs/run.XXXXXX")
root=$run/root
mkdir -p "$root" "$run/upper" "$run/work"

unmount_all() {
  # What the check left running inside (a node, a keyring daemon) holds the mounts: end it first.
  local target
  for target in "$root" "$base"; do
    for link in /proc/[0-9]*/root; do
      if [ "$(readlink "$link" 2>/dev/null)" = "$target" ]; then
        pid=${link#/proc/}; kill -9 "${pid%/root}" 2>/dev/null || true
      fi
    done
    for mounted in var/cache/apt/archives dev/shm dev/pts dev proc ""; do
      if mountpoint -q "$target/$mounted" 2>/dev/null; then
        umount "$target/$mounted" 2>/dev/null || umount -l "$target/$mounted"
      fi
    done
  done
}
cleanup() {
  local code=$?
  unmount_all
  if grep -q " $root" /proc/mounts; then say "left $run: something is still mounted there" >&2
  else rm -rf --one-file-system "$run"; fi
  say "total $(( $(date +%s) - started )) s"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_all() {  # $1: the chroot
  mountpoint -q "$1/proc" || mount -t proc proc "$1/proc"
  mountpoint -q "$1/dev" || mount --bind /dev "$1/dev"
  mountpoint -q "$1/dev/pts" || mount --bind /dev/pts "$1/dev/pts"
  mountpoint -q "$1/dev/shm" || mount -t tmpfs shm "$1/dev/shm"
  mountpoint -q "$1/var/cache/apt/archives" || mount --bind "$dir/apt-archives" "$1/var/cache/apt/archives"
  cp -L /etc/resolv.conf "$1/etc/resolv.conf"
}
in_chroot() {  # $1: the chroot; the rest: a shell command. A clean environment: nothing of this machine's leaks in.
  local target=$1; shift
  chroot "$target" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "$*"
}

# --- the base: minbase plus the keychain tools, kept ---------------------------------------------------------------
if [ -z "${DEB_CHECK_REBUILD:-}" ] && [ -f "$dir/base.key" ] && [ "$(cat "$dir/base.key")" = "$key" ] && [ -x "$base/usr/bin/apt-get" ]; then
  say "base chroot reused ($base)"
else
  say "debootstrap --variant=minbase $suite $mirror, then $tools"
  rm -f "$dir/base.key"
  root=$base unmount_all
  rm -rf --one-file-system "$base"
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  debootstrap --variant=minbase "$suite" "$base" "$mirror" > "$dir/debootstrap.log" 2>&1 || {
    tail -20 "$dir/debootstrap.log" >&2; exit 1; }
  mount_all "$base"
  in_chroot "$base" "apt-get update -qq && apt-get install -y -qq --no-install-recommends $tools" > "$dir/base.log" 2>&1 \
    || { tail -20 "$dir/base.log" >&2; exit 1; }
  root=$base unmount_all
  echo "$key" > "$dir/base.key"
  say "base chroot built"
fi

# --- this run: an overlay on the base ------------------------------------------------------------------------------
mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$root"
mount_all "$root"
install -m 755 "$repo/scripts/with-keyring.sh" "$root/usr/local/bin/with-keyring.sh"
cp "$deb" "$root/tmp/"
name=$(basename "$deb")

say "apt-get install ./$name"
in_chroot "$root" "apt-get update -qq && cd /tmp && apt-get install -y -qq --no-install-recommends ./$name" \
  > "$run/install.log" 2>&1 || { say "apt-get install failed:" >&2; tail -20 "$run/install.log" >&2; exit 1; }

paths="/opt/noizylab /usr/bin/noizylab /usr/share/applications/noizylab.desktop /usr/share/icons/hicolor/scalable/apps/noizylab.svg"
listing="for p in $paths; do if [ -L \"\$p\" ]; then echo \"\$p -> \$(readlink \"\$p\")\"; elif [ -e \"\$p\" ]; then echo \"\$p\"; fi; done"
mkdir -p "$out"
in_chroot "$root" "$listing" > "$out/installed.txt"

# An ordinary user with a loopback-only config on free ports (the host's other nodes share this network).
in_chroot "$root" "useradd --create-home --shell /bin/bash alice && mkdir -p /home/alice/.config/noizylab && printf '%s\n' \
  'name = \"deb-check\"' 'grpc_host = \"127.0.0.1\"' 'advertise = [\"127.0.0.1\"]' '[ports]' 'grpc = 0' 'sftp = 0' 'http = 0' \
  '[discovery]' 'enabled = false' > /home/alice/.config/noizylab/config.toml && chown -R alice: /home/alice/.config"
# with-keyring points XDG_CONFIG_HOME and XDG_DATA_HOME at its scratch folder; the app gets alice's own back.
as_alice() {
  chroot --userspec=alice:alice "$root" /usr/bin/env -i HOME=/home/alice USER=alice LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/bin:/bin bash -c "cd && with-keyring.sh env XDG_CONFIG_HOME=/home/alice/.config \
    XDG_DATA_HOME=/home/alice/.local/share bash -c '$1'"
}
say "as alice: noizylab --version, start, status --json, stop"
as_alice "noizylab --version" > "$out/version.txt"
as_alice "noizylab start >/dev/null && noizylab status --json; code=\$?; noizylab stop >/dev/null; exit \$code" \
  > "$out/status.json" 2> "$run/alice.log" || { say "the installed app failed as alice:" >&2; cat "$run/alice.log" >&2; exit 1; }

say "apt-get remove noizylab"
in_chroot "$root" "apt-get remove -y -qq noizylab" > "$run/remove.log" 2>&1 \
  || { say "apt-get remove failed:" >&2; tail -20 "$run/remove.log" >&2; exit 1; }
in_chroot "$root" "$listing" > "$out/left.txt"
in_chroot "$root" "find /home/alice/.config/noizylab /home/alice/.local/state/noizylab -maxdepth 1 2>/dev/null | sort" \
  > "$out/user-data.txt" || true
say "passed; the report is in $out"
}
main "$@"
