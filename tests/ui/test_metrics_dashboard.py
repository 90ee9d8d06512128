"""The dashboard under Xvfb: a card per machine with live charts, a peer going down, the tooltip's summary line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from PySide6.QtGui import QPalette

from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.metrics_cards import CHART_S, NodeCard
from noizylab_desktop.ui.metrics_dashboard import Dashboard, MetricsTray
from tests.conftest import NodeProcess
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.menus import action
from tests.ui.waiting import Run, eventually, expect, within

PEER_TIMEOUT_S = 20.0


def names_a_gpu(card: NodeCard) -> bool:
    """Whether the card's figures name a GPU (the machine has one)."""
    return "GPU " in card.figures.text()


def _card(dashboard: Dashboard, name: str) -> NodeCard | None:
    return dashboard.card_named(name)


def test_the_dashboard_shows_both_machines_live_and_a_stopped_one_as_down(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    peer = make_node("laptop").start()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None and app.bridge is not None
            metrics = next(e for e in app.tray.extensions if isinstance(e, MetricsTray))
            code, _ = await app.node.create_invite([])
            online = expect(app.bridge.peer_online)
            await asyncio.to_thread(peer.join, code)
            await within(online, PEER_TIMEOUT_S, "the tray's node to see the laptop online")

            action(app.tray, "Dashboard…").trigger()
            dashboard = metrics.dashboard
            assert dashboard is not None
            await eventually(dashboard.isVisible, 5, "the dashboard window to show")

            def both_live() -> bool:
                cards = [_card(dashboard, "desk"), _card(dashboard, "laptop")]
                return all(c is not None and c.health != "unknown" and c.plotted("cpu_ratio") >= 3 for c in cards)

            await eventually(both_live, PEER_TIMEOUT_S, "both cards with figures and a few seconds of chart")
            desk, laptop = _card(dashboard, "desk"), _card(dashboard, "laptop")
            assert desk is not None and laptop is not None
            assert desk.title.text() == "desk (this machine)" and laptop.title.text() == "laptop"
            assert laptop.health in ("ok", "busy", "warn") and laptop.chart.isVisible()
            # Both nodes run on this machine, so both cards show its memory as psutil reads it.
            total_gb = f"of {psutil.virtual_memory().total / 1e9:.1f} GB"
            assert total_gb in desk.figures.text() and total_gb in laptop.figures.text()
            assert f"of {psutil.cpu_count()} cores" in laptop.figures.text()
            assert dashboard.headline.text().startswith("2 of 2 nodes up · desk: CPU ")
            tooltip = app.tray.icon.toolTip().splitlines()
            assert tooltip[0] == "NOIZYLAB — 1 of 1 peer online" and tooltip[1].startswith("2 of 2 nodes up")

            # One palette with the window (light here), the same five minutes on every card, a legend above the chart
            # naming only what this machine has (no GPU here), and a placeholder where no alert came yet.
            base = dashboard.palette().color(QPalette.ColorRole.Base)
            assert base.lightness() > 200
            for card in (desk, laptop):
                assert card.chart.backgroundBrush().color() == base
                assert card.chart.getViewBox().viewRange()[0] == pytest.approx([-CHART_S, 0])
                assert not card.legend.geometry().intersects(card.chart.geometry())
                assert "CPU" in card.legend.text() and "memory" in card.legend.text()
                assert ("GPU" in card.legend.text()) == bool(names_a_gpu(card))
            fresh = Dashboard(metrics.feature)
            assert [fresh.alerts.item(i).text() for i in range(fresh.alerts.count())] == ["No alerts yet"]
            fresh.add_alert("laptop is down")
            assert fresh.alerts.count() == 1 and fresh.alerts.item(0).text().endswith("laptop is down")
            fresh.deleteLater()
            keep(dashboard, "dashboard")

            app.tray.menu.aboutToShow.emit()  # the menu is rebuilt as it opens
            row = next(a for a in app.tray.menu.actions() if a.text().startswith("laptop"))
            assert row.menu() is not None
            figures = [a.text() for a in row.menu().actions() if a.text().startswith("CPU ")]
            assert len(figures) == 1 and ", memory " in figures[0] and ", disk " in figures[0]

            await asyncio.to_thread(peer.stop)
            await eventually(lambda: laptop.health == "down", PEER_TIMEOUT_S, "the laptop's card to turn red")
            assert laptop.state.text() == "● down"
            assert not laptop.figures.isVisibleTo(dashboard) and not laptop.chart.isVisibleTo(dashboard)
            assert laptop.styleSheet() == "#card { border: 2px solid #cf222e; border-radius: 8px; }"
            alerts = [dashboard.alerts.item(i).text() for i in range(dashboard.alerts.count())]
            assert any(a.endswith("laptop is down") for a in alerts), alerts
            await eventually(
                lambda: app.tray is not None and "laptop: down" in app.tray.icon.toolTip(), 5, "the tooltip to follow"
            )

    run(scenario())
