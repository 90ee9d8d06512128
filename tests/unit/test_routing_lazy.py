"""LiteLLM loads only when the advisor is used, and never fetches its price list from the network."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import asyncio, os, sys
from noizylab_desktop.services.routing import AdvisorSettings, warm_up
import noizylab_desktop.cli.main, noizylab_desktop.node.features
noizylab_desktop.cli.main.build_parser()
assert "litellm" not in sys.modules, "imported by the routing package or the command line"
asyncio.run(warm_up(AdvisorSettings(enabled=False, model="openai/m")))
assert "litellm" not in sys.modules, "imported although the advisor is off"
os.environ.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
asyncio.run(warm_up(AdvisorSettings(enabled=True, model="openai/m")))
assert "litellm" in sys.modules
assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
print("ok")
"""


def test_litellm_is_imported_only_when_the_advisor_is_on_and_with_the_local_price_list() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
