"""One machine's card on the dashboard: name, health in colour and words, headline figures and live charts.

The charts take the window's palette (light or dark as the system's theme is), every card's x axis spans the same
five minutes, and the legend is a line above the chart naming only the curves that machine has (no GPU, no GPU).
"""

from __future__ import annotations

import os

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from noizylab_desktop._proto import noizylab_metrics_pb2 as mpb
from noizylab_desktop.core.words import plural
from noizylab_desktop.services.metrics.history import Point, fullest_disk
from noizylab_desktop.services.metrics.view import Health

# pyqtgraph picks its Qt binding at import; the app is PySide6 only.
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
import pyqtgraph as pg  # noqa: E402

COLOURS: dict[Health, str] = {
    "ok": "#2ea043",
    "busy": "#d29922",
    "warn": "#db6d28",
    "down": "#cf222e",
    "unknown": "#8c959f",
}
WORDS: dict[Health, str] = {
    "ok": "healthy",
    "busy": "busy",
    "warn": "needs attention",
    "down": "down",
    "unknown": "waiting for figures",
}
CHART_S = 300  # the charts show the last five minutes; the API keeps the hour
CURVES = (
    ("CPU", "cpu_ratio", "#58a6ff"),
    ("memory", "memory_used_ratio", "#bc8cff"),
    ("GPU", "gpu_utilization_ratio", "#3fb950"),
)


def _rate(value: float) -> str:
    for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
        if value < 1000 or unit == "GB/s":
            return f"{value:.0f} {unit}" if unit == "B/s" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB/s"


def figures_text(m: mpb.NodeMetrics) -> str:
    """The card's figures in words, one per line."""
    memory = m.memory_used_bytes / m.memory_total_bytes if m.memory_total_bytes else 0.0
    rx = sum(n.receive_bytes_per_second for n in m.network if n.device != "lo")
    tx = sum(n.transmit_bytes_per_second for n in m.network if n.device != "lo")
    lines = [
        f"CPU {m.cpu_ratio:.0%} of {plural(m.cpu_count, 'core')} · load {m.load1:.2f}",
        f"memory {memory:.0%} of {m.memory_total_bytes / 1e9:.1f} GB",
        f"disk {fullest_disk(m):.0%} full (fullest)",
        f"network ↓ {_rate(rx)} ↑ {_rate(tx)}",
    ]
    for gpu in m.gpus:
        lines.append(
            f"GPU {gpu.index} {gpu.utilization_ratio:.0%} · {gpu.temperature_celsius:.0f} °C · {gpu.power_watts:.0f} W"
        )
    if m.top_processes:
        top = m.top_processes[0]
        lines.append(f"busiest: {top.name} ({top.cpu_ratio:.0%} of a core)")
    return "\n".join(lines)


class NodeCard(QFrame):
    """A machine's card; ``show_node`` updates it from the latest cluster view and history."""

    def __init__(self, node_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.node_id = node_id
        self.health: Health = "unknown"
        self.setObjectName("card")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumWidth(300)
        layout = QVBoxLayout(self)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold; font-size: 14px")
        self.state = QLabel()
        self.figures = QLabel()
        self.figures.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.chart = pg.PlotWidget()
        self.chart.setMinimumHeight(120)
        # The same span on every card (not each card's own data), so the cards line up in time.
        self.chart.setXRange(-CHART_S, 0, padding=0)
        self.chart.setYRange(0, 100, padding=0)
        self.chart.setMouseEnabled(False, False)
        self.chart.enableAutoRange(enable=False)
        self.chart.hideButtons()
        self.chart.getPlotItem().setLabel("left", "%")
        self.chart.getPlotItem().setLabel("bottom", "seconds ago")
        self.curves = {key: self.chart.plot([], [], pen=pg.mkPen(colour, width=2)) for _, key, colour in CURVES}
        self.follow_palette()
        for widget in (self.title, self.state, self.figures, self.legend, self.chart):
            layout.addWidget(widget)

    def follow_palette(self) -> None:
        """Chart colours from the window's palette: its base behind the curves, its text for the axes."""
        palette = self.palette()
        self.chart.setBackground(palette.color(QPalette.ColorRole.Base))
        text = palette.color(QPalette.ColorRole.Text)
        for side in ("left", "bottom"):
            axis = self.chart.getPlotItem().getAxis(side)
            axis.setPen(pg.mkPen(text))
            axis.setTextPen(pg.mkPen(text))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.PaletteChange:  # the system switched between light and dark
            self.follow_palette()
        super().changeEvent(event)

    def _legend_for(self, has_gpu: bool) -> str:
        shown = [(label, colour) for label, key, colour in CURVES if has_gpu or key != "gpu_utilization_ratio"]
        return " ".join(f'<span style="color:{colour}">●</span> {label}' for label, colour in shown)

    def show_node(self, node: mpb.ClusterNode, health: Health, points: list[Point]) -> None:
        """Show ``node`` as it is now: down nodes lose their figures and charts, never show old numbers."""
        self.health = health
        colour = COLOURS[health]
        self.setStyleSheet(f"#card {{ border: 2px solid {colour}; border-radius: 8px; }}")
        self.title.setText(f"{node.name} (this machine)" if node.self else node.name)
        rtt = f" · {node.rtt_seconds * 1000:.0f} ms" if node.online and not node.self else ""
        self.state.setText(f"● {WORDS[health]}{rtt}")
        self.state.setStyleSheet(f"color: {colour}")
        has_figures = node.online and node.HasField("metrics")
        self.figures.setText(figures_text(node.metrics) if has_figures else "")
        self.figures.setVisible(has_figures)
        self.chart.setVisible(has_figures)
        self.legend.setVisible(has_figures)
        self.legend.setText(self._legend_for(has_figures and bool(node.metrics.gpus)))
        if has_figures and points:
            now = points[-1].at_unix_seconds
            recent = [p for p in points if now - p.at_unix_seconds <= CHART_S]
            ages = [p.at_unix_seconds - now for p in recent]
            for _, key, _ in CURVES:
                if key == "gpu_utilization_ratio" and not node.metrics.gpus:
                    self.curves[key].setData([], [])
                    continue
                self.curves[key].setData(ages, [getattr(p, key) * 100 for p in recent])

    def plotted(self, key: str) -> int:
        """How many points the ``key`` curve shows (for tests and accessibility checks)."""
        data = self.curves[key].getData()[0]
        return 0 if data is None else len(data)
