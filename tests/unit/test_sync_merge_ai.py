"""Resolving a text conflict: the AI advisor (an OpenAI-compatible server on loopback) proposes a merge, shown as
diffs and applied only when asked, then synced; bad answers and failures change nothing; keeping one version."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from noizylab_desktop.core.config import Settings
from noizylab_desktop.core.errors import MergeError
from noizylab_desktop.services.sync.resolve import Resolver
from tests.sync_harness import SHARE_ID, SyncPair, everything, tree

from .routing_llm_server import Script, llm_server

BASE = "".join(f"line {i}\n" for i in range(1, 9))
MINE = BASE.replace("line 4\n", "line 4 as alpha wrote it\n")
THEIRS = BASE.replace("line 4\n", "line 4 as beta wrote it\n")
MERGED = BASE.replace("line 4\n", "line 4 as alpha wrote it, and as beta wrote it\n")


class Setup:
    def __init__(self, tmp_path: Path, base: str, script: Script) -> None:
        self.loop = asyncio.new_event_loop()
        self.pair = SyncPair(tmp_path)
        self.script = script
        self.loop.run_until_complete(self.pair.start())
        self.advisor: dict[str, object] = {
            "advisor_enabled": True,
            "advisor_model": "openai/merge-advisor",
            "advisor_api_base": base,
            "advisor_timeout_s": 10.0,
        }
        assert self.pair.engine is not None
        self.resolver = Resolver({SHARE_ID: self.pair.engine}, "alpha", self.settings)

    def settings(self) -> Settings:
        return Settings(name="alpha").with_section("tasks", self.advisor)

    def run(self, coro: object) -> object:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def sync(self) -> None:
        assert self.run(self.pair.sync())

    def conflict(self, name: str = "notes.txt") -> str:
        """Both sides edit the same line of ``name``: a conflict copy and an unresolved conflict; its ID."""
        p = self.pair
        (p.local / name).write_text(BASE)
        self.sync()
        (p.local / name).write_text(MINE)
        (p.remote / name).write_text(THEIRS)
        self.sync()
        [c] = [c for c in self.resolver.conflicts() if c.record.path == name]
        return c.record.id

    def close(self) -> None:
        self.run(self.pair.close())
        # As asyncio.run does: end what is left on the loop (LiteLLM's logging worker) before closing it.
        left = asyncio.all_tasks(self.loop)
        for task in left:
            task.cancel()
        if left:
            self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        self.loop.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with llm_server() as (base, script):
        s = Setup(tmp_path, base, script)
        yield s
        s.close()


def test_the_ai_proposal_is_shown_as_diffs_and_applied_only_when_asked_then_synced(setup: Setup) -> None:
    s, p = setup, setup.pair
    cid = s.conflict()
    [c] = s.resolver.conflicts()
    assert (c.share_id, c.local, c.peer, c.record.path) == (SHARE_ID, str(p.local), "beta", "notes.txt")
    copy = c.record.copy
    shown = s.run(s.resolver.propose(cid[:4], ai=False))
    assert shown.text == b"" and shown.advisor_on  # type: ignore[attr-defined]
    assert "-line 4 as" in shown.diff_versions and "+line 4 as" in shown.diff_versions  # type: ignore[attr-defined]
    before = tree(p.local)
    assert before == tree(p.remote) and len(before) == 2

    s.script.content = MERGED
    proposal = s.run(s.resolver.propose("notes.txt", ai=True))
    assert proposal.text == MERGED.encode()  # type: ignore[attr-defined]
    assert "+line 4 as alpha wrote it, and as beta wrote it" in proposal.diff_file  # type: ignore[attr-defined]
    assert "(conflict copy)" in proposal.diff_copy and "-line 4 as" in proposal.diff_copy  # type: ignore[attr-defined]
    asked = s.script.requests[0]
    assert asked["model"] == "merge-advisor"
    shown_text = asked["messages"][1]["content"]
    assert "line 4 as alpha wrote it" in shown_text and "line 4 as beta wrote it" in shown_text
    assert "Common ancestor:\n" + BASE in shown_text
    assert tree(p.local) == before and tree(p.remote) == before, "nothing is applied before the user says so"

    s.run(s.resolver.resolve(cid, "proposal"))
    assert tree(p.local) == {"notes.txt": MERGED.encode()}
    kept = everything(p.local)
    assert MINE.encode() in kept and THEIRS.encode() in kept, "the replaced file and the copy are in versions"
    s.sync()
    assert tree(p.remote) == {"notes.txt": MERGED.encode()}, "the merge and the copy's removal synced"
    assert s.resolver.conflicts() == []
    assert copy not in tree(p.remote)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("<<<<<<< alpha\nline 4\n=======\nline 4 b\n>>>>>>> beta\n", "its answer still has conflict markers"),
        ("   \n", "its reply was empty"),
        ("a\0b\n", "its answer is not text"),
        ("x" * 10_000, "far longer than both versions"),
    ],
    ids=["markers", "empty", "binary", "too-long"],
)
def test_an_unusable_answer_is_one_line_and_changes_nothing(setup: Setup, answer: str, why: str) -> None:
    s, p = setup, setup.pair
    cid = s.conflict()
    before = (tree(p.local), tree(p.remote))
    s.script.content = answer
    with pytest.raises(MergeError, match=why) as caught:
        s.run(s.resolver.propose(cid, ai=True))
    assert "\n" not in caught.value.message and caught.value.message.endswith("nothing was changed")
    with pytest.raises(MergeError, match="no merge was proposed"):
        s.run(s.resolver.resolve(cid, "proposal"))
    assert (tree(p.local), tree(p.remote)) == before
    assert len(s.resolver.conflicts()) == 1


def test_advisor_failures_and_a_switched_off_advisor_are_one_line(setup: Setup) -> None:
    s = setup
    cid = s.conflict()
    s.script.status = 500
    with pytest.raises(MergeError, match=r"could not propose a merge of notes.txt: it failed: .*HTTP 500"):
        s.run(s.resolver.propose(cid, ai=True))
    s.script.status, s.script.stall = 200, True
    s.resolver.ai_timeout_s = 0.5
    with pytest.raises(MergeError, match=r"it did not answer within 0.5 s; nothing was changed"):
        s.run(s.resolver.propose(cid, ai=True))
    s.advisor["advisor_timeout_s"] = "soon"
    with pytest.raises(MergeError, match=r"^the AI advisor cannot be used: tasks\.advisor_timeout_s must be"):
        s.run(s.resolver.propose(cid, ai=True))
    s.advisor["advisor_timeout_s"], s.advisor["advisor_enabled"] = 10.0, False
    with pytest.raises(MergeError, match=r"^the AI advisor is off: turn it on with `noizylab advisor on"):
        s.run(s.resolver.propose(cid, ai=True))
    with pytest.raises(MergeError, match="no unresolved conflict match 'nope'"):
        s.run(s.resolver.propose("nope", ai=False))


def test_a_proposal_is_refused_once_the_file_changed_after_it_was_shown(setup: Setup) -> None:
    s, p = setup, setup.pair
    cid = s.conflict()
    s.script.content = MERGED
    s.run(s.resolver.propose(cid, ai=True))
    (p.local / "notes.txt").write_text(MINE + "one more line\n")
    with pytest.raises(MergeError, match="changed since the merge was proposed: ask again"):
        s.run(s.resolver.resolve(cid, "proposal"))
    assert (p.local / "notes.txt").read_text() == MINE + "one more line\n"


def test_keep_mine_or_theirs_resolves_with_that_version(setup: Setup) -> None:
    s, p = setup, setup.pair
    first = s.conflict("a.txt")
    second = s.conflict("b.txt")
    s.run(s.resolver.resolve(first, "mine"))
    s.run(s.resolver.resolve(second, "theirs"))
    s.sync()
    assert tree(p.local) == tree(p.remote) == {"a.txt": MINE.encode(), "b.txt": THEIRS.encode()}
    assert s.resolver.conflicts() == []
