"""Upload batches in zstd (issue 16): the codec's caps and refusals, and a real collector
process on loopback that advertises zstd, accepts it, and stops a zstd bomb at its cap."""

from __future__ import annotations

import gzip
import json
import sqlite3
import tracemalloc
import zlib

import httpx
import pytest

zstandard = pytest.importorskip("zstandard")

from probe.cli.root import app  # noqa: E402
from probe.collector import codec  # noqa: E402
from probe.collector.upload import UploadOptions, upload  # noqa: E402
from probe.errors import UsageError  # noqa: E402
from probe.lab.bench.collector_case import CollectorProcess, enroll, fill_probe_db  # noqa: E402
from tests.clirunner import CliRunner  # noqa: E402
from tests.collector.helpers import valid_batch  # noqa: E402

MB = 1024 * 1024
PAGE = json.dumps({"records": [{"title": f"page {i}", "body": "x" * 300} for i in range(50)]}
                  ).encode()


def _zstd_bomb(size: int) -> bytes:
    """``size`` zero bytes in one zstd frame of a few kB (the content size left out, so the
    frame header does not give it away)."""
    c = zstandard.ZstdCompressor(level=19, write_content_size=False)
    w = c.compressobj()
    return b"".join(w.compress(bytes(MB)) for _ in range(size // MB)) + w.flush()


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_round_trip(encoding):
    packed = codec.compress(PAGE, encoding)
    assert codec.decompress(packed, encoding, len(PAGE)) == PAGE
    with pytest.raises(codec.TooLarge):
        codec.decompress(packed, encoding, len(PAGE) - 1)


def test_zstd_is_smaller_than_gzip_on_a_batch():
    assert len(codec.compress(PAGE, "zstd")) < len(codec.compress(PAGE, "gzip"))


BOMB = _zstd_bomb(200 * MB)


@pytest.mark.parametrize(("name", "body", "error"), [
    ("bomb", BOMB, codec.TooLarge),
    ("truncated", codec.compress(PAGE, "zstd")[:-4], ValueError),
    ("data after the frame", codec.compress(PAGE, "zstd") + b"junk", ValueError),
    ("two frames", codec.compress(PAGE, "zstd") * 2, ValueError),
    ("not zstd", b"garbage, not a frame", ValueError),
    ("gzip labelled zstd", gzip.compress(PAGE), ValueError),
])
def test_zstd_refusals(name, body, error):
    with pytest.raises(error):
        codec.decompress(body, "zstd", 4 * MB)


def test_a_zstd_bomb_stops_at_the_cap_in_memory_too():
    assert len(BOMB) < 64 * 1024  # 200 MB of zeros
    tracemalloc.start()
    try:
        with pytest.raises(codec.TooLarge, match="larger than"):
            codec.decompress(BOMB, "zstd", 4 * MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * MB, peak  # about the cap (4 MB) and a read buffer, never 200 MB


def test_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match="unsupported Content-Encoding 'br'"):
        codec.decompress(b"{}", "br", MB)


def test_the_collector_advertises_accepts_zstd_and_stops_a_bomb(tmp_path, monkeypatch):
    col = tmp_path / "collector.db"
    _, tok = enroll(col, "z")
    batch = valid_batch(tmp_path, 2)
    with CollectorProcess(col, "--max-body-mb", "1") as c:
        health = httpx.get(f"{c.url}/v1/health", timeout=10).json()
        assert health["encodings"][:2] == ["zstd", "gzip"]
        h = {"authorization": f"Bearer {tok}", "content-type": "application/json"}

        def post(body: bytes, encoding: str) -> httpx.Response:
            return httpx.post(f"{c.url}/v1/batches", content=body, timeout=30,
                              headers={**h, "content-encoding": encoding})

        ok = post(codec.compress(json.dumps(batch).encode(), "zstd"), "zstd")
        assert ok.status_code == 200 and len(ok.json()["accepted"]) == 2, ok.text
        bomb = post(BOMB, "zstd")  # 200 MB inflated, the collector's cap is 64 MB
        assert bomb.status_code == 413 and "decompressed" in bomb.json()["error"], bomb.text
        bad = post(b"\x28\xb5\x2f\xfd garbage", "zstd")
        assert bad.status_code == 400 and "bad zstd data" in bad.json()["error"], bad.text
        # probe upload: auto picks zstd from the collector's advertisement; gzip on request
        db = tmp_path / "p.db"
        fill_probe_db(db, 6)
        fast = UploadOptions(batch_size=4, base_delay=0.05, max_delay=0.5, timeout=10)
        r = upload(str(db), c.url, tok, fast)
        assert (r.encoding, r.accepted, r.batches) == ("zstd", 6, 2)
        fill_probe_db(db, 3, seed=4)
        out = CliRunner().invoke(app, ["upload", "--db", str(db), "--collector", c.url,
                                       "--token", tok, "--encoding", "gzip"])
        assert out.exit_code == 0 and "3 measurements" in out.output, out.output
        assert "(gzip;" in out.output
        # a probe without the zstandard package: gzip, whatever the collector offers
        monkeypatch.setattr(codec, "_zstd", lambda: None)
        fill_probe_db(db, 2, seed=5)
        assert upload(str(db), c.url, tok, fast).encoding == "gzip"
        with pytest.raises(UsageError, match="zstandard"):
            upload(str(db), c.url, tok, UploadOptions(encoding="zstd"))
    conn = sqlite3.connect(col)
    assert conn.execute("SELECT count(*) FROM measurements").fetchone()[0] == 2 + 6 + 3 + 2
    conn.close()


def test_without_zstd_the_collector_says_use_gzip(monkeypatch):
    monkeypatch.setattr(codec, "_zstd", lambda: None)
    assert codec.encodings() == ("gzip",)
    with pytest.raises(ValueError, match="use gzip"):
        codec.decompress(codec.compress(PAGE, "gzip"), "zstd", MB)
    assert zlib.decompress(codec.compress(PAGE, "gzip"), 31) == PAGE
