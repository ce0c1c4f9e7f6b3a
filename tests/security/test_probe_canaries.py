"""Canary lists (issue 13): duplicates are judged within a scope.

A home router is both the gateway and the resolver, so one address under both scopes is
accepted; the same address or URL twice under one scope is an error naming file and line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.cli.root import app
from probe.errors import TargetListError
from probe.targets import load_canaries
from tests.clirunner import CliRunner

HEADER = "target,scope,name,notes\n"

CASES: list[tuple[str, str, list[tuple[str, str]] | str]] = [
    ("router_both_roles", "192.168.1.1,gateway,router,\n192.168.1.1,resolver,router dns,\n",
     [("192.168.1.1", "gateway"), ("192.168.1.1", "resolver")]),
    ("auto_both_roles", "auto,gateway,gw,\nauto,resolver,dns,\n",
     [("auto", "gateway"), ("auto", "resolver")]),
    ("ipv6_router_both_roles", "fe80::1,gateway,gw,\nFE80::0001,resolver,dns,\n",
     [("fe80::1", "gateway"), ("fe80::1", "resolver")]),
    ("url_two_scopes", "https://a.kz/,domestic,a,\nhttps://A.kz,control,c,\n",
     [("https://a.kz/", "domestic"), ("https://a.kz/", "control")]),
    ("gateway_twice", "192.168.1.1,gateway,a,\n192.168.1.1,gateway,b,\n",
     "{f}:3: duplicate of line 2 (192.168.1.1)"),
    ("resolver_twice_spelt_apart", "::1,resolver,a,\n0::1,resolver,b,\n",
     "{f}:3: duplicate of line 2 (::1)"),
    ("domestic_twice", "https://a.kz/,domestic,a,\n192.168.1.1,gateway,g,\nhttps://A.KZ,domestic,b,\n",
     "{f}:4: duplicate of line 2 (https://a.kz/)"),
]


@pytest.mark.parametrize(("name", "rows", "expected"), CASES, ids=[c[0] for c in CASES])
def test_duplicates_within_a_scope(tmp_path: Path, name: str, rows: str,
                                   expected: list[tuple[str, str]] | str) -> None:
    f = tmp_path / f"{name}.csv"
    f.write_text(HEADER + rows)
    if isinstance(expected, str):
        with pytest.raises(TargetListError) as caught:
            load_canaries(f)
        assert caught.value.problems == [expected.format(f=f)]
        res = CliRunner().invoke(app, ["targets", "validate", str(f)])
        assert res.exit_code != 0
        assert expected.format(f=f) in res.output + res.stderr
    else:
        assert [(c.url_or_host, c.scope) for c in load_canaries(f)] == expected
