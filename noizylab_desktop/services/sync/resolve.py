"""Unresolved text conflicts for the node's own user: list them, show how the versions differ, ask the AI advisor
to propose a merge (shown as diffs, kept until the user applies it), and resolve (the proposal, mine or theirs).

Nothing is written without the user asking. Resolving writes the chosen text to the file (temp, fsync, verify,
rename; the replaced file kept as a version), moves the conflict copy into the versions folder, and lets the share
sync both changes. Every refusal is one line and leaves everything as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from noizylab_desktop.core.errors import MergeError, NoizyLabError
from noizylab_desktop.services.sync.index import Unresolved
from noizylab_desktop.services.sync.localfs import temp_name
from noizylab_desktop.services.sync.merge import (
    has_markers,
    line_ending,
    looks_like_text,
    merge_text,
    unified,
    with_ending,
)

if TYPE_CHECKING:
    from noizylab_desktop.core.config import Settings
    from noizylab_desktop.services.routing import AdvisorSettings
    from noizylab_desktop.services.sync.engine import ShareEngine

logger = logging.getLogger(__name__)

MIN_AI_TIMEOUT_S = 30.0  # a merge is a whole file to write: more than the routing advisor's pick needs
SYSTEM_PROMPT = (
    "You resolve a conflict between two edits of one text file. You are given the common ancestor (when known), "
    "both versions, and a line-wise merge with conflict markers. Answer with the complete merged file only: no "
    "prose, no code fences, no conflict markers. Keep every change of both versions where they do not contradict."
)
_FENCE = re.compile(r"\A```[\w+-]*\n(.*?)\n?```\s*\Z", re.DOTALL)
Keep = Literal["proposal", "mine", "theirs"]


@dataclass(frozen=True)
class Conflict:
    """An unresolved conflict of one share."""

    share_id: str
    local: str
    peer: str
    record: Unresolved


@dataclass(frozen=True)
class Proposal:
    """What ``propose`` shows: a proposed merge (empty when none was asked for) and the diffs around it."""

    conflict: Conflict
    text: bytes
    diff_file: str
    diff_copy: str
    diff_versions: str
    advisor_on: bool


class Resolver:
    """The conflicts of every share of this node."""

    def __init__(
        self,
        engines: dict[str, ShareEngine],
        local_name: str,
        settings: Callable[[], Settings],
        ai_timeout_s: float | None = None,
    ) -> None:
        self.engines = engines
        self.local_name = local_name
        self.settings = settings  # read afresh for each proposal, so `noizylab advisor on` applies at once
        self.ai_timeout_s = ai_timeout_s  # None: the advisor's own timeout, at least MIN_AI_TIMEOUT_S

    def conflicts(self) -> list[Conflict]:
        """Unresolved conflicts, oldest first; one whose copy is gone was resolved by hand and is dropped."""
        out = []
        for engine in self.engines.values():
            for record in engine.index.unresolved():
                if not engine.fs.path(record.copy).is_file():
                    engine.index.drop_unresolved(record.id)
                    continue
                out.append(Conflict(engine.share.id, engine.share.local, engine.share.peer_name, record))
        return sorted(out, key=lambda c: c.record.at)

    def find(self, ref: str) -> Conflict:
        """A conflict by ID (or its start), path or conflict copy's path; a one-line error otherwise."""
        ref = ref.strip()
        every = self.conflicts()
        found = [c for c in every if ref and (c.record.id.startswith(ref) or ref in (c.record.path, c.record.copy))]
        if not found:
            found = [c for c in every if ref and os.path.join(c.local, c.record.path) == os.path.abspath(ref)]
        if len(found) != 1:
            what = "no unresolved conflict" if not found else "several conflicts"
            raise MergeError(f"{what} match {ref!r}: see `noizylab sync conflicts`")
        return found[0]

    def _read(self, c: Conflict) -> tuple[bytes, bytes]:
        engine = self.engines[c.share_id]
        try:
            return engine.fs.path(c.record.path).read_bytes(), engine.fs.path(c.record.copy).read_bytes()
        except OSError as exc:
            raise MergeError(f"cannot read {exc.filename}: {exc.strerror}") from exc

    async def propose(self, ref: str, ai: bool) -> Proposal:
        """The versions' differences and, with ``ai``, the advisor's merge (kept until applied or replaced)."""
        c = self.find(ref)
        current, copy = await asyncio.to_thread(self._read, c)
        advisor, problem = await self._advisor()
        text = b""
        if ai:
            if advisor is None:
                raise MergeError(f"the AI advisor cannot be used: {problem}")
            if not advisor.enabled:
                raise MergeError("the AI advisor is off: turn it on with `noizylab advisor on --model MODEL`")
            text = await self._ask(advisor, c, current, copy)
            self.engines[c.share_id].index.set_proposal(c.record.id, text, _made_for(current, copy))
        return await asyncio.to_thread(
            _proposal, c, current, copy, text if ai else None, bool(advisor and advisor.enabled)
        )

    async def _advisor(self) -> tuple[AdvisorSettings | None, str]:
        """The advisor's settings as the config file holds them now, or why they cannot be used."""
        from noizylab_desktop.services.routing import load_advisor_settings

        try:
            return await asyncio.to_thread(lambda: load_advisor_settings(self.settings())), ""
        except NoizyLabError as exc:
            logger.info("advisor settings unusable: %s", exc.message)
            return None, exc.message

    async def _ask(self, advisor: AdvisorSettings, c: Conflict, current: bytes, copy: bytes) -> bytes:
        from noizylab_desktop.services.routing import complete

        if not (looks_like_text(current, 2**24) and looks_like_text(copy, 2**24)):
            raise MergeError(f"{c.record.path} or its conflict copy is no longer text: nothing to merge")
        base = c.record.base
        names = (c.record.file_from, c.record.copy_from)
        marked = await asyncio.to_thread(merge_text, base if base is not None else b"", current, copy, names)
        parts = [f"File: {c.record.path}"]
        if base is not None:
            parts.append(f"Common ancestor:\n{base.decode()}")
        parts += [
            f"Version from {c.record.file_from}:\n{current.decode()}",
            f"Version from {c.record.copy_from}:\n{copy.decode()}",
            f"Line-wise merge with conflict markers:\n{marked.data.decode()}",
        ]
        timeout = self.ai_timeout_s or max(advisor.timeout_s, MIN_AI_TIMEOUT_S)
        answer = await complete(advisor, SYSTEM_PROMPT, "\n\n".join(parts), timeout)
        where = f"the AI advisor could not propose a merge of {c.record.path}"
        if answer.problem:
            raise MergeError(f"{where}: {answer.problem}; nothing was changed")
        return _checked_answer(answer.text, current, copy, where)

    async def resolve(self, ref: str, keep: Keep) -> Conflict:
        """Write the chosen text to the file, move the conflict copy into the versions folder, and sync."""
        c = self.find(ref)
        engine = self.engines[c.share_id]
        current, copy = await asyncio.to_thread(self._read, c)
        me = self.local_name
        if keep == "proposal":
            stored = engine.index.proposal(c.record.id)
            if stored is None:
                raise MergeError(f"no merge was proposed for {c.record.path}: ask with `noizylab sync merge ID --ai`")
            if stored[1] != _made_for(current, copy):
                raise MergeError(
                    f"{c.record.path} or its conflict copy changed since the merge was proposed: ask again"
                )
            text = stored[0]
        elif keep in ("mine", "theirs"):
            if me not in (c.record.file_from, c.record.copy_from):
                raise MergeError(f"neither version of {c.record.path} came from {me}: keep the proposal instead")
            mine = current if c.record.file_from == me else copy
            theirs = copy if c.record.file_from == me else current
            text = mine if keep == "mine" else theirs
        else:
            raise MergeError(f"keep must be proposal, mine or theirs, not {keep!r}")
        await asyncio.to_thread(self._write, engine, c, current, copy, text)
        engine.index.drop_unresolved(c.record.id)
        engine.request()
        logger.info("resolved the conflict of %s (%s)", c.record.path, keep)
        return c

    def _write(self, engine: ShareEngine, c: Conflict, current: bytes, copy: bytes, text: bytes) -> None:
        fs = engine.fs
        final = fs.path(c.record.path)
        if text != current:
            tmp = fs.path(temp_name(c.record.path + "#resolve"))  # not the sync's own temp for this path
            fd = fs.open_write(tmp)
            try:
                fs.pwrite(fd, text, 0)
            finally:
                fs.close(fd, len(text))
            if hashlib.sha256(tmp.read_bytes()).digest() != hashlib.sha256(text).digest():
                tmp.unlink(missing_ok=True)
                raise MergeError(f"the merged {c.record.path} did not verify on disk: nothing was changed")
            if final.read_bytes() != current or fs.path(c.record.copy).read_bytes() != copy:
                tmp.unlink(missing_ok=True)
                raise MergeError(f"{c.record.path} changed meanwhile: nothing was changed; try again")
            now = time.time_ns()
            fs.replace(tmp, final, now, c.record.path)
        fs.remove_to_versions(c.record.copy)


def _proposal(c: Conflict, current: bytes, copy: bytes, text: bytes | None, advisor_on: bool) -> Proposal:
    """The diffs around a proposal (``text``; None when none was asked for); blocking, for a worker thread."""
    path, copy_name = c.record.path, c.record.copy
    return Proposal(
        c,
        text or b"",
        unified(current, text, f"{path} (now)", f"{path} (proposed)") if text is not None else "",
        unified(copy, text, f"{copy_name} (conflict copy)", f"{path} (proposed)") if text is not None else "",
        unified(current, copy, f"{path} (from {c.record.file_from})", f"{copy_name} (from {c.record.copy_from})"),
        advisor_on,
    )


def _made_for(current: bytes, copy: bytes) -> bytes:
    return hashlib.sha256(current).digest() + hashlib.sha256(copy).digest()


def _checked_answer(text: str, current: bytes, copy: bytes, where: str) -> bytes:
    """The advisor's merge as bytes in the file's own line endings, or a one-line refusal."""
    fenced = _FENCE.match(text.strip("\n"))
    if fenced:
        text = fenced.group(1) + "\n"
    if "\0" in text:
        raise MergeError(f"{where}: its answer is not text; nothing was changed")
    if has_markers(text):
        raise MergeError(f"{where}: its answer still has conflict markers; nothing was changed")
    if not text.strip() and (current.strip() or copy.strip()):
        raise MergeError(f"{where}: its answer was empty; nothing was changed")
    if len(text.encode()) > 2 * (len(current) + len(copy)) + 4096:
        raise MergeError(f"{where}: its answer is far longer than both versions together; nothing was changed")
    data = text.encode()
    if current.endswith(b"\n") and not data.endswith(b"\n"):
        data += b"\n"
    return with_ending(data, line_ending(current))
