"""The events the tasks feature publishes on the node's bus (the task console listens to them).

Commands and output may hold secrets, so none leaves this node (the default audience); a peer that runs a task here
gets its own output from ``Tasks.Execute``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from noizylab_desktop.core.events import Event


@dataclass(frozen=True)
class TaskStarted(Event):
    kind: ClassVar[str] = "task.started"
    task_id: str
    command: str
    where: str  # the node that runs it
    asker: str
    decided_by: str
    reason: str


@dataclass(frozen=True)
class TaskOutput(Event):
    kind: ClassVar[str] = "task.output"
    task_id: str
    stream: int  # 1 stdout, 2 stderr
    text: str


@dataclass(frozen=True)
class TaskFinished(Event):
    kind: ClassVar[str] = "task.finished"
    task_id: str
    state: str
    exit_code: int
    error: str
