"""``noizylab metrics [--json]`` (every node's health in one line) and ``token create|list|revoke`` (API tokens)."""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import add_json_flag, print_json, print_listing, timestamp
from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop.services.metrics.tokens import TokenInfo, TokenStore


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the metrics and token commands."""
    metrics = sub.add_parser("metrics", help="every machine's CPU, memory, disk and GPU at a glance")
    add_json_flag(metrics)
    metrics.set_defaults(handler=_metrics)

    token = sub.add_parser("token", help="bearer tokens for the metrics HTTP API")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token and print it once (only its hash is kept)")
    create.add_argument("--name", help="a name to recognise it by (default: token-ID)")
    create.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="what it may read: metrics, tasks, sync or admin (all); repeat or comma-separate (default metrics)",
    )
    create.add_argument(
        "--expires", default="30d", metavar="LIFE", help="how long it works: 30d (default), 2w, 12h; at most 365d"
    )
    add_json_flag(create)
    create.set_defaults(handler=_create)
    listing = actions.add_parser("list", help="the tokens made on this machine (never the tokens themselves)")
    add_json_flag(listing)
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser("revoke", help="stop a token from working (answered 403 from then on)")
    revoke.add_argument("token", metavar="ID_OR_NAME", help="the token's ID or name, from `noizylab token list`")
    revoke.set_defaults(handler=_revoke)


def _store(paths: Paths) -> TokenStore:
    from noizylab_desktop.services.metrics.feature import TOKENS_FILE
    from noizylab_desktop.services.metrics.tokens import TokenStore

    return TokenStore(paths.state_dir / TOKENS_FILE)


def _when(at: float | None) -> str:
    return timestamp(at, missing="never")


def _create(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.services.metrics.tokens import DEFAULT_SCOPES, check_scopes, parse_life

    life_s = parse_life(args.expires)
    asked = [s.strip() for given in args.scope or DEFAULT_SCOPES for s in given.split(",") if s.strip()]
    scopes = check_scopes(asked)
    with closing(_store(paths)) as store:
        info, token = store.create(args.name, scopes, life_s)
    if args.json:
        print_json({**_token_row(info), "token": token}, one_line=True)
    else:
        print(token)
        print(
            f"token {info.name} ({info.id}) for {', '.join(info.scopes)}, until {_when(info.expires_at)}: "
            "shown only this once; send it as `Authorization: Bearer TOKEN`"
        )
    return 0


def _list(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    with closing(_store(paths)) as store:
        tokens = store.list()
    print_listing(
        tokens,
        as_json=args.json,
        row=_token_row,
        line=_token_line,
        empty="no API tokens yet: make one with `noizylab token create`",
    )
    return 0


def _token_row(t: TokenInfo) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "created_at": t.created_at,
        "revoked_at": t.revoked_at,
        "last_used_at": t.last_used_at,
        "scopes": list(t.scopes),
        "expires_at": t.expires_at,
    }


def _token_line(t: TokenInfo) -> str:
    if t.revoked_at:
        life = f"revoked {_when(t.revoked_at)}"
    else:
        life = f"{'expired' if t.expires_at <= time.time() else 'expires'} {_when(t.expires_at)}"
    scopes = ",".join(t.scopes)
    return f"{t.id}  {t.name}  {scopes}  created {_when(t.created_at)}, {life}, last used {_when(t.last_used_at)}"


def _revoke(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    with closing(_store(paths)) as store:
        info = store.revoke(args.token)
    print(f"revoked token {info.name} ({info.id}); requests with it now get 403")
    return 0


def _metrics(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
    from noizylab_desktop._proto import noizylab_metrics_pb2_grpc as mpb_grpc
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.core.settings_schema import parse_section
    from noizylab_desktop.services.metrics.settings import MetricsSettings
    from noizylab_desktop.services.metrics.view import as_json, health, summary

    cluster = run_with_node(
        paths, settings, lambda node: node.call(mpb_grpc.MetricsStub(node.channel).Cluster, pb.Empty())
    )
    assert isinstance(cluster, mpb.ClusterReply)
    thresholds = parse_section(MetricsSettings, settings.section("metrics"))
    if args.json:
        nodes = [{**as_json(n), "health": health(n, thresholds)} for n in cluster.nodes]
        print_json({"summary": summary(cluster), "nodes": nodes})
    else:
        print(summary(cluster))
    return 0
