#!/usr/bin/env bash
# The system packages `make run` and `make test` need, installed when missing: `system-packages.sh run|test`.
#
# The one list of them (`.ci/run` and the fresh-machine check use it through make). On Debian and Ubuntu it asks
# dpkg which are missing and installs only those, with apt-get (through sudo when not root); a machine that has them
# all does nothing and needs no root. Elsewhere it prints the equivalent hint once and goes on: macOS and Windows
# have their own keychain, and the test suite's real parts (Xvfb, trayer, gnome-keyring) are Linux ones.
set -euo pipefail

# `make run`: Python with venv, a private Secret Service (dbus + gnome-keyring), and what Qt's xcb plugin loads,
# a monospace font included (the tray's diffs and the viewer's overlay ask for one; a minimal Debian has none).
RUN=(
  python3 python3-venv ca-certificates
  dbus gnome-keyring
  libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-cursor0 libegl1 libgl1 libfontconfig1 libglib2.0-0 libdbus-1-3
  fonts-dejavu-core
)
# `make test` (and `make dist`: PyInstaller needs objdump from binutils): the real parts the tests drive (DESIGN.md);
# zbarimg reads the first-run window's QR code back, desktop-file-validate checks the autostart entry, debootstrap
# makes the .deb's fresh-machine install (scripts/deb-check.sh) and nsis's makensis builds the Windows installer.
TEST=(
  "${RUN[@]}" make git python3-pip procps
  dbus-x11 xvfb xauth trayer xdotool x11-utils xclip
  openssh-server openssh-client rsync ffmpeg prometheus syncthing binutils iproute2 nftables
  zbar-tools desktop-file-utils debootstrap nsis
)

case "${1:-}" in
  run) wanted=("${RUN[@]}") ;;
  test) wanted=("${TEST[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  case "$(uname -s)" in
    Darwin) hint="brew install python@3.12 (the keychain is macOS's own)" ;;
    MINGW* | MSYS* | CYGWIN*) hint="winget install Python.Python.3.12 (the keychain is Windows' own)" ;;
    *) hint="install Python 3.11+ with venv, D-Bus and gnome-keyring from your distribution" ;;
  esac
  [ "$1" = test ] && hint="$hint; the test suite's real parts (Xvfb, trayer, gnome-keyring, sshd) are Debian packages"
  echo "system-packages: no apt-get here: $hint" >&2
  exit 0
fi

missing=()
for package in "${wanted[@]}"; do
  # "ii " is installed; anything else (absent, removed, half-configured) is reinstalled.
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
  [ "$status" = "ii " ] || missing+=("$package")
done
[ ${#missing[@]} = 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "system-packages: missing ${missing[*]}: as root, run: apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "system-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
  >/dev/null
