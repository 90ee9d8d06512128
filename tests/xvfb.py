"""A private Xvfb on a free display number, for tests that need an X server of their own."""

from __future__ import annotations

import os
import select
import subprocess
import time

from tests.slowness import scaled

START_TIMEOUT_S = scaled(10.0)


class Xvfb:
    """A private X server with one screen of the given size (``-br``: a black root, for the black-screen test)."""

    def __init__(self, size: str = "640x480", black: bool = False) -> None:
        read_end, write_end = os.pipe()
        command = ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{size}x24", "-nolisten", "tcp"]
        command += ["-br"] if black else []
        self.process = subprocess.Popen(command, pass_fds=[write_end], stderr=subprocess.DEVNULL)
        os.close(write_end)
        number = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 1)
            if ready:
                number += os.read(read_end, 16)
        os.close(read_end)
        if not number.endswith(b"\n"):
            self.stop()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number.decode().strip()}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
