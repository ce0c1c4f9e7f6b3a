"""Tests for ``probe db merge``: complete copies, no duplicates, idempotence, read-only inputs,
one-line errors naming the file with nothing half-merged."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer

from probe.cli.export_cmd import register
from probe.errors import StorageError
from probe.store import Store
from probe.store.merge import merge
from tests.clirunner import CliRunner
from tests.factories import Built, build_db, full_measurement

TABLES = ("runs", "measurements", "dns_queries", "tcp_connects", "tls_handshakes",
          "certificates", "http_requests", "controls", "verdicts", "health_samples")


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (verdict ids left out: they are renumbered), sorted."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        for table in TABLES:
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                    if r[1] != "verdict_id"]
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        conn.close()


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Built, Built]:
    return build_db(tmp_path / "alice.db", ("A",)), build_db(tmp_path / "bob.db", ("B",))


def test_merge_copies_everything(tmp_path: Path, inputs: tuple[Built, Built]) -> None:
    alice, bob = inputs
    out = tmp_path / "all.db"
    reports = merge(out, [alice.path, bob.path])
    assert [r.added for r in reports] == [(alice.runs["A"],), (bob.runs["B"],)]
    assert reports[0].count("measurements") == 5 and reports[1].count("health_samples") == 4
    merged, a, b = dump(out), dump(alice.path), dump(bob.path)
    for table in TABLES:
        assert merged[table] == sorted(a[table] + b[table], key=repr), table
    with Store.open(out) as store:
        got = dict(store.iter_measurements())
        assert got == {**{alice.ids[n]: m for n, m in alice.measurements.items()},
                       **{bob.ids[n]: m for n, m in bob.measurements.items()}}
        history = store.verdict_history(alice.ids["ok"])
        assert [v.analysis_version for v in history] == ["0.1.0", "0.2.0"]
        assert store.current_verdict(alice.ids["ok"]) == alice.verdicts["ok"]
        assert store.get_run(alice.runs["A"])["probe_asn"] == 9198
        assert len(store.health_samples(bob.runs["B"])) == 4
        assert store.results(alice.runs["A"]) == Store.open(alice.path).results(alice.runs["A"])


def test_merge_is_idempotent(tmp_path: Path, inputs: tuple[Built, Built]) -> None:
    alice, bob = inputs
    out = tmp_path / "all.db"
    merge(out, [alice.path, bob.path])
    first = dump(out)
    again = merge(out, [alice.path, bob.path, alice.path])
    assert dump(out) == first
    assert all(not r.added and r.skipped and not r.differing for r in again)
    assert all(count == 0 for r in again for _, count in r.rows)


def test_out_may_be_a_copy_of_an_input(tmp_path: Path, inputs: tuple[Built, Built]) -> None:
    alice, bob = inputs
    out = tmp_path / "all.db"
    shutil.copy(alice.path, out)
    reports = merge(out, [alice.path, bob.path])
    assert reports[0].skipped == (alice.runs["A"],) and not reports[0].added
    assert reports[1].added == (bob.runs["B"],)
    with Store.open(out) as store:
        assert store.run_ids() == sorted([alice.runs["A"], bob.runs["B"]])
        assert len(list(store.iter_measurements())) == 7


def test_out_may_be_one_of_the_inputs(inputs: tuple[Built, Built]) -> None:
    alice, bob = inputs
    before = dump(alice.path)
    reports = merge(alice.path, [alice.path, bob.path])
    assert reports[0].is_output
    after = dump(alice.path)
    assert after["runs"] == sorted(before["runs"] + dump(bob.path)["runs"], key=repr)


def test_inputs_are_only_read(tmp_path: Path, inputs: tuple[Built, Built]) -> None:
    alice, _ = inputs
    before = alice.path.read_bytes()
    merge(tmp_path / "all.db", [alice.path])
    assert alice.path.read_bytes() == before
    wal = Path(f"{alice.path}-wal")  # a WAL-mode reader may leave an empty log behind
    assert not wal.exists() or wal.stat().st_size == 0


def test_skipped_run_that_grew_is_reported(tmp_path: Path, inputs: tuple[Built, Built]) -> None:
    alice, _ = inputs
    out = tmp_path / "all.db"
    merge(out, [alice.path])
    with Store.open(alice.path) as store:
        store.save_measurement(alice.runs["A"], full_measurement(), None)
    [report] = merge(out, [alice.path])
    assert report.skipped == report.differing == (alice.runs["A"],)


def _write(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.db"
    text.write_text("these are not the droids\n" * 100)
    foreign = tmp_path / "foreign.db"
    _write(foreign, "CREATE TABLE photos (id INTEGER);")
    empty = tmp_path / "empty.db"
    _write(empty, "")
    newer = tmp_path / "newer.db"
    build_db(newer, ("B",))
    _write(newer, "INSERT INTO schema_migrations VALUES (99, 'future', '2030-01-01');")
    return {
        "missing": (tmp_path / "nope.db", "no such file"),
        "text": (text, "file is not a database"),
        "foreign": (foreign, "not a probe database"),
        "empty": (empty, "not a probe database"),
        "newer": (newer, "newer than this probe supports"),
    }


@pytest.mark.parametrize("kind", ["missing", "text", "foreign", "empty", "newer"])
def test_bad_input_stops_before_anything_is_written(
    tmp_path: Path, inputs: tuple[Built, Built], kind: str,
) -> None:
    alice, bob = inputs
    bad, reason = _bad_inputs(tmp_path)[kind]
    out = tmp_path / "all.db"
    with pytest.raises(StorageError) as e:
        merge(out, [alice.path, bad, bob.path])
    message = str(e.value)
    assert str(bad) in message and reason in message and "\n" not in message
    assert not out.exists()
    merge(out, [alice.path])
    before = dump(out)
    with pytest.raises(StorageError):
        merge(out, [bob.path, bad])
    assert dump(out) == before


def test_a_failing_input_is_rolled_back_whole(tmp_path: Path,
                                              inputs: tuple[Built, Built]) -> None:
    alice, bob = inputs
    clash = tmp_path / "clash.db"
    shutil.copy(alice.path, clash)
    # Same measurement ids under a different run id: impossible in practice, but it makes the
    # copy fail half-way (after the run row and some measurements were inserted).
    _write(clash, f"""
        UPDATE runs SET run_id = 'R2' WHERE run_id = '{alice.runs["A"]}';
        UPDATE measurements SET run_id = 'R2';
        UPDATE health_samples SET run_id = 'R2';
    """)
    out = tmp_path / "all.db"
    merge(out, [alice.path])
    before = dump(out)
    with pytest.raises(StorageError, match=r"cannot merge .*clash\.db.*nothing of it"):
        merge(out, [clash, bob.path])
    assert dump(out) == before
    merge(out, [bob.path])
    with Store.open(out) as store:
        assert "R2" not in store.run_ids() and bob.runs["B"] in store.run_ids()


def test_older_schema_input(tmp_path: Path, inputs: tuple[Built, Built]) -> None:
    alice, _ = inputs
    old = tmp_path / "old.db"
    shutil.copy(alice.path, old)
    _write(old, "DROP TABLE health_samples; DELETE FROM schema_migrations WHERE version > 1;")
    [report] = merge(tmp_path / "all.db", [old])
    assert report.added == (alice.runs["A"],) and report.count("health_samples") == 0
    with Store.open(tmp_path / "all.db") as store:
        assert len(list(store.iter_measurements())) == 5


def test_cli_merge(tmp_path: Path, inputs: tuple[Built, Built]) -> None:
    alice, bob = inputs
    app = typer.Typer()
    register(app)
    out = tmp_path / "all.db"
    res = CliRunner().invoke(app, ["db", "merge", str(out), str(alice.path), str(bob.path)])
    assert res.exit_code == 0, res.output
    assert f"{alice.path}: 1 runs added (5 measurements, 5 verdicts), 0 already in" in res.stderr
    res = CliRunner().invoke(app, ["db", "merge", str(out), str(alice.path)])
    assert res.exit_code == 0 and "0 runs added" in res.stderr and "1 already in" in res.stderr
    res = CliRunner().invoke(app, ["db", "merge", str(out), str(tmp_path / "nope.db")])
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f"probe: error: cannot open database {tmp_path / 'nope.db'}: no such file"]
    res = CliRunner().invoke(app, ["db", "merge", str(out)])
    assert res.exit_code == 2


def test_merge_carries_the_traces_of_measured_targets(
        tmp_path: Path, inputs: tuple[Built, Built]) -> None:
    alice, _ = inputs
    con = sqlite3.connect(alice.path)
    con.execute(
        "INSERT INTO traces (measurement_id, run_id, url, kind, target, port, name, started_at,"
        " elapsed, result, signature, trigger_ttl, hop) VALUES (?, ?, 'https://ok.example/',"
        " 'tls', '203.0.113.5', 443, 'ok.example', '2026-11-21T10:00:00.000000Z', 1.5,"
        " 'located', 'reset', 2, 1)", [alice.ids["ok"], alice.runs["A"]])
    con.execute(  # a trace of a URL never measured: no run, stays behind
        "INSERT INTO traces (url, kind, target, port, started_at, elapsed)"
        " VALUES ('https://x.example/', 'tcp', '203.0.113.6', 443, '2026-11-21T10:00:00Z', 1)")
    con.commit()
    con.close()
    out = tmp_path / "all.db"
    merge(out, [alice.path])
    merge(out, [alice.path])  # idempotent for traces too
    rows = sqlite3.connect(out).execute(
        "SELECT measurement_id, hop, signature FROM traces").fetchall()
    assert rows == [(alice.ids["ok"], 1, "reset")]
