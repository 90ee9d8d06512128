"""A code answers for its whole life: a used one always says "already used", an expired one says "expired"."""

from __future__ import annotations

import time
from collections.abc import Callable

from noizylab_desktop.core.pairing import JANITOR_S
from tests.conftest import NodeProcess, start_all, wait_for

# The pairing port used to close at the janitor's first round after the code was used (plus a second to stop).
OLD_WINDOW_S = JANITOR_S + 2.0


def _refused(node: NodeProcess, code: str) -> str:
    result = node.cli("pair", "join", code, check=False)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_a_used_code_says_already_used_every_time_within_its_lifetime(make_node: Callable[[str], NodeProcess]) -> None:
    alpha, beta, gamma = start_all(*(make_node(n) for n in ("alpha", "beta", "gamma")))
    code = alpha.invite()
    beta.join(code)
    used_at = time.monotonic()
    answers = [_refused(gamma, code)]
    while time.monotonic() < used_at + OLD_WINDOW_S:
        answers.append(_refused(gamma, code))
    answers.append(_refused(gamma, code))
    assert all("already used" in a for a in answers), answers
    assert [p["name"] for p in alpha.json("peers")] == ["beta"]


def test_an_expired_code_says_expired_after_the_janitor_has_run(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha")
    config = alpha.home / "config.toml"
    config.write_text("invite_ttl_s = 1\n" + config.read_text())
    alpha, beta = start_all(alpha, make_node("beta"))
    invite = alpha.json("pair", "invite")
    wait_for(lambda: time.time() > invite["expires_at"] + OLD_WINDOW_S, timeout=30, what="the janitor to run")
    assert "expired" in _refused(beta, invite["code"])
