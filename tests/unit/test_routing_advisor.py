"""The AI advisor against an OpenAI-compatible server on loopback, and LiteLLM's ``mock_response``.

Its pick is used only when it names an eligible node, in JSON, in time; otherwise the deterministic choice stands
and the decision says why.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from noizylab_desktop.services.routing import AdvisorSettings, Decision, Needs, TaskSummary, choose, decide

from .routing_candidates import GIB, gpu, node
from .routing_llm_server import Script, llm_server

TASK = TaskSummary("gpu_inference", "python infer.py --model llama", 120.0)
MAC = node("mac", is_self=True, rtt_ms=0.0, load=0.1, os="darwin")
OMEN = node("omen", os="windows", gpus=(gpu(20),), load=0.9, rtt_ms=12.0)
BOX = node("box", gpus=(gpu(10, 12, "NVIDIA RTX A2000"),), load=0.3, rtt_ms=3.0)
LAPTOP = node("laptop", online=False)
GRID = [MAC, OMEN, BOX, LAPTOP]


@pytest.fixture()
def server() -> Iterator[tuple[str, Script]]:
    with llm_server() as running:
        yield running


def settings(base: str, **changes: object) -> AdvisorSettings:
    values: dict[str, object] = {
        "enabled": True,
        "model": "openai/grid-advisor",
        "api_base": base,
        "api_key": "sk-test-key",
        # Generous, so a busy test machine never turns a good answer into a timeout; the timeout test sets its own.
        "timeout_s": 10.0,
    }
    values.update(changes)
    return AdvisorSettings(**values)  # type: ignore[arg-type]


def run(grid: list, needs: Needs, advisor: AdvisorSettings | None, require_ai: bool = False) -> Decision:  # type: ignore[type-arg]
    return asyncio.run(decide(grid, needs, TASK, advisor, require_ai=require_ai))


def test_a_good_answer_routes_to_the_advisors_pick(server: tuple[str, Script]) -> None:
    base, script = server
    script.content = json.dumps({"node": "omen", "reason": "the most free VRAM for a large model"})
    decision = run(GRID, Needs(gpu=True), settings(base))
    assert choose(GRID, Needs(gpu=True)).name == "box"  # the scheduler alone would pick box
    assert (decision.name, decision.node_id, decision.decided_by) == ("omen", OMEN.node_id, "advisor")
    assert decision.reason.startswith("AI advisor (openai/grid-advisor, ")
    assert decision.reason.endswith("chose omen: the most free VRAM for a large model")
    assert decision.eligible == ("omen", "box")
    assert decision.advisor_asked and not decision.advisor_problem


def test_the_advisor_is_shown_only_the_eligible_nodes_and_the_task_as_compact_json(server: tuple[str, Script]) -> None:
    base, script = server
    script.content = json.dumps({"node": BOX.node_id, "reason": "close"})
    decision = run(GRID, Needs(gpu=True, min_free_vram_bytes=8 * GIB), settings(base))
    assert decision.name == "box"  # named by its ID
    request = script.requests[0]
    assert request["model"] == "grid-advisor"
    assert script.headers[0]["authorization"] == "Bearer sk-test-key"
    shown_text = request["messages"][1]["content"]
    assert shown_text == json.dumps(json.loads(shown_text), separators=(",", ":"))  # compact: no padding
    shown = json.loads(shown_text)
    assert shown["task"] == {"kind": "gpu_inference", "text": "python infer.py --model llama", "timeout_s": 120.0}
    assert shown["needs"] == {"gpu": True, "min_free_vram_gib": 8.0}
    assert [n["name"] for n in shown["eligible"]] == ["omen", "box"]
    assert shown["eligible"][1] == {
        "id": "ID-BOX",
        "name": "box",
        "is_self": False,
        "os": "linux",
        "cpus": 8,
        "free_memory_gib": 16.0,
        "gpus": [{"name": "NVIDIA RTX A2000", "free_vram_gib": 10.0}],
        "labels": [],
        "load": 0.3,
        "queue": 0,
        "rtt_ms": 3.0,
    }


def test_an_answer_naming_an_ineligible_node_falls_back(server: tuple[str, Script]) -> None:
    base, script = server
    script.content = json.dumps({"node": "mac", "reason": "it is idle"})  # online but has no GPU
    decision = run(GRID, Needs(gpu=True), settings(base))
    assert (decision.name, decision.decided_by) == ("box", "scheduler")
    assert decision.advisor_problem == "it named 'mac', which is not an eligible node"
    assert decision.reason.endswith(
        "; the advisor's answer was not used: it named 'mac', which is not an eligible node"
    )


def test_an_answer_naming_an_offline_node_falls_back(server: tuple[str, Script]) -> None:
    base, script = server
    script.content = json.dumps({"node": "laptop"})
    decision = run(GRID, Needs(), settings(base))
    assert (decision.name, decision.decided_by) == ("mac", "scheduler")
    assert "it named 'laptop', which is not an eligible node" in decision.reason


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "I would pick omen because it has a GPU.",
            "its reply was not JSON ('I would pick omen because it has a GPU.')",
        ),
        ('{"machine": "omen"}', """its JSON named no node ('{"machine": "omen"}')"""),
        ('["omen"]', """its JSON named no node ('["omen"]')"""),
        ("", "its reply was not JSON ('')"),
    ],
)
def test_garbage_falls_back(server: tuple[str, Script], content: str, problem: str) -> None:
    base, script = server
    script.content = content
    decision = run(GRID, Needs(gpu=True), settings(base))
    assert (decision.name, decision.decided_by, decision.advisor_problem) == ("box", "scheduler", problem)


def test_a_fenced_json_answer_is_accepted(server: tuple[str, Script]) -> None:
    base, script = server
    script.content = '```json\n{"node": "Omen", "reason": "GPU"}\n```'
    assert run(GRID, Needs(gpu=True), settings(base)).decided_by == "advisor"


def test_a_reply_slower_than_the_timeout_falls_back_in_time(server: tuple[str, Script]) -> None:
    base, script = server
    script.stall = True
    script.content = json.dumps({"node": "omen"})
    # The budget covers the answer, not LiteLLM's one-time import: import it first so only the wait is timed.
    run(GRID, Needs(gpu=True), settings(base, mock_response="{}"))
    started = time.monotonic()
    decision = run(GRID, Needs(gpu=True), settings(base, timeout_s=0.5))
    waited = time.monotonic() - started
    assert (decision.name, decision.decided_by) == ("box", "scheduler")
    assert decision.advisor_problem == "it did not answer within 0.5 s"
    assert len(script.requests) == 1
    assert 0.5 <= waited < 5, waited  # gave up at the limit; the stalled server would hold it for 30 s


def test_an_http_error_falls_back_with_its_status(server: tuple[str, Script]) -> None:
    base, script = server
    script.status = 503
    decision = run(GRID, Needs(gpu=True), settings(base))
    assert (decision.name, decision.decided_by) == ("box", "scheduler")
    assert decision.advisor_problem.startswith("it failed: ")
    assert "503" in decision.advisor_problem
    assert "\n" not in decision.reason


def test_an_unreachable_advisor_falls_back() -> None:
    with llm_server() as (base, _):
        pass  # the port is closed again: nothing listens there now
    decision = run(GRID, Needs(gpu=True), settings(base))
    assert (decision.name, decision.decided_by) == ("box", "scheduler")
    assert decision.advisor_problem.startswith("it failed: ")


def test_the_advisor_is_not_asked_when_it_is_off_unless_ai_is_required(server: tuple[str, Script]) -> None:
    base, script = server
    script.content = json.dumps({"node": "omen"})
    off = settings(base, enabled=False)
    assert run(GRID, Needs(gpu=True), off).decided_by == "scheduler"
    assert script.requests == []
    assert run(GRID, Needs(gpu=True), off, require_ai=True).decided_by == "advisor"
    assert len(script.requests) == 1


def test_litellm_mock_response_is_used_without_any_server() -> None:
    advisor = AdvisorSettings(
        enabled=True, model="openai/grid-advisor", timeout_s=10, mock_response='{"node": "omen", "reason": "m"}'
    )
    decision = run(GRID, Needs(gpu=True), advisor)
    assert (decision.name, decision.decided_by) == ("omen", "advisor")
    wrong = AdvisorSettings(enabled=True, model="openai/grid-advisor", timeout_s=10, mock_response='{"node": "mac"}')
    decision = run(GRID, Needs(gpu=True), wrong)
    assert (decision.name, decision.decided_by) == ("box", "scheduler")


def test_gpu_needs_hold_whatever_the_advisor_says() -> None:
    for named in ("mac", "laptop", "omen", "box"):
        advisor = AdvisorSettings(
            enabled=True, model="openai/m", timeout_s=10, mock_response=json.dumps({"node": named})
        )
        decision = run(GRID, Needs(gpu=True, min_free_vram_bytes=12 * GIB), advisor)
        assert decision.name == "omen"  # the only node with 12 GiB free
        assert decision.eligible == ("omen",)


def test_a_local_openai_compatible_server_needs_no_key(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, script = server
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    script.content = json.dumps({"node": "omen"})
    assert run(GRID, Needs(gpu=True), settings(base, api_key=None)).decided_by == "advisor"
    assert script.headers[0]["authorization"] == "Bearer no-key"


def test_a_provider_error_is_one_short_line(server: tuple[str, Script]) -> None:
    base, script = server
    script.status = 401
    decision = run(GRID, Needs(gpu=True), settings(base))
    assert decision.advisor_problem.startswith("it failed: AuthenticationError (HTTP 401): ")
    assert "litellm." not in decision.advisor_problem
    assert len(decision.advisor_problem) < 200
