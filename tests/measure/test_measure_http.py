"""probe.measure.http: title extraction, bounded body decoding, redirect locations."""

from __future__ import annotations

import gzip
import zlib

import pytest

from probe.measure.http import (
    MAX_COOKIE_SIZE,
    MAX_COOKIES,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    BoundedDecoder,
    cap_cookies,
    cap_headers,
    decode_text,
    extract_title,
    resolve_location,
    usable_host,
)

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
        # hostile: hosts DNS cannot carry, an enormous URL, odd but usable hosts
        ("http://a.test/", "http://" + "x" * 64 + ".test/", None),
        ("http://a.test/", "http://b..test/", None),
        ("http://a.test/", "http://" + "abcdefgh." * 30 + "test/", None),
        ("http://a.test/", "http://b\x00.test/", None),
        ("http://a.test/", "https://[not-an-ip]:-1/%zz", None),
        ("http://a.test/", "http://b.test/?q=" + "L" * 9000, None),
        ("http://a.test/", "http://b.test/?q=" + "L" * 8000, "http://b.test/?q=" + "L" * 8000),
        ("http://a.test/", "http://xn--e1afmkfd.test/", "http://xn--e1afmkfd.test/"),
        ("http://a.test/", "http://пример.test/", "http://пример.test/"),
        ("http://a.test/", "http://[2001:db8::1]:8080/", "http://[2001:db8::1]:8080/"),
    ],
)
def test_resolve_location(base: str, location: str, expected: str | None) -> None:
    assert resolve_location(base, location) == expected


@pytest.mark.parametrize("charset", ["unicode_escape", "raw_unicode_escape", "punycode", "idna",
                                     "rot13", "zlib", "base64", "x-\xff-nope"])
def test_unsafe_or_non_text_charsets_fall_back_to_utf8(charset: str) -> None:
    body = b"<title>caf\xc3\xa9 \\ud800 \\x41</title>"
    text = decode_text(body, f"text/html; charset={charset}")
    assert text == body.decode("utf-8")  # escapes not interpreted, no warning raised
    assert extract_title(body, f"text/html; charset={charset}") == "caf\u00e9 \\ud800 \\x41"


@pytest.mark.parametrize("charset", ["utf-16", "utf-16-le", "utf-32", "utf-7", "cp1251", "hz"])
def test_any_charset_on_invalid_bytes_gives_storable_text(charset: str) -> None:
    body = b"<title>\xff\xfe\xd8\x00\xdc\x00\x00\xd8 x \xc3\x28</title>\xed\xa0\x80\x00"
    text = decode_text(body, f"text/html; charset={charset}")
    text.encode("utf-8")  # no lone surrogate survives
    title = extract_title(body, f"text/html; charset={charset}")
    assert title is None or title.encode("utf-8")


def test_headers_are_capped_in_count_and_length() -> None:
    many = tuple((f"x{i}", "y" * (MAX_HEADER_VALUE + 10)) for i in range(MAX_HEADERS + 50))
    capped = cap_headers(many)
    assert len(capped) == MAX_HEADERS and capped[0] == ("x0", "y" * MAX_HEADER_VALUE)
    assert cap_headers((("A", "b"),)) == (("A", "b"),)


@pytest.mark.parametrize(("host", "usable"), [
    ("a.test", True), ("127.0.0.1", True), ("[::1]", True), ("a.test.", True),
    ("", False), ("a..test", False), ("x" * 64 + ".test", False), ("a b.test", False),
    ("a\x7f\x01.test", False), ("a/b.test", False), ("xn--.test", True),
])
def test_usable_host(host: str, usable: bool) -> None:
    assert usable_host(host) is usable


def test_cookie_jar_is_capped() -> None:
    import httpx

    cookies = httpx.Cookies()
    cookies.set("big", "x" * MAX_COOKIE_SIZE, domain="a.test")
    for i in range(MAX_COOKIES * 3):
        cookies.set(f"c{i}", "v", domain="a.test")
    cap_cookies(cookies)
    names = [c.name for c in cookies.jar]
    assert len(names) == MAX_COOKIES and "big" not in names
    cap_cookies(cookies)  # idempotent
    assert len(list(cookies.jar)) == MAX_COOKIES


def test_junk_after_a_gzip_member_is_counted_never_kept() -> None:
    decoder = BoundedDecoder("gzip", 64 * 1024)
    decoder.feed(gzip.compress(b"<title>page</title>"))
    fed = 0
    while not decoder.truncated:
        decoder.feed(b"\x00junk" * 8192)
        fed += 1
        assert fed < 10  # ends once more than the cap has come after the stream
    body, truncated = decoder.finish()
    assert body == b"<title>page</title>" and truncated
    assert decoder._zlib is None or len(decoder._zlib.unused_data) < 64 * 1024


@pytest.mark.parametrize("step", [1, 2, 7, 1000])
def test_gzip_members_are_all_decoded_however_split(step: int) -> None:
    wire = b"".join(gzip.compress(b"m%d " % i) for i in range(200))
    decoder = BoundedDecoder("gzip", 10_000)
    for i in range(0, len(wire), step):
        decoder.feed(wire[i:i + step])
    assert decoder.finish() == (b"".join(b"m%d " % i for i in range(200)), False)


def test_a_bomb_split_into_members_is_bounded_too() -> None:
    member = gzip.compress(bytes(1 << 20))
    decoder = BoundedDecoder("gzip", 256 * 1024)
    decoder.feed(member * 100)
    assert decoder.finish() == (bytes(256 * 1024), True)


def test_a_little_junk_after_the_stream_is_harmless() -> None:
    decoder = BoundedDecoder("deflate", 1000)
    decoder.feed(zlib.compress(b"zlibbed") + b"\r\n")
    assert decoder.finish() == (b"zlibbed", False)
