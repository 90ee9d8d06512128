"""The list of features the node runs and the commands they add; each feature adds one line to each list.

Imports happen inside the functions so that ``noizylab --help`` and plain commands stay fast, and a feature's heavy
dependencies load only when a node starts or its own command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from noizylab_desktop.services.feature import FeatureFactory

# ``register(sub)`` adds a feature's subcommands; each subparser sets ``handler=`` with ``set_defaults``.
Registrar = Callable[["argparse._SubParsersAction[Any]"], None]


def feature_factories() -> list[FeatureFactory]:
    """Every feature the node builds, in start order (stopped in reverse)."""
    factories: list[FeatureFactory] = []
    # features: one line each, e.g.
    # from noizylab_desktop.services.tasks.feature import TasksFeature; factories.append(TasksFeature)
    from noizylab_desktop.services.tasks.feature import TasksFeature

    factories.append(TasksFeature)
    from noizylab_desktop.services.metrics.feature import MetricsFeature

    factories.append(MetricsFeature)
    from noizylab_desktop.services.clipboard.feature import ClipboardFeature

    factories.append(ClipboardFeature)
    from noizylab_desktop.services.display.feature import DisplayFeature

    factories.append(DisplayFeature)
    return factories


def cli_registrars() -> list[Registrar]:
    """Every feature's command-line registration."""
    from noizylab_desktop import cli_permissions, cli_routing, cli_winrm

    registrars: list[Registrar] = [cli_permissions.register]
    registrars.append(cli_winrm.register)
    registrars.append(cli_routing.register)
    # commands: one line each, e.g. from noizylab_desktop import cli_tasks; registrars.append(cli_tasks.register)
    from noizylab_desktop import cli_tasks

    registrars.append(cli_tasks.register)
    from noizylab_desktop import cli_metrics

    registrars.append(cli_metrics.register)
    from noizylab_desktop import cli_clipboard

    registrars.append(cli_clipboard.register)
    from noizylab_desktop import cli_display

    registrars.append(cli_display.register)
    return registrars
