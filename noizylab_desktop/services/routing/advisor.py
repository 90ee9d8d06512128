"""The optional AI advisor: shows an LLM (through LiteLLM) the eligible nodes and the task, and reads its pick.

The advisor only proposes. ``Advice`` says which node it named and why, or why its answer cannot be used; the
caller (``decide``) falls back to the deterministic choice in every case but a valid pick of an eligible node.
LiteLLM is imported on first use only, in a worker thread, and never fetches its model price list from the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from noizylab_desktop.services.routing.model import Candidate, Needs, TaskSummary
from noizylab_desktop.services.routing.settings import AdvisorSettings

logger = logging.getLogger(__name__)

GIB = 2**30
MAX_TASK_TEXT = 300  # characters of the command shown to the advisor
MAX_REASON = 200  # characters of the advisor's reason kept in the decision
SYSTEM_PROMPT = (
    "You route one task to one machine of a person's private compute grid. You are given the task and the "
    "machines that can run it (all eligible; lower load, queue and rtt_ms are better; is_self means the asking "
    "machine). Answer with JSON only, no prose: "
    '{"node": "<the id or name of one listed machine>", "reason": "<one short sentence>"}'
)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_import_lock = threading.Lock()
_loaded: ModuleType | None = None


@dataclass(frozen=True)
class Advice:
    """What the advisor said: the node it picked (``node_id``) or, when unusable, ``problem``."""

    node_id: str = ""
    reason: str = ""
    problem: str = ""
    elapsed_s: float = 0.0


def _quiet_litellm_warnings() -> None:
    """Ignore the pydantic notes LiteLLM's lazily built types print on first use; nothing a user can act on."""
    warnings.filterwarnings("ignore", message=r"Items? .* on TypedDict class", category=UserWarning)


def _litellm() -> ModuleType:
    """LiteLLM, imported once and warmed up; its price list is read from the package, not the internet."""
    global _loaded
    with _import_lock:
        if _loaded is not None:
            return _loaded
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        with warnings.catch_warnings():
            # Its dependencies warn about their own deprecations at import; nothing for our user to act on.
            warnings.simplefilter("ignore")
            import litellm

            litellm.telemetry = False
            litellm.suppress_debug_info = True
            # The first call loads dozens more modules (a third of a second, far more on a busy machine): pay that
            # here, outside the advisor's time budget, with a call that never leaves the process.
            litellm.completion(
                model="openai/warm-up", messages=[{"role": "user", "content": "-"}], mock_response="{}", api_key="-"
            )
        _loaded = litellm
        return litellm


async def warm_up(settings: AdvisorSettings | None) -> None:
    """Import LiteLLM in the background when the advisor is on, so the first routed task does not wait for it."""
    if settings is not None and settings.enabled and settings.usable:
        try:
            await asyncio.to_thread(_litellm)
        except ImportError as exc:
            logger.warning("the routing advisor is on but LiteLLM cannot be imported: %s", exc)


def prompt(eligible: Sequence[Candidate], needs: Needs, summary: TaskSummary) -> str:
    """The compact JSON the advisor is shown: the task, its needs and each eligible node."""
    text = summary.text if len(summary.text) <= MAX_TASK_TEXT else summary.text[: MAX_TASK_TEXT - 1] + "…"
    task: dict[str, Any] = {"kind": summary.kind, "text": text, "timeout_s": summary.timeout_s}
    wanted = {
        "gpu": needs.gpu,
        "min_free_vram_gib": round(needs.min_free_vram_bytes / GIB, 1),
        "min_memory_gib": round(needs.min_memory_bytes / GIB, 1),
        "os": needs.os,
        "labels": list(needs.labels),
    }
    nodes = [
        {
            "id": c.node_id,
            "name": c.name,
            "is_self": c.is_self,
            "os": c.os,
            "cpus": c.cpu_count,
            "free_memory_gib": round(c.memory_available_bytes / GIB, 1),
            "gpus": [{"name": g.name, "free_vram_gib": round(g.memory_free_bytes / GIB, 1)} for g in c.gpus],
            "labels": list(c.labels),
            "load": round(c.load, 2),
            "queue": c.queue_length,
            "rtt_ms": round(c.rtt_ms, 1),
        }
        for c in eligible
    ]
    payload = {"task": task, "needs": {k: v for k, v in wanted.items() if v}, "eligible": nodes}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def read_answer(content: str, eligible: Sequence[Candidate]) -> Advice:
    """The advisor's pick from its reply text, or the reason it cannot be used."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        answer = json.loads(text)
    except ValueError:
        return Advice(problem=f"its reply was not JSON ({_one_line(content, 60)!r})")
    if not isinstance(answer, dict) or not isinstance(answer.get("node"), str) or not answer["node"].strip():
        return Advice(problem=f"its JSON named no node ({_one_line(text, 60)!r})")
    named = answer["node"].strip()
    by_id = {c.node_id: c for c in eligible}
    by_name = {c.name.casefold(): c for c in eligible}
    picked = by_id.get(named) or by_name.get(named.casefold())
    if picked is None:
        return Advice(problem=f"it named {_one_line(named, 60)!r}, which is not an eligible node")
    reason = answer.get("reason")
    return Advice(node_id=picked.node_id, reason=_one_line(reason if isinstance(reason, str) else "", MAX_REASON))


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


async def ask(settings: AdvisorSettings, eligible: Sequence[Candidate], needs: Needs, summary: TaskSummary) -> Advice:
    """Ask the advisor to pick one of ``eligible``; never raises, and gives up after ``settings.timeout_s``."""
    try:
        litellm = await asyncio.to_thread(_litellm)
    except ImportError as exc:
        return Advice(problem=f"LiteLLM is not installed ({exc})")
    kwargs = _request(settings, SYSTEM_PROMPT, prompt(eligible, needs, summary), settings.timeout_s)
    # The clock starts after the import: the budget is for the advisor's answer, not for loading LiteLLM.
    started = time.monotonic()
    try:
        reply = await asyncio.wait_for(litellm.acompletion(**kwargs), timeout=settings.timeout_s)
    except TimeoutError:
        return Advice(
            problem=f"it did not answer within {settings.timeout_s:g} s", elapsed_s=time.monotonic() - started
        )
    except Exception as exc:  # LiteLLM maps every provider's failure to its own exception classes
        logger.info("routing advisor %s failed: %s", settings.model, exc)
        return Advice(problem=f"it failed: {_describe(exc)}", elapsed_s=time.monotonic() - started)
    elapsed = time.monotonic() - started
    if elapsed > settings.timeout_s:
        return Advice(problem=f"it took {elapsed:.2f} s, over the {settings.timeout_s:g} s limit", elapsed_s=elapsed)
    try:
        content = reply.choices[0].message.content or ""
    except (AttributeError, IndexError, TypeError):
        return Advice(problem="its reply had no message", elapsed_s=elapsed)
    advice = read_answer(str(content), eligible)
    return Advice(advice.node_id, advice.reason, advice.problem, elapsed)


def _request(settings: AdvisorSettings, system: str, user: str, timeout_s: float) -> dict[str, Any]:
    """The ``litellm.acompletion`` arguments for one question to the configured model (no retries, no sampling)."""
    kwargs: dict[str, Any] = {
        "model": settings.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "timeout": timeout_s,
        "max_retries": 0,
        "num_retries": 0,
        "temperature": 0,
    }
    if settings.api_base:
        kwargs["api_base"] = settings.api_base
    if settings.api_key:
        kwargs["api_key"] = settings.api_key
    elif settings.api_base and settings.model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
        # A local OpenAI-compatible server (llama.cpp, vLLM, LM Studio) needs no key, but the client insists on one.
        kwargs["api_key"] = "no-key"
    if settings.mock_response is not None:
        kwargs["mock_response"] = settings.mock_response
    _quiet_litellm_warnings()
    return kwargs


_PREFIX = re.compile(r"^(?:litellm\.)?\w+(?:Error|Exception)\s*[:-]\s*")


def _describe(exc: BaseException) -> str:
    """A provider error in one short line: its class and status, without LiteLLM's repeated prefixes and help text."""
    status = getattr(exc, "status_code", None)
    head = str(exc).strip().split("\n", 1)[0]
    while (stripped := _PREFIX.sub("", head, count=1)) != head:
        head = stripped
    text = f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}: {head}"
    return _one_line(text, 160)


@dataclass(frozen=True)
class Completion:
    """The advisor's free-text answer (``text``), or why there is none (``problem``)."""

    text: str = ""
    problem: str = ""


async def complete(settings: AdvisorSettings, system: str, user: str, timeout_s: float) -> Completion:
    """Ask the configured advisor for free text (folder sync's merge proposals); never raises."""
    try:
        litellm = await asyncio.to_thread(_litellm)
    except ImportError as exc:
        return Completion(problem=f"LiteLLM is not installed ({exc})")
    kwargs = _request(settings, system, user, timeout_s)
    try:
        reply = await asyncio.wait_for(litellm.acompletion(**kwargs), timeout=timeout_s)
    except TimeoutError:
        return Completion(problem=f"it did not answer within {timeout_s:g} s")
    except Exception as exc:  # LiteLLM maps every provider's failure to its own exception classes
        logger.info("advisor %s failed: %s", settings.model, exc)
        return Completion(problem=f"it failed: {_describe(exc)}")
    try:
        content = reply.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return Completion(problem="its reply had no message")
    if not isinstance(content, str) or not content.strip():
        return Completion(problem="its reply was empty")
    return Completion(text=content)
