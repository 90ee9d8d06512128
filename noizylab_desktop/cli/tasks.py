"""``noizylab run``, ``tasks``, ``tasks show`` and ``cancel``: run work where it fits and find it later."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import add_json_flag, error, notice, print_json, print_listing, timestamp, write_raw
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import TaskError
from noizylab_desktop.core.words import duration

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
    from noizylab_desktop.core.local_client import LocalClient

GIB = 2**30


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the task commands."""
    run = sub.add_parser(
        "run",
        help="run a command on the machine that fits it, with live output",
        usage="noizylab run [--on PEER | --auto] [--gpu] [--timeout S] [options] -- CMD ...",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument("--on", metavar="PEER", help="run on this peer (name or ID prefix; `self` for this machine)")
    where.add_argument("--auto", action="store_true", help="let the scheduler choose (the default)")
    run.add_argument("--gpu", action="store_true", help="needs an NVIDIA GPU")
    run.add_argument("--min-vram", type=float, default=0, metavar="GIB", help="needs this much free GPU memory")
    run.add_argument("--min-memory", type=float, default=0, metavar="GIB", help="needs this much free memory")
    run.add_argument("--os", choices=["linux", "darwin", "windows"], help="needs this OS")
    run.add_argument("--label", action="append", default=[], help="needs a node with this label (repeatable)")
    run.add_argument("--timeout", type=float, default=0, metavar="S", help="kill it after S seconds")
    run.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set a variable (repeatable)")
    run.add_argument("--cwd", default="", help="working folder on the machine that runs it")
    run.add_argument("--idempotent", action="store_true", help="safe to re-run elsewhere if its machine goes away")
    run.add_argument("--shell", action="store_true", help="run CMD as one shell line")
    run.add_argument("--type", default="", metavar="TASK_TYPE", help="a typed job instead of a command")
    run.add_argument("--data", default="", metavar="JSON", help="the typed job's input")
    run.add_argument("-v", "--verbose", action="store_true", help="say where it runs and why")
    run.add_argument("task_argv", metavar="CMD", nargs=argparse.REMAINDER, help="the command, after --")
    run.set_defaults(handler=_run)

    tasks = sub.add_parser(
        "tasks", help="running and recent tasks, and the processes this node supervises (a Dask scheduler or worker)"
    )
    add_json_flag(tasks)
    tasks.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    tasks.set_defaults(handler=_list)
    tasks_sub = tasks.add_subparsers(dest="tasks_command", metavar="ACTION")
    show = tasks_sub.add_parser("show", help="one task: where it ran, why, how it ended, its last output")
    show.add_argument("id", help="the task's ID or its start")
    add_json_flag(show)
    show.set_defaults(handler=_show)

    cancel = sub.add_parser("cancel", help="cancel a running task")
    cancel.add_argument("id", help="the task's ID or its start")
    cancel.set_defaults(handler=_cancel)


def _request(args: argparse.Namespace) -> tpb.SubmitRequest:
    from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb

    command = list(args.task_argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command and not args.type:
        raise TaskError("nothing to run: put the command after `--`, e.g. `noizylab run -- uname -a`")
    if args.timeout < 0:
        raise TaskError("--timeout must be more than 0 seconds")
    env: dict[str, str] = {}
    for pair in args.env:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise TaskError(f"--env needs NAME=VALUE, not {pair!r}")
        env[name] = value
    spec = tpb.TaskSpec(
        env=env,
        cwd=args.cwd,
        timeout_s=args.timeout,
        idempotent=args.idempotent,
        task_type=args.type,
        task_data=args.data,
        needs=tpb.TaskNeeds(
            gpu=args.gpu,
            min_free_vram_bytes=int(args.min_vram * GIB),
            min_memory_bytes=int(args.min_memory * GIB),
            os=args.os or "",
            labels=args.label,
        ),
    )
    if args.shell:
        spec.shell = " ".join(command)
    else:
        spec.argv.extend(command)
    return tpb.SubmitRequest(spec=spec, on=args.on or "")


def _run(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node

    request = _request(args)
    return run_with_node(paths, settings, lambda node: _follow(request, node, args.verbose))


async def _follow(request: tpb.SubmitRequest, node: LocalClient, verbose: bool) -> int:
    """Submit ``request``, relay the task's output as it comes, and answer its exit code."""
    import asyncio  # here: the grammar is built for every command, and asyncio cost 0.8 s under Wine

    from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
    from noizylab_desktop.services.tasks.client import TasksClient

    loop = asyncio.get_running_loop()
    client = TasksClient(node)
    accepted = tpb.TaskAccepted()
    interrupts = 0
    cancels: set[asyncio.Future[Any]] = set()

    def interrupted() -> None:
        # The first Ctrl-C cancels the task where it runs and waits for its exit; a second stops waiting.
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and accepted.id:
            notice(f"cancelling task {accepted.id} on {accepted.node_name}")
            cancels.add(asyncio.ensure_future(client.cancel(accepted.id)))
        elif client.call is not None:
            client.call.cancel()

    handled = False
    with contextlib.suppress(NotImplementedError):  # Windows' loops: Ctrl-C then ends the call instead
        loop.add_signal_handler(signal.SIGINT, interrupted)
        handled = True
    end = tpb.TaskExit(exit_code=1, state="failed", error="the node ended the task without an exit status")
    try:
        async for chunk in client.submit(request):
            which = chunk.WhichOneof("body")
            if which == "output":
                write_raw("stdout" if chunk.output.stream == 1 else "stderr", chunk.output.data)
            elif which == "accepted":
                accepted = chunk.accepted
                if verbose:
                    notice(
                        f"task {accepted.id} runs on {accepted.node_name} ({accepted.decided_by}: {accepted.reason})"
                    )
            elif which == "notice":
                notice(chunk.notice.text)
            elif which == "exit":
                end = chunk.exit
    except asyncio.CancelledError:
        return 130
    finally:
        if handled:  # Windows' loops raise NotImplementedError here too (found by tests/windows/test_tasks.py)
            loop.remove_signal_handler(signal.SIGINT)
        for pending in cancels:
            pending.cancel()
    if end.state not in ("exited", "cancelled") and end.error:
        error(f"task {accepted.id}: {end.error}")
    return end.exit_code


def _when(at: float) -> str:
    return timestamp(at, seconds=True)


def _list(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.services.tasks.client import TasksClient, child_dict, record_dict

    listing = run_with_node(paths, settings, lambda node: TasksClient(node).listing(args.limit))
    if args.json:
        print_json([*map(record_dict, listing.tasks), *map(child_dict, listing.children)])
        return 0
    print_listing(
        list(listing.tasks),
        as_json=False,
        row=record_dict,
        line=_line,
        empty="no tasks yet: try `noizylab run -- uname -a`",
        header=f"{'ID':<10} {'STATE':<10} {'EXIT':>4}  {'RAN ON':<12} {'ASKED BY':<12} {'STARTED':<19}  COMMAND",
    )
    if listing.children:
        print(f"\nsupervised by this node:\n{'NAME':<16} {'PID':>7}  {'STATE':<10} {'UPTIME':>7} {'RESTARTS':>8}  ROLE")
        for child in listing.children:
            print(_child_line(child))
    return 0


def _child_line(c: tpb.SupervisedChild) -> str:
    pid = str(c.pid) if c.pid else "-"
    uptime = duration(c.uptime_s) if c.pid else "-"
    where = f" at {c.detail}" if c.detail else ""
    return f"{c.name[:16]:<16} {pid:>7}  {c.state:<10} {uptime:>7} {c.restarts:>8}  {c.role}{where}"


def _line(r: tpb.TaskRecord) -> str:
    code = str(r.exit_code) if r.state != "running" else ""
    return (
        f"{r.id[:10]:<10} {r.state:<10} {code:>4}  {r.runner[:12]:<12} {r.asker[:12]:<12} "
        f"{_when(r.created_at):<19}  {r.command[:60]}"
    )


def _show(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.services.tasks.client import TasksClient, record_dict

    record = run_with_node(paths, settings, lambda node: TasksClient(node).get(args.id))
    if args.json:
        print_json(record_dict(record))
        return 0
    took = f"{record.ended_at - record.created_at:.2f} s" if record.ended_at else "still running"
    print(f"task      {record.id}")
    print(f"command   {record.command}")
    print(f"asked by  {record.asker}")
    print(f"ran on    {record.runner} (decided by the {record.decided_by}: {record.reason})")
    print(f"state     {record.state}, exit code {record.exit_code}" + (f": {record.error}" if record.error else ""))
    print(f"started   {_when(record.created_at)} ({took})")
    if record.tail:
        print("last output:")
        sys.stdout.write(record.tail.decode("utf-8", "replace"))
        if not record.tail.endswith(b"\n"):
            print()
    return 0


def _cancel(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.services.tasks.client import TasksClient

    reply = run_with_node(paths, settings, lambda node: TasksClient(node).cancel(args.id))
    print(f"task {reply.id}: {reply.state}")
    return 0
