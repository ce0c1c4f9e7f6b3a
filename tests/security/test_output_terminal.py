"""Output that cannot attack the reader, on a terminal (issue 13).

A hostile server picks the page title, header values and thereby the evidence; none of its
control characters, escape sequences (C0 ``ESC``, C1 ``CSI``), bidirectional overrides or
zero-width characters may reach the analyst's terminal through ``probe results`` (table, CSV,
JSON), ``probe export --out -`` or any other writer. The CLI cases run the real command with
its standard output on a pseudo-terminal.
"""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from probe.model import Verdict, VerdictKind
from probe.report.run_results import render_results
from probe.report.safe_text import TerminalStream, csv_cell, for_terminal, terminal_stdout
from probe.store import Store
from tests.factories import http, meas

#: What a hostile page puts in its title: an OSC title change, a screen clear, a C1 CSI, a
#: right-to-left override, zero-width characters, a carriage return and a backspace.
HOSTILE = ("Evil\x1b]0;pwned\x07\x1b[2J\x9b31m\u202egnp.exe\u200b\ufeff"
           "\r\x08\x7fend\u2028\x85")
#: Nothing of this may be written raw to a terminal.
FORBIDDEN = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))] + [
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
    "\u200e", "\u200f", "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u2028",
    "\u2029"]


def _clean(text: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in text if c in FORBIDDEN})
    assert not found, f"raw {found} in {text!r:.300}"


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b[31mred", "\\x1b[31mred"),
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
    ("\x9b2J", "\\u009b2J"),
    ("a\rb\x08c\x7f", "a\\x0db\\x08c\\x7f"),
    ("\x00\x85", "\\x00\\u0085"),
    ("\u202eexe.txt", "\\u202eexe.txt"),
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("line\u2028sep", "line\\u2028sep"),
    ("keeps\nnewline\tand tab", "keeps\nnewline\tand tab"),
    ("Ünïcode ✓ 日本", "Ünïcode ✓ 日本"),
])
def test_for_terminal(raw, shown):
    assert for_terminal(raw) == shown
    _clean(for_terminal(raw).replace("\n", "").replace("\t", ""))


@pytest.mark.parametrize(("cell", "written"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1", "'+1"), ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("plain", "plain"), (0.5, 0.5), ("", ""),
])
def test_csv_cell(cell, written):
    assert csv_cell(cell) == written


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_stdout_guards_a_terminal_only(monkeypatch):
    tty = _Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    with terminal_stdout() as out:
        assert isinstance(out, TerminalStream) and sys.stdout is out
        print(HOSTILE)
    _clean(tty.getvalue().replace("\n", ""))
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stdout", pipe)
    with terminal_stdout() as out:
        out.write(HOSTILE)
    assert pipe.getvalue() == HOSTILE  # a file or a pipe gets the data as it is


def _rows() -> list[dict[str, object]]:
    return [{"run_id": "r", "url": "https://e.test/\u202e", "verdict": "blocked",
             "method": "http.blockpage", "confidence": 0.9, "evidence": HOSTILE,
             "details": {"title": HOSTILE}}]


def test_results_table_is_clean_even_off_a_terminal():
    text = render_results(_rows(), "table", width=300)
    _clean(text.replace("\n", ""))
    assert "\\x1b]0;pwned" in text  # shown, not dropped: the analyst sees what was sent


def test_results_csv_defuses_formulas():
    rows = _rows()
    rows[0]["evidence"] = "=cmd|' /C calc'!A0"
    assert "'=cmd|" in render_results(rows, "csv")


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("hostile") / "p.db"
    m = meas(http_=(http(title=HOSTILE, headers=(("Server", HOSTILE),)),))
    v = Verdict(VerdictKind.BLOCKED, "http.blockpage", 0.9, f"block page {HOSTILE}", "0.1.0",
                {"title": HOSTILE})
    with Store.open(db) as store:
        run = store.start_run({}, 1, "0.1.0")
        store.save_measurement(run, m, v)
        store.finish_run(run, "completed")
    return db


def _on_a_terminal(*args: str) -> str:
    """Run ``probe ARGS`` with standard output on a pseudo-terminal; what it printed there."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "probe", *args], stdout=slave,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"})
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    finally:
        os.close(master)
    # the terminal turns \n into \r\n: that carriage return is the line discipline's
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


@pytest.mark.parametrize("args", [
    ("results", "--format", "table"),
    ("results", "--format", "csv"),
    ("results", "--format", "json"),
    ("export", "--format", "csv", "--out", "-"),
    ("export", "--format", "jsonl", "--out", "-"),
    ("export", "--format", "ooni", "--out", "-"),
])
def test_no_escape_sequence_reaches_the_terminal(hostile_db, args):
    shown = _on_a_terminal(*args, "--db", str(hostile_db))
    _clean(shown.replace("\n", "").replace("\t", ""))
    assert "pwned" in shown or args[0] == "export"  # the hostile text is there, defused
