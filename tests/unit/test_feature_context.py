"""Each feature is built from a small ``NodeContext`` made here from real kernel parts, without a ``Node``."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.events import EventBus
from noizylab_desktop.core.feature import Feature, FeatureFactory, Figure
from noizylab_desktop.core.identity import load_or_create
from noizylab_desktop.core.permissions import Permissions
from noizylab_desktop.core.registry import Registry
from noizylab_desktop.core.secrets import KeyringStore, Vault
from noizylab_desktop.core.sessions import Sessions
from noizylab_desktop.core.supervisor import Supervisor
from noizylab_desktop.core.totp import Totp
from noizylab_desktop.core.trust import TrustStore
from noizylab_desktop.node.features import FEATURES, FeatureSpec, load
from tests.conftest import within, write_config


class Published:
    """What the features under test told their context: the ports they bound."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[tuple[NodeContext, Published]]:
    write_config(tmp_path / "home", "solo")
    paths = Paths.resolve(tmp_path / "home")
    paths.ensure()
    settings = load_settings(paths)
    identity = load_or_create(paths, Vault(KeyringStore(settings.keychain_id), paths.vault_dir), settings.name)
    bus = EventBus()
    trust = TrustStore(paths.trust_db, identity.cert_pem)
    permissions = Permissions(paths.state_dir / "permissions.sqlite", bus)
    published = Published()
    ctx = NodeContext(
        settings=settings,
        paths=paths,
        identity=identity,
        trust=trust,
        registry=Registry(identity, trust, bus, lambda: 0, settings.heartbeat_s, settings.heartbeat_misses),
        permissions=permissions,
        bus=bus,
        supervisor=Supervisor(bus),
        sessions=Sessions(),
        totp=Totp(KeyringStore(settings.keychain_id), paths.state_dir),
        publish_port=published.ports.__setitem__,
        figures=lambda: [Figure("noizylab_test_figure", "A figure the test's node reports.", 1.0)],
        info=lambda: pb.NodeInfo(id=identity.node_id, name=settings.name),
        load=lambda: 0.0,
        uptime_s=lambda: 0.0,
    )
    yield ctx, published
    trust.close()
    permissions.close()


NODE_PARTS = [spec for spec in FEATURES if spec.node is not None]


async def started(ctx: NodeContext, spec: FeatureSpec) -> Feature:
    assert spec.node is not None
    feature = cast(FeatureFactory, load(spec.node))(ctx)
    assert feature.name == spec.name
    await within(feature.start(), 60, f"{feature.name} to start")
    return feature


async def stopped(ctx: NodeContext, feature: Feature) -> None:
    await within(feature.stop(), 60, f"{feature.name} to stop")
    await ctx.supervisor.stop()


@pytest.mark.parametrize("spec", NODE_PARTS, ids=[spec.name for spec in NODE_PARTS])
def test_a_feature_is_built_started_and_stopped_from_a_context_alone(
    kernel: tuple[NodeContext, Published], spec: FeatureSpec
) -> None:
    ctx, _ = kernel

    async def go() -> list[Figure]:
        feature = await started(ctx, spec)
        try:
            return list(feature.figures())
        finally:
            await stopped(ctx, feature)

    figures = asyncio.run(go())
    assert all(f.name.startswith("noizylab_") for f in figures)


def test_sync_publishes_its_sftp_port_through_the_context(kernel: tuple[NodeContext, Published]) -> None:
    ctx, published = kernel
    spec = next(s for s in FEATURES if s.name == "sync")

    async def go() -> None:
        feature = await started(ctx, spec)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", published.ports["sftp"])
            writer.write(b"SSH-2.0-test\r\n")  # an SSH server answers a client's version with its own
            assert await within(reader.readexactly(4), 10, "the SSH server's version") == b"SSH-"
            writer.close()
            await writer.wait_closed()
        finally:
            await stopped(ctx, feature)

    asyncio.run(go())


def test_metrics_exports_the_figures_the_context_gives_and_publishes_its_http_port(
    tmp_path: Path, kernel: tuple[NodeContext, Published]
) -> None:
    ctx, published = kernel
    ctx = replace(ctx, settings=ctx.settings.with_section("metrics", {"public_metrics": True}))
    spec = next(s for s in FEATURES if s.name == "metrics")

    async def go() -> str:
        feature = await started(ctx, spec)
        try:
            url = f"http://127.0.0.1:{published.ports['http']}/metrics"
            return await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
        finally:
            await stopped(ctx, feature)

    assert "noizylab_test_figure 1.0" in asyncio.run(go())


def test_update_holds_back_while_the_figures_the_context_gives_show_tasks_or_remote_desktops(
    kernel: tuple[NodeContext, Published],
) -> None:
    from noizylab_desktop.services.update.feature import UpdateFeature

    ctx, _ = kernel
    figures: list[Figure] = []
    update = UpdateFeature(replace(ctx, figures=lambda: list(figures)))
    assert not update.busy()
    figures += [
        Figure("noizylab_tasks_running", "Tasks running on this node", 2.0),
        Figure("noizylab_display_sessions", "Viewing sessions open now", 1.0),
    ]
    assert update.busy().reason == "2 tasks running, 1 remote-desktop session open"
    figures[0] = Figure("noizylab_tasks_running", "Tasks running on this node", 0.0)
    assert update.busy().reason == "1 remote-desktop session open"


@pytest.mark.parametrize("name", ["tasks", "display"])
def test_the_figures_update_waits_on_are_the_ones_tasks_and_display_export(
    kernel: tuple[NodeContext, Published], name: str
) -> None:
    from noizylab_desktop.services.update.service import DISPLAY_SESSIONS, TASKS_RUNNING

    ctx, _ = kernel
    spec = next(s for s in FEATURES if s.name == name)

    async def go() -> set[str]:
        feature = await started(ctx, spec)
        try:
            return {f.name for f in feature.figures()}
        finally:
            await stopped(ctx, feature)

    assert {"tasks": TASKS_RUNNING, "display": DISPLAY_SESSIONS}[name] in asyncio.run(go())
