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
    factories.append(_sync_feature())
    return factories


def cli_registrars() -> list[Registrar]:
    """Every feature's command-line registration."""
    from noizylab_desktop import cli_permissions

    registrars: list[Registrar] = [cli_permissions.register]
    # commands: one line each, e.g. from noizylab_desktop import cli_tasks; registrars.append(cli_tasks.register)
    registrars.append(_sync_cli())
    return registrars


def _sync_feature() -> FeatureFactory:
    from noizylab_desktop.services.sync.feature import SyncFeature

    return SyncFeature


def _sync_cli() -> Registrar:
    from noizylab_desktop import cli_sync

    return cli_sync.register
