"""``make run``: start NOIZYLAB Desktop from the source tree.

The tray (``python -m noizylab_desktop``) where there is a display, a headless node (``... node``) otherwise; extra
arguments are passed on (``make run ARGS="status"`` runs that command instead). On Linux without a usable Secret
Service the app runs against a private one: ``dbus-run-session`` hosting ``gnome-keyring-daemon`` whose keyring is
kept, encrypted with a password, in ``$XDG_DATA_HOME/noizylab/keyring-data``. The password comes from
``NOIZYLAB_KEYRING_PASSWORD`` or is asked on the terminal; it is never written anywhere, and no secret ever lands in
a plain file. Commands that touch no keychain (``--version``, ``--help``, ``id`` of a node that exists) run without
one. SIGINT and SIGTERM are passed to the app, and this script exits with the app's exit code.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import IO, Any

PASSWORD_VAR = "NOIZYLAB_KEYRING_PASSWORD"
APP = [sys.executable, "-m", "noizylab_desktop"]
SESSION_TOOLS = ("dbus-run-session", "gnome-keyring-daemon")
STOP_TIMEOUT_S = 10.0
ABOUT = ("--version", "-h", "--help")  # options that only print something about the app

# The private bus: a session bus that starts no services on demand. The standard one would start a second
# gnome-keyring (without our password or folder) if anything asked for the Secret Service before ours registered;
# that one would win the name and keep running after the session. Its socket is where the standard session bus
# puts one (an abstract socket on Linux; EXTERNAL authentication admits this user only).
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

# Runs inside dbus-run-session: unlock (or, the first time, create) the keyring with the password read from stdin,
# report the bus and keyring addresses, then hold the session open until our end of stdin closes, which also
# happens if this script dies, so the bus and the keyring daemon never outlive it.
KEEPER = r"""
IFS= read -r password || exit 1
out=$(printf '%s' "$password" | XDG_DATA_HOME="$1" gnome-keyring-daemon --unlock --components=secrets \
      --control-directory="$2") || exit 1
password=
printf 'DBUS_SESSION_BUS_ADDRESS=%s\n%s\nREADY\n' "$DBUS_SESSION_BUS_ADDRESS" "$out"
exec cat >/dev/null
"""


class RunError(Exception):
    """A problem the person can fix; printed as one line."""


def has_display(platform: str = sys.platform, env: Mapping[str, str] = os.environ) -> bool:
    """macOS and Windows always have one; elsewhere an X11 or Wayland display must be named."""
    return platform in ("darwin", "win32") or bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def split_home(extra: Sequence[str]) -> tuple[list[str], list[str]]:
    """``extra`` as its ``--home`` option (empty, one or two arguments) and the rest."""
    rest = list(extra)
    for i, arg in enumerate(rest):
        if arg == "--home" and i + 1 < len(rest):
            return rest[i : i + 2], rest[:i] + rest[i + 2 :]
        if arg.startswith("--home="):
            return [arg], rest[:i] + rest[i + 1 :]
    return [], rest


def app_command(extra: Sequence[str], *, display: bool) -> list[str]:
    """The app's argv: ``extra`` as a command when it names one, else options for the tray or the headless node."""
    # --home is an option of `noizylab` itself, so it must come before the command.
    home, rest = split_home(extra)
    names_a_command = bool(rest) and not rest[0].startswith("-")
    # `--version` and `--help` are the app's own options, not the node's: they need no verb.
    about_the_app = any(arg in ABOUT for arg in rest)
    verb = [] if names_a_command or about_the_app or display else ["node"]
    return [*APP, *home, *verb, *rest]


def needs_keychain(extra: Sequence[str]) -> bool:
    """Whether the command ``extra`` asks for touches the keychain: the version, help, an existing node's ID do not."""
    home, rest = split_home(extra)
    if any(arg in ABOUT for arg in rest):
        return False
    if rest[:1] == ["id"]:
        from noizylab_desktop.core.config import Paths

        chosen = home[1] if len(home) == 2 else home[0].partition("=")[2] if home else None
        # The ID is read from the public certificate when the node has one (see commands.show_id).
        return not Paths.resolve(chosen).cert_file.exists()
    return True


def needs_private_keyring(platform: str = sys.platform) -> bool:
    """True on Linux (and other freedesktop systems) when no Secret Service answers, judged as the app judges it."""
    if platform in ("darwin", "win32"):
        return False
    from noizylab_desktop.core.errors import KeychainError
    from noizylab_desktop.core.secrets import KeyringStore

    try:
        KeyringStore("make-run-probe").get("probe")
    except KeychainError:
        return True
    return False


def keyring_folder(env: Mapping[str, str] = os.environ) -> Path:
    """The private keyring's folder (mode 0700), kept between runs."""
    data_home = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = data_home / "noizylab" / "keyring-data"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    return folder


def keyring_password(folder: Path, env: Mapping[str, str] = os.environ, interactive: bool | None = None) -> str:
    """The keyring's password: from the environment, else asked on the terminal (twice when the keyring is new)."""
    password = env.get(PASSWORD_VAR)
    if not password:
        if not (sys.stdin.isatty() if interactive is None else interactive):
            raise RunError(
                f"no Secret Service is running and there is no terminal to ask for the keyring password: "
                f"set {PASSWORD_VAR}"
            )
        try:
            if (folder / "keyrings" / "login.keyring").exists():
                password = getpass.getpass("Password of the NOIZYLAB keyring: ")
            else:
                password = getpass.getpass(f"Choose a password for the NOIZYLAB keyring in {folder}: ")
                if getpass.getpass("Type it again: ") != password:
                    raise RunError("the two passwords differ: run `make run` again")
        except EOFError:
            raise RunError(f"no keyring password was typed: type one, or set {PASSWORD_VAR}") from None
    if not password.strip():
        # gnome-keyring stores a keyring with an empty password unencrypted.
        raise RunError(f"the keyring password must not be empty: set {PASSWORD_VAR} or type one")
    if "\n" in password or "\r" in password:
        raise RunError(f"the keyring password must be one line: fix {PASSWORD_VAR}")
    return password


def _unlocked(bus_address: str, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Whether the keyring's default collection is unlocked, once the daemon has loaded it."""
    import secretstorage

    # secretstorage finds the bus through the environment; the app gets its own environment explicitly.
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = bus_address
    deadline = time.monotonic() + timeout
    try:
        connection = secretstorage.dbus_init()
        try:
            while True:
                try:
                    # Not get_default_collection(): that would ask to create one, which needs a prompt.
                    return not secretstorage.Collection(connection).is_locked()
                except (secretstorage.ItemNotFoundException, secretstorage.SecretServiceNotAvailableException):
                    if time.monotonic() > deadline:
                        raise RunError(f"the private keyring showed no collection within {timeout:.0f} s") from None
                    # The daemon reports its address before it has taken its bus name and loaded the keyring, and
                    # announces neither: poll.
                    time.sleep(0.05)
        finally:
            connection.close()
    except RunError:
        raise
    except Exception as exc:  # secretstorage and jeepney raise their own types
        raise RunError(f"the private keyring does not answer: {exc}") from exc


def _why(stderr: IO[str]) -> str:
    stderr.seek(0)
    lines = [line.strip() for line in stderr if line.strip() and "fd limit" not in line]
    return lines[-1] if lines else "no reason given"


@contextmanager
def private_keyring(password: str, folder: Path) -> Iterator[dict[str, str]]:
    """A D-Bus session with gnome-keyring unlocked on ``folder``; yields the variables that point the app at it."""
    missing = [tool for tool in SESSION_TOOLS if shutil.which(tool) is None]
    if missing:
        raise RunError(
            f"no Secret Service is running and {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "missing to start a private one: apt-get install dbus gnome-keyring"
        )
    control = tempfile.mkdtemp(prefix="noizylab-keyring-")  # 0700: the keyring's control socket, the bus config
    config = Path(control, "bus.conf")
    config.write_text(BUS_CONFIG, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("GNOME_KEYRING_CONTROL", "DBUS_SESSION_BUS_ADDRESS")}
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
        keeper = subprocess.Popen(
            ["dbus-run-session", f"--config-file={config}", "--", "sh", "-c", KEEPER, "keeper", str(folder), control],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            start_new_session=True,  # a Ctrl-C meant for the app must not take its keyring away first
        )
        assert keeper.stdin is not None and keeper.stdout is not None
        try:
            with suppress(BrokenPipeError):  # it failed at once: its reason follows
                keeper.stdin.write(password + "\n")
                keeper.stdin.flush()
            found: dict[str, str] = {}
            for line in keeper.stdout:
                if line.strip() == "READY":
                    break
                key, sep, value = line.strip().partition("=")
                if sep:
                    found[key] = value
            else:
                keeper.wait(STOP_TIMEOUT_S)
                raise RunError(f"the private keyring did not start: {_why(stderr)}")
            keeper.stdout.close()
            if not _unlocked(found["DBUS_SESSION_BUS_ADDRESS"]):
                raise RunError(f"the keyring in {folder} did not unlock: wrong password (typed or {PASSWORD_VAR})")
            yield found
        finally:
            with suppress(BrokenPipeError):
                keeper.stdin.close()
            try:
                keeper.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                keeper.kill()
                keeper.wait()
            shutil.rmtree(control, ignore_errors=True)


def _foreground_terminal() -> int | None:
    """stdin's terminal when this process is in its foreground process group (so may hand it on), else None."""
    if sys.platform == "win32":
        return None
    try:
        fd = sys.stdin.fileno()
        return fd if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp() else None
    except (AttributeError, OSError, ValueError):
        return None


def _hand_terminal(fd: int, pgid: int) -> None:
    """Make ``pgid`` the terminal's foreground process group (SIGTTOU ignored: we may be in the background by then)."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        with suppress(OSError):
            os.tcsetpgrp(fd, pgid)
    finally:
        signal.signal(signal.SIGTTOU, previous)


def run_app(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run the app, pass SIGINT, SIGTERM (and SIGHUP, as SIGTERM) on to it, and return its exit code.

    A signal that ended the app gives 128 + its number, as a shell reports it.
    """
    kwargs: dict[str, Any] = {}
    if sys.platform != "win32":
        # Its own process group: a Ctrl-C reaches the app once, through us, not twice.
        kwargs["process_group"] = 0
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        # A closed terminal hangs up on us only (the app has its own process group): ask the app to stop cleanly.
        sent = signal.SIGTERM if signum == getattr(signal, "SIGHUP", None) else signum
        if child is None:
            pending.append(sent)  # arrived while the app was being started
            return
        with suppress(ProcessLookupError, ValueError):  # Windows: Ctrl-C reaches the child by itself
            child.send_signal(sent)

    forwarded = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if sys.platform != "win32" else [])
    previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    # The app's group gets the terminal, as a shell gives a job it starts: a process outside the foreground group
    # that reads the terminal (the node's first-run questions) is stopped by SIGTTIN, and would then not even stop.
    terminal = _foreground_terminal() if "process_group" in kwargs else None
    try:
        child = subprocess.Popen(list(command), env=dict(env), **kwargs)
        if terminal is not None:
            _hand_terminal(terminal, child.pid)
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGCONT)  # in case it read the terminal before it was its own
        for sent in pending:
            forward(sent, None)
        code = child.wait()
    finally:
        if terminal is not None:
            _hand_terminal(terminal, os.getpgrp())
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def main(argv: Sequence[str] | None = None) -> int:
    """Start the app as described in the module docstring."""
    extra = list(sys.argv[1:] if argv is None else argv)
    command = app_command(extra, display=has_display())
    try:
        if not needs_keychain(extra) or not needs_private_keyring():
            return run_app(command, os.environ)
        folder = keyring_folder()
        password = keyring_password(folder)
        with private_keyring(password, folder) as keyring_env:
            return run_app(command, {**os.environ, **keyring_env})
    except RunError as exc:
        print(f"run: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
