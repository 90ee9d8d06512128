"""Token scopes and life on a real node: every JSON endpoint answers only tokens holding its scope."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from noizylab_desktop.services.metrics.api_routes import api_routes
from tests.conftest import NodeProcess
from tests.integration.test_metrics import get

# What each endpoint needs, written out here on purpose: an endpoint added without a row fails this test.
EXPECTED = {
    "/metrics": "metrics",
    "/api/v1/nodes": "metrics",
    "/api/v1/metrics": "metrics",
    "/api/v1/cluster": "metrics",
    "/api/v1/history": "metrics",
    "/api/v1/figures": "metrics",
    "/api/v1/tasks": "tasks",
    "/api/v1/sync": "sync",
}


def token(node: NodeProcess, *args: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(node.cli("token", "create", "--json", *args).stdout))


def test_every_endpoint_answers_its_own_scope_and_admin_only(make_node: Callable[[str], NodeProcess]) -> None:
    endpoints = {"/metrics", *(f"/api/v1/{path}" for path in api_routes(cast(Any, object())))}
    assert endpoints == set(EXPECTED), "every endpoint is classified here by the scope it needs"
    node = make_node("alpha").start()
    holders = {scope: token(node, "--scope", scope, "--name", scope)["token"] for scope in ("metrics", "tasks", "sync")}
    admin = token(node, "--scope", "admin")["token"]
    for path, needed in EXPECTED.items():
        assert get(node, path, admin)[0] == 200, path
        for scope, held in holders.items():
            status, body, _ = get(node, path, held)
            if scope == needed:
                assert status == 200, (path, scope, body)
            else:
                assert status == 403, (path, scope, body)
                if path != "/metrics":
                    assert json.loads(body)["error"] == (
                        f"this endpoint needs the {needed!r} scope and this token has {scope}: "
                        f"create one with `noizylab token create --scope {needed}`"
                    )


def test_token_create_takes_scopes_and_a_life_and_list_shows_them(make_node: Callable[[str], NodeProcess]) -> None:
    node = make_node("alpha").start()
    made = token(node, "--scope", "tasks,sync", "--scope", "metrics", "--expires", "2w", "--name", "ci")
    assert made["scopes"] == ["metrics", "tasks", "sync"]
    assert made["expires_at"] - made["created_at"] == 14 * 86400
    default = token(node, "--name", "grafana")
    assert default["scopes"] == ["metrics"] and default["expires_at"] - default["created_at"] == 30 * 86400
    assert get(node, "/api/v1/tasks", made["token"])[0] == 200
    listed = {t["name"]: t for t in node.json("token", "list")}
    assert listed["ci"]["last_used_at"] is not None and listed["grafana"]["last_used_at"] is None
    assert listed["ci"]["scopes"] == ["metrics", "tasks", "sync"] and "token" not in listed["ci"]
    line = next(line for line in node.cli("token", "list").stdout.splitlines() if " ci " in line)
    assert "metrics,tasks,sync" in line and "expires " in line and "last used never" not in line

    for args, message in (
        (("--expires", "400d"), "--expires '400d' is not a life between 1h and 365d"),
        (("--scope", "root"), "unknown token scope 'root': choose from metrics, tasks, sync, admin"),
    ):
        refused = node.cli("token", "create", *args, check=False)
        assert refused.returncode == 1 and refused.stderr.startswith(f"noizylab: error: {message}"), refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

    # Revocation applies to the very next request, with nothing cached by the server.
    assert get(node, "/api/v1/nodes", default["token"])[0] == 200
    node.cli("token", "revoke", "grafana")
    assert get(node, "/api/v1/nodes", default["token"])[0] == 403
