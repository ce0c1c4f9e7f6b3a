"""A database that fails midway through a run: one line, exit 1, run ``interrupted``.

Two ways a volunteer's disk fails: it fills up, or the file is corrupted under the running
probe. Garbage written under a live WAL-mode connection is hidden by its page cache, so the
corruption test does what a failing disk plus another writer would: it checkpoints, overwrites
the root page of an index of ``measurements`` in the file (the rows themselves stay readable),
then commits an unrelated change, which makes the probe's connection drop its cache and read
the damaged page on its next write.

Root only: the disk-full test mounts a small tmpfs for the database (always unmounted). The
failure is injected just before the third target is stored, so two finished targets must
survive.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.cli.root import app
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.store import Store
from tests.clirunner import CliRunner

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackWorld]:
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root (mount -t tmpfs)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with open(path, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def _before_third_save(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    original = Store.save_measurement
    calls = 0

    def save(self: Store, *args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 3:
            action(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Store, "save_measurement", save)


def _run(world: LoopbackWorld, db: Path) -> Any:
    host, port = world.dns_address
    urls = list(demo_urls(world).values())
    return CliRunner().invoke(app, [
        "run", *urls, "--db", str(db), "--no-system-resolver", "--resolver", f"{host}:{port}",
        "--ca-bundle", world.ca_pem, "--timeout", "3", "--quiet", "--concurrency", "1"])


def _one_error_line(res: Any) -> str:
    lines = [line for line in res.stderr.splitlines()
             if line.strip() and not line.startswith("probe: no control helper")]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("probe: error: "), lines
    return lines[0]


def test_disk_full_midway(world: LoopbackWorld, small_disk: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    filler = small_disk / "filler"
    _before_third_save(monkeypatch, lambda _: _fill(filler))
    db = small_disk / "p.db"
    res = _run(world, db)
    assert res.exit_code == 1, res.output
    assert "full" in _one_error_line(res)
    filler.unlink()  # space freed: the analyst reads what was kept
    with Store.open(db) as store:
        assert store.get_run()["status"] == "interrupted"
        assert len(store.results()) == 2


def _corrupt_url_index(db: Path) -> None:
    """Overwrite the root page of the ``measurements_url`` index in the file and make every
    connection re-read it (another connection's commit invalidates their page caches)."""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'measurements_url'").fetchone()[0]
        with open(db, "r+b") as f:
            f.seek((root - 1) * page_size)
            f.write(b"\xa5" * page_size)
        con.execute("PRAGMA user_version = 7")  # a commit: other connections drop their cache
    finally:
        con.close()


def test_file_corrupted_midway(world: LoopbackWorld, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "p.db"
    _before_third_save(monkeypatch, lambda _: _corrupt_url_index(db))
    res = _run(world, db)
    assert res.exit_code == 1, res.output
    assert "malformed" in _one_error_line(res)
    con = sqlite3.connect(db)  # read around the damaged index: the rows are intact
    try:
        status = con.execute("SELECT status FROM runs").fetchall()
        kept = con.execute("SELECT count(*) FROM measurements NOT INDEXED").fetchone()[0]
        judged = con.execute("SELECT count(*) FROM verdicts NOT INDEXED "
                             "WHERE is_current = 1").fetchone()[0]
    finally:
        con.close()
    assert status == [("interrupted",)]
    assert kept == judged == 2
