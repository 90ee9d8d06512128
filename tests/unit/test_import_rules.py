"""The layers' import rules (docs/architecture.md), read from the source on every run so they stay true.

ui/ and cli/ → node/ (the composition root) → features (services/<name>/) → core/ (the kernel). Imports under
``if TYPE_CHECKING:`` never run and are not counted; imports inside functions are.
"""

from __future__ import annotations

import pytest

from noizylab_desktop.node.features import FEATURES
from tests.importgraph import Module, cycles, layer, modules

MODULES = modules()
OWN = "noizylab_desktop"
QT = {"PySide6", "shiboken6", "qasync", "pyqtgraph"}
FEATURE_LAYERS = {f"services.{spec.name}" for spec in FEATURES if spec.node is not None}
SERVICE_LAYERS = {layer(name) for name in MODULES if layer(name).startswith("services.")}
LIBRARY_LAYERS = SERVICE_LAYERS - FEATURE_LAYERS  # shared by features (routing's advisor) or CLI-only (winrm)


def own_imports(module: Module) -> list[tuple[str, str]]:
    """(imported module, its layer) for every import of this package's own modules."""
    return [(name, layer(name)) for name in sorted(module.imports) if name == OWN or name.startswith(OWN + ".")]


def broken(allowed: set[str], where: str) -> list[str]:
    """``module -> import`` for each import from a module in layer ``where`` into a layer not in ``allowed``."""
    return [
        f"{module.name} -> {name}"
        for module in MODULES.values()
        if layer(module.name) == where
        for name, target in own_imports(module)
        if target not in allowed | {where}
    ]


BASE = {"package", "_proto", "core"}


def test_the_graph_sees_every_layer() -> None:
    """The rules below would pass on an empty graph: make sure the reader found the package as it is."""
    layers = {layer(name) for name in MODULES}
    assert {"core", "node", "cli", "ui"} <= layers
    assert FEATURE_LAYERS and FEATURE_LAYERS <= layers
    assert f"{OWN}.core.transport" in MODULES[f"{OWN}.node.node"].imports
    assert "PySide6" in MODULES[f"{OWN}.ui.tray"].imports


def test_the_kernel_imports_only_itself() -> None:
    assert broken({"package", "_proto"}, "core") == []


@pytest.mark.parametrize("feature", sorted(FEATURE_LAYERS))
def test_a_feature_imports_the_kernel_and_shared_libraries_but_no_other_feature(feature: str) -> None:
    assert broken(BASE | LIBRARY_LAYERS, feature) == []


@pytest.mark.parametrize("library", sorted(LIBRARY_LAYERS))
def test_a_shared_library_imports_only_the_kernel(library: str) -> None:
    assert broken(BASE, library) == []


def test_the_composition_root_imports_no_command_line_or_ui() -> None:
    assert broken(BASE | SERVICE_LAYERS, "node") == []


def test_the_command_line_reaches_into_the_ui_only_to_start_it() -> None:
    # ``noizylab`` with no command starts the tray, and ``noizylab view`` opens the viewer window: the only two.
    starts = {f"{OWN}.ui.app", f"{OWN}.ui.display_viewer"}
    assert [b for b in broken(BASE | SERVICE_LAYERS | {"node"}, "cli") if b.split(" -> ")[1] not in starts] == []


def test_the_python_api_uses_the_kernel_and_the_features_only() -> None:
    assert broken(BASE | SERVICE_LAYERS, "grid") == []


def test_the_ui_never_imports_the_command_line() -> None:
    assert broken(BASE | SERVICE_LAYERS | {"node"}, "ui") == []


def test_qt_is_imported_only_in_the_ui() -> None:
    outside = [
        f"{module.name} -> {name}"
        for module in MODULES.values()
        if layer(module.name) != "ui"
        for name in sorted(module.imports & QT)
    ]
    assert outside == []


def test_no_module_imports_itself_back_through_others() -> None:
    graph = {name: {i for i in module.imports if i in MODULES} for name, module in MODULES.items()}
    assert cycles(graph) == []
