"""The import stores exactly what it stored before it was made faster: a digest of every stored
value, per committed corpus file and for a synthesised multi-chunk archive, against a golden
file recorded before the throughput work (tests/ingest/golden_import.json).

What is digested: every column of every row an import writes (runs, measurements, every
observation table, verdicts, imports) but the ones that legitimately vary — the wall-clock
stamps (``imports.imported_at``, ``verdicts.created_at``), the autoincrement ``verdict_id``
and ``runs.probe_version``; an origin is kept relative to its input (file name or path under
the archive root). Only the tables and columns the golden file lists are read, so a column
added by a later migration does not break it, and only the corpus files it lists are
imported, so a file added to the corpus later does not either. Observations and verdicts get
separate digests, so a failure says whether the mapping or the judging changed.

When a change *meant* to alter what is stored (a classifier rule, a mapping fix) lands,
record the golden again: ``PROBE_GOLDEN_UPDATE=1 .venv/bin/python -m pytest
tests/ingest/test_golden.py`` — and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from probe.ingest import import_ooni
from probe.lab.bench import import_case as I
from probe.store import Store

CORPUS = Path(__file__).parent.parent / "data" / "ooni"
GOLDEN = Path(__file__).parent / "golden_import.json"
UPDATE = os.environ.get("PROBE_GOLDEN_UPDATE") == "1"

#: Tables an import writes; verdicts are digested apart from the observations.
TABLES = ("runs", "measurements", "dns_queries", "tcp_connects", "tls_handshakes",
          "certificates", "http_requests", "controls", "verdicts", "imports")
#: Columns whose value legitimately differs between two imports of the same input.
VARYING = {("imports", "imported_at"), ("verdicts", "created_at"),
           ("verdicts", "verdict_id"), ("runs", "probe_version")}
#: The synthesised archive: measurements, per hour, worker processes, documents per chunk.
SYNTH = (3_000, 1_500, 2, 250)


def _value(v: Any) -> Any:
    if isinstance(v, bytes):
        return "bytes:" + hashlib.sha256(v).hexdigest()
    if isinstance(v, float):
        return "float:" + v.hex()
    return v


def _columns(con: sqlite3.Connection) -> dict[str, list[str]]:
    return {t: [r[1] for r in con.execute(f"PRAGMA table_info('{t}')")
                if (t, r[1]) not in VARYING] for t in TABLES}


def _rows(con: sqlite3.Connection, columns: dict[str, list[str]], origin: Any
          ) -> dict[str, list[tuple[str, list[Any]]]]:
    """Every row of every table as ``(measurement id or run id, [values])`` by table, with
    ``imports.origin`` rewritten by ``origin``."""
    out: dict[str, list[tuple[str, list[Any]]]] = {}
    for table, cols in columns.items():
        key = "run_id" if table == "runs" else "measurement_id"
        rows = []
        for r in con.execute(f"SELECT {key}, {', '.join(cols)} FROM {table}"):
            values = [_value(v) for v in r[1:]]
            if table == "imports":
                i = cols.index("origin")
                values[i] = origin(values[i])
            rows.append((r[0], values))
        out[table] = rows
    return out


def _digest(rows: Iterable[list[Any]]) -> str:
    text = "\n".join(sorted(json.dumps(r, sort_keys=True) for r in rows))
    return hashlib.sha256(text.encode()).hexdigest()


def _split(rows: dict[str, list[tuple[str, list[Any]]]], keep: Any) -> dict[str, str]:
    """Two digests of the rows ``keep(table, key)`` accepts: observations and verdicts."""
    parts: dict[str, list[list[Any]]] = {"stored": [], "verdicts": []}
    for table, found in rows.items():
        part = "verdicts" if table == "verdicts" else "stored"
        parts[part] += [[table, *values] for key, values in found if keep(table, key)]
    return {k: _digest(v) for k, v in parts.items()}


def _load() -> dict[str, Any]:
    if not GOLDEN.exists():
        return {}
    return json.loads(GOLDEN.read_text())  # type: ignore[no-any-return]


def _compare(name: str, found: Any, golden: dict[str, Any], key: str) -> None:
    if UPDATE:
        golden.setdefault(key, {})[name] = found
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    assert name in golden.get(key, {}), f"{name}: not in {GOLDEN.name}"
    assert found == golden[key][name], f"{name}: what the import stores changed"


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    found = _load()
    if not found and not UPDATE:
        pytest.fail(f"{GOLDEN} is missing (PROBE_GOLDEN_UPDATE=1 records it)")
    return found


def _files(golden: dict[str, Any]) -> list[str]:
    if UPDATE and "files" not in golden:
        return sorted(p.name for p in CORPUS.glob("*.json"))
    return sorted(golden["files"])


def _golden_columns(golden: dict[str, Any], con: sqlite3.Connection) -> dict[str, list[str]]:
    if UPDATE and "columns" not in golden:
        golden["columns"] = _columns(con)
    return {t: list(c) for t, c in golden["columns"].items()}


def test_every_corpus_file_is_stored_as_before(golden: dict[str, Any], tmp_path: Path) -> None:
    files = _files(golden)
    db = tmp_path / "corpus.db"
    with Store.open(db) as store:
        import_ooni(store, [str(CORPUS / f) for f in files], workers=0)
    con = sqlite3.connect(db)
    try:
        cols = _golden_columns(golden, con)
        rows = _rows(con, cols,
                     lambda o: Path(o.rsplit(":", 1)[0]).name + ":" + o.rsplit(":", 1)[1])
    finally:
        con.close()
    origin, run = cols["imports"].index("origin"), cols["measurements"].index("run_id")
    file_of = {mid: values[origin].rsplit(":", 1)[0] for mid, values in rows["imports"]}
    runs_of: dict[str, set[str]] = defaultdict(set)
    for mid, values in rows["measurements"]:
        runs_of[file_of[mid]].add(values[run])
    assert set(runs_of) == set(files)
    for f in files:
        found = _split(rows, lambda t, k, f=f: k in runs_of[f] if t == "runs"
                       else file_of.get(k) == f)
        _compare(f, found, golden, "files")


def test_a_synthesised_archive_is_stored_as_before(golden: dict[str, Any],
                                                   tmp_path: Path) -> None:
    n, per_hour, workers, chunk = SYNTH
    names = {Path(f).stem for f in _files(golden)}
    tpls = [t for t in I.templates(CORPUS) if t.name in names]
    old = I.PER_HOUR
    I.PER_HOUR = per_hour
    try:
        hours = I.synthesise(tmp_path / "in", n, tpls)
    finally:
        I.PER_HOUR = old
    db = tmp_path / "synth.db"
    with Store.open(db) as store:
        result = import_ooni(store, [str(h) for h in hours], workers=workers,
                             chunk_size=chunk)
    assert (result.stored, result.skipped) == (n, 0)
    con = sqlite3.connect(db)
    try:
        rows = _rows(con, _golden_columns(golden, con),
                     lambda o: str(Path(o).relative_to(tmp_path / "in")))
    finally:
        con.close()
    _compare("synthesised", _split(rows, lambda t, k: True), golden, "archive")
