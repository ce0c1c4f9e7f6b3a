"""Reading probe databases safely (issue 13): read commands never create a file, every reader
refuses a newer schema, a WAL database on read-only media can be read, and error lines are
capped in length at the CLI's one boundary.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from probe.cli.root import MAX_ERROR_LINE, app
from probe.store import schema
from probe.store.schema import MIGRATIONS_TABLE, SCHEMA_VERSION
from tests.clirunner import CliRunner
from tests.factories import build_db

pytestmark = pytest.mark.timeout(60)

#: Every command that only reads a database, with the arguments that make it read ``DB``.
READERS = {
    "results": ["results", "--db", "DB"],
    "results_json": ["results", "--db", "DB", "--format", "json"],
    "report": ["report", "--db", "DB", "--format", "json", "--out", "-"],
    "compare": ["compare", "--db", "DB"],
    "compare_ooni": ["compare", "--ooni", "--db", "DB"],
    "export": ["export", "--db", "DB", "--format", "jsonl", "--out", "-"],
    "reanalyze": ["reanalyze", "--db", "DB"],
}


def _args(command: str, db: Path) -> list[str]:
    return [str(db) if a == "DB" else a for a in READERS[command]]


def _one_error_line(res) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("probe: error: "), lines
    return lines[0]


@pytest.mark.parametrize("command", sorted(READERS))
def test_mistyped_db_is_an_error_not_a_new_file(tmp_path: Path, command: str) -> None:
    db = tmp_path / "typo" / "probe.db"
    res = CliRunner().invoke(app, _args(command, db))
    assert res.exit_code == 1, res.output
    assert str(db) in _one_error_line(res)
    assert not db.exists() and not db.parent.exists()


@pytest.fixture(scope="module")
def newer_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("newer") / "p.db"
    build_db(db)
    con = sqlite3.connect(db)
    with con:
        con.execute(f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) "
                    f"VALUES (?, 'from the future', '2030-01-01T00:00:00Z')",
                    (SCHEMA_VERSION + 1,))
    con.close()
    return db


@pytest.mark.parametrize("command", sorted(READERS))
def test_every_reader_refuses_a_newer_schema(newer_db: Path, command: str) -> None:
    before = newer_db.read_bytes()
    res = CliRunner().invoke(app, _args(command, newer_db))
    assert res.exit_code == 1, res.output
    assert "newer than this probe" in _one_error_line(res)
    assert newer_db.read_bytes() == before


@pytest.mark.parametrize(("argv", "needle"), [
    (["results", "--db", "x" * 60 + "/" + "y" * 5000 + ".db"], "no such file"),
    (["export", "--db", "/" + "z/" * 3000 + "p.db", "--format", "jsonl"], "no such file"),
    (["targets", "validate", "/nope/" + "q" * 6000 + ".csv"], ""),
    (["report", "--db", "r" * 5000, "--format", "json", "--out", "-"], "no database"),
    (["compare", "--db", "r" * 5000], "no database"),
    (["results", "--db", "/tmp/a\nprobe: error: forged second line\x1b[31m.db"], "no such"),
])
def test_error_lines_are_capped(argv: list[str], needle: str) -> None:
    res = CliRunner().invoke(app, argv)
    assert res.exit_code in (1, 2), res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines and all(len(line) <= MAX_ERROR_LINE for line in lines), \
        [len(line) for line in lines]
    assert "\x1b" not in res.stderr
    assert len(lines) == 1 or not needle
    assert needle in lines[0]


# --- read-only media --------------------------------------------------------------------------

PROBE = [sys.executable, "-m", "probe"]


def _in_readonly_mount(directory: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``probe argv`` in a private mount namespace where ``directory`` is bind-mounted
    read-only over itself (the namespace, and the mount, end with the process)."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script, "sh", str(directory), *PROBE, *argv],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})


@pytest.mark.root
@pytest.mark.parametrize("command", ["results_json", "report", "export"])
def test_wal_database_on_readonly_media_can_be_read(tmp_path: Path, command: str) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a read-only bind mount)")
    media = tmp_path / "media"
    media.mkdir()
    db = media / "p.db"
    build_db(db)  # closed cleanly: WAL mode, no -wal or -shm left beside it
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    assert sorted(p.name for p in media.iterdir()) == ["p.db"]
    argv = _args(command, db)
    if command == "results_json":
        argv += ["--run", "latest"]
    done = _in_readonly_mount(media, argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    if command == "results_json":
        assert len(json.loads(done.stdout)) > 0
    assert sorted(p.name for p in media.iterdir()) == ["p.db"]  # nothing written there
    # and the mount is gone with its namespace: the directory is writable again here
    (media / "probe").write_text("x")


def test_results_still_reads_an_older_probes_database(tmp_path: Path) -> None:
    """Reading never creates a file, but an older probe's file (schema 6, before run leases)
    is migrated first, as before, so today's queries can read it."""
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    schema.migrate(sqlite_utils.Database(con), schema.MIGRATIONS[:6])
    with con:
        con.execute("INSERT INTO runs (run_id, started_at, last_seen_at, probe_version, "
                    "status, targets_total) VALUES ('20261101T000000Z-00000000', "
                    "'2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z', '0.1', 'completed', 0)")
    con.close()
    res = CliRunner().invoke(app, ["results", "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == []
    con = sqlite3.connect(db)
    assert con.execute(f"SELECT max(version) FROM {MIGRATIONS_TABLE}").fetchone()[0] == \
        SCHEMA_VERSION
    con.close()
