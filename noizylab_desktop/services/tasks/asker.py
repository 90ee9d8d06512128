"""The asking side: route a task, run it here or on a peer, relay its output, and notice a peer that goes away.

``_route`` is the one place a routing decision is made: ``routing.decide`` filters and scores the nodes and, when the
advisor is on (or the task asks for it), lets the AI advisor pick among the eligible ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import psutil

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop._proto import noizylab_tasks_pb2_grpc as tpb_grpc
from noizylab_desktop.core import capabilities as caps
from noizylab_desktop.core.errors import NoizyLabError, PeerError, TaskError
from noizylab_desktop.core.events import PeerOffline
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.services.routing import Candidate, Decision, GpuState, Needs, TaskSummary, decide
from noizylab_desktop.services.routing.settings import AdvisorSettings
from noizylab_desktop.services.tasks.events import TaskFinished, TaskOutput, TaskStarted
from noizylab_desktop.services.tasks.handlers import describe, handler_for, parse_data
from noizylab_desktop.services.tasks.runner import Runner, task_argv
from noizylab_desktop.services.tasks.settings import TasksSettings
from noizylab_desktop.services.tasks.store import TaskStore
from noizylab_desktop.services.tasks.wire import Tail, merge, needs_from, rpc_error

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

LOST_EXIT = 255  # as ssh reports a lost connection
Emit = Callable[[tpb.TaskChunk], Awaitable[None]]


@dataclass
class Asked:
    """A task this node asked for and is following."""

    spec: tpb.TaskSpec
    runner_id: str
    runner_name: str
    call: grpc.aio.UnaryStreamCall | None = None
    cancelled: bool = False


async def _discard(chunk: tpb.TaskChunk) -> None:
    return None


class Asker:
    """Tasks this node's own user asked for: routed, followed to the end, and kept in history."""

    def __init__(self, ctx: NodeContext, runner: Runner, store: TaskStore, config: TasksSettings) -> None:
        self.ctx = ctx
        self.runner = runner
        self.store = store
        self.config = config
        self.asked: dict[str, Asked] = {}
        self.advisor: AdvisorSettings | None = None  # loaded (with its key from the keychain) when the feature starts
        self._background: set[asyncio.Future[tpb.TaskExit]] = set()

    # ------------------------------------------------------------------ routing

    async def own_offer(self) -> tuple[Candidate, tpb.TaskOffer]:
        """This node as a candidate, with fresh load, memory and free GPU memory."""
        found = await asyncio.to_thread(caps.gpus)
        info = self.ctx.info().capabilities
        available = psutil.virtual_memory().available
        offer = tpb.TaskOffer(
            allows=True,
            load=self.ctx.load(),
            queue_length=self.runner.queue_length,
            memory_available_bytes=available,
            gpus=[
                pb.Gpu(
                    index=g.index,
                    name=g.name,
                    memory_total_bytes=g.memory_total_bytes,
                    memory_free_bytes=g.memory_free_bytes,
                )
                for g in found
            ],  # fmt: skip
            capabilities=info,
        )
        return _candidate(self.ctx.identity.node_id, self.ctx.settings.name, True, True, offer, 0.0), offer

    async def _peer_candidate(self, state: PeerState) -> Candidate:
        empty = tpb.TaskOffer(capabilities=state.capabilities or pb.Capabilities())
        if not state.online:
            return _candidate(state.peer.node_id, state.peer.name, False, False, empty, state.rtt_ms)
        stub = tpb_grpc.TasksStub(self.ctx.registry.channel(state))
        try:
            offer = await stub.Offer(pb.Empty(), timeout=self.config.offer_timeout_s)
        except grpc.aio.AioRpcError as exc:
            logger.info("%s made no offer: %s", state.peer.name, exc.details())
            return _candidate(state.peer.node_id, state.peer.name, False, False, empty, state.rtt_ms)
        return _candidate(state.peer.node_id, state.peer.name, True, False, offer, state.rtt_ms)

    async def candidates(self, exclude: frozenset[str] = frozenset()) -> list[Candidate]:
        """This node and every paired peer, each with a fresh offer (offline or silent peers are marked so)."""
        peers = [s for s in self.ctx.registry.peers() if s.peer.node_id not in exclude]
        (own, _), others = await asyncio.gather(
            self.own_offer(), asyncio.gather(*(self._peer_candidate(s) for s in peers))
        )
        return ([own] if own.node_id not in exclude else []) + list(others)

    async def _route(
        self, request: tpb.SubmitRequest, needs: Needs, summary: TaskSummary, exclude: frozenset[str]
    ) -> Decision:
        """Where the task runs: the user's choice, else the scheduler, advised by the AI when it is on."""
        if request.on and not exclude:
            return self._user_choice(request.on)
        candidates = await self.candidates(exclude)
        return await decide(candidates, needs, summary, self.advisor, require_ai=request.require_ai_decision)

    def _user_choice(self, ref: str) -> Decision:
        own, own_id = self.ctx.settings.name, self.ctx.identity.node_id
        # This node's name is a peer's too when they were paired before names were made unique, or after a rename:
        # a name that means two machines runs on neither.
        namesakes = [p.node_id for p in self.ctx.trust.peers() if p.name == ref] if ref == own else []
        if namesakes:
            raise PeerError(
                f"{ref!r} names this node ({own_id}) and the peer {', '.join(namesakes)}: name one by its ID, "
                "or this node as `self`"
            )
        if ref in ("self", "local", own, own_id):
            return Decision(own_id, own, "user", "asked for this node", (own,))
        peer = self.ctx.trust.find(ref)
        state = next((s for s in self.ctx.registry.peers() if s.peer.fingerprint == peer.fingerprint), None)
        if state is None or not state.online:
            raise TaskError(f"{peer.name} is offline: see `noizylab peers`, or use --auto")
        return Decision(peer.node_id, peer.name, "user", f"asked for {peer.name}", (peer.name,))

    # ------------------------------------------------------------------ asking

    async def accept(self, request: tpb.SubmitRequest) -> tuple[tpb.TaskSpec, Needs, TaskSummary, Decision]:
        """Check the task, route it and record it; raises a one-line error when it cannot run anywhere."""
        spec = tpb.TaskSpec()
        spec.CopyFrom(request.spec)
        spec.id = uuid.uuid4().hex[:16]
        spec.asker_name = self.ctx.settings.name
        if spec.timeout_s < 0:
            raise TaskError("--timeout must be more than 0 seconds")
        own_needs = handler_for(spec.task_type).needs(parse_data(spec.task_data))
        task_argv(spec)  # the same checks the runner makes, before anything is routed
        needs = merge(own_needs, needs_from(spec.needs))
        text = describe(spec.argv, spec.shell, spec.task_type, spec.task_data)
        summary = TaskSummary(spec.task_type or "command", text[:200], spec.timeout_s)
        decision = await self._route(request, needs, summary, frozenset())
        self._record(spec, decision, text)
        return spec, needs, summary, decision

    def _record(self, spec: tpb.TaskSpec, decision: Decision, text: str) -> None:
        local = decision.node_id == self.ctx.identity.node_id
        self.store.record(
            tpb.TaskRecord(
                id=spec.id, role="local" if local else "asked", asker=spec.asker_name, runner=decision.name,
                command=text, decided_by=decision.decided_by, reason=decision.reason, state="running",
                created_at=time.time(),
            )
        )  # fmt: skip
        spec.decided_by, spec.reason = decision.decided_by, decision.reason
        self.asked[spec.id] = Asked(spec, decision.node_id, decision.name)
        self.ctx.bus.publish(
            TaskStarted(spec.id, text, decision.name, spec.asker_name, decision.decided_by, decision.reason)
        )

    async def submit(self, request: tpb.SubmitRequest, emit: Emit = _discard) -> tpb.TaskExit:
        """Run a task where it fits, sending its chunks to ``emit``; the exit is the last chunk."""
        spec, needs, summary, decision = await self.accept(request)
        return await self.follow(request, spec, needs, summary, decision, emit)

    def submit_in_background(self, request: tpb.SubmitRequest, accepted: tuple[tpb.TaskSpec, Needs, TaskSummary,
                             Decision]) -> None:  # fmt: skip
        """Follow an accepted task without anyone watching (batches, the tray)."""
        future = asyncio.ensure_future(self.follow(request, *accepted, _discard))
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def follow(
        self,
        request: tpb.SubmitRequest,
        spec: tpb.TaskSpec,
        needs: Needs,
        summary: TaskSummary,
        decision: Decision,
        emit: Emit,
    ) -> tpb.TaskExit:
        """Relay the task to its end; an idempotent task whose node goes away is re-routed."""
        tail = Tail(self.config.tail_bytes)
        tried: set[str] = set()
        end = tpb.TaskExit()
        try:
            await emit(tpb.TaskChunk(accepted=_accepted(spec, decision)))
            while True:
                tried.add(decision.node_id)
                result = await self._run_on(spec, decision, emit, tail)
                if result is not None:
                    end = result
                    break
                lost = f"{decision.name} went away mid-task"
                if self.asked[spec.id].cancelled:
                    # The runner could not be told, so its stream was closed: the task ends there when it notices.
                    end = tpb.TaskExit(exit_code=143, state="cancelled", error="cancelled", ended_at=time.time())
                    break
                if not spec.idempotent:
                    end = tpb.TaskExit(exit_code=LOST_EXIT, state="lost", error=f"{lost}; its outcome is unknown",
                                       ended_at=time.time())  # fmt: skip
                    break
                try:
                    decision = await self._route(request, needs, summary, frozenset(tried))
                except TaskError as exc:
                    end = tpb.TaskExit(exit_code=LOST_EXIT, state="lost", error=f"{lost}; {exc.message}",
                                       ended_at=time.time())  # fmt: skip
                    break
                note = f"{lost}; the task is idempotent, re-running it on {decision.name}"
                logger.warning("task %s: %s", spec.id, note)
                spec.decided_by, spec.reason = decision.decided_by, decision.reason
                self.asked[spec.id].runner_id, self.asked[spec.id].runner_name = decision.node_id, decision.name
                self.store.set_runner(spec.id, decision.name, decision.decided_by, decision.reason)
                self.ctx.bus.publish(
                    TaskStarted(spec.id, summary.text, decision.name, spec.asker_name, decision.decided_by,
                                decision.reason)
                )  # fmt: skip
                await emit(tpb.TaskChunk(notice=tpb.TaskNotice(text=note)))
                await emit(tpb.TaskChunk(accepted=_accepted(spec, decision)))
            await emit(tpb.TaskChunk(exit=end))
            return end
        except NoizyLabError as exc:
            end = tpb.TaskExit(exit_code=1, state="failed", error=exc.message, ended_at=time.time())
            raise
        except BaseException:
            end = tpb.TaskExit(exit_code=143, state="cancelled", error="the asker went away", ended_at=time.time())
            raise
        finally:
            self.asked.pop(spec.id, None)
            self.store.finish(spec.id, end.state, end.exit_code, end.ended_at, tail.bytes(), end.error)
            self.ctx.bus.publish(TaskFinished(spec.id, end.state, end.exit_code, end.error))

    async def _run_on(self, spec: tpb.TaskSpec, decision: Decision, emit: Emit, tail: Tail) -> tpb.TaskExit | None:
        """One run of the task on the decided node: its exit, or None when that node went away."""
        if decision.node_id == self.ctx.identity.node_id:
            async with contextlib.aclosing(self.runner.execute(spec, self.ctx.identity.fingerprint)) as chunks:
                return await self._relay(spec.id, chunks, emit, tail, self.ctx.settings.name)
        state = next((s for s in self.ctx.registry.peers() if s.peer.node_id == decision.node_id), None)
        if state is None:
            raise TaskError(f"{decision.name} is no longer paired")
        stub = tpb_grpc.TasksStub(self.ctx.registry.channel(state))
        call = stub.Execute(spec, timeout=spec.timeout_s + 60 if spec.timeout_s else None)
        self.asked[spec.id].call = call
        with self.ctx.bus.subscribe(PeerOffline) as offline:

            async def went_away() -> None:
                async for event in offline:
                    if isinstance(event, PeerOffline) and event.peer_id == decision.node_id:
                        return

            relay = asyncio.ensure_future(self._relay(spec.id, call, emit, tail, decision.name))
            watch = asyncio.ensure_future(went_away())
            try:
                await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
                if relay.done():
                    return relay.result()
                logger.warning("task %s: %s stopped answering heartbeats", spec.id, decision.name)
                return None
            finally:
                watch.cancel()
                if not relay.done():
                    call.cancel()
                    relay.cancel()
                    with contextlib.suppress(BaseException):
                        await relay

    async def _relay(
        self, task_id: str, chunks: AsyncIterable[tpb.TaskChunk], emit: Emit, tail: Tail, where: str = ""
    ) -> tpb.TaskExit | None:
        """Pass chunks on until the exit; None if the stream broke off (its node went away)."""
        try:
            async for chunk in chunks:
                which = chunk.WhichOneof("body")
                if which == "exit":
                    return chunk.exit
                if which == "output":
                    tail.add(chunk.output.data)
                    text = chunk.output.data.decode("utf-8", "replace")
                    self.ctx.bus.publish(TaskOutput(task_id, chunk.output.stream, text))
                await emit(chunk)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                logger.warning("task %s: the stream from %s broke off: %s", task_id, where, exc.details())
                return None
            raise rpc_error(exc, where) from exc
        return None

    async def cancel(self, task_id: str) -> str:
        """Cancel a task this node asked for (here or on its peer); returns where it ran."""
        asked = self.asked[task_id]
        asked.cancelled = True
        if asked.runner_id == self.ctx.identity.node_id:
            self.runner.cancel(task_id)
            return asked.runner_name
        state = next((s for s in self.ctx.registry.peers() if s.peer.node_id == asked.runner_id), None)
        try:
            if state is None:
                raise TaskError("no longer paired")
            await tpb_grpc.TasksStub(self.ctx.registry.channel(state)).Cancel(tpb.TaskRef(id=task_id), timeout=2.0)
        except (grpc.aio.AioRpcError, TaskError) as exc:
            # The runner cannot be told: ending our call still makes it kill the task when it notices.
            logger.warning("could not ask %s to cancel %s (%s); closing the stream", asked.runner_name, task_id, exc)
            if asked.call is not None:
                asked.call.cancel()
        return asked.runner_name

    async def stop(self) -> None:
        for future in list(self._background):
            future.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


def _accepted(spec: tpb.TaskSpec, decision: Decision) -> tpb.TaskAccepted:
    return tpb.TaskAccepted(
        id=spec.id, node_id=decision.node_id, node_name=decision.name, decided_by=decision.decided_by,
        reason=decision.reason,
    )  # fmt: skip


def _candidate(node_id: str, name: str, online: bool, is_self: bool, offer: tpb.TaskOffer, rtt_ms: float) -> Candidate:
    c = offer.capabilities
    return Candidate(
        node_id=node_id,
        name=name,
        online=online,
        is_self=is_self,
        os=c.os,
        cpu_count=c.cpu_count,
        memory_total_bytes=c.memory_total_bytes,
        memory_available_bytes=offer.memory_available_bytes,
        gpus=tuple(GpuState(g.name, g.memory_total_bytes, g.memory_free_bytes) for g in offer.gpus),
        labels=tuple(c.labels),
        load=offer.load,
        queue_length=offer.queue_length,
        rtt_ms=rtt_ms,
        allows_tasks=offer.allows,
    )
