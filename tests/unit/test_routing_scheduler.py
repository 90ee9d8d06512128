"""The hard filter and the deterministic score: who may run a task, and who is chosen."""

from __future__ import annotations

import asyncio

import pytest

from noizylab_desktop.core.errors import TaskError
from noizylab_desktop.services.routing import Needs, TaskSummary, choose, decide, rank, rejection

from .routing_candidates import GIB, gpu, node

TASK = TaskSummary("command", "echo hi", 60.0)


def test_an_offline_node_is_never_chosen_even_when_idle() -> None:
    busy = node("busy", load=3.0)
    idle_offline = node("idle", load=0.0, online=False)
    assert rejection(idle_offline, Needs()) == "offline"
    assert choose([idle_offline, busy], Needs()).name == "busy"


def test_a_node_that_does_not_allow_tasks_is_filtered_out() -> None:
    refusing = node("locked", allows_tasks=False, load=0.0)
    assert "does not allow tasks" in rejection(refusing, Needs())
    assert choose([refusing, node("open", load=2.0)], Needs()).name == "open"


def test_the_os_need_filters_by_operating_system() -> None:
    mac = node("mac", os="darwin")
    win = node("omen", os="windows", load=5.0)
    assert rejection(mac, Needs(os="windows")) == "runs darwin, not windows"
    assert choose([mac, win], Needs(os="windows")).name == "omen"


def test_a_gpu_task_goes_only_to_a_node_with_an_nvidia_gpu() -> None:
    mac = node("mac", load=0.0, is_self=True)
    omen = node("omen", gpus=(gpu(20),), load=1.5, rtt_ms=20.0)
    assert rejection(mac, Needs(gpu=True)) == "has no NVIDIA GPU"
    decision = choose([mac, omen], Needs(gpu=True))
    assert (decision.name, decision.eligible) == ("omen", ("omen",))


def test_free_vram_is_checked_on_the_emptiest_gpu() -> None:
    small = node("small", gpus=(gpu(3), gpu(5)))
    big = node("big", gpus=(gpu(2), gpu(22)), load=4.0)
    needs = Needs(gpu=True, min_free_vram_bytes=8 * GIB)
    assert rejection(small, needs) == "has less than 8.0 GiB of free GPU memory"
    assert rejection(big, needs) == ""
    assert choose([small, big], needs).name == "big"


def test_a_vram_need_implies_a_gpu() -> None:
    assert rejection(node("cpu-only"), Needs(min_free_vram_bytes=GIB)) == "has no NVIDIA GPU"


def test_free_memory_and_labels_are_required() -> None:
    tight = node("tight", memory_available_bytes=2 * GIB)
    assert rejection(tight, Needs(min_memory_bytes=4 * GIB)) == "has less than 4.0 GiB of free memory"
    plain = node("plain")
    studio = node("studio", labels=("audio", "studio"))
    assert rejection(plain, Needs(labels=("audio", "fast"))) == "lacks the labels audio, fast"
    assert rejection(studio, Needs(labels=("audio",))) == ""


def test_no_eligible_node_gives_one_line_naming_each_refusal() -> None:
    with pytest.raises(TaskError) as caught:
        choose([node("a", online=False), node("b", os="darwin")], Needs(os="windows"))
    message = caught.value.message
    assert "\n" not in message
    assert message == "no node can run this task (a: offline; b: runs darwin, not windows)"
    with pytest.raises(TaskError, match="no nodes known"):
        choose([], Needs())


def test_the_score_weighs_load_queue_and_distance() -> None:
    loaded = node("loaded", load=1.0)  # 1.0 + 0.01
    queued = node("queued", load=0.1, queue_length=2)  # 0.1 + 1.0 + 0.01
    far = node("far", load=0.1, rtt_ms=150.0)  # 0.1 + 1.5
    near = node("near", load=0.5, queue_length=1, rtt_ms=5.0)  # 0.5 + 0.5 + 0.05
    assert [c.name for c in rank([far, queued, loaded, near], Needs())] == ["loaded", "near", "queued", "far"]
    decision = choose([far, queued, loaded, near], Needs())
    assert decision.decided_by == "scheduler"
    assert decision.reason == "lowest load score 1.01 (load 1.00, 0 queued, 1.0 ms away) of 4 eligible"


def test_ties_go_to_this_node_then_free_vram_for_gpu_tasks_then_name_then_id() -> None:
    me = node("zeta", is_self=True, rtt_ms=0.0, load=0.01)
    other = node("alpha", rtt_ms=1.0, load=0.0)  # the same score as ``me``
    assert choose([other, me], Needs()).name == "zeta"
    roomy = node("b-roomy", gpus=(gpu(20),))
    cramped = node("a-cramped", gpus=(gpu(4),))
    assert choose([cramped, roomy], Needs(gpu=True)).name == "b-roomy"
    assert choose([cramped, roomy], Needs()).name == "a-cramped"
    twin_a = node("twin", node_id="ID-2")
    twin_b = node("twin", node_id="ID-1")
    assert choose([twin_a, twin_b], Needs()).node_id == "ID-1"
    assert choose([twin_b, twin_a], Needs()).node_id == "ID-1"


def test_decide_without_an_advisor_is_the_deterministic_choice() -> None:
    grid = [node("a", load=0.9), node("b", load=0.1)]
    decision = asyncio.run(decide(grid, Needs(), TASK, None))
    assert decision == choose(grid, Needs())
    assert not decision.advisor_asked


def test_requiring_ai_without_a_model_falls_back_and_says_why() -> None:
    grid = [node("a", load=0.9), node("b", load=0.1)]
    decision = asyncio.run(decide(grid, Needs(), TASK, None, require_ai=True))
    assert (decision.name, decision.decided_by) == ("b", "scheduler")
    assert decision.reason.endswith(
        "the advisor was not asked: no advisor is configured (set advisor_model in the [tasks] table)"
    )


def test_decide_refuses_when_nothing_is_eligible_even_with_the_advisor_on() -> None:
    with pytest.raises(TaskError, match="has no NVIDIA GPU"):
        asyncio.run(decide([node("mac")], Needs(gpu=True), TASK, None, require_ai=True))
