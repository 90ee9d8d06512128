"""The command line's import rules: each feature's commands reach only the kernel and their own feature, and building
the grammar loads nothing heavy (so ``noizylab --help`` is fast). The layers' rules are in test_import_rules.py."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import noizylab_desktop
from noizylab_desktop.node.features import FEATURES

PACKAGE = Path(noizylab_desktop.__file__).parent
# The command line's own helpers, which any command may use.
CLI_HELPERS = ("noizylab_desktop.cli.output", "noizylab_desktop.cli.client")
# `noizylab view PEER` opens the viewer's window: the one way from a feature's commands into ui/.
WINDOWS = {"noizylab_desktop.cli.display": ("noizylab_desktop.ui.display_viewer",)}


def imported(path: Path) -> set[str]:
    """What ``path`` imports from noizylab_desktop (at its top, inside functions or for type checking only), each
    as a dotted name: ``from a.b import c`` gives ``a.b.c``, whether ``c`` is a module or a name in one."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("noizylab_desktop.")}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_each_feature_command_module_imports_only_the_kernel_its_own_feature_and_the_cli_helpers() -> None:
    problems = []
    for ref in (ref for spec in FEATURES for ref in spec.cli):
        module = "noizylab_desktop." + ref.split(":")[0]
        feature = module.rsplit(".", 1)[1]
        allowed = (
            "noizylab_desktop._proto",
            "noizylab_desktop.core",
            f"noizylab_desktop.services.{feature}",
            *CLI_HELPERS,
            *WINDOWS.get(module, ()),
        )
        path = PACKAGE / "cli" / f"{feature}.py"
        for name in sorted(imported(path)):
            # `a.b.c` is allowed when `a.b.c` is (a module) or `a.b` is (a name in an allowed module).
            if not within(name, allowed) and not within(name.rsplit(".", 1)[0], allowed):
                problems.append(f"{module} imports {name}")
    assert problems == []


def test_the_cli_helpers_import_only_the_kernel() -> None:
    for module in CLI_HELPERS:
        path = PACKAGE / "cli" / f"{module.rsplit('.', 1)[1]}.py"
        assert {n for n in imported(path) if not within(n, ("noizylab_desktop.core",))} == set(), module


SCRIPT = """
import sys
from noizylab_desktop.cli.main import build_parser
build_parser()
heavy = ("grpc", "cryptography", "keyring", "PySide6", "av", "noizylab_desktop.core.local_client",
         "noizylab_desktop.node.launcher", "noizylab_desktop.ui")
print(sorted(name for name in sys.modules if name.split(".")[0] in heavy or name in heavy))
"""


def test_building_the_grammar_loads_no_grpc_keychain_qt_or_node() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
