"""What a node announces on the LAN (a tag and ports, no names), and pairing by list still needing the code."""

from __future__ import annotations

import socket

import pytest

from noizylab_desktop.core import invite as codes
from noizylab_desktop.core.discovery import choose
from noizylab_desktop.core.discovery.records import (
    Announcement,
    instance_name,
    read,
    server_name,
    tag_of,
    txt_properties,
)
from noizylab_desktop.core.errors import PairingError

FP = bytes(range(32))


def test_the_announcement_holds_a_tag_and_ports_and_no_user_host_or_node_names() -> None:
    tag = tag_of(FP)
    props = txt_properties(tag, 50051)
    assert props == {"v": "1", "id": tag, "port": "50051"}
    names = (socket.gethostname(), "alice", codes.encode(codes.InviteCode.new(FP, 4000, ["10.0.0.1"])))
    shown = " ".join([*props.values(), instance_name(tag), server_name(tag)])
    assert not any(name.lower() in shown.lower() for name in names if name)
    assert FP.hex() not in shown and FP[:10].hex() not in shown


def test_an_inviting_node_says_so_with_its_pairing_port_and_nothing_secret() -> None:
    props = txt_properties(tag_of(FP), 50051, pairing_port=41000)
    assert props["invite"] == "1" and props["pp"] == "41000" and set(props) == {"v", "id", "port", "invite", "pp"}
    heard = read({k.encode(): v.encode() for k, v in props.items()}, ["10.213.0.1"], 50051)
    assert heard == Announcement(tag_of(FP), ("10.213.0.1",), 50051, True, 41000)


@pytest.mark.parametrize("props", [{}, {"v": "9", "id": "00" * 8}, {"v": "1", "id": "short"}, {"v": "1", "port": "x"}])
def test_foreign_or_damaged_records_are_ignored(props: dict[str, str]) -> None:
    assert read(props, ["10.0.0.1"], 1) is None


def _inviting() -> tuple[list[Announcement], str]:
    code = codes.encode(codes.InviteCode.new(FP, 41000, ["192.0.2.7"]))
    return [Announcement(tag_of(FP), ("10.213.0.1",), 50051, True, 41000)], code


def test_choosing_a_listed_machine_without_its_code_is_refused() -> None:
    inviting, _ = _inviting()
    with pytest.raises(PairingError, match="type the invite code"):
        choose.code_for(inviting, 1, "")


def test_a_code_from_another_machine_than_the_one_chosen_is_refused() -> None:
    inviting, _ = _inviting()
    other = codes.encode(codes.InviteCode.new(bytes(32), 41000, ["192.0.2.7"]))
    with pytest.raises(PairingError, match="another machine"):
        choose.code_for(inviting, 1, other)


def test_the_chosen_machine_is_tried_first_with_the_same_secret_and_pin() -> None:
    inviting, code = _inviting()
    joined = codes.decode(choose.code_for(inviting, 1, code))
    typed = codes.decode(code)
    assert (joined.fp_prefix, joined.secret, joined.port) == (typed.fp_prefix, typed.secret, typed.port)
    assert joined.hosts == ("10.213.0.1", "192.0.2.7")
