"""A database that fails midway through a run: one line, exit 1, run ``interrupted``.

(The file-corrupted-midway case is not here yet: garbage written under a live WAL-mode
connection is hidden by its page cache, so it needs a corruption SQLite is sure to read.)

Root only: each test mounts a small tmpfs for the database (always unmounted). The failure is
injected just before the third target is stored, so two finished targets must survive.
"""

from __future__ import annotations

import contextlib
import os
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
    lines = [line for line in res.stderr.splitlines() if line.strip()]
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
