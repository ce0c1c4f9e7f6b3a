"""Tor lists: the packaged list validates with provenance, bridge lines parse, and every bad
entry is reported as FILE:LINE: reason."""

from __future__ import annotations

import hashlib

import pytest

from probe.measure.torlist import BadTorList, find_tor_list, load_tor_list, parse_bridge_line

CERT = "ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw"
FPR = "74FAD13168806246602538555B5521A0383A1875"


def test_the_packaged_list_names_the_authorities_with_provenance() -> None:
    tl = find_tor_list("tor")
    names = {t.name for t in tl.targets if t.protocol == "or_port_dirauth"}
    assert {"moria1", "tor26", "dizum", "gabelmoo", "maatuska", "longclaw"} <= names
    assert all(t.source and t.date for t in tl.targets)
    moria = [t for t in tl.targets if t.name == "moria1"]
    assert {(t.protocol, t.address) for t in moria} == {("or_port_dirauth", "128.31.0.39:9101"),
                                                        ("dir_port", "128.31.0.39:9131")}
    (obfs4,) = [t for t in tl.targets if t.protocol == "obfs4"]
    assert dict(obfs4.params) == {"cert": CERT, "iat-mode": "0"}
    # OONI's target id for a bridge: SHA-256 over "IP:PORT" + fingerprint (ts-023-tor)
    assert obfs4.id == hashlib.sha256(b"209.148.46.65:443" + FPR.encode()).hexdigest()
    assert moria[0].id == moria[0].address


@pytest.mark.parametrize(("line", "want"), [
    (f"obfs4 1.2.3.4:443 {FPR} cert={CERT} iat-mode=0",
     {"protocol": "obfs4", "address": "1.2.3.4:443", "fingerprint": FPR, "cert": CERT,
      "iat_mode": 0}),
    (f"Bridge 1.2.3.4:9001 {FPR}", {"protocol": "or_port", "address": "1.2.3.4:9001",
                                    "fingerprint": FPR}),
    ("[2001:db8::1]:443", {"protocol": "or_port", "address": "[2001:db8::1]:443"}),
])
def test_bridge_lines(line: str, want: dict[str, object]) -> None:
    assert parse_bridge_line(line) == want


ENTRY = 'source = "s"\ndate = 2026-12-07\n'


@pytest.mark.parametrize(("body", "problem"), [
    (f'[[targets]]\nprotocol = "or_port_dirauth"\naddress = "1.2.3.4"\n{ENTRY}',
     ":3: 'address' must be IP:PORT"),
    (f'[[targets]]\nprotocol = "ftp"\naddress = "1.2.3.4:1"\n{ENTRY}', ":3: 'protocol'"),
    (f'[[targets]]\nbridge = "snowflake 1.2.3.4:1 {FPR}"\n{ENTRY}', "not supported"),
    (f'[[targets]]\nbridge = "obfs4 1.2.3.4:1 {FPR}"\n{ENTRY}', "needs its 'cert'"),
    ('[[targets]]\nprotocol = "dir_port"\naddress = "1.2.3.4:80"\n',
     ":3: 'source' (where the entry comes from) is required"),
    (f'[[targets]]\nprotocol = "dir_port"\naddress = "1.2.3.4:80"\nfingerprint = "xyz"\n{ENTRY}',
     "40 hexadecimal digits"),
    (f'[[targets]]\nprotocol = "dir_port"\naddress = "1.2.3.4:80"\n{ENTRY}'
     f'[[targets]]\nprotocol = "dir_port"\naddress = "1.2.3.4:80"\n{ENTRY}',
     ":8: duplicate of the entry at"),
    ('[[targets]\n', ": not TOML"),
])
def test_bad_entries_name_file_and_line(tmp_path, body: str, problem: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('app = "tor"\n\n' + body)
    with pytest.raises(BadTorList) as e:
        load_tor_list(path)
    assert any(p.startswith(str(path)) and problem in p for p in e.value.problems), e.value.problems


def test_a_users_list_replaces_the_packaged_one(tmp_path) -> None:
    (tmp_path / "tor.toml").write_text(
        f'app = "tor"\n[[targets]]\nprotocol = "dir_port"\naddress = "1.2.3.4:80"\n{ENTRY}')
    assert len(find_tor_list("tor", tmp_path).targets) == 1
    assert len(find_tor_list("tor", tmp_path / "nowhere").targets) > 10
