"""A machine that another one unpaired says so, instead of showing that one offline for ever."""

from __future__ import annotations

import time

from tests.conftest import NodeProcess, wait_for


def test_a_machine_unpaired_while_both_run_shows_who_removed_it_and_when(
    paired: tuple[NodeProcess, NodeProcess],
) -> None:
    alpha, beta = paired
    before = time.time()

    began = time.monotonic()
    alpha.cli("unpair", "beta")
    assert time.monotonic() - began < 10  # telling beta is bounded (2 s); the rest is the command's own start

    seen = wait_for(lambda: (beta.peer("alpha") or {}).get("removed_at") and beta.peer("alpha"), 10, "beta to hear")
    assert before - 1 <= seen["removed_at"] <= time.time() + 1
    assert not seen["online"] and seen["refusal"] is None
    listed = beta.cli("peers").stdout
    assert "alpha" in listed and "removed this machine on " in listed and "noizylab unpair alpha" in listed
    assert "removed this machine on " in beta.cli("status").stdout
    assert beta.status()["peers"][0]["removed_at"] == seen["removed_at"]

    # The removed side forgets it in turn with the usual command.
    beta.cli("unpair", "alpha")
    assert beta.peer("alpha") is None


def test_a_machine_unpaired_while_it_was_stopped_learns_it_from_refused_handshakes(
    paired: tuple[NodeProcess, NodeProcess],
) -> None:
    alpha, beta = paired
    beta.stop()
    alpha.cli("unpair", "beta")
    beta.start()

    # gRPC cannot tell a handshake the peer refused from any other connection the peer closed: "may have".
    seen = wait_for(lambda: (beta.peer("alpha") or {}).get("refusal") and beta.peer("alpha"), 20, "beta to be refused")
    assert seen["refusal"] == "handshake" and seen["removed_at"] is None and not seen["online"]
    assert "may have removed this machine" in beta.cli("peers").stdout

    # A peer that is merely gone refuses nothing: its connections are refused, and it shows offline again.
    alpha.stop()
    wait_for(lambda: (beta.peer("alpha") or {}).get("refusal") is None, 20, "beta to see alpha merely offline")
    assert "offline" in beta.cli("peers").stdout
