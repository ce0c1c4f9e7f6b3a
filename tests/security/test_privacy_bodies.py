"""Privacy: bodies are scrubbed after decoding their whole content-encoding chain, and a body
that cannot be decoded is not stored, with the reason recorded (issue 13)."""

from __future__ import annotations

import gzip
import hashlib
import zlib

import pytest

from probe.model import Verdict, VerdictKind
from probe.store import Store
from probe.store.privacy import PLACEHOLDER, Scrubber, decode_body
from tests.factories import every_stored_value, http, meas

ME = "85.113.40.17"
PAGE = f"<html><title>hi</title><p>Your address: {ME}</p></html>".encode()


def _deflate(data: bytes, raw: bool = False) -> bytes:
    z = zlib.compressobj(wbits=-15 if raw else 15)
    return z.compress(data) + z.flush()


def _obs(body: bytes, encoding: str | None):
    headers = (("Content-Type", "text/html"),) + (
        (("Content-Encoding", encoding),) if encoding else ())
    return http(body=body, headers=headers)


try:
    import brotli  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    brotli = None


@pytest.mark.parametrize(("encoding", "body"), [
    ("gzip", PAGE),  # the measuring step decoded it already
    ("gzip, gzip", gzip.compress(gzip.compress(PAGE))),
    ("deflate, gzip", gzip.compress(_deflate(PAGE))),
    ("gzip,deflate", _deflate(gzip.compress(PAGE), raw=True)),
    ("x-gzip", gzip.compress(PAGE)),
    ("deflate", _deflate(PAGE)),
    ("identity, gzip", gzip.compress(PAGE)),
    ("gzip", gzip.compress(PAGE[:20]) + gzip.compress(PAGE[20:])),  # two members
    ("br", PAGE),  # a server that says br and sends plain text: read as it is
] + ([("br, gzip", gzip.compress(brotli.compress(PAGE)))] if brotli else []))
def test_encoded_bodies_are_stored_decoded_and_scrubbed(encoding, body):
    if encoding == "br" and brotli is None:
        pytest.skip("without brotli a br body is dropped (next test)")
    s = Scrubber([ME])
    out = s.measurement(meas(http_=(_obs(body, encoding),)))
    (h,) = out.http
    expected = PAGE.replace(ME.encode(), PLACEHOLDER.encode())
    assert h.body == expected and h.body_sha256 == hashlib.sha256(expected).hexdigest()
    assert "privacy" not in out.extra


@pytest.mark.parametrize(("encoding", "body", "why"), [
    ("br", b"\x1b\x2f\x00\xf8" + bytes(range(60)), "br"),
    ("zstd", b"\x28\xb5\x2f\xfd" + bytes(40), "zstd"),
    ("compress", b"\x1f\x9d\x90" + bytes(40), "compress"),
    ("x-secret", b"\x00\x01opaque", "x-secret"),
    ("gzip", b"\x1f\x8b\x08\x00garbage that is not deflate", "corrupt"),
    ("x-secret, gzip", gzip.compress(b"\x00opaque"), "x-secret"),
])
def test_undecodable_bodies_are_dropped_with_a_reason(encoding, body, why):
    if encoding == "br" and brotli is not None:
        pytest.skip("brotli installed: this stream is judged by it")
    out = Scrubber([ME]).measurement(meas(http_=(_obs(body, encoding),)))
    (h,) = out.http
    assert h.body is None
    (note,) = out.extra["privacy"]
    assert note["reason"].startswith("body_dropped:") and why in note["reason"]
    assert note["tx_id"] == h.tx_id


def test_decoding_is_bounded():
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    decoded, why = decode_body(_obs(gzip.compress(bomb), "gzip, gzip"))
    assert why is None and decoded.body is not None
    assert len(decoded.body) <= 1024 * 1024 and decoded.body_truncated


def test_decoded_even_when_there_is_no_address_to_scrub():
    out = Scrubber().measurement(meas(http_=(_obs(gzip.compress(gzip.compress(PAGE)),
                                                  "gzip, gzip"),)))
    assert out.http[0].body == PAGE


def test_nothing_of_it_reaches_the_file(tmp_path):
    """End to end through the store: every spelling in every place, none in the file."""
    import base64
    spellings = [ME, "17.40.113.85.in-addr.arpa", "85-113-40-17", "0x55712811", "1433479185",
                 "085.113.040.017", "::ffff:5571:2811", "2002:5571:2811::1",
                 base64.b64encode(f"ip={ME}".encode()).decode(),
                 "\uff18\uff15.\uff11\uff11\uff13.\uff14\uff10.\uff11\uff17"]
    text = " ".join(spellings)
    bodies = [(gzip.compress(gzip.compress(text.encode())), "gzip, gzip"),
              (text.encode("utf-16"), None), (text.encode("utf-16-be"), None)]
    m = meas(http_=tuple(
        http(tx=10 + i, body=b, title=text, headers=(("X-Echo", text), ("Set-Cookie", text))
             + ((("Content-Encoding", e),) if e else ())) for i, (b, e) in enumerate(bodies)))
    v = Verdict(VerdictKind.BLOCKED, "http.blockpage", 0.9, text, "0.1.0", {"echo": text})
    db = tmp_path / "p.db"
    with Store.open(db, own_addresses=(ME,)) as store:
        run = store.start_run({"note": text}, 1, "0.1.0")
        store.save_measurement(run, m, v)
        store.finish_run(run, "completed")
    needles = [x.encode() for x in spellings[:-1]] + [
        spellings[-1].encode(), ME.encode("utf-16-le"), ME.encode("utf-16-be")]
    for table, col, value in every_stored_value(db):
        raw = value if isinstance(value, bytes) else str(value).encode()
        for needle in needles:
            assert needle not in raw, f"{table}.{col} holds {needle!r}"
    stored = [v for t, c, v in every_stored_value(db) if c == "body" and v]
    assert len(stored) == 3 and all(PLACEHOLDER.encode() in b or
                                    PLACEHOLDER.encode("utf-16-le") in b or
                                    PLACEHOLDER.encode("utf-16-be") in b for b in stored)


def test_a_body_the_measuring_step_decoded_is_never_inflated_again():
    """"deflate" has no magic number: the measuring step's decoded body (text or binary) must
    not be taken for a raw deflate stream that happens to parse."""
    import random
    rng = random.Random(3)
    for _ in range(3000):
        body = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
        decoded, why = decode_body(_obs(body, "deflate"))
        assert why is None and decoded.body == body, body
    assert decode_body(_obs(PAGE, "deflate"))[0].body == PAGE
