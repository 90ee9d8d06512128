"""Running a node: in the foreground, in the background (one per home), stopping it, and its logs."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from noizylab_desktop.core.config import Paths, Settings, atomic_write
from noizylab_desktop.core.errors import LauncherError
from noizylab_desktop.core.runtime import read_runtime_file

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(paths: Paths, *, to_stderr: bool, level: int = logging.INFO) -> None:
    """A rotating log file in the log folder (and stderr in the foreground); entry points only."""
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(level)
    handler = logging.handlers.RotatingFileHandler(paths.log_file, maxBytes=1_000_000, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if to_stderr:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)


class InstanceLock:
    """An OS file lock held while a node runs, so one home has one node; freed by the OS if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - held for the life of the node
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            runtime = read_runtime_file(self.path.parent / "runtime.json")
            pid = f" (pid {runtime['pid']})" if runtime else ""
            raise LauncherError(
                f"a node is already running for {self.path.parent.parent}{pid}: stop it with `noizylab stop`"
            ) from None
        self._handle = handle

    def held_elsewhere(self) -> bool:
        """True when another process holds the lock."""
        try:
            self.acquire()
        except LauncherError:
            return True
        self.release()
        return False

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists."""
    try:
        import psutil

        return bool(psutil.pid_exists(pid)) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


@contextlib.contextmanager
def holding_home(paths: Paths) -> Iterator[None]:
    """One node per home: hold the instance lock and the pid file while the node (headless or tray) runs."""
    lock = InstanceLock(paths.lock_file)
    lock.acquire()
    try:
        atomic_write(paths.pid_file, str(os.getpid()).encode(), mode=0o644)
        yield
    finally:
        paths.pid_file.unlink(missing_ok=True)
        lock.release()


def run_foreground(paths: Paths, settings: Settings, on_ready: Callable[[], None] | None = None) -> int:
    """``noizylab node``: run a node on a standard asyncio loop until a signal or `noizylab stop`; ``on_ready`` is
    called (on the loop) once the node answers, as the first run's prompts need."""
    import asyncio  # here: `noizylab start` imports this module too, and asyncio cost it 0.3 s under Wine

    from noizylab_desktop.node.node import Node

    with holding_home(paths):
        return asyncio.run(_serve(Node(paths, settings), on_ready))


async def _serve(node: Any, on_ready: Callable[[], None] | None = None) -> int:
    import asyncio

    loop = asyncio.get_running_loop()
    while True:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows' loops have no signal handlers
                loop.add_signal_handler(sig, node.request_stop)
        node.can_restart = True
        try:
            await node.start()
        except BaseException:
            await node.stop()
            raise
        print(
            f"node {node.settings.name} ({node.identity.node_id}) is running on gRPC port {node.grpc_port}", flush=True
        )
        if on_ready is not None:
            on_ready()
            on_ready = None
        await node.run_until_stopped()
        if not node.restart_requested:
            return 0
        node = node.restarted()  # a key rotation: the same home, on its new key


def take_over(paths: Paths, settings: Settings) -> int | None:
    """Stop the node that already runs for this home (``noizylab start``, or another tray) so that the caller can
    host it: asked over the local control channel, then waited for until it lets go of the home. Its pid, or None
    when no node ran."""
    if not InstanceLock(paths.lock_file).held_elsewhere():
        return None
    import asyncio

    from noizylab_desktop.core.local_client import STOP_FOR_TRAY, LocalClient

    where = paths.home or paths.config_dir
    runtime = read_runtime_file(paths.runtime_file)
    if runtime is None:  # starting, or stuck: nothing to ask
        raise LauncherError(f"a node is already running for {where}: stop it with `noizylab stop`")
    pid = int(runtime["pid"])
    logger.info("a node already runs for %s (pid %d): asking it to stop so that the tray runs it", where, pid)

    async def ask() -> None:
        async with LocalClient(paths, settings) as client:
            await client.shutdown(STOP_FOR_TRAY)

    asyncio.run(ask())
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while InstanceLock(paths.lock_file).held_elsewhere():
        if time.monotonic() >= deadline:
            raise LauncherError(
                f"the node running for {where} (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f} s: "
                "stop it with `noizylab stop`, then start the tray again"
            )
        time.sleep(0.05)  # another process letting go of a file lock offers nothing to wait on
    return pid


def node_command(paths: Paths, extra: list[str]) -> list[str]:
    """The argv that runs ``noizylab node`` for ``paths``, frozen or not."""
    base = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "noizylab_desktop"]
    home = ["--home", str(paths.home)] if paths.home is not None else []
    return [*base, *home, "node", *extra]


def start_background(paths: Paths, extra: list[str]) -> dict[str, Any]:
    """``noizylab start``: a detached node for this home; returns its runtime once it answers."""
    paths.ensure()
    if InstanceLock(paths.lock_file).held_elsewhere():
        runtime = read_runtime_file(paths.runtime_file) or {}
        raise LauncherError(f"a node is already running for {paths.config_dir} (pid {runtime.get('pid', '?')})")
    paths.runtime_file.unlink(missing_ok=True)
    out = open(paths.log_dir / "node-console.log", "ab")  # noqa: SIM115 - handed to the child
    kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": out, "stderr": subprocess.STDOUT}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    child = subprocess.Popen(node_command(paths, extra), **kwargs)
    out.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        ready = read_runtime_file(paths.runtime_file)
        if ready and ready.get("pid") == child.pid:
            return ready
        if child.poll() is not None:
            raise LauncherError(f"the node exited at start: {_last_error(paths)}")
        time.sleep(0.05)  # polling another process's start-up; nothing to wait on across processes
    child.kill()
    raise LauncherError(f"the node did not come up within {READY_TIMEOUT_S:.0f} s: see `noizylab logs`")


def _last_error(paths: Paths) -> str:
    try:
        lines = (paths.log_dir / "node-console.log").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "see `noizylab logs`"
    meaningful = [line for line in lines if line.strip() and not line.startswith(("I", "W0000", "E0000"))]
    return meaningful[-1].removeprefix("noizylab: error: ") if meaningful else "see `noizylab logs`"


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``pid`` to end (an unreaped zombie counts as ended); True if it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)  # another process's exit offers nothing to wait on
    return True


def terminate(pid: int) -> None:
    """Stop ``pid`` with SIGTERM, then kill it if it lingers."""
    import psutil

    try:
        process = psutil.Process(pid)
        process.terminate()
        if not wait_exit(pid, STOP_TIMEOUT_S):
            process.kill()
    except psutil.NoSuchProcess:
        return


def follow(path: Path, *, from_end: bool = True) -> Iterator[str]:
    """Lines of ``path`` as they are written (``logs -f``), across rotation."""
    try:
        stat = path.stat()
        position, inode = (stat.st_size if from_end else 0), stat.st_ino
    except FileNotFoundError:
        position, inode = 0, None
    while True:
        try:
            stat = path.stat()
        except FileNotFoundError:
            time.sleep(0.2)
            continue
        if inode != stat.st_ino or stat.st_size < position:
            inode, position = stat.st_ino, 0
        if stat.st_size > position:
            with open(path, encoding="utf-8", errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
            yield from chunk.splitlines()
        else:
            time.sleep(0.2)  # a log file offers no change event everywhere; poll like `tail -f`
