"""The tasks feature routes through the AI advisor when it is on: its pick is used and recorded, with its reason."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import NodeProcess, start_all
from tests.integration.tasks_helpers import pair

ANSWER = json.dumps({"node": "beta", "reason": "beta keeps the dataset"})


def test_the_advisor_picks_a_node_the_scheduler_would_not_and_the_decision_is_recorded(
    make_node: Callable[..., NodeProcess],
) -> None:
    # The scheduler prefers the asking node itself when loads tie; the advisor's (mocked) model names beta instead.
    advised = {"advisor_enabled": True, "advisor_model": "openai/gpt-4o-mini", "advisor_mock_response": ANSWER}
    alpha, beta = start_all(make_node("alpha", tasks=advised), make_node("beta"))
    pair(alpha, beta)
    beta.cli("allow", "alpha", "tasks")

    ran = alpha.cli("run", "--auto", "-v", "--", "echo", "hello", timeout=120)

    assert ran.returncode == 0
    assert "beta" in ran.stderr and "advisor" in ran.stderr, ran.stderr
    record = alpha.json("tasks")[0]
    shown = alpha.json("tasks", "show", record["id"])
    assert shown["runner"] == "beta"
    assert shown["decided_by"] == "advisor"
    assert "beta keeps the dataset" in shown["reason"]
