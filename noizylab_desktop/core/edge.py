"""The gRPC edge: every request message is checked before a handler sees it, and what a handler did not expect
becomes one line for the caller and one for the log.

Installed right after the node's Guard, so it runs for trusted callers only, on every call of every service:

- a request (or each message of a request stream) out of ``edge_rules``' bounds ends the call ``INVALID_ARGUMENT``
  with ``InvalidRequestError: <field> must ...``; a stream is ended even when the handler reads it in a task of its
  own (the display's input reader), so no session runs on after a bad message;
- the last-resort net: an exception a handler let out ends the call with a one-line message, ``INVALID_ARGUMENT``
  for ``ValueError``/``OverflowError`` (a value the checks did not foresee), the exception tree's own code for a
  ``NoizyLabError``, ``UNIMPLEMENTED`` for a generated servicer's ``NotImplementedError`` (a method this node does
  not implement), else ``INTERNAL``; gRPC would answer ``UNKNOWN`` with the exception's text and log a traceback.
  A call whose caller is already gone (no status can reach it) ends as cancelled, with one line in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.message import Message

from noizylab_desktop.core.edge_rules import check_message
from noizylab_desktop.core.errors import InvalidRequestError, NoizyLabError
from noizylab_desktop.core.rpc_errors import abort_with, one_line

logger = logging.getLogger(__name__)

Behavior = Callable[..., Any]
MAX_DETAIL = 200  # characters of an unexpected exception's text that reach the caller


def method_name(method: str) -> str:
    """``Sync.PutStream`` for ``/noizylab.grid.v1.Sync/PutStream``."""
    service, _, rpc = method.rpartition("/")
    return f"{service.rpartition('.')[2]}.{rpc}"


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s text, cut to ``MAX_DETAIL`` characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return one_line(text, MAX_DETAIL)


async def refuse(name: str, context: grpc.aio.ServicerContext, exc: InvalidRequestError) -> None:
    """End the call ``INVALID_ARGUMENT`` (raises ``AbortError``), logging one line."""
    logger.info("refused %s from %s: %s", name, context.peer(), one_line(exc.message))
    await abort_with(context, exc)


async def checked(name: str, request: Message, context: grpc.aio.ServicerContext) -> None:
    """Return when ``request`` is within bounds, else end the call."""
    try:
        check_message(request)
    except InvalidRequestError as exc:
        await refuse(name, context, exc)


async def net(name: str, context: grpc.aio.ServicerContext, work: Awaitable[Any]) -> Any:
    """``await work``, ending the call with one line when it raises something no handler turned into a status."""
    try:
        return await work
    except (grpc.aio.AbortError, grpc.aio.UsageError):
        raise  # the status went out already (or a handler aborted twice: gRPC says so itself)
    except Exception as exc:
        if not (context.cancelled() or context.done()):  # else a status failed inside gRPC, and another would too
            try:
                await answer(name, context, exc)
            except grpc.aio.AbortError:
                raise
            except Exception as failed:  # the call ended meanwhile
                exc = failed
        gone(name, exc)


def left(name: str, context: grpc.aio.ServicerContext) -> None:
    """Log one line when gRPC cancelled this handler because its call is over (its caller cancelled, its deadline
    passed, or its caller's own side refused a message and gave up). Not when the handler ended itself through
    ``gone`` (logged there), nor when a node that stops cancels the handlers of live calls."""
    task = asyncio.current_task()
    if task is not None and task.cancelling() and context.done():
        logger.info("%s ended without a status: the caller left", name)


def gone(name: str, exc: Exception) -> NoReturn:
    """No status can be sent any more: the caller left (it cancelled, or its own side refused a message and gave
    up), or gRPC refused one beside a write still in flight. Log one line and end as cancelled, as gRPC expects."""
    logger.info("%s ended without a status: %s", name, first_line(exc))
    raise asyncio.CancelledError from None


async def answer(name: str, context: grpc.aio.ServicerContext, exc: Exception) -> None:
    """End the call with the status ``exc`` stands for (raises ``AbortError``), logging one line."""
    if isinstance(exc, InvalidRequestError):
        await refuse(name, context, exc)
    elif isinstance(exc, NoizyLabError):
        logger.info("%s ended with %s: %s", name, type(exc).__name__, one_line(exc.message))
        await abort_with(context, exc)
    elif isinstance(exc, ValueError | OverflowError):
        logger.warning("refused %s from %s: %s: %s", name, context.peer(), type(exc).__name__, first_line(exc))
        await abort_with(
            context,
            InvalidRequestError(f"{name} cannot use a value of the request ({type(exc).__name__}: {first_line(exc)})"),
        )
    elif isinstance(exc, NotImplementedError):
        # A generated servicer's stand-in for a method this node does not implement (grpc.health.v1's List).
        logger.info("refused %s from %s: not implemented here", name, context.peer())
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented on this node")
    else:
        logger.error("%s failed: %s: %s", name, type(exc).__name__, first_line(exc))
        await context.abort(grpc.StatusCode.INTERNAL, f"{name} failed on this node ({type(exc).__name__}): see its log")


async def drain(behavior: Behavior, request: Any, context: grpc.aio.ServicerContext) -> None:
    """Run a response-streaming handler: an async generator's items are written here."""
    if inspect.isasyncgenfunction(behavior):
        async for item in behavior(request, context):
            await context.write(item)
    else:
        await behavior(request, context)


def wrap_unary_in(name: str, behavior: Behavior, streaming_out: bool) -> Behavior:
    """A handler taking one request: checked before the handler runs."""

    async def unary_in(request: Message, context: grpc.aio.ServicerContext) -> Any:
        await checked(name, request, context)
        try:
            if streaming_out:
                return await net(name, context, drain(behavior, request, context))
            return await net(name, context, behavior(request, context))
        except asyncio.CancelledError:
            left(name, context)
            raise

    return unary_in


def wrap_stream_in(name: str, behavior: Behavior, streaming_out: bool) -> Behavior:
    """A handler reading a request stream: each message is checked as the handler reads it.

    A bad message is answered here, not by the read that found it: that read may run in a task of the handler's own
    (the display's input reader) while the handler writes, and gRPC refuses a status sent beside a write in flight
    or after the call ended. So the read stops there, the handler is cancelled, and then the call is refused."""

    async def stream_in(requests: AsyncIterator[Message], context: grpc.aio.ServicerContext) -> Any:
        refused: list[InvalidRequestError] = []
        bad, ended = asyncio.Event(), asyncio.Event()

        async def messages() -> AsyncIterator[Message]:
            async for message in requests:
                try:
                    check_message(message)
                except InvalidRequestError as exc:
                    refused.append(exc)
                    bad.set()
                    await ended.wait()  # nothing more is read; the handler is cancelled meanwhile
                    raise asyncio.CancelledError from None
                yield message

        run = drain(behavior, messages(), context) if streaming_out else behavior(messages(), context)
        work = asyncio.ensure_future(net(name, context, run))
        waiter = asyncio.ensure_future(bad.wait())
        try:
            await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if refused:
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AbortError):
                    await work
                try:
                    await refuse(name, context, refused[0])
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # the call ended meanwhile, or a write of the handler's is still in flight
                    gone(name, exc)
            return work.result()
        except asyncio.CancelledError:
            left(name, context)
            raise
        finally:
            ended.set()
            waiter.cancel()
            work.cancel()

    return stream_in


class Edge(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks every request against ``edge_rules`` and ends unexpected failures with one line."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        name = method_name(details.method)
        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(wrap_unary_in(name, handler.unary_unary, False), **options)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(wrap_unary_in(name, handler.unary_stream, True), **options)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(wrap_stream_in(name, handler.stream_unary, False), **options)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(wrap_stream_in(name, handler.stream_stream, True), **options)
        return handler
