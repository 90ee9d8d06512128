"""The tray's metrics part: ``Dashboard…`` (a card per machine with live charts), notifications, a tooltip line.

It listens to ``Bridge.any_event``: each ``MetricsUpdated`` refreshes the open dashboard and the tooltip from the
feature's latest cluster view; each ``MetricsAlert`` (a node down, a disk nearly full, a GPU hot) becomes a tray
notification and a row in the dashboard's list of recent alerts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QListWidget, QMenu, QSystemTrayIcon, QVBoxLayout, QWidget

from noizylab_desktop.core.events import Event
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.services.metrics.events import MetricsAlert, MetricsUpdated
from noizylab_desktop.services.metrics.view import alerts, health, node_line, summary
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.extensions import TrayPart
from noizylab_desktop.ui.icons import app_icon
from noizylab_desktop.ui.notify import Notifier

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.services.metrics.feature import MetricsFeature
    from noizylab_desktop.ui.metrics_cards import NodeCard

COLUMNS = 3
MAX_ALERTS = 50
NO_ALERTS = "No alerts yet"


class Dashboard(QWidget):
    """Every machine of the grid at a glance."""

    def __init__(self, feature: MetricsFeature) -> None:
        super().__init__()
        self.feature = feature
        self.setWindowTitle("NOIZYLAB — Dashboard")
        self.setWindowIcon(app_icon(False))
        self.resize(980, 560)
        layout = QVBoxLayout(self)
        self.headline = QLabel()
        self.headline.setWordWrap(True)
        layout.addWidget(self.headline)
        self.grid = QGridLayout()
        for column in range(COLUMNS):
            self.grid.setColumnStretch(column, 1)  # cards of one width, so their charts' time axes line up
        layout.addLayout(self.grid)
        layout.addWidget(QLabel("Recent alerts"))
        self.alerts = QListWidget()
        self.alerts.setMaximumHeight(110)
        self.alerts.addItem(NO_ALERTS)
        self.alerts.item(0).setFlags(Qt.ItemFlag.NoItemFlags)  # greyed: a placeholder, not an alert
        layout.addWidget(self.alerts)
        self.cards: dict[str, NodeCard] = {}

    def refresh(self) -> None:
        """Redraw from the feature's latest cluster view."""
        # pyqtgraph (and numpy) load with the first dashboard, not with every tray start.
        from noizylab_desktop.ui.metrics_cards import CHART_S, NodeCard

        cluster = self.feature.cluster()
        self.headline.setText(summary(cluster))
        wanted = [n.id for n in cluster.nodes]
        for node_id in [k for k in self.cards if k not in wanted]:
            self.cards.pop(node_id).deleteLater()
        since = time.time() - CHART_S
        for index, node in enumerate(cluster.nodes):
            card = self.cards.get(node.id)
            if card is None:
                card = self.cards[node.id] = NodeCard(node.id, self)
            self.grid.addWidget(card, index // COLUMNS, index % COLUMNS)
            card.show_node(node, health(node, self.feature.settings), self.feature.history.since(node.id, since))

    def add_alert(self, message: str) -> None:
        if self.alerts.count() == 1 and self.alerts.item(0).text() == NO_ALERTS:
            self.alerts.takeItem(0)
        self.alerts.insertItem(0, f"{time.strftime('%H:%M:%S')}  {message}")
        while self.alerts.count() > MAX_ALERTS:
            self.alerts.takeItem(self.alerts.count() - 1)

    def card_named(self, name: str) -> NodeCard | None:
        """The card whose title starts with ``name``."""
        return next((c for c in self.cards.values() if c.title.text().split(" (")[0] == name), None)


class MetricsTray(TrayPart):
    """The metrics feature's tray part."""

    def __init__(self, feature: MetricsFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self.feature = feature
        self.dashboard: Dashboard | None = None
        self.icon: QSystemTrayIcon | None = None
        self.notifier = Notifier()
        self._retooltip: Callable[[], None] = lambda: None
        self._last_line = ""
        self._primed = False
        bridge.any_event.connect(self._on_event)

    # ---------------------------------------------------------------- TrayPart

    def add_actions(self, menu: QMenu) -> None:
        menu.addAction("Dashboard…").triggered.connect(self.open_dashboard)

    def add_peer_actions(self, menu: QMenu, peer: PeerState) -> None:
        """The peer's figures in one line (``CPU 12%, memory 41%, disk 73%``), when it has sent some."""
        found = next((n for n in self.feature.cluster().nodes if n.id == peer.peer.node_id), None)
        if found is not None and found.online and found.HasField("metrics"):
            menu.addAction(node_line(found).removeprefix(f"{found.name}: ")).setEnabled(False)

    def close(self) -> None:
        if self.dashboard is not None:
            self.dashboard.close()

    def attach(self, icon: QSystemTrayIcon, retooltip: Callable[[], None]) -> None:
        """The tray's icon (for notifications) and its way to rebuild the tooltip."""
        self.icon = icon
        self.notifier.icon = icon
        self._retooltip = retooltip

    def tooltip_line(self) -> str:
        """The grid's health in one line, below the tray's own."""
        if not self.feature.cluster().nodes:
            return ""
        return summary(self.feature.cluster())

    # ---------------------------------------------------------------- behaviour

    def open_dashboard(self) -> None:
        """Show the dashboard (one window, raised if already open)."""
        if self.dashboard is None:
            self.dashboard = Dashboard(self.feature)
        # Peers are pulled slowly while nobody looks: pull them now; their fresh figures come with MetricsUpdated.
        self.feature.look_soon()
        self.dashboard.refresh()
        self.dashboard.show()
        self.dashboard.raise_()
        self.dashboard.activateWindow()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MetricsUpdated):
            if not self._primed:
                # Alerts raised during the node's start came before this tray existed: tell them once now.
                self._primed = True
                for alert in alerts(self.feature.cluster(), self.feature.settings):
                    if alert.what != "down":
                        self._notify(alert.message)
            line = self.tooltip_line()
            if line != self._last_line:
                self._last_line = line
                self._retooltip()
            if self.dashboard is not None and self.dashboard.isVisible():
                self.feature.demand.look()  # an open dashboard keeps the peers' figures coming each second
                self.dashboard.refresh()
        elif isinstance(event, MetricsAlert):
            self._primed = True  # the sampler is running with this tray listening: its alerts arrive as events
            self._notify(event.message)

    def _notify(self, message: str) -> None:
        """A tray notification, and a row in the dashboard's recent alerts."""
        if self.dashboard is None:
            self.dashboard = Dashboard(self.feature)  # keeps the alert list even before it is first opened
        self.dashboard.add_alert(message)
        self.notifier.notify("NOIZYLAB", message, warning=True)
