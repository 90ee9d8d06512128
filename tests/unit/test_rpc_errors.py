"""The exception tree on the wire (core/rpc_errors.py): every class of errors.py crosses a real gRPC call on loopback
and comes back as itself, and a status that names no class, or a class this node does not know, still becomes one
clear line of a sensible class."""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from noizylab_desktop.core import errors
from noizylab_desktop.core.errors import NoizyLabError, SyncError, TaskError, TransportError
from noizylab_desktop.core.rpc_errors import CODES, MAX_DETAILS, abort_with, error_from_rpc
from noizylab_desktop.services.sync.manager import rpc_error as sync_error
from noizylab_desktop.services.tasks.wire import rpc_error as task_error

TREE = sorted(
    (c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, NoizyLabError)),
    key=lambda c: c.__name__,
)
RAISE = "/noizylab.test.v1.Raiser/Raise"
ABORT = "/noizylab.test.v1.Raiser/Abort"
HANG = "/noizylab.test.v1.Raiser/Hang"


class NoRoomHere(SyncError):
    """A feature's own subclass, as sync's NoRoomError: its name is not in the table."""


RAISABLE: dict[str, type[NoizyLabError]] = {c.__name__: c for c in (*TREE, NoRoomHere)}


async def _raise(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    name, _, message = request.decode().partition("\n")
    await abort_with(context, RAISABLE[name](message))


async def _abort(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    code, _, details = request.decode().partition("\n")
    await context.abort(grpc.StatusCode[code], details)
    raise AssertionError("unreachable: context.abort raises")


async def _hang(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.Event().wait()  # until the caller's deadline ends the call
    return b""


@dataclass
class Wire:
    """A real gRPC server on 127.0.0.1 whose methods end every call with a status, and a way to call it."""

    loop: asyncio.AbstractEventLoop
    channel: grpc.aio.Channel
    closed_port: int

    def fail(self, method: str, request: str, timeout: float = 10.0, port: int = 0) -> grpc.aio.AioRpcError:
        """The error ``method`` ends with (on a port nothing listens on, if ``port`` is given)."""

        async def call() -> grpc.aio.AioRpcError:
            channel = self.channel if not port else grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            try:
                await channel.unary_unary(method)(request.encode(), timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                return exc
            finally:
                if port:
                    await channel.close()
            raise AssertionError(f"{method} succeeded")

        return self.loop.run_until_complete(call())

    def raised(self, exc: NoizyLabError) -> grpc.aio.AioRpcError:
        return self.fail(RAISE, f"{type(exc).__name__}\n{exc.message}")

    def aborted(self, code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
        return self.fail(ABORT, f"{code.name}\n{details}")


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    loop = asyncio.new_event_loop()
    handler = grpc.method_handlers_generic_handler(
        "noizylab.test.v1.Raiser",
        {
            "Raise": grpc.unary_unary_rpc_method_handler(_raise),
            "Abort": grpc.unary_unary_rpc_method_handler(_abort),
            "Hang": grpc.unary_unary_rpc_method_handler(_hang),
        },
    )

    async def start() -> tuple[grpc.aio.Server, grpc.aio.Channel]:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    server, channel = loop.run_until_complete(start())
    # A port bound but never listened on: a call to it is refused at once, gRPC's own bare UNAVAILABLE.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yield Wire(loop, channel, closed.getsockname()[1])
    loop.run_until_complete(channel.close())
    loop.run_until_complete(server.stop(None))
    loop.close()


def test_every_class_of_the_exception_tree_has_a_status_code() -> None:
    missing = [c.__name__ for c in TREE if c not in CODES]
    assert not missing, f"add {', '.join(missing)} to CODES in core/rpc_errors.py"
    assert set(CODES) == set(TREE)


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_each_class_crosses_the_wire_and_comes_back_as_itself(wire: Wire, cls: type[NoizyLabError]) -> None:
    message = f"{cls.__name__} happened on beta: see `noizylab logs`"
    exc = wire.raised(cls(message))
    assert exc.code() == CODES[cls]
    assert exc.details() == f"{cls.__name__}: {message}"
    error = error_from_rpc(exc, "beta")
    assert type(error) is cls
    assert error.message == message


def test_refusals_and_bad_requests_have_their_own_codes_and_the_rest_failed_precondition() -> None:
    refused = {
        errors.PairingError,
        errors.PairingRateLimited,
        errors.PermissionRefusedError,
        errors.StepUpError,  # a sensitive action without a good TOTP code is refused, not a failed precondition
        errors.StepUpNeeded,
    }
    for cls, code in CODES.items():
        if cls in refused:
            assert code == grpc.StatusCode.PERMISSION_DENIED, cls
        elif cls is errors.InvalidRequestError:
            assert code == grpc.StatusCode.INVALID_ARGUMENT
        else:
            assert code == grpc.StatusCode.FAILED_PRECONDITION, cls


def test_a_message_with_a_line_break_and_an_escape_arrives_as_one_printable_line(wire: Wire) -> None:
    error = error_from_rpc(wire.raised(TaskError("no task x\nINFO forged\x1b[2J")), "beta")
    assert type(error) is TaskError
    assert error.message == "no task x\\nINFO forged\\x1b[2J"


def test_a_message_too_long_for_a_status_is_cut_to_one_line_of_max_details(wire: Wire) -> None:
    exc = wire.raised(SyncError("x" * 5000))
    assert len(exc.details() or "") == MAX_DETAILS
    error = error_from_rpc(exc, "beta")
    assert type(error) is SyncError
    assert error.message.endswith("…")


def test_a_features_own_subclass_travels_with_its_bases_code_and_comes_back_as_the_callers_class(wire: Wire) -> None:
    exc = wire.raised(NoRoomHere("beta has 3 GB free, the file needs 5 GB"))
    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = error_from_rpc(exc, "beta", failed=TaskError)
    assert type(error) is TaskError
    assert error.message == "beta has 3 GB free, the file needs 5 GB"


def test_an_unknown_class_name_gives_the_callers_class_with_the_message_and_never_the_name(wire: Wire) -> None:
    exc = wire.aborted(grpc.StatusCode.FAILED_PRECONDITION, "QuotaFromTheFutureError: the share is over its quota")
    default = error_from_rpc(exc, "beta")
    assert type(default) is TransportError
    assert default.message == "the share is over its quota"
    assert type(error_from_rpc(exc, "beta", failed=SyncError)) is SyncError


def test_untagged_details_say_where_it_failed(wire: Wire) -> None:
    error = error_from_rpc(wire.aborted(grpc.StatusCode.INTERNAL, "Tasks.Get failed on this node: see its log"), "beta")
    assert type(error) is TransportError
    assert error.message == "beta failed: Tasks.Get failed on this node: see its log"


def test_grpcs_own_upper_case_prefix_is_not_taken_for_a_class(wire: Wire) -> None:
    error = error_from_rpc(wire.aborted(grpc.StatusCode.INTERNAL, "UNKNOWN: ipv4:10.0.0.1:1: oops"), "beta")
    assert error.message == "beta failed: UNKNOWN: ipv4:10.0.0.1:1: oops"


def test_an_untagged_refusal_becomes_the_callers_refused_class_with_the_bare_details(wire: Wire) -> None:
    exc = wire.aborted(grpc.StatusCode.PERMISSION_DENIED, "only this node's own user may control it")
    error = error_from_rpc(exc, "beta", refused=errors.PairingError)
    assert type(error) is errors.PairingError
    assert error.message == "only this node's own user may control it"
    assert error_from_rpc(exc, "beta").message == "beta failed: only this node's own user may control it"


def test_a_bare_unavailable_is_a_transport_error_unless_the_caller_says_what_it_means(wire: Wire) -> None:
    exc = wire.fail(RAISE, "TaskError\nnever sent", port=wire.closed_port)
    assert exc.code() == grpc.StatusCode.UNAVAILABLE
    error = error_from_rpc(exc, "beta")
    assert type(error) is TransportError
    assert error.message == "beta does not answer"
    offline = SyncError("beta is offline; the share syncs when it is back")
    assert error_from_rpc(exc, "beta", unavailable=offline) is offline


def test_an_unavailable_a_handler_sends_untagged_is_the_same_as_grpcs_own(wire: Wire) -> None:
    exc = wire.aborted(grpc.StatusCode.UNAVAILABLE, "this node has not sampled its figures yet")
    assert error_from_rpc(exc, "beta").message == "beta does not answer"


def test_a_passed_deadline_is_a_transport_error_unless_the_caller_says_what_it_means(wire: Wire) -> None:
    exc = wire.fail(HANG, "", timeout=0.2)
    assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error_from_rpc(exc, "beta").message == "beta did not answer in time"
    late = TaskError("beta is late")
    assert error_from_rpc(exc, "beta", deadline=late) is late


def test_sync_keeps_every_peer_failure_a_sync_error_that_names_the_peer(wire: Wire) -> None:
    refused = sync_error(wire.raised(errors.PermissionRefusedError("alpha does not allow sync")), "beta")
    assert type(refused) is SyncError
    assert refused.message == "beta: alpha does not allow sync"
    offline = sync_error(wire.fail(RAISE, "", port=wire.closed_port), "beta")
    assert (type(offline), offline.message) == (SyncError, "beta is offline; the share syncs when it is back")
    late = sync_error(wire.fail(HANG, "", timeout=0.2), "beta")
    assert (type(late), late.message) == (SyncError, "beta did not answer in time")


def test_tasks_word_an_unreachable_or_unpairing_peer_and_keep_other_failures_task_errors(wire: Wire) -> None:
    offline = task_error(wire.fail(RAISE, "", port=wire.closed_port), "beta")
    assert (type(offline), offline.message) == (TransportError, "beta does not answer: see `noizylab peers`")
    unpaired = task_error(wire.aborted(grpc.StatusCode.UNAUTHENTICATED, "this node is not paired with you"), "beta")
    assert unpaired.message == "beta does not accept this node any more: pair them again"
    internal = task_error(wire.aborted(grpc.StatusCode.INTERNAL, ""), "beta")
    assert (type(internal), internal.message) == (TaskError, "beta failed: INTERNAL")
