"""Hostile and broken config files (issue 13): each is one error line naming file and line.

Python's tomllib recurses once per nested array or inline table, so a config nested thousands
deep used to end in a RecursionError traceback; dotted keys nest without recursion in the
parser and are bounded after parsing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.cli.config import MAX_CONFIG_DEPTH
from probe.cli.root import app
from tests.clirunner import CliRunner

DEEP = 5000

CASES: list[tuple[str, str | bytes, str]] = [
    ("deep_arrays", "concurrency = 4\nresolver = " + "[" * DEEP + "]" * DEEP + "\n",
     "{f}:2: invalid TOML: nested more than"),
    ("deep_inline_tables", "x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n",
     "{f}:1: invalid TOML: nested more than"),
    ("deep_arrays_over_lines", "timeout = 3\nresolver = [\n" + "[\n" * DEEP + "]\n" * DEEP
     + "]\n", "invalid TOML: nested more than"),
    ("deep_dotted_key", "concurrency = 2\n" + "a." * DEEP + "b = 1\n",
     "{f}:2: a: nested more than"),
    ("deep_table_header", "[" + "t." * DEEP + "u]\nx = 1\n", "{f}:1: t: nested more than"),
    ("unclosed", "resolver = [\"1.1.1.1\"\n", "{f}:1: invalid TOML: Unclosed array"),
    ("not_utf8", b"timeout = 3\nconcurrency = \xff\n", "{f}:2: not UTF-8 text"),
    ("huge", "# " + "x" * (300 * 1024) + "\n", "config file larger than"),
    ("bad_value", "concurrency = 0\n", "{f}:1: "),
]


@pytest.mark.parametrize(("name", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_broken_config_is_one_error_line(tmp_path: Path, name: str, content: str | bytes,
                                         expected: str) -> None:
    f = tmp_path / f"{name}.toml"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    res = CliRunner().invoke(app, ["run", "https://example.test/", "--config", str(f),
                                   "--db", str(tmp_path / "p.db")])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr[:2000]
    assert lines[0].startswith("probe: error: ")
    assert expected.format(f=f) in lines[0], lines[0]
    assert not (tmp_path / "p.db").exists()


def test_a_shallow_config_still_works(tmp_path: Path) -> None:
    nested = "[" * (MAX_CONFIG_DEPTH - 1) + "]" * (MAX_CONFIG_DEPTH - 1)
    f = tmp_path / "ok.toml"
    f.write_text(f"concurrency = 3\nunused_but_shallow = {nested}\n")
    res = CliRunner().invoke(app, ["config", "show", "--config", str(f)])
    assert "nested" not in res.stderr, res.stderr
