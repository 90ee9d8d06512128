"""A gRPC server interceptor that times every call and counts its outcome, per method.

Installed after the node's Guard, so it sees only calls from paired peers; the method names come from the
services the node serves (a bounded set), never from anything a caller chose.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from noizylab_desktop.core.feature import Figure
from noizylab_desktop.core.transport import Behavior, rewrap

# Seconds; from a loopback ping (~0.2 ms) to a long stream.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Histogram:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.total = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.total += 1

    def cumulative(self) -> list[tuple[float, float]]:
        running, pairs = 0, []
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((bound, float(running)))
        return pairs


class RpcMetrics(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Latency histograms and outcome counts per gRPC method, exported as figures."""

    def __init__(self) -> None:
        self.latency: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.handled: defaultdict[tuple[str, str], int] = defaultdict(int)
        # The figures handed out last, by series, with the count they were made at: a series with no new calls
        # gives the same Figure object again, so the sampler need not rebuild it (a node sees dozens of methods,
        # but an idle one calls only two or three of them each second).
        self._made: dict[tuple[str, ...], tuple[int, Figure]] = {}

    def record(self, method: str, seconds: float, code: str) -> None:
        """One finished call."""
        self.latency[method].observe(seconds)
        self.handled[(method, code)] += 1

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        return rewrap(handler, lambda behavior, _streaming: self._wrap(details.method, behavior))

    def _wrap(self, method: str, behavior: Behavior) -> Behavior:
        if inspect.isasyncgenfunction(behavior):

            async def timed_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                began, code = time.perf_counter(), "OK"
                try:
                    async for item in behavior(request, context):
                        yield item
                except BaseException as exc:
                    code = _code(context, exc)
                    raise
                finally:
                    self.record(method, time.perf_counter() - began, _final(context, code))

            return timed_stream

        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            began, code = time.perf_counter(), "OK"
            try:
                return await behavior(request, context)
            except BaseException as exc:
                code = _code(context, exc)
                raise
            finally:
                self.record(method, time.perf_counter() - began, _final(context, code))

        return timed

    def figures(self) -> list[Figure]:
        """The histograms and counters as figures."""
        found = [self._latency(method, hist) for method, hist in sorted(self.latency.items())]
        found += [self._handled(method, code, count) for (method, code), count in sorted(self.handled.items())]
        errors: defaultdict[str, int] = defaultdict(int)
        for (method, code), count in self.handled.items():
            errors[method] += count if code != "OK" else 0
        found += [self._errors(method, count) for method, count in sorted(errors.items())]
        return found

    def _latency(self, method: str, hist: _Histogram) -> Figure:
        return self._made_at(
            ("latency", method),
            hist.total,
            lambda: Figure(
                "noizylab_rpc_server_handling_seconds",
                "Time to handle a gRPC call on this node, by method.",
                hist.sum,
                "histogram",
                {"method": method},
                hist.cumulative(),
                float(hist.total),
            ),
        )

    def _handled(self, method: str, code: str, count: int) -> Figure:
        return self._made_at(
            ("handled", method, code),
            count,
            lambda: Figure(
                "noizylab_rpc_server_handled_total",
                "gRPC calls this node finished, by method and status code.",
                float(count),
                "counter",
                {"method": method, "code": code},
            ),
        )

    def _errors(self, method: str, count: int) -> Figure:
        return self._made_at(
            ("errors", method),
            count,
            lambda: Figure(
                "noizylab_rpc_server_errors_total",
                "gRPC calls this node ended with a status other than OK, by method.",
                float(count),
                "counter",
                {"method": method},
            ),
        )

    def _made_at(self, key: tuple[str, ...], count: int, make: Callable[[], Figure]) -> Figure:
        """The figure of one series, made again only when its count moved."""
        made = self._made.get(key)
        if made is None or made[0] != count:
            made = self._made[key] = (count, make())
        return made[1]


def _code(context: grpc.aio.ServicerContext, exc: BaseException) -> str:
    """The status a call that raised ends with."""
    if isinstance(exc, grpc.aio.AbortError):
        return _final(context, "UNKNOWN")
    return "CANCELLED" if isinstance(exc, asyncio.CancelledError) else "UNKNOWN"


def _final(context: grpc.aio.ServicerContext, fallback: str) -> str:
    """The status the handler set (``abort`` or ``set_code``), else ``fallback``."""
    try:
        code = context.code()
    except Exception:  # older grpc: no code() on the aio context
        return fallback
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return fallback
