"""``noizylab forward PEER PORT[:LOCAL]``, ``forward --stop``, ``tunnels`` and ``tunnel allow|deny|rules``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.client import add_totp_flag
from noizylab_desktop.cli.output import add_json_flag, error, notice, print_json, print_listing
from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
    from noizylab_desktop._proto import noizylab_tunnel_pb2_grpc as tpb_grpc


def port_spec(text: str) -> tuple[int, int]:
    """``8888`` or ``8888:18888`` as (remote port, local port; 0: choose)."""
    remote, _, local = text.partition(":")
    try:
        ports = int(remote), int(local) if local else 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PORT or PORT:LOCAL (numbers)") from None
    if not 0 < ports[0] < 65536 or not 0 <= ports[1] < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: ports run from 1 to 65535")
    return ports


def port(text: str) -> int:
    return port_spec(text)[0]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``forward``, ``tunnels`` and ``tunnel``."""
    forward = sub.add_parser(
        "forward", help="carry a local port to a port on a paired peer's 127.0.0.1 (Jupyter, ComfyUI, Ollama...)"
    )
    forward.add_argument("peer", help="its ID, the start of its ID, or its name")
    forward.add_argument(
        "ports", nargs="?", type=port_spec, metavar="PORT[:LOCAL]",
        help="the peer's port, and the local one (default: the same when free, else one remembered for it)",
    )  # fmt: skip
    forward.add_argument("--stop", action="store_true", help="close the tunnel (no PORT: every tunnel to the peer)")
    forward.add_argument(
        "--bind", default="", metavar="ADDR", help="listen on ADDR (default 127.0.0.1; 0.0.0.0 exposes it on the LAN)"
    )
    add_json_flag(forward)
    add_totp_flag(forward)  # --bind beyond loopback asks for a step-up when TOTP is on
    forward.set_defaults(handler=_forward)
    listing = sub.add_parser("tunnels", help="tunnels: peer, local → remote port, state, connections, bytes, uptime")
    add_json_flag(listing)
    listing.set_defaults(handler=_tunnels)
    tunnel = sub.add_parser("tunnel", help="which of this machine's ports each peer may open a tunnel to")
    actions = tunnel.add_subparsers(dest="tunnel_command", metavar="ACTION", required=True)
    for verb, allowed in (("allow", True), ("deny", False)):
        parser = actions.add_parser(verb, help=f"{verb} a peer tunnels to one port of this machine's 127.0.0.1")
        parser.add_argument("peer", help="its ID, the start of its ID, or its name")
        parser.add_argument("port", type=port, help="the port on this machine")
        add_json_flag(parser)
        parser.set_defaults(handler=_set_rule, allowed=allowed)
    rules = actions.add_parser("rules", help="the ports each peer may open")
    add_json_flag(rules)
    rules.set_defaults(handler=_rules)


def _call(
    paths: Paths,
    settings: Settings,
    method: Callable[[tpb_grpc.TunnelStub], object],
    request: object,
    totp: str | None = None,
) -> Any:
    from noizylab_desktop._proto import noizylab_tunnel_pb2_grpc as tpb_grpc
    from noizylab_desktop.cli.client import run_with_node

    return run_with_node(
        paths,
        settings,
        lambda node: node.call(method(tpb_grpc.TunnelStub(node.channel)), request, timeout=30.0),
        totp,
    )


def duration(seconds: float) -> str:
    """``42s``, ``7m``, ``3h05m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return ""


def tunnel_row(t: tpb.TunnelInfo) -> dict[str, Any]:
    return {
        "peer": t.peer_name,
        "peer_id": t.peer_id,
        "remote_port": t.remote_port,
        "local_port": t.local_port,
        "bind": t.bind,
        "state": t.state,
        "connections": t.connections,
        "total_connections": t.total_connections,
        "bytes_in": t.bytes_in,
        "bytes_out": t.bytes_out,
        "uptime_s": round(time.time() - t.since, 1) if t.since else 0.0,
        "last_error": t.last_error,
    }


def tunnel_line(t: tpb.TunnelInfo) -> str:
    uptime = duration(time.time() - t.since) if t.since else "-"
    line = (
        f"{t.peer_name:<12} {t.bind}:{t.local_port} → {t.remote_port:<6} {t.state:<10} {t.connections:>3} open  "
        f"{size(t.bytes_in)} in, {size(t.bytes_out)} out  up {uptime}"
    )
    return f"{line}  ({t.last_error})" if t.last_error else line


def _print_tunnels(reply: tpb.TunnelList, as_json: bool) -> None:
    print_listing(
        reply.tunnels,
        as_json=as_json,
        row=tunnel_row,
        line=tunnel_line,
        empty="no tunnels: open one with `noizylab forward PEER PORT`",
    )


def _forward(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb

    if args.stop:
        stop = tpb.StopForwardRequest(peer=args.peer, port=args.ports[0] if args.ports else 0)
        _print_tunnels(_call(paths, settings, lambda stub: stub.StopForward, stop), args.json)
        return 0
    if args.ports is None:
        error("forward needs the peer's PORT (or --stop)")
        return 2
    remote, local = args.ports
    request = tpb.ForwardRequest(peer=args.peer, port=remote, local_port=local, bind=args.bind)
    reply: tpb.TunnelList = _call(paths, settings, lambda stub: stub.Forward, request, args.totp)
    if args.json:
        print_json(tunnel_row(reply.tunnels[0]))
        return 0
    t = reply.tunnels[0]
    print(f"{t.bind}:{t.local_port} → {t.peer_name}:{t.remote_port} (http://{t.bind}:{t.local_port}/)")
    if t.last_error:
        notice(t.last_error)
    return 0


def _tunnels(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb

    _print_tunnels(_call(paths, settings, lambda stub: stub.List, pb.Empty()), args.json)
    return 0


def rule_row(r: tpb.TunnelRule) -> dict[str, Any]:
    return {"peer": r.peer_name, "peer_id": r.peer_id, "port": r.port, "scope_on": r.scope_on, "open": r.connections}


def rule_line(r: tpb.TunnelRule) -> str:
    off = "" if r.scope_on else "  (the `tunnel` permission is off: `noizylab allow PEER tunnel`)"
    return f"{r.peer_name}: port {r.port}, {r.connections} open{off}"


def _print_rules(reply: tpb.TunnelRules, as_json: bool) -> None:
    print_listing(
        reply.rules,
        as_json=as_json,
        row=rule_row,
        line=rule_line,
        empty="no peer may open a tunnel here: allow one with `noizylab tunnel allow PEER PORT`",
    )


def _set_rule(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb

    request = tpb.TunnelRuleRequest(peer=args.peer, port=args.port, allowed=args.allowed)
    _print_rules(_call(paths, settings, lambda stub: stub.SetRule, request), args.json)
    return 0


def _rules(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb

    _print_rules(_call(paths, settings, lambda stub: stub.Rules, pb.Empty()), args.json)
    return 0
