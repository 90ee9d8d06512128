"""Typed jobs: a registry of handlers that turn ``task_type`` + JSON data into a command and its needs.

Every job runs as a child process, so cancel, timeouts and output streaming work the same for all of them. The shell
runner is built in; other handlers come from the ``noizylab.tasks`` entry point group, each naming a class (or
factory) whose instances follow ``TaskHandler``.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

from noizylab_desktop.core.errors import TaskError
from noizylab_desktop.services.routing.model import Needs

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "noizylab.tasks"
SHELL = "shell"


class TaskHandler(Protocol):
    """One kind of job: what it needs of a machine and the command that does it."""

    name: str

    def needs(self, data: Mapping[str, Any]) -> Needs:
        """What a machine must offer to run this job with ``data``."""

    def command(self, data: Mapping[str, Any]) -> Sequence[str]:
        """The argv that does the job (run in its own process tree); raise ``TaskError`` for bad data."""


class ShellHandler:
    """The built-in runner: ``{"argv": [...]}`` or ``{"shell": "line"}``."""

    name = SHELL

    def needs(self, data: Mapping[str, Any]) -> Needs:
        return Needs()

    def command(self, data: Mapping[str, Any]) -> Sequence[str]:
        argv = data.get("argv")
        line = data.get("shell")
        if argv:
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise TaskError("task_data.argv must be a list of strings")
            return list(argv)
        if isinstance(line, str) and line.strip():
            return ["cmd", "/c", line] if sys.platform == "win32" else ["/bin/sh", "-c", line]
        raise TaskError("a shell task needs task_data with `argv` (a list) or `shell` (a command line)")


@cache
def handlers() -> dict[str, TaskHandler]:
    """Every registered handler by name: the shell runner plus the entry points that load."""
    found: dict[str, TaskHandler] = {SHELL: ShellHandler()}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            handler = point.load()()
        except Exception:
            logger.exception("task handler %s (%s) did not load", point.name, point.value)
            continue
        found[point.name] = handler
    return found


def handler_for(task_type: str) -> TaskHandler:
    """The handler for ``task_type`` ("" means the shell runner), or a one-line error listing those there are."""
    found = handlers()
    handler = found.get(task_type or SHELL)
    if handler is None:
        raise TaskError(f"unknown task type {task_type!r}: this node knows {', '.join(sorted(found))}")
    return handler


def parse_data(text: str) -> dict[str, Any]:
    """A job's JSON input as a mapping, or a one-line error."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError(f"task_data is not JSON: {exc.msg} at character {exc.pos}") from exc
    if not isinstance(data, dict):
        raise TaskError("task_data must be a JSON object")
    return data


def describe(argv: Sequence[str], shell: str, task_type: str, task_data: str) -> str:
    """The task as one line for lists and history."""
    if task_type and task_type != SHELL:
        return f"{task_type} {task_data}".strip()
    return shell or shlex.join(argv)
