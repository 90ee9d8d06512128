"""The tasks feature: the ``Tasks`` gRPC service, its lifecycle and figures.

Peers call ``Execute`` (needs the ``tasks`` permission), ``Cancel`` (only for tasks they asked) and ``Offer``; the
node's own user calls ``Submit``, ``SubmitBatch``, ``List``, ``Get`` and ``Cancel``. ``List`` also answers the
processes the node's supervisor keeps running for other features (a Dask scheduler or worker), read from memory.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop._proto import noizylab_tasks_pb2_grpc as tpb_grpc
from noizylab_desktop.core.errors import NoizyLabError, TaskError
from noizylab_desktop.core.feature import Figure, require_permission, require_self
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.core.transport import caller_fingerprint
from noizylab_desktop.services.routing.advisor import warm_up
from noizylab_desktop.services.routing.settings import load_advisor_settings
from noizylab_desktop.services.tasks.asker import Asker
from noizylab_desktop.services.tasks.events import TaskFinished, TaskOutput, TaskStarted
from noizylab_desktop.services.tasks.handlers import describe
from noizylab_desktop.services.tasks.runner import Runner
from noizylab_desktop.services.tasks.settings import TasksSettings
from noizylab_desktop.services.tasks.store import TaskStore
from noizylab_desktop.services.tasks.wire import Tail, child_proto

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

SERVICE = "noizylab.grid.v1.Tasks"


DURATION_BUCKETS_S = (0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)


class TasksFeature(tpb_grpc.TasksServicer):
    """Runs tasks for this node's user and for peers it allows."""

    name = "tasks"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.config = parse_section(TasksSettings, ctx.settings.section("tasks"))
        self.store = TaskStore(ctx.paths.state_dir / "tasks.sqlite", self.config.history_limit)
        self.runner = Runner(self.config)
        self.asker = Asker(ctx, self.runner, self.store, self.config)
        self.ended: Counter[str] = Counter()
        self._started: dict[str, float] = {}
        self._durations = [0] * (len(DURATION_BUCKETS_S) + 1)  # per bucket, the last one for +Inf
        self._duration_sum_s = 0.0
        self._warming: asyncio.Future[None] | None = None
        self._unlisten = ctx.bus.listen(self._count)

    # ------------------------------------------------------------------ Feature

    def add_to_server(self, server: grpc.aio.Server) -> None:
        tpb_grpc.add_TasksServicer_to_server(self, server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return ()

    def service_names(self) -> Sequence[str]:
        return (SERVICE,)

    async def start(self) -> None:
        self.asker.advisor = await asyncio.to_thread(load_advisor_settings, self.ctx.settings)
        # LiteLLM takes seconds to import: load it in the background so the node is up at once.
        self._warming = asyncio.ensure_future(warm_up(self.asker.advisor))

    async def stop(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        self._unlisten()
        await self.asker.stop()
        await self.runner.stop()
        self.store.close()

    def figures(self) -> Iterable[Figure]:
        states = Counter(t.state for t in self.runner.tasks.values())
        yield Figure("noizylab_tasks_running", "Tasks running on this node", states["running"])
        yield Figure("noizylab_tasks_queued", "Tasks waiting for a slot on this node", states["waiting"])
        cumulative = [sum(self._durations[: i + 1]) for i in range(len(self._durations))]
        yield Figure(
            "noizylab_tasks_duration_seconds",
            "How long tasks this node took part in ran, from start to end",
            self._duration_sum_s,
            "histogram",
            buckets=[*zip(DURATION_BUCKETS_S, cumulative, strict=False), (float("inf"), cumulative[-1])],
            count=cumulative[-1],
        )
        yield Figure("noizylab_tasks_asked", "Tasks this node asked for that are not done", len(self.asker.asked))
        for state, count in sorted(self.ended.items()):
            yield Figure("noizylab_tasks_ended_total", "Tasks ended, by outcome", count, "counter", {"state": state})

    def _count(self, event: object) -> None:
        if isinstance(event, TaskStarted):
            self._started[event.task_id] = time.monotonic()
        elif isinstance(event, TaskFinished):
            self.ended[event.state] += 1
            began = self._started.pop(event.task_id, None)
            if began is not None:
                took = time.monotonic() - began
                self._durations[bisect.bisect_left(DURATION_BUCKETS_S, took)] += 1
                self._duration_sum_s += took

    # ------------------------------------------------------------------ the node's own user

    async def Submit(  # type: ignore[override]  # writes its stream with context.write, so cancel reaches it
        self, request: tpb.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await require_self(self.ctx, context)
        try:
            await self.asker.submit(request, context.write)
        except NoizyLabError as exc:
            await abort_with(context, exc)

    async def SubmitBatch(self, request: tpb.TaskBatch, context: grpc.aio.ServicerContext) -> tpb.TaskBatchReply:
        await require_self(self.ctx, context)
        reply = tpb.TaskBatchReply()
        try:
            for one in request.tasks:
                accepted = await self.asker.accept(one)
                self.asker.submit_in_background(one, accepted)
                spec, _, _, decision = accepted
                reply.accepted.append(
                    tpb.TaskAccepted(id=spec.id, node_id=decision.node_id, node_name=decision.name,
                                     decided_by=decision.decided_by, reason=decision.reason)
                )  # fmt: skip
        except NoizyLabError as exc:
            await abort_with(context, TaskError(f"task {len(reply.accepted) + 1} of the batch: {exc.message}"))
        return reply

    async def List(self, request: tpb.TaskListRequest, context: grpc.aio.ServicerContext) -> tpb.TaskList:
        await require_self(self.ctx, context)
        children = [child_proto(c) for c in self.ctx.supervisor.children()]
        return tpb.TaskList(tasks=self.store.recent(request.limit or 50), children=children)

    async def Get(self, request: tpb.TaskRef, context: grpc.aio.ServicerContext) -> tpb.TaskRecord:
        await require_self(self.ctx, context)
        try:
            return self.store.find(request.id)
        except NoizyLabError as exc:
            await abort_with(context, exc)

    # ------------------------------------------------------------------ both

    async def Cancel(self, request: tpb.TaskRef, context: grpc.aio.ServicerContext) -> tpb.CancelReply:
        fp = caller_fingerprint(context)
        own = fp == self.ctx.identity.fingerprint
        try:
            if own:
                task_id = self._resolve(request.id)
                if task_id in self.asker.asked:
                    where = await self.asker.cancel(task_id)
                    return tpb.CancelReply(id=task_id, state=f"cancelling on {where}")
                if self.runner.cancel(task_id):
                    return tpb.CancelReply(id=task_id, state="cancelling")
                record = self.store.find(task_id)
                raise TaskError(f"task {record.id} is not running any more (it ended {record.state.replace('_', ' ')})")
            running = self.runner.tasks.get(request.id)
            if running is None or running.asker_fp != fp:
                raise TaskError(f"no task {request.id} of yours runs on {self.ctx.settings.name}")
            self.runner.cancel(request.id)
            return tpb.CancelReply(id=request.id, state="cancelling")
        except NoizyLabError as exc:
            await abort_with(context, exc)

    def _resolve(self, ref: str) -> str:
        live = [i for i in (*self.asker.asked, *self.runner.tasks) if i.startswith(ref)] if ref else []
        if len(set(live)) == 1:
            return live[0]
        return self.store.find(ref).id

    # ------------------------------------------------------------------ peers

    async def Offer(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> tpb.TaskOffer:
        fp = caller_fingerprint(context)
        _, offer = await self.asker.own_offer()
        offer.allows = fp == self.ctx.identity.fingerprint or (
            fp is not None and self.ctx.permissions.allowed(fp, "tasks")
        )
        return offer

    async def Execute(  # type: ignore[override]  # see Submit
        self, request: tpb.TaskSpec, context: grpc.aio.ServicerContext
    ) -> None:
        fp = await require_permission(self.ctx, context, "tasks")
        peer = self.ctx.trust.get(fp)
        asker = peer.name if peer is not None else request.asker_name
        text = describe(request.argv, request.shell, request.task_type, request.task_data)
        tail = Tail(self.config.tail_bytes)
        end = tpb.TaskExit(exit_code=143, state="cancelled", error="the asking node went away")
        self.store.record(
            tpb.TaskRecord(id=request.id, role="ran", asker=asker, runner=self.ctx.settings.name, command=text,
                           decided_by=request.decided_by, reason=request.reason, state="running",
                           created_at=time.time())
        )  # fmt: skip
        self.ctx.bus.publish(
            TaskStarted(request.id, text, self.ctx.settings.name, asker, request.decided_by, request.reason)
        )
        try:
            async with contextlib.aclosing(self.runner.execute(request, fp)) as chunks:
                async for chunk in chunks:
                    if chunk.WhichOneof("body") == "exit":
                        end = chunk.exit
                    else:
                        tail.add(chunk.output.data)
                        text_out = chunk.output.data.decode("utf-8", "replace")
                        self.ctx.bus.publish(TaskOutput(request.id, chunk.output.stream, text_out))
                    await context.write(chunk)
        except NoizyLabError as exc:
            end = tpb.TaskExit(exit_code=1, state="failed", error=exc.message)
            await abort_with(context, exc)
        finally:
            ended = end.ended_at or time.time()
            self.store.finish(request.id, end.state, end.exit_code, ended, tail.bytes(), end.error)
            self.ctx.bus.publish(TaskFinished(request.id, end.state, end.exit_code, end.error))
