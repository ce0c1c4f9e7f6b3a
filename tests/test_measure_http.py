"""probe.measure.http: title extraction, bounded body decoding, redirect locations."""

from __future__ import annotations

import gzip
import zlib

import pytest

from probe.measure.http import BoundedDecoder, extract_title, resolve_location

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("body", "content_type", "title"),
    [
        (b"<html><head><title>Hello</title></head></html>", None, "Hello"),
        (b"<TITLE lang='en'>  Spaced\n\t out  </TITLE>", None, "Spaced out"),
        (b"<title>Fish &amp; Chips &#8211; &eacute;</title>", None, "Fish & Chips \u2013 \u00e9"),
        (b"<html><body>no title here</body></html>", None, None),
        (b"<title></title>", None, ""),
        (b"<titlebar>x</titlebar><title>Real</title>", None, "Real"),
        (b"<title>Unclosed title<body>rest", None, "Unclosed title"),
        (b"<title>Unclosed to the end", None, "Unclosed to the end"),
        (b"<title", None, None),
        # encodings: header charset, meta charset, BOM, broken bytes, unknown charset
        ("<title>Казахстан</title>".encode("cp1251"), "text/html; charset=windows-1251",
         "Казахстан"),
        (b'<meta charset="koi8-r"><title>' + "Привет".encode("koi8-r") + b"</title>", None,
         "Привет"),
        (b"\xef\xbb\xbf<title>BOM</title>", None, "BOM"),
        ("<title>UTF16</title>".encode("utf-16"), None, "UTF16"),
        (b"<title>bad \xff\xfe bytes</title>", "text/html; charset=utf-8",
         "bad \ufffd\ufffd bytes"),
        (b"<title>odd</title>", "text/html; charset=no-such-charset", "odd"),
    ],
)
def test_extract_title(body: bytes, content_type: str | None, title: str | None) -> None:
    assert extract_title(body, content_type) == title


def test_title_is_capped_and_search_is_bounded() -> None:
    assert extract_title(b"<title>" + b"word " * 1000 + b"</title>") == ("word " * 52)[:256]
    late = b"x" * (300 * 1024) + b"<title>too late</title>"
    assert extract_title(late) is None


def test_title_scan_is_linear_on_hostile_input() -> None:
    # many unterminated openings must not make the scan quadratic
    assert extract_title(b"<title" * 40000) is None


def _decode(encoding: str | None, data: bytes, cap: int, chunk: int = 1000) -> tuple[bytes, bool]:
    d = BoundedDecoder(encoding, cap)
    for i in range(0, len(data), chunk):
        d.feed(data[i:i + chunk])
    return d.finish()


PAGE = b"<html>" + bytes(range(256)) * 40 + b"</html>"


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        (None, PAGE),
        ("identity", PAGE),
        ("gzip", gzip.compress(PAGE)),
        ("deflate", zlib.compress(PAGE)),
        ("deflate", zlib.compress(PAGE)[2:-4]),  # raw deflate, as some servers send
    ],
)
def test_decoder_round_trips(encoding: str | None, data: bytes) -> None:
    assert _decode(encoding, data, cap=1 << 20) == (PAGE, False)


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_decoder_truncates_at_cap(encoding: str | None) -> None:
    data = gzip.compress(PAGE) if encoding else PAGE
    body, truncated = _decode(encoding, data, cap=100)
    assert body == PAGE[:100] and truncated


def test_decoder_exact_cap_is_not_truncated() -> None:
    assert _decode(None, PAGE, cap=len(PAGE)) == (PAGE, False)


def test_decoder_bounds_a_compression_bomb() -> None:
    bomb = gzip.compress(b"\0" * (20 << 20))
    body, truncated = _decode("gzip", bomb, cap=4096, chunk=len(bomb))
    assert len(body) == 4096 and truncated


@pytest.mark.parametrize("encoding", ["gzip", "br", "compress"])
def test_decoder_keeps_undecodable_bodies_as_received(encoding: str) -> None:
    assert _decode(encoding, b"<html>plain, whatever the header says</html>", cap=1000) == (
        b"<html>plain, whatever the header says</html>", False)


@pytest.mark.parametrize(
    ("base", "location", "expected"),
    [
        ("http://a.test/x/y", "/z", "http://a.test/z"),
        ("http://a.test/x/y", "z?q=1", "http://a.test/x/z?q=1"),
        ("https://a.test:8443/", "//b.test/p", "https://b.test/p"),
        ("http://a.test/", "https://b.test:444/p#f", "https://b.test:444/p#f"),
        ("http://a.test/", "  /padded  ", "http://a.test/padded"),
        ("http://a.test/", "", None),
        ("http://a.test/", "ftp://b.test/", None),
        ("http://a.test/", "javascript:alert(1)", None),
        ("http://a.test/", "https://", None),
        ("http://a.test/", "http://[::1/", None),
        ("http://a.test/", "http://b.test:99999/", None),
    ],
)
def test_resolve_location(base: str, location: str, expected: str | None) -> None:
    assert resolve_location(base, location) == expected
