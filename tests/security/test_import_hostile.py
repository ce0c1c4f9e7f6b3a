"""Hostile files given to ``probe import ooni``: each bad record is one problem naming its file
and line, every good record around it is stored, and nothing exhausts memory or crashes.

Before this table (main at 9632e09): a record nested 100,000 deep crashed the import with a
RecursionError traceback; a corrupt *first* line of a JSON Lines file (a NUL byte) made the
whole file one "pretty-printed document" and lost every good line after it; a gzip file of one
endless line (3 GiB of spaces in 3 MB) was read whole: 6.4 GB resident.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.cli.root import app
from probe.ingest import import_ooni, reader
from probe.store import Store
from tests.clirunner import CliRunner
from tests.ingest.test_import import _docs

GOOD = [json.dumps(d) for d in _docs()[:2]]
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000

#: name, the file's bytes around the two good records, the bad lines' numbers and a word of
#: each problem.
CASES: list[tuple[str, Callable[[str, str], bytes], list[tuple[int, str]]]] = [
    ("nested 100,000 deep", lambda a, b: f"{a}\n{'[' * 100_000}{']' * 100_000}\n{b}\n".encode(),
     [(2, "nested too deeply")]),
    ("an object nested 5,000 deep",
     lambda a, b: f"{a}\n{DEEP_OBJECT}\n{b}\n".encode(),
     [(2, "nested too deeply")]),
    ("a NUL byte in the first line",
     lambda a, b: b'{"x": "a\x00b"}\n' + f"{a}\n{b}\n".encode(), [(1, "not JSON")]),
    ("a truncated first line shaped like a record",
     lambda a, b: f"{a[: len(a) // 2]}}}\n{a}\n{b}\n".encode(), [(1, "not JSON")]),
    ("a number of 100,000 digits", lambda a, b: f'{a}\n{{"x": {"9" * 100_000}}}\n{b}\n'.encode(),
     [(2, "not JSON")]),
    ("invalid UTF-8 inside a good record (replaced, kept)",
     lambda a, b: a.replace('"probe_cc"', '"probe_cc\xff"', 1).encode("latin-1") + b"\n"
     + f"{b}\n".encode(), []),
    ("a line that is not an object", lambda a, b: f"{a}\n[1, 2]\n{b}\n".encode(),
     [(2, "not a measurement object")]),
]


@pytest.mark.parametrize(("what", "content", "bad"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_hostile_record_is_one_problem_and_the_rest_is_stored(
        tmp_path: Path, what: str, content: Callable[[str, str], bytes],
        bad: list[tuple[int, str]], suffix: str) -> None:
    src = tmp_path / f"hostile{suffix}"
    data = content(*GOOD)
    src.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    problems: list[tuple[str, str]] = []
    with Store.open(tmp_path / "p.db") as store:
        result = import_ooni(store, [str(src)], on_problem=lambda o, w: problems.append((o, w)))
    assert result.stored == 2, problems
    assert [o for o, _ in problems] == [f"{src}:{n}" for n, _ in bad]
    for (_, why), (_, word) in zip(problems, bad, strict=True):
        assert word in why and "\n" not in why and len(why) <= 200


def test_the_command_line_names_the_line_and_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "deep.jsonl"
    src.write_text(f"{GOOD[0]}\n{'[' * 100_000}\n{GOOD[1]}\n")
    db = tmp_path / "p.db"
    r = CliRunner().invoke(app, ["import", "ooni", str(src), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert f"{src}:2: skipped: not JSON: nested too deeply" in r.output
    assert "Traceback" not in r.output and "imported 2 of 2" in r.output


def test_a_gzip_bomb_of_one_endless_line_is_skipped_in_bounded_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 MiB of spaces without a newline in 64 KB, under a 1 MiB line cap (the real cap is
    64 MiB; the bound scales with it): one problem, the next line read, memory near the cap."""
    monkeypatch.setattr(reader, "MAX_LINE_CHARS", 1 << 20, raising=False)
    src = tmp_path / "bomb.jsonl.gz"
    with gzip.open(src, "wb", compresslevel=9) as f:
        for _ in range(64):
            f.write(b" " * (1 << 20))
        f.write(f"x\n{GOOD[0]}\n".encode())
    assert src.stat().st_size < 200_000
    tracemalloc.start()
    try:
        items = list(reader.read_paths([str(src)]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(i).__name__ for i in items] == ["BadInput", "Document"]
    assert items[0].origin == f"{src}:1" and "line longer than 1 MiB" in items[0].problem
    assert items[1].origin == f"{src}:2"
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_a_pretty_printed_document_is_still_one_document(tmp_path: Path) -> None:
    src = tmp_path / "one.json"
    src.write_text(json.dumps(json.loads(GOOD[0]), indent=2))
    (item,) = list(reader.read_paths([str(src)]))
    assert isinstance(item, reader.Document) and item.origin == f"{src}:1"
