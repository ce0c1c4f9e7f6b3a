"""Hostile uploads to a real collector process on loopback: each rejected or neutralised with a
clear error, and nothing stored that should not be (issue 16).

One table, :data:`CASES`: what the attacker sends, the status and the error (or refusal) the
collector must answer, and what must (not) be in its database afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gzip
import json
import socket
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from probe.cli.root import app
from probe.collector.receiver import CollectorServer, Limits
from probe.lab.bench.collector_case import CollectorProcess, enroll
from probe.store.collector import CollectorStore
from tests.clirunner import CliRunner
from tests.collector.helpers import valid_batch

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class World:
    url: str
    db: Path
    tmp: Path
    batch: dict[str, Any]  # a valid batch of 2 measurements

    def token(self, **kw: Any) -> tuple[str, str]:
        return enroll(self.db, **kw)

    def post(self, body: bytes | dict[str, Any] | list[Any], token: str | None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"content-type": "application/json", **(headers or {})}
        if token is not None:
            h["authorization"] = f"Bearer {token}"
        return httpx.post(f"{self.url}/v1/batches", content=data, headers=h, timeout=30)

    def stored(self, probe_id: str | None = None) -> int:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            if probe_id is None:
                return conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
            return conn.execute("SELECT count(*) FROM collector_received WHERE probe_id = ?",
                                (probe_id,)).fetchone()[0]
        finally:
            conn.close()

    def fresh(self, batch_id_suffix: str) -> dict[str, Any]:
        b = copy.deepcopy(self.batch)
        b["batch_id"] = "b" + batch_id_suffix.rjust(24, "0")
        return b


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Any:
    tmp = tmp_path_factory.mktemp("hostile")
    db = tmp / "collector.db"
    with CollectorProcess(db, "--max-body-mb", "1") as c:
        yield World(c.url, db, tmp, valid_batch(tmp, 2))


def _expect(r: httpx.Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    assert error in r.json()["error"], r.text


# --- the cases: each returns nothing and asserts what it must --------------------------------


def malformed_json(w: World) -> None:
    pid, tok = w.token()
    _expect(w.post(b'{"schema": "probe.upload/1", "records": [', tok), 400, "not JSON")
    assert w.stored(pid) == 0


def wrong_schema(w: World) -> None:
    pid, tok = w.token()
    _expect(w.post({**w.fresh("1"), "schema": "other/1"}, tok), 400, "batch.schema")
    bad = w.fresh("2")
    for r in bad["records"]:
        r["schema"] = "probe.jsonl/0"
    res = w.post(bad, tok)
    assert res.status_code == 200 and res.json()["accepted"] == []
    assert all("record.schema" in why for why in res.json()["refused"].values())
    assert w.stored(pid) == 0


def huge_batch(w: World) -> None:
    pid, tok = w.token()
    # over the size cap: refused from the Content-Length, before the body is read
    _expect(w.post(b"x" * (2 * 1024 * 1024), tok), 413, "larger than")
    # a gzip bomb: 70 MB of zeros in 70 KB, stopped at the decompressed cap
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(z.compress(bytes(1024 * 1024)) for _ in range(70)) + z.flush()
    assert len(bomb) < 1024 * 1024
    _expect(w.post(bomb, tok, {"content-encoding": "gzip"}), 413, "decompressed")
    # too many records
    many = {**w.fresh("3"), "records": [w.batch["records"][0]] * 1001}
    _expect(w.post(gzip.compress(json.dumps(many).encode()), tok,
                   {"content-encoding": "gzip"}), 400, "more than 1000")
    _expect(w.post(b"{}", tok, {"content-encoding": "br"}), 400, "Content-Encoding")
    assert w.stored(pid) == 0


def another_probes_ids(w: World) -> None:
    a, tok_a = w.token()
    b, tok_b = w.token()
    assert w.post(w.fresh("10"), tok_a).json()["accepted"]
    mine = w.batch["records"][0]["measurement_id"]
    # B sends A's very ids with other content: stored under B's own namespace, A's untouched
    forged = w.fresh("11")
    for r in forged["records"]:
        for h in r["http"]:
            h["title"] = "forged by B"
    assert len(w.post(forged, tok_b).json()["accepted"]) == 2
    # and cannot even name A's namespace
    named = w.fresh("12")
    named["records"][0]["measurement_id"] = f"{mine}@{a}"
    res = w.post(named, tok_b).json()
    assert "measurement_id" in res["refused"][f"{mine}@{a}"]
    conn = sqlite3.connect(f"file:{w.db}?mode=ro", uri=True)
    titles = dict(conn.execute("SELECT measurement_id, title FROM http_requests "
                               "WHERE measurement_id IN (?, ?)", (f"{mine}@{a}", f"{mine}@{b}")))
    conn.close()
    assert titles[f"{mine}@{b}"] == "forged by B"
    assert titles[f"{mine}@{a}"] != "forged by B"
    assert (w.stored(a), w.stored(b)) == (2, 2)


def xss_in_titles(w: World) -> None:
    pid, tok = w.token()
    b = w.fresh("20")
    b["records"] = b["records"][:1]
    r = b["records"][0]
    r["measurement_id"] = r["measurement_id"][:-4] + "beef"
    r["target"].update(url="https://xss.test/", hostname="xss.test")  # the report's only one
    for h in r["http"]:
        h["title"] = XSS
    r["verdict"].update(verdict="blocked", method="http.blockpage", evidence=f"page {XSS}")
    assert w.post(b, tok).json()["accepted"]
    out = w.tmp / "report.html"
    res = CliRunner().invoke(app, ["report", "--db", str(w.db), "--since", "2020-01-01",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "&lt;script&gt;" in html  # shown, as text
    assert "<script>alert" not in html and "<img src=x" not in html


def replayed_batch(w: World) -> None:
    pid, tok = w.token()
    b = w.fresh("30")
    first = w.post(b, tok).json()
    again = w.post(b, tok).json()
    assert len(first["accepted"]) == 2 and again["accepted"] == []
    assert sorted(again["duplicates"]) == sorted(first["accepted"])
    assert w.stored(pid) == 2


def expired_token(w: World) -> None:
    pid, tok = w.token(ttl_days=0.0)
    _expect(w.post(w.fresh("40"), tok), 403, "token expired")
    assert w.stored(pid) == 0


def revoked_token(w: World) -> None:
    from probe.store.collector import CollectorStore

    pid, tok = w.token()
    with CollectorStore(w.db) as s:
        assert s.revoke(pid)
    _expect(w.post(w.fresh("41"), tok), 403, "token revoked")
    assert w.stored(pid) == 0


def unknown_or_missing_token(w: World) -> None:
    before = w.stored()
    _expect(w.post(w.fresh("42"), "guess"), 401, "unknown token")
    _expect(w.post(w.fresh("43"), None), 401, "missing token")
    assert w.stored() == before


def bad_requests(w: World) -> None:
    _, tok = w.token()
    assert httpx.get(f"{w.url}/v1/batches").status_code == 405
    assert httpx.get(f"{w.url}/admin").status_code == 404
    chunked = httpx.post(f"{w.url}/v1/batches", content=iter([b"{}"]),
                         headers={"authorization": f"Bearer {tok}"})
    assert chunked.status_code == 411


def deeply_nested(w: World) -> None:
    pid, tok = w.token()
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        _expect(w.post(deep, tok), 400, "nested too deeply")  # before: no answer, a traceback
        _expect(w.post(gzip.compress(deep), tok, {"content-encoding": "gzip"}), 400,
                "nested too deeply")
    assert w.stored(pid) == 0


def bad_values(w: World) -> None:
    pid, tok = w.token()
    b = w.fresh("50")
    b["records"][0]["dns"][0]["failure"] = "rm -rf /"
    b["records"][1]["started_at"] = "2099-01-01T00:00:00Z"
    res = w.post(b, tok).json()
    assert res["accepted"] == [] and len(res["refused"]) == 2
    assert w.stored(pid) == 0


CASES: list[tuple[str, Callable[[World], None]]] = [
    ("malformed JSON", malformed_json),
    ("wrong schema (batch or record)", wrong_schema),
    ("huge batches (size, gzip bomb, count, encoding)", huge_batch),
    ("another probe's ids", another_probes_ids),
    ("XSS in titles and evidence: inert in reports", xss_in_titles),
    ("replayed batch", replayed_batch),
    ("expired token", expired_token),
    ("revoked token", revoked_token),
    ("unknown or missing token", unknown_or_missing_token),
    ("wrong method, path, no length", bad_requests),
    ("values outside the vocabularies and time bounds", bad_values),
    ("JSON nested 100,000 deep", deeply_nested),
]


@pytest.mark.parametrize(("what", "case"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_upload_is_rejected_or_neutralised(world, what, case):
    case(world)


@contextlib.contextmanager
def in_process(tmp_path: Path, **limits: Any) -> Iterator[tuple[CollectorServer, int, Path]]:
    """A CollectorServer with small limits on 127.0.0.1, its loop in a thread."""
    db = tmp_path / "c.db"
    server = CollectorServer(CollectorStore(db), Limits(**limits))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    _, port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(10)
    try:
        yield server, port, db
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _head(token: str | None, length: int, path: str = "/v1/batches") -> bytes:
    auth = f"authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nhost: c\r\ncontent-type: application/json\r\n{auth}"
            f"content-length: {length}\r\n\r\n").encode()


def _answer(sock: socket.socket, timeout: float = 5.0) -> str:
    """The status line of what the collector answers ('' = closed without an answer)."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except (TimeoutError, ConnectionError):
        return ""
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def test_idle_and_dripping_connections_cannot_lock_probes_out(tmp_path):
    """Before: 128 idle sockets (here 4) made every probe's upload a 503 for 60 s each."""
    with CollectorProcess(tmp_path / "c.db", "--max-connections", "4") as c:
        w = World(c.url, tmp_path / "c.db", tmp_path, valid_batch(tmp_path, 2))
        _, tok = w.token()
        idle = [socket.create_connection(("127.0.0.1", c.port)) for _ in range(4)]
        for s in idle[2:]:
            s.sendall(b"POST /v1/batches HTTP/1.1\r\nx-drip: ")  # a head that never ends
        try:
            time.sleep(0.3)
            assert httpx.get(f"{c.url}/v1/health").status_code == 200
            r = w.post(w.fresh("60"), tok)
            assert r.status_code == 200 and len(r.json()["accepted"]) == 2, r.text
        finally:
            for s in idle:
                s.close()


def test_authenticated_uploads_are_not_dropped_and_beyond_them_it_is_503(tmp_path):
    with in_process(tmp_path, max_connections=2, per_probe=8) as (server, port, db):
        _, tok = enroll(db)
        uploads = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            for s in uploads:  # authenticated heads, bodies not sent yet
                s.sendall(_head(tok, 1000))
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", port)) as late:
                late.sendall(b"GET /v1/health HTTP/1.1\r\nhost: c\r\n\r\n")
                assert _answer(late) == "HTTP/1.1 503 "
            assert server.stats["evicted"] == 0 and server.open_connections == 2
        finally:
            for s in uploads:
                s.close()


def test_a_head_dripped_a_byte_at_a_time_is_cut_at_the_header_deadline(tmp_path):
    with in_process(tmp_path, header_timeout=0.5) as (server, port, _):
        with socket.create_connection(("127.0.0.1", port)) as s:
            started = time.monotonic()
            try:
                for b in _head(None, 10):
                    s.sendall(bytes([b]))
                    time.sleep(0.1)
            except OSError:
                pass  # cut while sending: what the deadline is for
            assert _answer(s, 2.0) == ""
            assert time.monotonic() - started < 4.0  # 0.5 s deadline, not the 60 s one
        time.sleep(0.2)
        assert server.open_connections == 0


@pytest.mark.parametrize(("token", "status"), [(None, "401"), ("guess", "401"), ("rate", "429")])
def test_no_body_is_read_before_the_token_and_the_rate_are_checked(tmp_path, token, status):
    """Before: the collector read (and held) a 16 MB body from anyone before checking the
    token; here the head announces 15 MB and no byte of it is sent: the answer comes at once."""
    with in_process(tmp_path, rate=0.001, burst=1.0) as (server, port, db):
        if token == "rate":
            _, token = enroll(db)
            assert server.rates.take(server.store.authenticate(token)) == 0  # the only token
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_head(token, 15 * 1024 * 1024))
            assert _answer(s).startswith(f"HTTP/1.1 {status}")


def test_one_probe_has_at_most_its_share_of_uploads_in_flight(tmp_path):
    with in_process(tmp_path, per_probe=2) as (_, port, db):
        _, tok = enroll(db)
        _, other = enroll(db)
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            for s in slow:
                s.sendall(_head(tok, 1000) + b"{")  # a body dripping in
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", port)) as third:
                third.sendall(_head(tok, 2) + b"{}")
                assert _answer(third).startswith("HTTP/1.1 429")
            with socket.create_connection(("127.0.0.1", port)) as theirs:
                theirs.sendall(_head(other, 2) + b"{}")
                assert _answer(theirs).startswith("HTTP/1.1 400")  # judged: not a batch
        finally:
            for s in slow:
                s.close()


def test_an_unexpected_error_is_a_500_and_one_log_line(tmp_path, caplog, monkeypatch):
    def broken(*_: Any) -> Any:
        raise RuntimeError("surprise\nsecond line")

    monkeypatch.setattr("probe.collector.receiver._decode_and_check", broken)
    with in_process(tmp_path) as (server, port, db):
        _, tok = enroll(db)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_head(tok, 2) + b"{}")
            assert _answer(s).startswith("HTTP/1.1 500")
    assert server.stats["errors"] == 1
    logged = [r for r in caplog.records if r.name == "probe.collector"]
    assert [r.getMessage() for r in logged] == ["collector: RuntimeError: surprise"]
    assert not any(r.exc_info for r in logged)


def test_one_probe_flooding_is_rate_limited_alone(tmp_path):
    db = tmp_path / "c.db"
    with CollectorProcess(db, "--rate", "0.5") as c:  # a burst of 2, then one per 2 s
        w = World(c.url, db, tmp_path, {})
        _, tok = w.token()
        empty = {"schema": "probe.upload/1", "batch_id": "b" + "5" * 24, "records": []}
        statuses = [w.post(empty, tok) for _ in range(5)]
        limited = [r for r in statuses if r.status_code == 429]
        assert len(limited) >= 2, [r.status_code for r in statuses]
        assert "rate limited" in limited[0].json()["error"]
        assert int(limited[0].headers["retry-after"]) >= 1
        _, other = w.token()  # another probe is not slowed by this one
        assert w.post(empty, other).status_code == 200
