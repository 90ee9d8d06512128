"""``noizylab rename NAME``: the name is kept in the config, shown at once, and paired machines learn it with the
next heartbeat; a name a peer's other peer (or the peer itself) holds gets a suffix there; a bad name is one line."""

from __future__ import annotations

import tomllib
from collections.abc import Callable

from tests.conftest import NodeProcess, wait_for

LEARN_S = 5.0  # heartbeats go every second


def test_a_renamed_machine_keeps_its_name_and_its_peer_learns_it_at_once(
    paired: tuple[NodeProcess, NodeProcess],
) -> None:
    alpha, beta = paired
    result = alpha.cli("rename", "studio")
    assert (
        result.stdout.strip() == "this machine is called studio now; paired machines that are online learn it at once"
    )
    assert alpha.status()["name"] == "studio"
    assert tomllib.loads((alpha.home / "config.toml").read_text())["name"] == "studio"
    wait_for(lambda: beta.peer("studio"), LEARN_S, "beta to call alpha studio")
    assert beta.peer("alpha") is None
    # Commands on beta name it by its new name.
    beta.cli("allow", "studio", "files")
    assert {p["name"]: p["allowed"]["files"] for p in beta.json("permissions")} == {"studio": True}

    alpha.stop()
    alpha.start()
    assert alpha.status()["name"] == "studio"


def test_a_name_the_peer_itself_holds_gets_a_suffix_there(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired
    alpha.cli("rename", "beta")
    assert alpha.status()["name"] == "beta"
    wait_for(lambda: beta.peer("beta-2"), LEARN_S, "beta to call alpha beta-2 (beta is its own name)")


def test_a_bad_name_is_one_line_and_changes_nothing(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = paired
    for bad in ("", "   ", "a\x1bb", "x" * 65):
        result = alpha.cli("rename", bad, check=False)
        assert result.returncode == 1, bad
        assert result.stderr.startswith("noizylab: error: a machine's name is 1 to 64 printable characters, not ")
        assert len(result.stderr.strip().splitlines()) == 1
    assert alpha.status()["name"] == "alpha"


def test_a_machine_renamed_while_stopped_is_known_by_the_new_name_once_it_runs(
    make_node: Callable[[str], NodeProcess], paired: tuple[NodeProcess, NodeProcess]
) -> None:
    alpha, beta = paired
    alpha.stop()
    result = alpha.cli("rename", "laptop")
    assert (
        result.stdout.strip() == "this machine is called laptop now; paired machines learn it when its node next starts"
    )
    alpha.start()
    wait_for(lambda: beta.peer("laptop"), LEARN_S * 3, "beta to call alpha laptop")
