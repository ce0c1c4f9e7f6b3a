"""Tests for probe.targets: URL normalisation, the three list formats, problems, shipped lists.

No network: every file is written under tmp_path, and URLs are only parsed.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.errors import TargetListError
from probe.targets import (
    CANARY_SCOPES,
    CATEGORIES,
    Canary,
    iter_file,
    load_canaries,
    load_file,
    load_sources,
    parse_url,
    validate_file,
)

ROOT = Path(__file__).resolve().parent.parent / "targets"
HEADER = "url,category_code,category_description,date_added,source,notes\n"
CANARY_HEADER = "target,scope,name,notes\n"


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return str(path)


def row(url: str, code: str = "NEWS", notes: str = "n") -> str:
    return f"{url},{code},desc,2024-01-01,test,{notes}\n"


# --- parse_url --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url", "hostname", "port", "path"),
    [
        ("http://example.com", "http://example.com/", "example.com", 80, "/"),
        ("HTTP://Example.COM/Path", "http://example.com/Path", "example.com", 80, "/Path"),
        ("  https://example.com/  \n", "https://example.com/", "example.com", 443, "/"),
        ("http://пример.рф", "http://xn--e1afmkfd.xn--p1ai/", "xn--e1afmkfd.xn--p1ai", 80, "/"),
        ("https://Bücher.DE/", "https://xn--bcher-kva.de/", "xn--bcher-kva.de", 443, "/"),
        ("http://example.com:80/", "http://example.com/", "example.com", 80, "/"),
        ("https://example.com:443/a", "https://example.com/a", "example.com", 443, "/a"),
        ("http://example.com:443/", "http://example.com:443/", "example.com", 443, "/"),
        ("https://example.com:8443", "https://example.com:8443/", "example.com", 8443, "/"),
        ("http://example.com:/", "http://example.com/", "example.com", 80, "/"),
        ("https://example.com/a?b=1&c=2", "https://example.com/a?b=1&c=2", "example.com", 443,
         "/a"),
        ("https://example.com?q", "https://example.com/?q", "example.com", 443, "/"),
        ("https://example.com/a#frag", "https://example.com/a", "example.com", 443, "/a"),
        ("https://example.com/?q=1#frag", "https://example.com/?q=1", "example.com", 443, "/"),
        ("https://example.com./", "https://example.com/", "example.com", 443, "/"),
        ("http://192.0.2.1:8080/x", "http://192.0.2.1:8080/x", "192.0.2.1", 8080, "/x"),
        ("http://[2001:DB8::1]/", "http://[2001:db8::1]/", "2001:db8::1", 80, "/"),
        ("http://[::1]:8080", "http://[::1]:8080/", "::1", 8080, "/"),
        ("https://x.kz/путь?q=ё", "https://x.kz/%D0%BF%D1%83%D1%82%D1%8C?q=%D1%91", "x.kz", 443,
         "/%D0%BF%D1%83%D1%82%D1%8C"),
        ("https://x.kz/a%20b", "https://x.kz/a%20b", "x.kz", 443, "/a%20b"),
    ],
)
def test_parse_url_normalises(text: str, url: str, hostname: str, port: int, path: str) -> None:
    target = parse_url(text)
    assert (target.url, target.hostname, target.port, target.path) == (url, hostname, port, path)
    assert target.scheme == url.split("://")[0]
    assert (target.category, target.source) == (None, None)
    assert parse_url(target.url) == target  # idempotent


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "bad URL: empty"),
        ("   ", "bad URL: empty"),
        ("example.com", "bad URL: missing scheme (want http:// or https://)"),
        ("//example.com/", "bad URL: missing scheme (want http:// or https://)"),
        ("www.x.com/?u=http://y", "bad URL: missing scheme (want http:// or https://)"),
        ("ftp://example.com/", "unknown scheme 'ftp'"),
        ("FTP://example.com/", "unknown scheme 'ftp'"),
        ("javascript://x", "unknown scheme 'javascript'"),
        ("http://", "bad URL: missing host"),
        ("http:///path", "bad URL: missing host"),
        ("http://:80/", "bad URL: missing host"),
        ("http://exa mple.com/", "bad URL: whitespace inside"),
        ("http://example.com/a\tb", "bad URL: whitespace inside"),
        ("http://example.com/\x00", "bad URL: control character or invalid text inside"),
        ("http://user@example.com/", "bad URL: userinfo (user@) not allowed"),
        ("http://user:pw@example.com/", "bad URL: userinfo (user@) not allowed"),
        ("http://example.com:0/", "bad URL: bad port '0'"),
        ("http://example.com:65536/", "bad URL: bad port '65536'"),
        ("http://example.com:http/", "bad URL: bad port 'http'"),
        ("http://example.com:80:80/", "bad URL: bad port '80:80'"),
        ("http://-bad.com/", "bad URL: invalid host '-bad.com'"),
        ("http://a..b/", "bad URL: invalid host 'a..b'"),
        ("http://exa!mple.com/", "bad URL: invalid host 'exa!mple.com'"),
        ("http://999.1.1.1/", "bad URL: invalid host '999.1.1.1'"),
        (f"http://{'a' * 64}.com/", f"bad URL: invalid host '{'a' * 64}.com'"),
        ("http://[::g]/", "bad URL: invalid IPv6 address"),
        ("http://[::1/", "bad URL: invalid IPv6 address"),
        ("http://[::1]x/", "bad URL: invalid IPv6 address"),
        ("http://[fe80::1%25eth0]/", "bad URL: invalid IPv6 address"),
    ],
)
def test_parse_url_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_url(text)
    assert str(info.value) == reason


@pytest.mark.parametrize(
    ("category", "expected", "reason"),
    [
        ("NEWS", "NEWS", None),
        (" anon ", "ANON", None),
        ("cultr", "CULTR", None),
        ("NEWZ", None, "unknown category 'NEWZ'"),
        ("", None, "missing category code"),
    ],
)
def test_parse_url_category(category: str, expected: str | None, reason: str | None) -> None:
    if reason is None:
        assert parse_url("https://x.kz/", category, "f:1").category == expected
    else:
        with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
            parse_url("https://x.kz/", category)


def test_categories_are_the_citizen_lab_codes() -> None:
    codes = (
        "ALDR REL PORN PROV POLR HUMR ENV MILX HATE NEWS XED PUBH GMB ANON DATE GRP LGBT FILE "
        "HACK COMT MMED HOST SRCH GAME CULTR ECON GOVT COMM CTRL IGO MISC"
    ).split()
    assert list(CATEGORIES) == codes
    assert all(CATEGORIES.values())


# --- target list problems ---------------------------------------------------------------------

# (file name, content, expected problems with {f} for the file's path)
PROBLEM_CASES: list[tuple[str, str | bytes, list[str]]] = [
    ("ok.csv", HEADER + row("https://a.kz/") + row("https://b.kz/"), []),
    ("bad-url.csv", HEADER + row("https://a.kz/") + row("not a url"),
     ["{f}:3: bad URL: whitespace inside"]),
    ("scheme.csv", HEADER + row("ftp://a.kz/"), ["{f}:2: unknown scheme 'ftp'"]),
    ("no-scheme.csv", HEADER + row("a.kz"),
     ["{f}:2: bad URL: missing scheme (want http:// or https://)"]),
    ("host.csv", HEADER + row("https://a..kz/"), ["{f}:2: bad URL: invalid host 'a..kz'"]),
    ("port.csv", HEADER + row("https://a.kz:99999/"), ["{f}:2: bad URL: bad port '99999'"]),
    ("userinfo.csv", HEADER + row("https://me@a.kz/"),
     ["{f}:2: bad URL: userinfo (user@) not allowed"]),
    ("category.csv", HEADER + row("https://a.kz/", "NEWZ"), ["{f}:2: unknown category 'NEWZ'"]),
    ("no-category.csv", HEADER + row("https://a.kz/", ""), ["{f}:2: missing category code"]),
    ("columns.csv", HEADER + "https://a.kz/,NEWS,desc\n" + row("https://b.kz/", notes="x,y"),
     ["{f}:2: expected 6 columns, got 3", "{f}:3: expected 6 columns, got 7"]),
    ("dup.csv", HEADER + row("https://a.kz/") + row("https://b.kz/") + row("HTTPS://A.KZ:443#x"),
     ["{f}:4: duplicate of line 2 (https://a.kz/)"]),
    ("dup-twice.csv", HEADER + row("http://a.kz") + row("http://a.kz/") + row("http://A.kz/"),
     ["{f}:3: duplicate of line 2 (http://a.kz/)", "{f}:4: duplicate of line 2 (http://a.kz/)"]),
    ("noheader.csv", row("https://a.kz/"),
     ["{f}:1: missing header (expected "
      "url,category_code,category_description,date_added,source,notes)"]),
    ("empty.csv", "",
     ["{f}:1: missing header (expected "
      "url,category_code,category_description,date_added,source,notes)"]),
    ("many.csv", HEADER + row("ftp://a.kz/") + row("https://b.kz/", "X") + row("https://b.kz/")
     + "\n" + row("https://c.kz/") + row("https://c.kz/"),
     ["{f}:2: unknown scheme 'ftp'", "{f}:3: unknown category 'X'",
      "{f}:7: duplicate of line 6 (https://c.kz/)"]),
    ("quoted.csv", HEADER + 'https://a.kz/,NEWS,"News, Media",2024-01-01,"a, b","x, ""y"""\n',
     []),
    ("multiline.csv", HEADER + 'https://a.kz/,NEWS,d,2024-01-01,s,"line one\nline two"\n'
     + row("ftp://b.kz/"), ["{f}:4: unknown scheme 'ftp'"]),
    ("blank.csv", HEADER + "\n" + row("https://a.kz/") + "\n,,,,,\n\n" + row("ftp://b.kz/"),
     ["{f}:7: unknown scheme 'ftp'"]),
    ("bom.csv", b"\xef\xbb\xbf" + (HEADER + row("https://a.kz/")).encode(), []),
    ("crlf.csv", (HEADER + row("https://a.kz/") + row("ftp://b.kz/")).replace("\n", "\r\n"),
     ["{f}:3: unknown scheme 'ftp'"]),
    ("latin1.csv", HEADER.encode() + b"https://caf\xe9.kz/,NEWS,d,2024-01-01,s,n\n"
     + row("ftp://b.kz/").encode(),
     ["{f}:2: not UTF-8 text (byte 0xe9)", "{f}:3: unknown scheme 'ftp'"]),
    ("utf16.csv", (HEADER + row("https://a.kz/")).encode("utf-16"),
     ["{f}:1: not UTF-8 text (byte 0xff)"]),
    ("binary.csv", HEADER.encode() + b"\x00\xff\xfe\x80,,\n",
     ["{f}:2: not UTF-8 text (byte 0xff)"]),
    ("huge-field.csv", HEADER + row("https://a.kz/", notes="x" * 200_000) + row("https://b.kz/"),
     ["{f}:2: bad CSV: field larger than field limit (131072)"]),
    ("huge-first-line.csv", "x" * 200_000 + "\n",
     ["{f}:1: missing header (expected "
      "url,category_code,category_description,date_added,source,notes)"]),
    ("header-case.csv", HEADER.upper().replace(",", ", ") + row("https://a.kz/"), []),
    ("plain.txt", "# KZ media\n\nhttps://a.kz/\n  https://b.kz/   # inline comment\n#x\n"
     "https://c.kz/#fragment\n", []),
    ("plain-bad.txt", "https://a.kz/\nftp://b.kz/\n\n# c\nhttps://A.kz\nhttps://d.kz/ x\n",
     ["{f}:2: unknown scheme 'ftp'", "{f}:5: duplicate of line 1 (https://a.kz/)",
      "{f}:6: bad URL: whitespace inside"]),
    ("plain-crlf-bom", b"\xef\xbb\xbfhttps://a.kz/\r\nhttp://b\xff.kz/\r\n",
     ["{f}:2: not UTF-8 text (byte 0xff)"]),
    ("plain-header.txt", HEADER + row("ftp://a.kz/"), ["{f}:2: unknown scheme 'ftp'"]),
    ("empty.txt", "", []),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), PROBLEM_CASES, ids=[c[0] for c in PROBLEM_CASES]
)
def test_validate_file_problems(
    tmp_path: Path, name: str, content: str | bytes, expected: list[str]
) -> None:
    path = write(tmp_path, name, content)
    want = [p.format(f=path) for p in expected]
    assert validate_file(path) == want
    if want:
        with pytest.raises(TargetListError) as info:
            load_file(path)
        assert info.value.problems == want
        assert str(info.value).startswith(want[0])
    else:
        assert all(t.source and t.source.startswith(f"{path}:") for t in load_file(path))


def test_csv_fields_and_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kz.csv",
        HEADER + "\n" + 'HTTPS://Meduza.IO,news,"News, Media",2024-01-01,"a, b",x\n'
        + row("http://пример.рф", "anon"),
    )
    targets = load_file(path)
    assert [(t.url, t.category, t.source) for t in targets] == [
        ("https://meduza.io/", "NEWS", f"{path}:3"),
        ("http://xn--e1afmkfd.xn--p1ai/", "ANON", f"{path}:4"),
    ]


def test_plain_text_has_no_category(tmp_path: Path) -> None:
    path = write(tmp_path, "list.txt", "# comment\n\nhttps://a.kz/ # why\nhttp://b.kz\n")
    assert [(t.url, t.category, t.source) for t in load_file(path)] == [
        ("https://a.kz/", None, f"{path}:3"),
        ("http://b.kz/", None, f"{path}:4"),
    ]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: str(tmp / "missing.csv"), "cannot read: No such file or directory"),
        (lambda tmp: str(tmp), "cannot read: Is a directory"),
    ],
)
def test_unreadable_file(tmp_path: Path, make: Callable[[Path], str], reason: str) -> None:
    path = make(tmp_path)
    assert validate_file(path) == [f"{path}: {reason}"]
    with pytest.raises(TargetListError) as info:
        load_sources([path])
    assert info.value.problems == [f"{path}: {reason}"]


def test_iter_file_streams_then_raises(tmp_path: Path) -> None:
    body = "".join(row(f"https://h{i}.example/") for i in range(12_000))
    path = write(tmp_path, "big.csv", HEADER + body + row("ftp://bad.example/"))
    stream = iter_file(path)
    assert next(stream).url == "https://h0.example/"  # lazily, before the bad last row
    count = 1
    with pytest.raises(TargetListError) as info:
        for _ in stream:
            count += 1
    assert count == 12_000
    assert info.value.problems == [f"{path}:12002: unknown scheme 'ftp'"]


def test_iter_file_rejects_canaries_file(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", CANARY_HEADER + "auto,gateway,gw,\n")
    with pytest.raises(TargetListError) as info:
        list(iter_file(path))
    assert info.value.problems == [f"{path}:1: canaries file, not a target list"]


# --- filters and several sources --------------------------------------------------------------


@pytest.fixture
def two_lists(tmp_path: Path) -> tuple[str, str]:
    a = write(
        tmp_path,
        "a.csv",
        HEADER + row("https://news.kz/", "NEWS") + row("https://vpn.example/", "ANON")
        + row("https://gov.kz/", "GOVT"),
    )
    b = write(tmp_path, "b.txt", "https://NEWS.kz\nhttps://other.example/\n")
    return a, b


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        (None, ["https://news.kz/", "https://vpn.example/", "https://gov.kz/"]),
        ({"NEWS"}, ["https://news.kz/"]),
        ({"anon", " Govt "}, ["https://vpn.example/", "https://gov.kz/"]),
        (["NEWS", "ANON"], ["https://news.kz/", "https://vpn.example/"]),
        (set(), []),
        ({"PORN"}, []),
    ],
)
def test_load_file_category_filter(
    two_lists: tuple[str, str], categories: set[str] | None, expected: list[str]
) -> None:
    assert [t.url for t in load_file(two_lists[0], categories)] == expected


@pytest.mark.parametrize("bad", [{"NEWZ"}, {"news", "nope"}, {""}])
def test_unknown_category_filter(two_lists: tuple[str, str], bad: set[str]) -> None:
    unknown = sorted(c.strip().upper() for c in bad if c.strip().upper() not in CATEGORIES)
    message = f"unknown category code in filter: {', '.join(unknown)}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_file(two_lists[0], bad)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_sources([str(two_lists[0])], bad)


def test_load_sources_dedups_across_sources_keeping_first(two_lists: tuple[str, str]) -> None:
    a, b = two_lists
    targets = load_sources(["http://Direct.example", a, b, "https://gov.kz:443/#x", a])
    assert [(t.url, t.category, t.source) for t in targets] == [
        ("http://direct.example/", None, None),
        ("https://news.kz/", "NEWS", f"{a}:2"),
        ("https://vpn.example/", "ANON", f"{a}:3"),
        ("https://gov.kz/", "GOVT", f"{a}:4"),
        ("https://other.example/", None, f"{b}:2"),
    ]


def test_load_sources_filter_keeps_direct_urls(two_lists: tuple[str, str]) -> None:
    a, b = two_lists
    targets = load_sources(["https://direct.example/", a, b], {"govt"})
    assert [t.url for t in targets] == ["https://direct.example/", "https://gov.kz/"]


def test_load_sources_collects_every_problem(tmp_path: Path, two_lists: tuple[str, str]) -> None:
    a, _ = two_lists
    bad = write(tmp_path, "bad.csv", HEADER + row("https://x.kz/", "NEWZ") + row("https://x.kz/"))
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(TargetListError) as info:
        load_sources([a, "ftp://direct.example/", bad, missing])
    assert info.value.problems == [
        "ftp://direct.example/: unknown scheme 'ftp'",
        f"{bad}:2: unknown category 'NEWZ'",
        f"{missing}: cannot read: No such file or directory",
    ]
    assert str(info.value) == "ftp://direct.example/: unknown scheme 'ftp' (and 2 more)"


def test_load_sources_empty() -> None:
    assert load_sources([]) == []


# --- canaries ---------------------------------------------------------------------------------


def test_load_canaries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "canaries.csv",
        CANARY_HEADER
        + "auto,gateway,gw,\nAUTO,Resolver,res,system\n192.168.1.1,gateway,home router,\n"
        + "2001:DB8::53,resolver,isp dns,\nhttps://Gov.KZ,domestic,gov,\n"
        + 'https://www.example.com/,international,example,"stable, never blocked"\n'
        + "https://control.probe.invalid/,control,helper,placeholder\n",
    )
    assert load_canaries(path) == [
        Canary("auto", "gateway", "gw", ""),
        Canary("auto", "resolver", "res", "system"),
        Canary("192.168.1.1", "gateway", "home router", ""),
        Canary("2001:db8::53", "resolver", "isp dns", ""),
        Canary("https://gov.kz/", "domestic", "gov", ""),
        Canary("https://www.example.com/", "international", "example", "stable, never blocked"),
        Canary("https://control.probe.invalid/", "control", "helper", "placeholder"),
    ]
    assert validate_file(path) == []


CANARY_CASES: list[tuple[str, str | bytes, list[str]]] = [
    ("scope", CANARY_HEADER + "https://a.kz/,regional,a,\n",
     ["{f}:2: unknown scope 'regional' (want gateway, resolver, domestic, international, "
      "control, portal)"]),
    ("portal-https", CANARY_HEADER + "https://captive.apple.com/,portal,apple,\n",
     ["{f}:2: portal canary must be a plain http:// URL, got 'https://captive.apple.com/'"]),
    ("gateway-host", CANARY_HEADER + "router.lan,gateway,gw,\n",
     ["{f}:2: gateway canary must be an IP address or 'auto', got 'router.lan'"]),
    ("resolver-port", CANARY_HEADER + "8.8.8.8:53,resolver,r,\n",
     ["{f}:2: resolver canary must be an IP address or 'auto', got '8.8.8.8:53'"]),
    ("domestic-auto", CANARY_HEADER + "auto,domestic,d,\n",
     ["{f}:2: bad URL: missing scheme (want http:// or https://)"]),
    ("bare-host", CANARY_HEADER + "www.gov.kz,international,i,\n",
     ["{f}:2: bad URL: missing scheme (want http:// or https://)"]),
    ("scheme", CANARY_HEADER + "ftp://a.kz/,control,c,\n", ["{f}:2: unknown scheme 'ftp'"]),
    ("name", CANARY_HEADER + "https://a.kz/,domestic,,\n", ["{f}:2: missing name"]),
    ("columns", CANARY_HEADER + "https://a.kz/,domestic,a\n", ["{f}:2: expected 4 columns, got 3"]),
    ("dup", CANARY_HEADER + "https://a.kz/,domestic,a,\nauto,gateway,g,\nauto,resolver,r,\n"
     "https://A.kz,international,b,\nauto,gateway,g2,\n",
     ["{f}:6: duplicate of line 3 (auto)"]),
    ("bytes", CANARY_HEADER.encode() + b"https://a.kz/,domestic,\xff,\n",
     ["{f}:2: not UTF-8 text (byte 0xff)"]),
    ("crlf-bom", b"\xef\xbb\xbf" + (CANARY_HEADER + "auto,gateway,g,\nx,gateway,g,\n").replace(
        "\n", "\r\n").encode(),
     ["{f}:3: gateway canary must be an IP address or 'auto', got 'x'"]),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), CANARY_CASES, ids=[c[0] for c in CANARY_CASES]
)
def test_canary_problems(
    tmp_path: Path, name: str, content: str | bytes, expected: list[str]
) -> None:
    path = write(tmp_path, f"{name}.csv", content)
    want = [p.format(f=path) for p in expected]
    assert validate_file(path) == want
    with pytest.raises(TargetListError) as info:
        load_canaries(path)
    assert info.value.problems == want


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (HEADER + row("https://a.kz/"), "missing header (expected target,scope,name,notes)"),
        ("auto,gateway,gw,\n", "missing header (expected target,scope,name,notes)"),
        ("", "missing header (expected target,scope,name,notes)"),
    ],
)
def test_canaries_need_their_header(tmp_path: Path, content: str, reason: str) -> None:
    path = write(tmp_path, "c.txt", content)
    with pytest.raises(TargetListError) as info:
        load_canaries(path)
    assert info.value.problems == [f"{path}:1: {reason}"]


def test_canary_record_checks_scope() -> None:
    with pytest.raises(ValueError, match="unknown scope 'isp'"):
        Canary("auto", "isp", "x")


# --- the shipped lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "minimum"), [("kz.csv", 60), ("global.csv", 30), ("canaries.csv", 5)]
)
def test_shipped_lists_validate(name: str, minimum: int) -> None:
    path = ROOT / name
    assert validate_file(path) == []
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) >= minimum


@pytest.mark.parametrize("name", ["kz.csv", "global.csv"])
def test_shipped_target_rows_are_complete(name: str) -> None:
    with open(ROOT / name, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        assert CATEGORIES[r["category_code"]] == r["category_description"], r["url"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", r["date_added"]), r["url"]
        assert r["source"].strip() and r["notes"].strip(), r["url"]
        assert parse_url(r["url"]).url == r["url"], "shipped URLs are already normalised"


def test_shipped_lists_do_not_overlap() -> None:
    kz, world = load_file(ROOT / "kz.csv"), load_file(ROOT / "global.csv")
    both = load_sources([str(ROOT / "kz.csv"), str(ROOT / "global.csv")])
    assert len(both) == len(kz) + len(world)


def test_kz_list_covers_its_themes() -> None:
    counts = Counter(t.category for t in load_file(ROOT / "kz.csv"))
    for code in ("GRP", "COMT", "NEWS", "HUMR", "ANON", "GOVT", "ECON", "SRCH"):
        assert counts[code] >= 1, code
    hosts = {t.hostname for t in load_file(ROOT / "kz.csv")}
    assert {"www.akorda.kz", "www.gov.kz", "kaspi.kz", "halykbank.kz", "tengrinews.kz"} <= hosts


def test_shipped_canaries_cover_every_scope() -> None:
    canaries = load_canaries(ROOT / "canaries.csv")
    scopes = {c.scope for c in canaries}
    assert scopes == set(CANARY_SCOPES)
    by_scope = {c.scope: c.url_or_host for c in canaries}
    assert by_scope["gateway"] == by_scope["resolver"] == "auto"
    assert Counter(c.scope for c in canaries)["domestic"] >= 3
    assert [c.url_or_host for c in canaries if c.scope == "control"] == [
        "https://control.probe.invalid/"
    ]
