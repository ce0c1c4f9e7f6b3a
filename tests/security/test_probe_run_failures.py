"""Any error during a run is one line, exit 1, the run marked ``interrupted`` and nothing
already finished lost (issue 13), one test per cause, through the CLI's boundary; no root.

Causes: the database fills up (SQLITE_FULL, provoked with ``PRAGMA max_page_count`` on the
probe's own connection: the same error a full disk gives), the database file is corrupted
under the running probe, and the CA bundle becomes unusable midway; plus every unusable
``--ca-bundle`` given at the start (one line, no database created). The failure is injected
just before the third target is stored (concurrency 1), so two finished targets must survive.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probe.cli.root import app
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.measure import certs
from probe.store import Store
from tests.clirunner import CliRunner

pytestmark = pytest.mark.timeout(60)

N = 6


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackWorld]:
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def _before_third_save(monkeypatch: pytest.MonkeyPatch, action: Callable[[Store], Any]) -> None:
    original = Store.save_measurement
    calls = 0

    def save(self: Store, *args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 3:
            action(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Store, "save_measurement", save)


def _run(world: LoopbackWorld, db: Path, ca: str | None = None,
         extra: tuple[str, ...] = ()) -> Any:
    host, port = world.dns_address
    ok = demo_urls(world)["ok"]
    return CliRunner().invoke(app, [
        "run", *(f"{ok}page{i}" for i in range(N)), "--db", str(db), "--no-system-resolver",
        "--resolver", f"{host}:{port}", "--ca-bundle", ca or world.ca_pem, "--timeout", "3",
        "--quiet", "--concurrency", "1", *extra])


def _one_error_line(res: Any) -> str:
    # Notices (e.g. "no control helper to learn the public address from") may precede it.
    lines = [line for line in res.stderr.splitlines()
             if line.strip() and not line.startswith("probe: no control helper")]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("probe: error: "), lines
    return lines[0]


def _kept(db: Path) -> tuple[str, int, int]:
    """The run's status, its measurements and their current verdicts, read around indexes."""
    con = sqlite3.connect(db)
    try:
        status = con.execute("SELECT status FROM runs").fetchall()
        kept = con.execute("SELECT count(*) FROM measurements NOT INDEXED").fetchone()[0]
        judged = con.execute("SELECT count(*) FROM verdicts NOT INDEXED "
                             "WHERE is_current = 1").fetchone()[0]
    finally:
        con.close()
    assert len(status) == 1
    return status[0][0], kept, judged


def _fill_up(store: Store) -> None:
    """From now on the database may not grow: the next page it needs is SQLITE_FULL."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")


def _corrupt_index(db: Path) -> Callable[[Store], None]:
    def corrupt(_: Store) -> None:
        con = sqlite3.connect(db)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = con.execute("PRAGMA page_size").fetchone()[0]
            root = con.execute("SELECT rootpage FROM sqlite_master "
                               "WHERE name = 'measurements_url'").fetchone()[0]
            with open(db, "r+b") as f:
                f.seek((root - 1) * size)
                f.write(b"\xa5" * size)
            con.execute("PRAGMA user_version = 7")  # others' page caches are dropped
        finally:
            con.close()
    return corrupt


def _spoil_bundle(path: Path) -> Callable[[Store], None]:
    def spoil(_: Store) -> None:
        path.write_text("not a certificate\n")
        certs.trust_anchors.cache_clear()  # as a fresh process would read it
    return spoil


@pytest.mark.parametrize("cause", ["database_full", "database_corrupted", "ca_bundle_spoilt"])
def test_failure_midway_keeps_what_finished(world: LoopbackWorld, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            cause: str) -> None:
    db = tmp_path / "p.db"
    bundle = tmp_path / "ca.pem"
    bundle.write_text(Path(world.ca_pem).read_text())
    certs.trust_anchors.cache_clear()
    action, needle = {
        "database_full": (_fill_up, "full"),
        "database_corrupted": (_corrupt_index(db), "malformed"),
        "ca_bundle_spoilt": (_spoil_bundle(bundle), "holds no PEM certificate"),
    }[cause]
    _before_third_save(monkeypatch, action)
    try:
        res = _run(world, db, str(bundle))
    finally:
        certs.trust_anchors.cache_clear()
    assert res.exit_code == 1, res.output
    assert needle in _one_error_line(res)
    status, kept, judged = _kept(db)
    assert status == "interrupted"
    assert 2 <= kept < N and judged == kept


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe test CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


DAMAGED = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("garbage", b"hello\n", "holds no PEM certificate"),
    ("empty", b"", "holds no PEM certificate"),
    ("damaged_only", DAMAGED, "holds no PEM certificate"),
    ("good_then_damaged", None, "unusable for TLS"),   # OpenSSL refuses what x509 skips
    ("directory", "dir", "no such file"),
    ("missing", "missing", "no such file"),
])
def test_unusable_ca_bundle_is_one_line_and_no_database(world: LoopbackWorld, tmp_path: Path,
                                                        name: str, content: bytes | str | None,
                                                        needle: str) -> None:
    bundle = tmp_path / f"{name}.pem"
    if content == "dir":
        bundle.mkdir()
    elif content is None:
        bundle.write_bytes(_certificate() + DAMAGED)
    elif isinstance(content, bytes):
        bundle.write_bytes(content)
    db = tmp_path / "p.db"
    res = _run(world, db, str(bundle), ("--control", "http://127.0.0.1:9"))
    assert res.exit_code in (1, 2), res.output
    assert needle in _one_error_line(res)
    assert not db.exists()
