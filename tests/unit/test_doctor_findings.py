"""The doctor's findings about this machine that cannot be made for real here.

Windows' network profiles exist only on Windows: these tests feed ``Get-NetConnectionProfile``'s JSON, in the two
shapes PowerShell prints, to the parser and check the one line a Public network gets. The command itself
(``windows_profiles``) runs only on Windows and is not exercised here.
"""

from __future__ import annotations

from noizylab_desktop.core.discovery import doctor

ONE_PUBLIC = '{"Name":"Hotel-Guest","InterfaceAlias":"Wi-Fi","NetworkCategory":0}'
SEVERAL = (
    '[{"Name":"Home","InterfaceAlias":"Ethernet","NetworkCategory":1},'
    '{"Name":"Cafe","InterfaceAlias":"Wi-Fi","NetworkCategory":"Public"},'
    '{"Name":"corp.example","InterfaceAlias":"Ethernet 2","NetworkCategory":2}]'
)


def test_a_network_windows_marks_public_is_named_with_its_interface() -> None:
    assert doctor.public_networks(doctor.parse_profiles(ONE_PUBLIC)) == ["Hotel-Guest (Wi-Fi)"]


def test_private_and_domain_networks_are_not_reported() -> None:
    assert doctor.public_networks(doctor.parse_profiles(SEVERAL)) == ["Cafe (Wi-Fi)"]


def test_no_profiles_or_unreadable_output_reports_nothing() -> None:
    assert doctor.parse_profiles("") == []
    assert doctor.parse_profiles("Get-NetConnectionProfile : not recognized") == []


def test_a_public_network_is_one_line_that_names_the_fix() -> None:
    line = doctor.public_network_finding("Cafe (Wi-Fi)").line()
    assert line.startswith("this machine: Windows marks the network Cafe (Wi-Fi) Public: its firewall drops")
    assert "mark it Private" in line and "\n" not in line


def test_off_windows_no_profile_is_asked_for() -> None:
    assert not [f for f in doctor.local_findings("linux") if f.kind == "public-network"]
