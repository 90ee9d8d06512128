"""``noizylab advisor ...``: turning the AI advisor on and off, its API key in the keychain, and a live check."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

from tests.conftest import NOIZYLAB
from tests.unit.routing_llm_server import llm_server


def advisor(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOIZYLAB, "--home", str(home), "advisor", *args], input=stdin, capture_output=True, text=True, timeout=90
    )


def tasks_table(home: Path) -> dict[str, object]:
    return dict(tomllib.loads((home / "config.toml").read_text()).get("tasks", {}))


def test_on_key_check_off_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert advisor(home, "show").stdout == (
        "the AI advisor is off: turn it on with `noizylab advisor on --model MODEL`\n"
    )
    with llm_server() as (base, script):
        on = advisor(home, "on", "--model", "openai/grid-advisor", "--api-base", base, "--timeout", "5")
        assert on.returncode == 0, on.stderr
        assert tasks_table(home) == {
            "advisor_enabled": True,
            "advisor_model": "openai/grid-advisor",
            "advisor_api_base": base,
            "advisor_timeout_s": 5.0,
        }
        key = advisor(home, "key", "--stdin", stdin="sk-from-the-keychain\n")
        assert (key.returncode, key.stdout) == (0, "stored the advisor's API key in the keychain\n")
        assert "sk-from-the-keychain" not in (home / "config.toml").read_text()
        assert json.loads(advisor(home, "show", "--json").stdout)["api_key_stored"] is True

        script.content = json.dumps({"node": "gpu-box", "reason": "it has the GPU for rendering"})
        check = advisor(home, "check")
        assert check.returncode == 0, check.stderr
        assert check.stdout.startswith("AI advisor (openai/grid-advisor, ")
        assert check.stdout.endswith("chose gpu-box: it has the GPU for rendering\n")
        assert script.headers[-1]["authorization"] == "Bearer sk-from-the-keychain"

        script.content = "Sure! I think gpu-box."
        garbage = advisor(home, "check")
        assert (garbage.returncode, garbage.stderr) == (
            1,
            "noizylab: error: the advisor (openai/grid-advisor) cannot be used: "
            "its reply was not JSON ('Sure! I think gpu-box.')\n",
        )

    off = advisor(home, "off")
    assert off.stdout == "the AI advisor is off: the deterministic scheduler routes every task\n"
    assert tasks_table(home)["advisor_enabled"] is False
    assert tasks_table(home)["advisor_model"] == "openai/grid-advisor"  # kept for the next `advisor on`
    assert advisor(home, "key", "--delete").returncode == 0
    assert json.loads(advisor(home, "show", "--json").stdout)["api_key_stored"] is False


def test_bad_settings_are_refused_in_one_line_and_nothing_is_saved(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = advisor(home, "on", "--model", "ollama_chat/llama3.2", "--api-base", "localhost:11434")
    assert (bad.returncode, bad.stderr) == (
        1,
        "noizylab: error: tasks.advisor_api_base must be an http:// or https:// address, not 'localhost:11434'\n",
    )
    assert tasks_table(home) == {}
    slow = advisor(home, "on", "--model", "ollama_chat/llama3.2", "--timeout", "0")
    assert slow.returncode == 1 and slow.stderr.count("\n") == 1
    nothing = advisor(home, "check")
    assert nothing.stderr == (
        "noizylab: error: no advisor is configured: turn it on with `noizylab advisor on --model MODEL`\n"
    )
    empty = advisor(home, "key", "--stdin", stdin="\n")
    assert (empty.returncode, empty.stderr) == (1, "noizylab: error: no API key given: nothing was stored\n")
