"""A stranger sending wrong invite codes slows only itself: the owner's machines still pair, with the same code."""

from __future__ import annotations

from collections.abc import Callable

from noizylab_desktop.core import invite as codes
from tests.conftest import NodeProcess, start_all
from tests.security.relay import Relay


def _join_line(node: NodeProcess, code: str) -> str:
    """The one line ``pair join`` prints on failure."""
    result = node.cli("pair", "join", code, check=False)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_a_stranger_knocking_with_wrong_codes_does_not_lock_the_owner_out(
    host: NodeProcess, make_node: Callable[[str], NodeProcess]
) -> None:
    mallory, laptop = start_all(make_node("mallory"), make_node("laptop"))
    code = host.invite()
    real = codes.decode(code)
    # Mallory's connections reach the pairing port from 127.0.0.2: another machine, as far as the host can tell.
    with Relay(("127.0.0.1", real.port), source="127.0.0.2") as relay:
        for n in range(5):
            guess = codes.InviteCode(real.fp_prefix, bytes([n + 1]) * len(real.secret), relay.port, ("127.0.0.1",))
            assert "wrong invite code" in _join_line(mallory, codes.encode(guess))
        again = codes.InviteCode(real.fp_prefix, b"\xee" * len(real.secret), relay.port, ("127.0.0.1",))
        assert "too many wrong invite codes" in _join_line(mallory, codes.encode(again))
        joined = laptop.join(code)
    assert joined["peer_name"] == "host"
    assert [p["name"] for p in host.json("peers")] == ["laptop"]


def test_the_owner_can_make_and_use_a_new_invite_while_a_stranger_keeps_knocking(
    host: NodeProcess, make_node: Callable[[str], NodeProcess]
) -> None:
    mallory, laptop = start_all(make_node("mallory"), make_node("laptop"))
    first = codes.decode(host.invite())
    with Relay(("127.0.0.1", first.port), source="127.0.0.2") as relay:
        for n in range(6):
            guess = codes.InviteCode(first.fp_prefix, bytes([n + 1]) * len(first.secret), relay.port, ("127.0.0.1",))
            _join_line(mallory, codes.encode(guess))
        assert laptop.join(host.invite())["peer_name"] == "host"
