"""One child process tree, run so that it works on any event loop, with bounded output and a sure kill (tasks and
Dask children share it).

The child is started with ``subprocess.Popen`` (qasync on Windows has no subprocess support) in its own process
group (POSIX) or job object (Windows). One reader thread per pipe hands chunks to the loop through a bounded
queue holding at most ``QUEUE_CHUNKS`` chunks: when the consumer is slow the queue fills, the reader thread waits
for room, the pipe fills, and the child blocks on its write; nothing buffers without bound. ``kill`` sends a grace
signal to the whole tree, then kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

STDOUT, STDERR = 1, 2
READ_BYTES = 64 * 1024
QUEUE_CHUNKS = 16  # at most this many chunks (1 MiB) wait between the pipes and the consumer
GRACE_S = 0.3
_CREATE_SUSPENDED = 0x00000004  # Windows' CREATE_SUSPENDED (the subprocess module does not name it)


@dataclass(frozen=True)
class Chunk:
    """A piece of one of the child's output streams."""

    stream: int
    data: bytes


class ProcessTree:
    """A started child and everything it spawns; iterate ``output()`` to the end, then ``await wait()``."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        # The queue itself is unbounded; the credits bound it: a reader takes one per chunk, the consumer returns it.
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        self._credits = threading.Semaphore(QUEUE_CHUNKS)
        self._job: object | None = None
        full_env = {**os.environ, **(env or {})}
        if sys.platform == "win32":
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                cwd=cwd,
                # Suspended until it is in the job object, so nothing it spawns can escape the job.
                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP | _CREATE_SUSPENDED,
            )
            self._job = _windows_job_for(self.proc)
        else:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                cwd=cwd,
                start_new_session=True,  # its own process group: killpg reaches the whole tree
            )
        self.pid = self.proc.pid
        self._open_readers = 2
        self._stopping = threading.Event()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, pipe in ((STDOUT, self.proc.stdout), (STDERR, self.proc.stderr)):
            reader = threading.Thread(target=self._read, args=(stream, pipe.fileno()), daemon=True, name="task-pipe")
            reader.start()

    def _read(self, stream: int, fd: int) -> None:
        try:
            while True:
                try:
                    data = os.read(fd, READ_BYTES)
                except OSError:
                    data = b""
                if not data or not self._take_credit():
                    break
                if not self._hand_over(Chunk(stream, data)):
                    break
        finally:
            self._hand_over(None)

    def _take_credit(self) -> bool:
        """Wait for room in the queue (the consumer frees it); False once the tree is closed."""
        while not self._stopping.is_set():
            if self._credits.acquire(timeout=0.5):
                return True
        return False

    def _hand_over(self, item: Chunk | None) -> bool:
        """Put ``item`` on the loop's queue; False once the loop is gone."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            return False
        return True

    async def output(self) -> AsyncIterator[Chunk]:
        """Every chunk of stdout and stderr, each stream in order, until both are closed."""
        while self._open_readers:
            item = await self._queue.get()
            if item is None:
                self._open_readers -= 1
            else:
                self._credits.release()
                yield item

    async def wait(self) -> int:
        """The exit status, shell style: 128+N for a signal N; the rest of the tree is killed then."""
        code = await asyncio.to_thread(self.proc.wait)
        # Leftover grandchildren would hold the pipes open and outlive the task.
        self._signal_tree(_KILL)
        return 128 - code if code < 0 else code

    async def kill(self, grace_s: float = GRACE_S) -> None:
        """End the whole tree: a polite signal, then after ``grace_s`` a kill."""
        if self.proc.poll() is None:
            self._signal_tree(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), grace_s)
            except TimeoutError:
                pass
        self._signal_tree(_KILL)

    def close(self) -> None:
        """Stop the reader threads from waiting on a consumer that is gone."""
        self._stopping.set()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def _signal_tree(self, sig: int) -> None:
        if sys.platform == "win32":
            # The polite signal is Ctrl-Break to its process group; the kill ends every process in the job. Not
            # os.kill: where Ctrl-Break cannot be sent (a detached node has no console to share with its child)
            # CPython 3.11 and 3.12 fall through to TerminateProcess of the child alone and raise SystemError
            # (found by tests/windows/test_tasks.py). Then there is nothing polite to do: the job ends now.
            if sig == signal.SIGTERM and self.proc.poll() is None and _windows_ctrl_break(self.pid):
                return
            if self._job is not None:
                _windows_terminate_job(self._job)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


_KILL = -1 if sys.platform == "win32" else signal.SIGKILL  # Windows: terminate the job

if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
    _JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9

    class _IoCounters(ctypes.Structure):
        _fields_ = [(n, ctypes.c_ulonglong) for n in ("r", "w", "o", "rb", "wb", "ob")]

    class _BasicLimits(ctypes.Structure):
        _fields_ = [
            ("PerProcessUserTimeLimit", ctypes.c_int64),
            ("PerJobUserTimeLimit", ctypes.c_int64),
            ("LimitFlags", wintypes.DWORD),
            ("MinimumWorkingSetSize", ctypes.c_size_t),
            ("MaximumWorkingSetSize", ctypes.c_size_t),
            ("ActiveProcessLimit", wintypes.DWORD),
            ("Affinity", ctypes.c_size_t),
            ("PriorityClass", wintypes.DWORD),
            ("SchedulingClass", wintypes.DWORD),
        ]

    class _ExtendedLimits(ctypes.Structure):
        _fields_ = [
            ("BasicLimitInformation", _BasicLimits),
            ("IoInfo", _IoCounters),
            ("ProcessMemoryLimit", ctypes.c_size_t),
            ("JobMemoryLimit", ctypes.c_size_t),
            ("PeakProcessMemoryUsed", ctypes.c_size_t),
            ("PeakJobMemoryUsed", ctypes.c_size_t),
        ]

    def _windows_job_for(proc: subprocess.Popen[bytes]) -> object:
        """A job object holding ``proc`` (started suspended, so nothing escapes before it is in the job)."""
        kernel32 = ctypes.windll.kernel32
        job = kernel32.CreateJobObjectW(None, None)
        limits = _ExtendedLimits()
        limits.BasicLimitInformation.LimitFlags = _JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        kernel32.SetInformationJobObject(
            job, _JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, ctypes.byref(limits), ctypes.sizeof(limits)
        )
        kernel32.AssignProcessToJobObject(job, int(proc._handle))  # type: ignore[attr-defined]
        _windows_resume(proc.pid)
        return job

    def _windows_resume(pid: int) -> None:
        """Resume the main thread of a process created with CREATE_SUSPENDED."""
        ntdll = ctypes.windll.ntdll
        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x0800, False, pid)  # PROCESS_SUSPEND_RESUME
        try:
            ntdll.NtResumeProcess(handle)
        finally:
            kernel32.CloseHandle(handle)

    def _windows_terminate_job(job: object) -> None:
        """End every process in the job at once."""
        ctypes.windll.kernel32.TerminateJobObject(job, 1)

    def _windows_ctrl_break(group: int) -> bool:
        """Send Ctrl-Break to process group ``group``; False where it cannot be (no console shared with it)."""
        return bool(ctypes.windll.kernel32.GenerateConsoleCtrlEvent(signal.CTRL_BREAK_EVENT, group))

else:

    def _windows_job_for(proc: subprocess.Popen[bytes]) -> object:
        raise NotImplementedError("job objects exist only on Windows")

    def _windows_terminate_job(job: object) -> None:
        raise NotImplementedError("job objects exist only on Windows")

    def _windows_ctrl_break(group: int) -> bool:
        raise NotImplementedError("Ctrl-Break exists only on Windows")
