"""Fingerprint file: the packaged data loads, every kind matches what it should, and a
malformed file is refused with a message naming the entry."""

from __future__ import annotations

import pytest

from probe.classify import FingerprintError, default_fingerprints, load_fingerprints
from probe.model import Certificate
from tests.factories import cert

FP = default_fingerprints()


def test_packaged_file_loads_with_every_kind() -> None:
    assert FP.interception_cas and FP.blockpages and FP.blockpage_ips and FP.false_positives
    names = [x.name for kind in (FP.interception_cas, FP.blockpages, FP.blockpage_ips,
                                 FP.false_positives) for x in kind]
    assert len(names) == len(set(names))
    assert default_fingerprints() is FP  # cached


@pytest.mark.parametrize(
    ("chain", "name"),
    [
        ((cert(issuer="CN=Security Certificate,C=KZ"),), "kz-qaznet-2019"),
        ((cert(issuer="C=KZ, CN=Security Certificate"),), "kz-qaznet-2019"),  # spacing
        ((cert(), cert("CN=x", "CN=Qaznet Trust Network")), "kz-qaznet-2019"),
        ((cert(issuer="CN=Information Security Certification Authority CA"),), "kz-isca-2020"),
        ((Certificate(b"", "61C0FC2E38B5B6F9071B42CEE54A9013D858B6697C68B460948551B3249576A1",
                      "", "CN=a", "CN=b", "", ""),), "kz-isca-2020"),
        ((Certificate(b"", "", "8e12d0cb3b7df3ea2257579489fd8658c95603ea6cf4b73163a41eb7b7e93fee",
                      "CN=a", "CN=b", "", ""),), "kz-isca-2020"),
        ((cert(issuer="CN=Information Security Certification Authority,O=ISCA,C=KZ"),),
         "kz-isca-2020"),
        ((cert(issuer="CN=Intermediate,O=ISCA,C=KZ"),), "kz-isca-2021-2024"),
        ((cert(issuer="CN=Probe Test Security Certificate,O=Probe Test National CA,C=KZ"),),
         "probe-simnet-national-ca"),
        ((cert(),), None),
        ((cert(issuer="CN=Probe Test Untrusted Root,O=Probe Test Unknown CA"),), None),
        ((), None),
    ],
)
def test_interception_ca(chain: tuple[Certificate, ...], name: str | None) -> None:
    m = FP.interception(chain)
    assert (m.name if m else None) == name


BLOCK_RU = "<p>Страница заблокирована</p>".encode()


@pytest.mark.parametrize(
    ("status", "headers", "body", "title", "location", "name"),
    [
        (200, (), BLOCK_RU, None, None, "ru-generic-blocked"),
        (200, (), "статьи 41-1 Закона".encode(), None, None, "kz-access-restricted"),
        (200, (), b"<html>probe-simnet-blockpage</html>", None, None, "probe-simnet-blockpage"),
        (302, (), None, None, "http://blocked.gov.kz/", "probe-simnet-blockpage"),
        (200, (), b"an ordinary page", "News", None, None),
        (200, (), None, None, None, None),  # --no-bodies: nothing to match
        (451, (), b"legal", None, None, None),  # 451 is a rule of its own, not a fingerprint
    ],
)
def test_blockpage(status: int, headers: tuple[tuple[str, str], ...], body: bytes | None,
                   title: str | None, location: str | None, name: str | None) -> None:
    m = FP.blockpage(status, headers, body, title, location)
    assert (m.name if m else None) == name


@pytest.mark.parametrize(
    ("status", "headers", "body", "title", "name"),
    [
        (403, (("CF-Mitigated", "challenge"),), None, None, "cloudflare-challenge"),
        (403, (), None, "Just a moment...", "cloudflare-challenge"),
        (403, (), b"<script src='/cdn-cgi/challenge-platform/x'>", None, "cloudflare-challenge"),
        (403, (), b"Sorry, you have been blocked", None, "cloudflare-ip-ban"),
        (403, (), b"You don't have permission to access", "Access Denied",
         "akamai-access-denied"),
        (200, (), None, "Access Denied", None),  # Akamai's needs the 403
        (403, (), b"This content is not available in your region.", None, "geo-restriction"),
        (200, (), b"welcome", "Home", None),
    ],
)
def test_false_positive(status: int, headers: tuple[tuple[str, str], ...], body: bytes | None,
                        title: str | None, name: str | None) -> None:
    m = FP.false_positive(status, headers, body, title)
    assert (m.name if m else None) == name


def test_blockpage_ip() -> None:
    assert FP.blockpage_ip("178.89.0.10") is not None
    assert FP.blockpage_ip("178.89.0.11") is None
    assert FP.blockpage_ip("10.10.34.35") is None  # the simulator's bogon stays a bogon
    assert FP.blockpage_ip("not an ip") is None


def test_cidr_and_ipv6_ranges() -> None:
    fp = load_fingerprints('[[blockpage_ip]]\nname = "r"\nsource = "s"\n'
                           'ips = ["192.0.2.0/24", "2001:db8::1"]\n')
    assert fp.blockpage_ip("192.0.2.77") and fp.blockpage_ip("2001:db8::1")
    assert fp.blockpage_ip("[2001:db8::1]")
    assert not fp.blockpage_ip("192.0.3.1")


def test_match_details_name_the_entry() -> None:
    m = FP.blockpage(200, (), BLOCK_RU, None)
    assert m is not None
    assert m.details() == {"fingerprint": "ru-generic-blocked",
                           "fingerprint_source": m.source,
                           "fingerprint_match": "body contains 'Страница заблокирована'"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[blockpage]\n", "not valid TOML"),
        ("format = 2\n", "format 2"),
        ("[[oops]]\nname = 'x'\n", "unknown top-level keys: oops"),
        ("[[blockpage]]\nsource = 's'\nbody_contains = ['x']\n", "name must be"),
        ("[[blockpage]]\nname = 'a'\nbody_contains = ['x']\n", "blockpage 'a': source"),
        ("[[blockpage]]\nname = 'a'\nsource = 's'\n", "blockpage 'a': needs at least one"),
        ("[[blockpage]]\nname = 'a'\nsource = 's'\nbody = ['x']\n", "unknown keys body"),
        ("[[blockpage]]\nname = 'a'\nsource = 's'\nheaders = ['nocolon']\n", "'name: value'"),
        ("[[blockpage]]\nname = 'a'\nsource = 's'\nstatus = 999\n", "status must be"),
        ("[[blockpage]]\nname = 'a'\nsource = 's'\nbody_contains = 'x'\n"
         "[[blockpage]]\nname = 'a'\nsource = 's'\nbody_contains = 'y'\n", "duplicate name"),
        ("[[blockpage_ip]]\nname = 'a'\nsource = 's'\nips = ['nope']\n", "'nope' is not"),
        ("[[blockpage_ip]]\nname = 'a'\nsource = 's'\nips = []\n", "ips is empty"),
        ("[[interception_ca]]\nname = 'a'\nsource = 's'\n", "needs issuer_contains"),
        ("[[interception_ca]]\nname = 'a'\nsource = 's'\nsha256 = ['abc']\n", "not a SHA-256"),
        ("blockpage = 3\n", "expected an array of tables"),
    ],
)
def test_malformed_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(FingerprintError, match=message.replace("(", r"\(")):
        load_fingerprints(text)


def test_a_single_string_is_a_list_of_one() -> None:
    fp = load_fingerprints("[[blockpage]]\nname = 'a'\nsource = 's'\nbody_contains = 'Hello'\n")
    assert fp.blockpage(200, (), b"hello world", None) is not None


def test_sha256_with_colons_is_accepted() -> None:
    colons = ":".join(["ab"] * 32)
    fp = load_fingerprints(f"[[interception_ca]]\nname = 'a'\nsource = 's'\n"
                           f"sha256 = ['{colons.upper()}']\n")
    leaf = Certificate(b"", "ab" * 32, "", "CN=a", "CN=b", "", "")
    assert fp.interception((leaf,)) is not None
