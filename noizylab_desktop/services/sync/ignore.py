"""``.nzignore``: gitignore syntax (via pathspec), plus what sync itself keeps out of every share."""

from __future__ import annotations

import re
from pathlib import Path

import pathspec

from noizylab_desktop.core.errors import SyncError

IGNORE_FILE = ".nzignore"
VERSIONS_DIR = ".nzversions"
TEMP_PREFIX = ".nzsync-"
TEMP_SUFFIX = ".tmp"
# Never synced: our own versions folder and temp files, OS litter that differs per machine, and editors' swap,
# lock and save-in-progress files (vim, JetBrains, Office, LibreOffice, macOS safe-save), which would otherwise
# travel mid-save. A share's .nzignore can bring one back with a "!pattern" line.
BUILTIN = (
    f"/{VERSIONS_DIR}/",
    f"{TEMP_PREFIX}*{TEMP_SUFFIX}",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    ".*.sw[a-p]",
    "*~",
    "*___jb_tmp___",
    "*___jb_old___",
    "~$*",
    "~*.tmp",
    ".~lock.*#",
    ".*.sb-*",
)


def is_internal(rel: str) -> bool:
    """True for sync's own files (temp files, the versions folder), whatever the ignore file says."""
    name = rel.rsplit("/", 1)[-1]
    return (
        rel == VERSIONS_DIR
        or rel.startswith(VERSIONS_DIR + "/")
        or (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX))
    )


_GROUP = re.compile(r"\(\?P<[^>]+>")


def any_of(spec: pathspec.GitIgnoreSpec) -> re.Pattern[str] | None:
    """One regex matching what ``spec`` ignores, when it has no ``!pattern``: then a path is ignored when any pattern
    matches it, and one search in C stands in for pathspec's Python loop over every pattern (which was half the
    time of a no-op scan). None where a negation makes the order matter (pathspec decides those)."""
    regexes = []
    for pattern in spec.patterns:
        if pattern.include is False or not isinstance(pattern, pathspec.RegexPattern):
            return None
        if pattern.include is not None and pattern.regex is not None:
            regexes.append(_GROUP.sub("(?:", pattern.regex.pattern))  # pathspec's named groups repeat
    return re.compile("|".join(f"(?:{r})" for r in regexes) or "(?!)")


class Ignore:
    """Rules of one share: built-ins plus the share's ``.nzignore`` (which is itself synced)."""

    def __init__(self, lines: list[str]) -> None:
        try:
            self._spec = pathspec.GitIgnoreSpec.from_lines([*BUILTIN, *lines])
            self._any = any_of(self._spec)
        except (ValueError, TypeError, re.error) as exc:
            raise SyncError(f"{IGNORE_FILE} has a pattern that cannot be used: {exc}") from exc

    @classmethod
    def load(cls, root: Path) -> Ignore:
        """The rules of the share at ``root`` (built-ins only when it has no ``.nzignore``)."""
        try:
            text = (root / IGNORE_FILE).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            text = ""
        return cls(text.splitlines())

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Whether the relative path (``/``-separated) is kept out of sync."""
        path = rel + "/" if is_dir else rel
        if self._any is not None:
            return is_internal(rel) or self._any.search(path) is not None
        return is_internal(rel) or self._spec.match_file(path)
