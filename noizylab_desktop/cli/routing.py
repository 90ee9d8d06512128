"""``noizylab advisor on|off|show|key|check``: the AI routing advisor's settings, its API key and a live check."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from noizylab_desktop.cli.output import add_json_flag, print_json
from noizylab_desktop.core.config import Paths, Settings, save_settings
from noizylab_desktop.core.errors import ConfigError, TaskError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the advisor commands."""
    parser = sub.add_parser("advisor", help="the optional AI advisor that proposes where tasks run")
    actions = parser.add_subparsers(dest="advisor_command", metavar="ACTION", required=True)
    on = actions.add_parser("on", help="ask an LLM (through LiteLLM) where each task should run")
    on.add_argument(
        "--model", required=True, help="a LiteLLM model name, e.g. ollama_chat/llama3.2 or openai/gpt-4o-mini"
    )
    on.add_argument("--api-base", help="the model server's address, e.g. http://127.0.0.1:11434 for a local Ollama")
    on.add_argument("--timeout", type=float, help="seconds to wait for its answer (default 1.5)")
    on.set_defaults(handler=_on)
    off = actions.add_parser("off", help="route with the deterministic scheduler only")
    off.set_defaults(handler=_off)
    show = actions.add_parser("show", help="the advisor's settings and whether an API key is stored")
    add_json_flag(show)
    show.set_defaults(handler=_show)
    key = actions.add_parser("key", help="keep the advisor's API key in the keychain (asks for it)")
    key.add_argument("--stdin", action="store_true", help="read the key from standard input")
    key.add_argument("--delete", action="store_true", help="forget the stored key")
    key.set_defaults(handler=_key)
    check = actions.add_parser("check", help="ask the configured advisor once and show what it answered")
    check.set_defaults(handler=_check)


def _save(paths: Paths, settings: Settings, changes: dict[str, Any]) -> dict[str, Any]:
    from noizylab_desktop.core.settings_schema import parse_section
    from noizylab_desktop.services.routing import AdvisorSettings

    table = {**settings.section("tasks"), **changes}
    table = {k: v for k, v in table.items() if v is not None}
    parse_section(AdvisorSettings, table)  # refuse to save what the node could not read
    save_settings(paths, settings.with_section("tasks", table))
    return table


def _on(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    changes: dict[str, Any] = {"advisor_enabled": True, "advisor_model": args.model}
    if args.api_base is not None:
        changes["advisor_api_base"] = args.api_base
    if args.timeout is not None:
        changes["advisor_timeout_s"] = args.timeout
    table = _save(paths, settings, changes)
    where = f" at {table['advisor_api_base']}" if table.get("advisor_api_base") else ""
    print(f"the AI advisor is on: {args.model}{where}; the scheduler decides whenever its answer cannot be used")
    return 0


def _off(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    _save(paths, settings, {"advisor_enabled": False})
    print("the AI advisor is off: the deterministic scheduler routes every task")
    return 0


def _key_stored(settings: Settings) -> bool:
    from noizylab_desktop.core.secrets import KeyringStore
    from noizylab_desktop.services.routing import API_KEY_NAME

    return KeyringStore(settings.keychain_id).get(API_KEY_NAME) is not None


def _show(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.core.settings_schema import parse_section
    from noizylab_desktop.services.routing import AdvisorSettings

    advisor = parse_section(AdvisorSettings, settings.section("tasks"))
    row = {
        "enabled": advisor.enabled,
        "model": advisor.model,
        "api_base": advisor.api_base,
        "timeout_s": advisor.timeout_s,
        "api_key_stored": _key_stored(settings),
    }
    if args.json:
        print_json(row)
    elif not advisor.enabled:
        print("the AI advisor is off: turn it on with `noizylab advisor on --model MODEL`")
    else:
        where = f" at {advisor.api_base}" if advisor.api_base else ""
        key = "an API key is in the keychain" if row["api_key_stored"] else "no API key stored"
        print(f"the AI advisor is on: {advisor.model}{where}, {advisor.timeout_s:g} s to answer, {key}")
    return 0


def _key(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.core.secrets import KeyringStore
    from noizylab_desktop.services.routing import API_KEY_NAME

    store = KeyringStore(settings.keychain_id)
    if args.delete:
        store.delete(API_KEY_NAME)
        print("forgot the advisor's API key")
        return 0
    key = sys.stdin.readline().strip() if args.stdin else getpass.getpass("The advisor's API key: ").strip()
    if not key:
        raise ConfigError("no API key given: nothing was stored")
    store.set(API_KEY_NAME, key.encode())
    print("stored the advisor's API key in the keychain")
    return 0


def _check(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    import asyncio

    from noizylab_desktop.services.routing import Candidate, GpuState, Needs, TaskSummary, decide, load_advisor_settings

    advisor = load_advisor_settings(settings)
    if not advisor.model:
        raise ConfigError("no advisor is configured: turn it on with `noizylab advisor on --model MODEL`")
    gib = 2**30
    # A sample grid in which the advisor has a real choice: a busy GPU box and an idle machine without a GPU.
    common: dict[str, Any] = {"online": True, "labels": (), "allows_tasks": True}
    sample = [
        Candidate(
            node_id="SAMPLE-WORKSTATION", name="workstation", is_self=True, os="darwin", cpu_count=24,
            memory_total_bytes=192 * gib, memory_available_bytes=120 * gib, gpus=(), load=0.1, queue_length=0,
            rtt_ms=0.0, **common,
        ),
        Candidate(
            node_id="SAMPLE-GPU-BOX", name="gpu-box", is_self=False, os="windows", cpu_count=16,
            memory_total_bytes=32 * gib, memory_available_bytes=20 * gib,
            gpus=(GpuState("NVIDIA GeForce RTX 4090", 24 * gib, 20 * gib),), load=0.6, queue_length=1, rtt_ms=8.0,
            **common,
        ),
    ]  # fmt: skip
    task = TaskSummary("command", "python render.py --frames 1-240", 600.0)
    decision = asyncio.run(decide(sample, Needs(), task, advisor, require_ai=True))
    if decision.decided_by != "advisor":
        raise TaskError(f"the advisor ({advisor.model}) cannot be used: {decision.advisor_problem}")
    print(decision.reason)
    return 0
