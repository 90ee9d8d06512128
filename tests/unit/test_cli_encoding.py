"""What a command prints never fails for want of a character in the output's encoding (Windows pipes: cp1252)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from noizylab_desktop.cli import output
from noizylab_desktop.cli.main import main


def cp1252_stdout(errors: str = "surrogateescape") -> io.TextIOWrapper:
    """A stdout as Windows gives a piped process: the ANSI code page, ``surrogateescape`` (Python 3.12 under Wine)."""
    return io.TextIOWrapper(io.BytesIO(), encoding="cp1252", errors=errors, write_through=True)


@pytest.mark.parametrize("errors", ["surrogateescape", "strict"])
def test_a_line_with_characters_the_encoding_lacks_is_written_with_replacements(errors: str) -> None:
    stream = cp1252_stdout(errors)
    with pytest.raises(UnicodeEncodeError):
        print("sharing work ↔ omen", file=stream)  # the Windows tier's failure: a traceback after the share was made
    output.tolerate_unencodable(stream)
    print("sharing work ↔ omen — Küche", file=stream)
    assert stream.buffer.getvalue().decode("cp1252") == "sharing work ? omen — Küche\n"  # type: ignore[attr-defined]


def test_a_utf8_stream_is_left_as_it_is() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape")
    output.tolerate_unencodable(stream)
    assert stream.errors == "surrogateescape"


def test_json_output_stays_exact_on_such_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = cp1252_stdout()
    output.tolerate_unencodable(stream)
    monkeypatch.setattr("sys.stdout", stream)
    output.print_json({"name": "Küche ↔ Büro"}, one_line=True)
    assert json.loads(stream.buffer.getvalue().decode("cp1252")) == {"name": "Küche ↔ Büro"}  # type: ignore[attr-defined]


def test_every_command_runs_with_a_tolerant_stdout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stream = cp1252_stdout()
    monkeypatch.setattr("sys.stdout", stream)
    main(["--home", str(tmp_path / "home"), "status"])  # no node runs there: exit 1, and stdout was made tolerant
    assert stream.errors == "replace"
