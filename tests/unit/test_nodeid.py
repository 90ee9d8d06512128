"""Node IDs are the certificate's SHA-256 in grouped base32 with check characters."""

from __future__ import annotations

import hashlib

import pytest

from noizylab_desktop.core.errors import PeerError
from noizylab_desktop.core.nodeid import fingerprint, format_id, parse_id, short_id


def test_an_id_is_eight_groups_of_seven_and_round_trips() -> None:
    fp = fingerprint(b"some certificate")
    node_id = format_id(fp)
    groups = node_id.split("-")
    assert [len(g) for g in groups] == [7] * 8
    assert parse_id(node_id) == fp == hashlib.sha256(b"some certificate").digest()
    assert parse_id(node_id.lower().replace("-", " ")) == fp
    assert short_id(node_id) == groups[0]


def test_a_single_mistyped_character_is_caught_by_the_checks() -> None:
    node_id = format_id(fingerprint(b"x"))
    for position in range(len(node_id)):
        if node_id[position] == "-":
            continue
        replacement = "A" if node_id[position] != "A" else "B"
        typo = node_id[:position] + replacement + node_id[position + 1 :]
        with pytest.raises(PeerError, match="typo"):
            parse_id(typo)


def test_text_that_is_not_an_id_gets_a_one_line_error() -> None:
    with pytest.raises(PeerError) as caught:
        parse_id("hello")
    assert "\n" not in caught.value.message
