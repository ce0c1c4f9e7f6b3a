"""Endpoint lists (probe/applists.py): the packaged lists validate, bad files are reported as
FILE:LINE: reason, and a directory replaces the packaged lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.applists import (
    DEFAULT_DIR,
    BadAppList,
    declared_ports,
    find_app_list,
    load_app_list,
    validate_app_list,
)
from probe.measure.torlist import FORMATS as TOR_FORMATS
from probe.measure.torlist import find_tor_list

GOOD = '''app = "whatsapp"

[[endpoints]]
role = "chat"
host = "e1.whatsapp.net"
ports = [443, 5222]
source = "test"
date = "2026-12-07"
'''


@pytest.mark.parametrize("name", sorted(p.stem for p in DEFAULT_DIR.glob("*.toml")
                                         if p.stem != "tor"))  # tor: tests/measure/test_torlist.py
def test_the_packaged_lists_validate_and_carry_provenance(name: str) -> None:
    lst = find_app_list(name)
    assert lst.endpoints
    assert all(e.source and e.date and e.origin.endswith(tuple("0123456789"))
               for e in lst.endpoints)


def test_packaged_lists_cover_the_apps() -> None:
    assert len(find_app_list("whatsapp").endpoints) == 16 * 2 + 2
    assert find_app_list("signal").ca_file is not None
    assert find_app_list("facebook_messenger").asns == (32934,)
    assert {5222, 9001} <= declared_ports()


def test_declared_ports_and_validation_read_tor_lists_with_their_own_reader(tmp_path) -> None:
    """One function for the helper's ports: the endpoint lists' and, given the Tor format's
    reader, the Tor list's (its authorities' OR/Dir ports); a bad Tor list declares nothing
    and is reported as FILE:LINE like an endpoint list."""
    tor_ports = set(find_tor_list("tor").ports)
    assert {9101, 9131} <= tor_ports  # moria1's OR and Dir ports
    assert not {9101, 9131} & declared_ports()  # without its reader the Tor list is skipped
    assert tor_ports | {5222, 9001} <= declared_ports(None, TOR_FORMATS)
    assert validate_app_list(DEFAULT_DIR / "tor.toml", TOR_FORMATS) == []
    bad = tmp_path / "tor.toml"
    bad.write_text('app = "tor"\n\n[[targets]]\nprotocol = "dir_port"\n'
                   'address = "192.0.2.1:9030"\nsource = "x"\ndate = "yesterday"\n')
    assert validate_app_list(bad, TOR_FORMATS) == [
        f"{bad}:3: 'date' must be YYYY-MM-DD (when the entry was taken)"]
    assert declared_ports(tmp_path, TOR_FORMATS) == frozenset()


@pytest.mark.parametrize(("edit", "line", "reason"), [
    (('host = "e1.whatsapp.net"', 'host = "bad host"'), 3, "'host'"),
    (("ports = [443, 5222]", "ports = [0]"), 3, "'port'/'ports'"),
    (('source = "test"\n', ""), 3, "'source'"),
    (('date = "2026-12-07"', 'date = "yesterday"'), 3, "'date'"),
    (('role = "chat"', 'role = "Chat Servers"'), 3, "'role'"),
    (('app = "whatsapp"', 'app = "icq"'), 1, "'app'"),
    (("ports = [443, 5222]", 'ports = [443]\nprotocol = "gopher"'), 3, "'protocol'"),
])
def test_bad_entries_name_file_line_and_reason(tmp_path: Path, edit, line, reason) -> None:
    path = tmp_path / "whatsapp.toml"
    path.write_text(GOOD.replace(*edit))
    problems = validate_app_list(path)
    assert problems and problems[0].startswith(f"{path}:{line}: "), problems
    assert reason in problems[0]


def test_duplicates_and_bad_toml(tmp_path: Path) -> None:
    dup = tmp_path / "dup.toml"
    dup.write_text(GOOD + GOOD.partition("\n\n")[2].replace("\n", "\n", 1).join(["\n", ""]))
    assert any("duplicate" in p for p in validate_app_list(dup))
    broken = tmp_path / "broken.toml"
    broken.write_text("app = \n")
    (problem,) = validate_app_list(broken)
    assert problem.startswith(f"{broken}:1: not TOML")


def test_a_directory_replaces_the_packaged_list(tmp_path: Path) -> None:
    (tmp_path / "whatsapp.toml").write_text(GOOD)
    assert len(find_app_list("whatsapp", tmp_path).endpoints) == 2
    assert len(find_app_list("telegram", tmp_path).endpoints) == 13  # falls back
    with pytest.raises(BadAppList, match="no such endpoint list"):
        find_app_list("nosuchapp", tmp_path)
    assert load_app_list(tmp_path / "whatsapp.toml").endpoints[1].url == (
        "tcp://e1.whatsapp.net:5222")


def test_probe_targets_validate_checks_endpoint_lists(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from probe.cli.root import app

    bad = tmp_path / "whatsapp.toml"
    bad.write_text(GOOD.replace("ports = [443, 5222]", "ports = [70000]"))
    res = CliRunner().invoke(app, ["targets", "validate", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}:3: 'port'/'ports' must be port numbers 1-65535" in res.output
    res = CliRunner().invoke(app, ["targets", "validate", str(DEFAULT_DIR / "signal.toml")])
    assert res.exit_code == 0, res.output
    # a Tor list is checked by its own reader, with the same FILE:LINE reasons
    res = CliRunner().invoke(app, ["targets", "validate", str(DEFAULT_DIR / "tor.toml")])
    assert res.exit_code == 0, res.output
    bad_tor = tmp_path / "tor.toml"
    bad_tor.write_text('app = "tor"\n[[targets]]\nprotocol = "dir_port"\n'
                       'address = "192.0.2.1:99999"\nsource = "x"\ndate = 2026-12-07\n')
    res = CliRunner().invoke(app, ["targets", "validate", str(bad_tor)])
    assert res.exit_code == 1
    assert f"{bad_tor}:2: 'address' must be IP:PORT (or [IPv6]:PORT)" in res.output
