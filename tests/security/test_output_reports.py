"""Reports cannot attack their reader (issue 13): bidirectional overrides, isolates and marks
and zero-width characters in page titles and evidence are shown visibly (``\\u202e``) in HTML,
Markdown, CSV and JSON alike, never written raw; CSV cells cannot start a formula."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.cli.root import app
from probe.model import Verdict, VerdictKind
from probe.report.safe_text import INVISIBLE, visible
from probe.store import Store
from tests.clirunner import CliRunner
from tests.factories import http, meas

TITLE = "Blocked \u202egnp.exe\u202c by order\u200b\u2066x\u2069\u200e\u200f\u061c\ufeff\u2060"
EVIDENCE = "=HYPERLINK(\"http://evil.test\") \u202d\u202a\u202b\u2067\u2068\u200c\u200d"
RAW = [chr(c) for c in INVISIBLE]


@pytest.mark.parametrize("code", INVISIBLE)
def test_visible_names_every_invisible_character(code):
    assert visible(f"a{chr(code)}b") == f"a\\u{code:04x}b"


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bidi") / "p.db"
    m = meas(http_=(http(title=TITLE, headers=(("Server", TITLE),)),))
    v = Verdict(VerdictKind.BLOCKED, "http.blockpage", 0.9, EVIDENCE, "0.1.0", {"title": TITLE})
    with Store.open(path) as store:
        for _ in range(2):  # two runs, so compare has something to show
            run = store.start_run({}, 1, "0.1.0")
            store.save_measurement(run, m, v)
            store.finish_run(run, "completed")
    return path


def _files(out: Path) -> str:
    if out.is_dir():
        return "\n".join(p.read_text(encoding="utf-8") for p in sorted(out.iterdir()))
    return out.read_text(encoding="utf-8")


@pytest.mark.parametrize(("command", "fmt"), [
    ("report", "html"), ("report", "md"), ("report", "json"), ("report", "csv"),
    ("compare", "html"), ("compare", "md"), ("compare", "json"), ("compare", "csv"),
    ("compare", "table"),
])
def test_reports_show_invisible_characters_visibly(db, tmp_path, command, fmt):
    out = tmp_path / f"out-{command}.{fmt}"
    if command == "report" and fmt == "csv":
        out = tmp_path / "csvdir"
    res = CliRunner().invoke(app, [command, "--db", str(db), "--format", fmt, "--out", str(out),
                                   *(("--tz", "UTC") if command == "report" else ())])
    assert res.exit_code == 0, res.output
    text = _files(out)
    raw = sorted({f"U+{ord(c):04X}" for c in text if c in RAW})
    assert not raw, f"{command} {fmt}: raw {raw}"
    if command == "report":  # the title and evidence are in the report, made visible
        assert "\\u202e" in text or "\\\\u202e" in text
        if fmt == "json":
            assert "\\u202e" in json.dumps(json.loads(text), ensure_ascii=False)
    if fmt == "csv":
        assert ",=HYPERLINK" not in text and "\n=HYPERLINK" not in text


def test_report_to_stdout_is_neutralised_too(db):
    res = CliRunner().invoke(app, ["report", "--db", str(db), "--format", "md", "--out", "-",
                                   "--tz", "UTC"])
    assert res.exit_code == 0, res.output
    assert not [c for c in res.stdout if c in RAW] and "\\u202e" in res.stdout
