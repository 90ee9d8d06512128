"""API tokens' scopes and life: what each token may read, for how long, and how tokens from before scopes migrate."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from noizylab_desktop.core.errors import TokenError
from noizylab_desktop.services.metrics.api_routes import SCOPE_OF, api_routes
from noizylab_desktop.services.metrics.tokens import (
    DAY_S,
    LEGACY_SCOPES,
    SCOPES,
    TokenStore,
    Verdict,
    check_scopes,
    digest,
    parse_life,
)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_token_reads_only_its_scopes_and_admin_reads_all(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.sqlite")
    _, metrics = store.create("grafana", ["metrics"])
    _, both = store.create("ci", ["tasks", "sync"])
    _, admin = store.create("me", ["admin"])
    assert store.check(metrics, "metrics") is Verdict.VALID
    assert store.check(metrics, "tasks") is Verdict.OUT_OF_SCOPE
    assert store.check(both, "sync") is Verdict.VALID and store.check(both, "tasks") is Verdict.VALID
    assert store.check(both, "metrics") is Verdict.OUT_OF_SCOPE
    assert all(store.check(admin, scope) is Verdict.VALID for scope in SCOPES)
    assert store.scopes_of(both) == ("tasks", "sync")


def test_a_token_lives_30_days_unless_asked_and_is_refused_once_expired(tmp_path: Path) -> None:
    clock = Clock()
    store = TokenStore(tmp_path / "tokens.sqlite", clock=clock)
    info, default = store.create("grafana")
    assert info.scopes == ("metrics",) and info.expires_at == clock.now + 30 * DAY_S
    short, hours = store.create("ci", life_s=parse_life("12h"))
    assert short.expires_at == clock.now + 12 * 3600
    clock.now += 12 * 3600 - 1
    assert store.check(hours, "metrics") is Verdict.VALID
    clock.now += 1
    assert store.check(hours, "metrics") is Verdict.EXPIRED
    assert store.check(default, "metrics") is Verdict.VALID
    clock.now = info.expires_at
    assert store.check(default, "metrics") is Verdict.EXPIRED
    again, _ = store.create("grafana")  # an expired token's name is free again
    assert again.name == "grafana"


def test_last_use_is_recorded_and_revocation_applies_to_the_next_check(tmp_path: Path) -> None:
    clock = Clock()
    store = TokenStore(tmp_path / "tokens.sqlite", clock=clock)
    info, token = store.create("grafana")
    assert store.list()[0].last_used_at is None
    assert store.check(token, "metrics") is Verdict.VALID
    assert store.list()[0].last_used_at == clock.now
    other = TokenStore(tmp_path / "tokens.sqlite")  # `noizylab token revoke` is another process
    other.revoke("grafana")
    other.close()
    assert store.check(token, "metrics") is Verdict.REVOKED


@pytest.mark.parametrize(
    "text, days", [("30d", 30), ("2w", 14), ("365d", 365), ("1h", 1 / 24), (" 7D ", 7)], ids=lambda v: str(v)
)
def test_lives_are_days_weeks_or_hours(text: str, days: float) -> None:
    assert parse_life(text) == pytest.approx(days * DAY_S)


@pytest.mark.parametrize("text", ["366d", "53w", "0d", "30", "forever", "-1d", "30m"])
def test_a_life_over_a_year_or_unreadable_is_a_one_line_error(text: str) -> None:
    with pytest.raises(TokenError) as raised:
        parse_life(text)
    assert raised.value.message == (
        f"--expires {text!r} is not a life between 1h and 365d: give it as days, weeks or hours (30d, 2w, 12h)"
    )


def test_scopes_are_checked_and_ordered() -> None:
    assert check_scopes(["sync", "metrics", "sync"]) == ("metrics", "sync")
    assert check_scopes([]) == ("metrics",)
    with pytest.raises(TokenError) as raised:
        check_scopes(["metrics", "root"])
    assert raised.value.message == "unknown token scope 'root': choose from metrics, tasks, sync, admin"


def test_tokens_from_before_scopes_keep_what_they_read_for_30_days_from_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "tokens.sqlite"
    with sqlite3.connect(path) as db:  # the table as it was before scopes and expiry
        db.execute(
            "CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash BLOB NOT NULL UNIQUE, "
            "created_at REAL NOT NULL, revoked_at REAL, last_used_at REAL)"
        )
        db.execute("INSERT INTO tokens VALUES ('0a0b0c0d', 'old', ?, 5.0, NULL, 7.0)", (digest("nzl_old"),))
    db.close()
    clock = Clock()
    store = TokenStore(path, clock=clock)
    [old] = store.list()
    assert (old.name, old.created_at, old.last_used_at) == ("old", 5.0, 7.0)
    assert old.scopes == LEGACY_SCOPES and "admin" not in old.scopes
    assert old.expires_at == clock.now + 30 * DAY_S
    assert store.check("nzl_old", "sync") is Verdict.VALID
    assert store.check("nzl_old", "admin") is Verdict.OUT_OF_SCOPE
    store.close()
    clock.now += DAY_S
    assert TokenStore(path, clock=clock).list()[0].expires_at == old.expires_at, "migrated once, not at every open"


def test_every_api_endpoint_has_a_known_scope() -> None:
    # The routes are closures over the feature and touch it only when asked, so a bare object builds them.
    routes = api_routes(cast(Any, object()))
    assert set(routes) == set(SCOPE_OF)
    assert {path: e.scope for path, e in routes.items()} == SCOPE_OF
    assert set(SCOPE_OF.values()) <= set(SCOPES) - {"admin"}
