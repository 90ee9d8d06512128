"""An interrupted push to OpenSSH's sshd resumes from the temp file it left there: the connection is cut for real
(a TCP relay that drops it mid-push), and the bytes the next connection carries show what travelled again."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncssh

from noizylab_desktop.services.sync.blocks import BLOCK_SIZE, hash_file
from noizylab_desktop.services.sync.executor import Executor
from noizylab_desktop.services.sync.index import ShareIndex
from noizylab_desktop.services.sync.localfs import LocalFs, temp_name
from noizylab_desktop.services.sync.planner import Entry, plan
from noizylab_desktop.services.sync.remote import RemoteUnreachable, SshRemote, Target
from tests.sync_harness import Sshd

SIZE = 24 * 1024 * 1024
CUT = 10 * 1024 * 1024


class CuttingRelay:
    """TCP relay to sshd: the first connection is cut after ``cut`` bytes from the client; later ones carry on,
    and ``sent[n]`` counts what the client sent on connection ``n``."""

    def __init__(self, target_port: int, cut: int) -> None:
        self.target_port = target_port
        self.cut = cut
        self.sent: list[int] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = len(self.sent)
        self.sent.append(0)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        def cut() -> None:
            writer.transport.abort()
            up_writer.transport.abort()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if n == 0 and self.sent[n] + len(data) > self.cut:
                    break
                self.sent[n] += len(data)
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)  # either side ended or was cut
        finally:
            cut()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def test_an_interrupted_push_to_openssh_resumes_from_its_temp_file(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    sshd = Sshd(tmp_path / "sshd", [key.export_public_key().decode().strip()])
    local, nas = tmp_path / "local", tmp_path / "nas"
    local.mkdir()
    nas.mkdir()
    data = os.urandom(SIZE)
    (local / "big.bin").write_bytes(data)
    (local / "other.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    index = ShareIndex(tmp_path / "i.sqlite")

    def entry(rel: str) -> Entry:
        hashed = hash_file(local / rel)
        return Entry(rel, hashed.size, (local / rel).stat().st_mtime_ns, hashed.digest, hashed.blocks)

    async def go() -> tuple[int, list[int], int]:
        relay = CuttingRelay(sshd.port, CUT)
        await relay.start()
        target = Target("127.0.0.1", relay.port, sshd.user, str(nas), sshd.host_public, "nas")
        remote = SshRemote(target, key.export_private_key(), index)
        executor = Executor(LocalFs(local), index, remote, "alpha")
        try:
            try:
                await executor.run(plan({"big.bin": entry("big.bin")}, {}, {}, "alpha", "nas"))
            except RemoteUnreachable:
                pass
            else:
                raise AssertionError("the relay did not cut the push")
            left = (nas / temp_name("big.bin")).stat().st_size
            assert not (nas / "big.bin").exists(), "no partial file at the final path"
            await remote.close()
            done = await executor.run(plan({"big.bin": entry("big.bin")}, {}, {}, "alpha", "nas"))
            assert not done.failed, done.failed

            # A temp file holding other content is not trusted: that push starts again, and still verifies.
            (nas / temp_name("other.bin")).write_bytes(os.urandom(2 * 1024 * 1024))
            before = relay.sent[-1]
            done = await executor.run(plan({"other.bin": entry("other.bin")}, {}, {}, "alpha", "nas"))
            assert not done.failed, done.failed
            return left, list(relay.sent), relay.sent[-1] - before
        finally:
            await remote.close()
            await relay.stop()

    try:
        left, sent, other_sent = asyncio.run(asyncio.wait_for(go(), 120))
    finally:
        sshd.stop()
        index.close()
    assert left >= BLOCK_SIZE, f"the cut push left {left} bytes in its temp file"
    resumed = sum(sent[1:]) - other_sent
    assert resumed < SIZE - left + 1024 * 1024, f"the resumed push carried {resumed} bytes; {left} were already there"
    assert resumed < SIZE * 0.8, "less than the whole file travelled again"
    assert (nas / "big.bin").read_bytes() == data, "and the result is whole"
    assert other_sent > 4 * 1024 * 1024, "a temp file with other content was sent again in full"
    assert (nas / "other.bin").read_bytes() == (local / "other.bin").read_bytes()
    assert not list(nas.glob(".nzsync-*")), "no temp file is left"


def test_nfd_names_on_an_openssh_server_are_kept_as_spelled_there(tmp_path: Path) -> None:
    import unicodedata

    from noizylab_desktop.services.sync.engine import ShareEngine
    from noizylab_desktop.services.sync.store import Share
    from tests.sync_harness import tree

    key = asyncssh.generate_private_key("ssh-ed25519")
    sshd = Sshd(tmp_path / "sshd", [key.export_public_key().decode().strip()])
    local, nas = tmp_path / "local", tmp_path / "nas"
    local.mkdir()
    nfd = unicodedata.normalize("NFD", "\u00e9t\u00e9/pr\u00eat.txt")
    (nas / nfd).parent.mkdir(parents=True)
    (nas / nfd).write_text("on the NAS, NFD")
    index = ShareIndex(tmp_path / "i.sqlite")
    target = Target("127.0.0.1", sshd.port, sshd.user, str(nas), sshd.host_public, "nas")
    remote = SshRemote(target, key.export_private_key(), index)
    share = Share("0123456789ab", str(local), f"ssh://{sshd.user}@127.0.0.1:{sshd.port}", "nas", str(nas))
    engine = ShareEngine(share, index, lambda: remote, "alpha", lambda e: None, lambda s, r: s)

    async def go() -> tuple[bool, bool]:
        try:
            first = await engine.sync_now()
            (local / "\u00e9t\u00e9" / "pr\u00eat.txt").write_text("edited here")
            (local / "\u00e9t\u00e9" / "new.txt").write_text("new here")
            return first, await engine.sync_now()
        finally:
            await engine.stop()

    try:
        first, second = asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        sshd.stop()
        index.close()
    assert first and second
    assert tree(local) == {"\u00e9t\u00e9/pr\u00eat.txt": b"edited here", "\u00e9t\u00e9/new.txt": b"new here"}
    nfd_dir = unicodedata.normalize("NFD", "\u00e9t\u00e9")
    assert set(tree(nas)) == {nfd, f"{nfd_dir}/new.txt"}, "the NAS keeps its NFD spelling, no NFC twin"
