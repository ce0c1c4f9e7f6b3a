"""Field fingerprints (data/field/): the packaged collections load with provenance and a
country, real patterns from the files match what their sources say, the loader refuses bad rows
with FILE:LINE messages, verdicts use them (weaker when unconfirmed), and the simulated world's
own normal pages match nothing."""

from __future__ import annotations

import datetime
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from probe.classify import classify, default_fingerprints
from probe.classify.fingerprints import (
    FingerprintError,
    der_serial,
    load_field,
    regexp_problem,
)
from probe.lab.world.web_server import render_page
from probe.model import Certificate, DNSAnswer, DNSObservation
from tests.factories import (
    HOST,
    PAGE,
    SITE_HEADERS,
    cert,
    chttp,
    ctl,
    http,
    http_ok,
    meas,
    sys_dns,
    tcp,
    tls,
)

FP = default_fingerprints()
FIELD = FP.field
assert FIELD is not None
DATA = Path(__file__).parents[2] / "probe" / "classify" / "data"


def test_every_packaged_row_loads_with_provenance_and_country() -> None:
    counts: dict[str, int] = {}
    for fp in FIELD.fingerprints:
        counts[fp.file] = counts.get(fp.file, 0) + 1
        assert fp.source.split(" ")[0] in ("OONI", "Citizen")
        assert "@" in fp.source and fp.file in fp.source  # repository@commit and the file
        assert all(len(c) == 2 for c in fp.countries)
    sources = tomllib.loads((DATA / "field" / "SOURCES.toml").read_text())["files"]
    for file, n in counts.items():
        assert sources[file]["rows"] == n
    assert counts == {"ooni_http.csv": 1729, "ooni_dns.csv": 226,
                      "citizenlab_blockpages.csv": 346, "citizenlab_dns.csv": 127}


def test_loading_is_fast() -> None:
    texts = {p.name: p.read_text(encoding="utf-8") for p in (DATA / "field").glob("*.csv")}
    sources = (DATA / "field" / "SOURCES.toml").read_text()
    best = min(_timed(lambda: load_field(texts, sources)) for _ in range(3))
    assert best < 0.2  # ~40 ms measured on one core; generous for a shared CI machine


def _timed(f: Any) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


@pytest.mark.parametrize(
    ("headers", "body", "name", "country", "confirmed"),
    [
        # Citizen Lab, Italy's AGCOM page (contains, in the body)
        ((), b"<html><title>AGCOM Stop Page</title></html>", "cl.nat_it_agcom_block", "IT",
         True),
        # Iran's national block page is an iframe to 10.10.34.34
        ((), b'<iframe src="http://10.10.34.34?type=Invalid Site" style="width: 100%">',
         "cl.nat_ir_iframe_forward_ipv4", "IR", True),
        # OONI's Server prefix (ooni.ae_0, unassessed: 5) and Citizen Lab's "Name: value" line
        # (confidence 10) both match: the confirmed one is reported
        ((("Server", "Protected by WireFilter 8000 (s8-cachefilter)"),), b"<html></html>",
         "cl.prod_wirefilter", "AE, SA", True),
        # Censored Planet's regexp for Saudi Arabia's national page
        ((), b"If you believe the requested page should not be blocked please click "
         b"<a href=http://www.internet.gov.sa/x>", "cp.b_nat_sa_national_2", "", False),
        # a vague blocking word is never confirmed
        ((), b"<p>This URLBlocked by policy</p>", "cp.f_gen_blocked_14", "", False),
        # Censored Planet's "not a block page" labels are not matched at all
        ((), b"<html>Domain Expired</html>", None, "", True),
        ((), PAGE, None, "", True),
    ],
)
def test_real_patterns_match(headers: tuple[tuple[str, str], ...], body: bytes,
                             name: str | None, country: str, confirmed: bool) -> None:
    m = FIELD.blockpage(headers, body)
    if name is None:
        assert m is None
        return
    assert m is not None and (m.name, m.country, m.confirmed) == (name, country, confirmed)
    assert m.details()["fingerprint_source"] == m.source


def test_crlf_pattern_is_kept_and_found() -> None:
    """ooni.th_13 has CR LF inside, byte-for-byte the source's; Citizen Lab's FortiGuard text
    matches the same page and, being confirmed, is the one reported."""
    body = ("x<h3>Web Page Blocked!</h3>\r\n<div class=\"notice\">\r\n<p>You have tried to "
            "access a web page which is in violation of your internet usage policy.</p>y")
    names = {fp.name for p in FIELD.body_literals.find(body) for fp in FIELD.body_by_pattern[p]}
    assert "ooni.th_13" in names
    assert "ooni.th_13" not in {fp.name for p in FIELD.body_literals.find(body.replace(
        "\r\n", "\n")) for fp in FIELD.body_by_pattern[p]}


@pytest.mark.parametrize(
    ("answer", "name", "country"),
    [
        ("208.91.112.55", "cl.dns_prod_fortidns", ""),  # Fortinet's FortiDNS block page
        ("restricted.tri.co.id.", "cl.dns_isp_id_sehat_tri_cname", "ID"),  # a CNAME
        ("RESTRICTED.tri.co.id", "cl.dns_isp_id_sehat_tri_cname", "ID"),
        ("10.10.34.34", None, ""),  # a bogon: the bogon rule judges it
        ("127.0.0.1", None, ""),
        ("93.184.216.34", None, ""),
    ],
)
def test_dns_answers(answer: str, name: str | None, country: str) -> None:
    m = FP.dns_answer(answer)
    assert (m.name if m else None) == name
    if m:
        assert m.country == country and m.confirmed


# --- the loader refuses bad rows ------------------------------------------------------------

HEADER = "name,scope,location,header_name,pattern_type,pattern,country,confidence_no_fp," \
         "aliases,origin,example_url\n"
SOURCES = '[files."t.csv"]\nlabel = "T"\nrepository = "o/r"\ndate = "2024-01-01"\nrows = 1\n'


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,nat,body,,glob,text here,RU,5,,,", "t.csv:2: a: pattern_type 'glob' is not one"),
        ("a,nat,body,,contains,   ,RU,5,,,", "t.csv:2: a: empty pattern"),
        ("a,nat,body,,contains,abc,RU,5,,,", "t.csv:2: a: pattern 'abc' is shorter than 4"),
        ("a,nat,body,,regexp,(a+)+b,RU,5,,,", "t.csv:2: a: regexp nests a repeat in a repeat"),
        ("a,nat,body,,regexp,x*,RU,5,,,", "t.csv:2: a: regexp matches the empty string"),
        ("a,nat,body,,regexp,(x)y\\1,RU,5,,,", "t.csv:2: a: regexp uses a back-reference"),
        ("a,nat,body,,regexp,[,RU,5,,,", "t.csv:2: a: invalid regexp"),
        ("a,nat,dns,,contains,1.2.3.4,RU,5,,,", "t.csv:2: a: a DNS answer pattern must be full"),
        ("a,nat,dns,,full,not a name!,RU,5,,,", "t.csv:2: a: 'not a name!' is neither"),
        ("a,zzz,body,,contains,text here,RU,5,,,", "t.csv:2: a: scope 'zzz'"),
        ("a,nat,body,,contains,text here,Russia,5,,,", "t.csv:2: a: country 'Russia'"),
        ("a,nat,body,,contains,text here,RU,11,,,", "t.csv:2: a: confidence_no_fp '11'"),
        ("a,nat,body,Server,contains,text here,RU,5,,,", "t.csv:2: a: header_name 'Server'"),
        ("a,nat,body,,contains,text here,RU,5,,", "t.csv:2: 10 fields, expected 11"),
    ],
)
def test_bad_rows_are_refused_with_file_and_line(row: str, message: str) -> None:
    with pytest.raises(FingerprintError) as e:
        load_field({"t.csv": HEADER + row + "\n"}, SOURCES)
    assert str(e.value).startswith(message), str(e.value)


def test_bad_files_are_refused() -> None:
    good = HEADER + "a,nat,body,,contains,text here,RU,5,,,\n"
    with pytest.raises(FingerprintError, match=r"^u.csv: no \[files"):
        load_field({"u.csv": good}, SOURCES)
    with pytest.raises(FingerprintError, match="^t.csv: 2 rows, SOURCES.toml says 1"):
        load_field({"t.csv": good + "b,nat,body,,contains,text there,RU,5,,,\n"}, SOURCES)
    with pytest.raises(FingerprintError, match="^t.csv:3: duplicate name 'a'"):
        load_field({"t.csv": good + "a,nat,body,,contains,text there,RU,5,,,\n"},
                   SOURCES.replace("rows = 1", "rows = 2"))
    with pytest.raises(FingerprintError, match="^t.csv:1: columns must be"):
        load_field({"t.csv": "name,pattern\n"}, SOURCES)
    assert load_field({"t.csv": good}, SOURCES).blockpage((), b"xx text here") is not None


@pytest.mark.parametrize("pattern", [r"URL .* Sp.*er Gate", r"<p>Sorry, but the URL you.* "
                                     r"requesting is prohibited!</p>", r"(ab|cd){2,3}x"])
def test_ordinary_regexps_are_accepted(pattern: str) -> None:
    assert regexp_problem(pattern) is None


# --- Kazakhstan's interception CAs: the field rows extend ours -------------------------------


def _der(serial: int, issuer: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string(issuer)
    when = datetime.datetime(2023, 8, 9, tzinfo=datetime.UTC)
    c = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=site.kz"))
         .issuer_name(name).public_key(key.public_key()).serial_number(serial)
         .not_valid_before(when).not_valid_after(when + datetime.timedelta(days=1))
         .sign(key, hashes.SHA256()))
    return c.public_bytes(Encoding.DER)


def test_kz_field_rows_are_merged_into_the_existing_entry() -> None:
    ca = next(c for c in FP.interception_cas if c.name == "kz-isca-2021-2024")
    assert len(ca.sha1) == 11 and len(ca.serials) == 11  # 7 intermediates + 4 roots
    assert "kz_interception_ca.csv" in ca.source and ca.sha256  # ours kept


@pytest.mark.parametrize(
    ("serial", "name", "expected"),
    [
        # the 2023-08 intermediate, issuer written in RFC 4514 order (reversed): its exact
        # identity wins over the 2020 entry's issuer text, which it also contains
        (293697198316360729812453916520636458008892047728, "kz-isca-2021-2024",
         "serial 293697198316360729812453916520636458008892047728"),
        # another certificate of that issuer: still an interception CA, by issuer text
        (12345, "kz-isca-2020", "issuer contains 'Information Security Certification"),
    ],
)
def test_kz_chain_matches_by_serial_and_issuer(serial: int, name: str, expected: str) -> None:
    issuer = "CN=Information Security Certification Authority,O=ISCA,C=KZ"
    der = _der(serial, issuer)
    assert der_serial(der) == serial
    chain = (Certificate(der, "00" * 32, "00" * 32, "CN=site.kz", issuer, "", ""),)
    m = FP.interception(chain)
    assert m is not None and m.name == name and expected in m.what, m


def test_der_serial_of_garbage_is_none() -> None:
    assert der_serial(b"") is None and der_serial(b"\x30\x82") is None


# --- verdicts ----------------------------------------------------------------------------------

AGCOM = b"<html><head><title>AGCOM Stop Page</title></head><body>Blocked</body></html>"
WIREFILTER = (("Server", "Protected by WireFilter 8000"), ("Content-Type", "text/html"))
VAGUE = b"<html><body><p>URLBlocked by the filter</p></body></html>"  # cp.f_gen_blocked_14


def test_confirmed_field_blockpage_is_blocked_with_country_in_evidence() -> None:
    v = classify(http_ok(control=(ctl(url="http://example.test/"),), body=AGCOM,
                         title="AGCOM Stop Page"))
    assert (v.verdict.value, v.method, v.confidence) == ("blocked", "http.blockpage", 0.95)
    assert "cl.nat_it_agcom_block (a fingerprint of IT)" in v.evidence
    assert v.details["fingerprint_country"] == "IT"
    assert "citizenlab/filtering-annotations@e8e8ebc" in v.details["fingerprint_source"]


def test_unconfirmed_field_blockpage_needs_a_different_control_page() -> None:
    page = VAGUE
    with_control = classify(http_ok(control=(ctl(url="http://example.test/"),), body=page,
                                    title=None))
    assert (with_control.verdict.value, with_control.method) == ("blocked", "http.blockpage")
    assert with_control.confidence == 0.7
    assert with_control.details["fingerprint_confirmed"] is False
    assert "not confirmed by its source" in with_control.evidence
    alone = classify(http_ok(body=page, title=None))
    assert (alone.verdict.value, alone.method) == ("inconclusive", "blockpage_unconfirmed")
    same = classify(http_ok(control=(ctl(url="http://example.test/", http_=chttp(
        body=page, title=None)),), body=page, title=None))
    assert same.verdict.value == "ok"  # the control gets the same page: the site's own


def _dns_cname(target: str) -> tuple[DNSObservation, ...]:
    return (DNSObservation(1, HOST, "A", "udp", "10.0.0.1:53", 0.0, 0.05, None, "NOERROR",
                           (DNSAnswer("CNAME", target), DNSAnswer("A", "93.184.216.99"))),)


def test_field_dns_cname_is_dns_blockpage() -> None:
    m = meas("http://example.test/", _dns_cname("restricted.tri.co.id."), (), (),
             (http(url="http://example.test/", ip="93.184.216.99", body=b"<html>x</html>",
                   title=None),), control=(ctl(url="http://example.test/"),))
    v = classify(m)
    assert (v.verdict.value, v.method) == ("blocked", "dns.blockpage")
    assert v.details["cname"] == "restricted.tri.co.id."
    assert v.details["fingerprint"] == "cl.dns_isp_id_sehat_tri_cname"
    assert "a fingerprint of ID" in v.evidence


# --- no false positives on our own simulated world ---------------------------------------------


def _world_pages() -> list[tuple[str, bytes]]:
    """Every normal page of the loopback and simulated-network worlds: the sites of every
    scenario (title and body as the web server renders them) and the server's fixed pages.
    Block-page-like and refusal behaviours are left out: they are meant to look like that."""
    pages: list[tuple[str, bytes]] = [("factory", PAGE)]
    pages += [(t, render_page(t, x).encode()) for t, x in (
        ("Unknown site", "No site x.test here."), ("Moved", "This page moved to /x."),
        ("Redirecting", "Redirect number 3."))]

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("behaviour") not in ("blockpage", "region_refusal", "challenge") and (
                    "title" in node or "body" in node):
                title = str(node.get("title") or node.get("host") or "site")
                text = str(node.get("body") or f"Welcome to {title}, a site of the probe's "
                           "simulated world.")
                body = text if "<html" in text.lower() else render_page(title, text)
                pages.append((where, body.encode()))
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    scenarios = Path(__file__).parents[2] / "probe" / "lab" / "simnet" / "scenarios"
    for path in sorted(scenarios.glob("*.toml")):
        walk(tomllib.loads(path.read_text()), path.name)
    return pages


def test_simulated_world_pages_match_no_field_fingerprint() -> None:
    pages = _world_pages()
    assert len(pages) > 5
    hits = {where: m.name for where, body in pages
            if (m := FIELD.blockpage(SITE_HEADERS, body)) is not None}
    assert hits == {}


def test_the_header_index_matches_exactly_what_each_fingerprint_matches():
    from probe.classify.fingerprints import _HeaderIndex, default_fingerprints
    field = default_fingerprints().field
    assert field is not None
    checked = 0
    for name, fps in field.headers.items():
        index = _HeaderIndex(fps)
        values = {"", "x", "http://example.org/"}
        for fp in fps:
            p = fp.pattern
            values |= {p, p + "/x", "x" + p, p[:-1], p[1:], p.upper(), f"a {p} b"}
        for value in sorted(values):
            want = [i for i, fp in enumerate(fps) if fp.matches(value)]
            assert index.matching(value) == want, (name, value)
            checked += bool(want)
    assert checked > 100  # the values do exercise matches


# A block-page fingerprint matched on a response that arrived over TLS whose chain validates
# for the host is the site's (or its CDN's) own page: CloudFront's and Akamai's 403 "Access
# Denied" (cdn.signal.org in ooni/backend fixtures signal_022/signal_679 and the BR Signal
# measurement of tests/data/ooni), a national notice the site itself shows. A network censor
# cannot serve a page inside a validated session without interception, judged before;
# OONI counts an HTTPS success as accessible (ts-017; /work/shared reference
# ooni-methodology.md, "A successful HTTPS fetch means accessible").
KZ_ISSUER = "C=KZ,O=ISCA,CN=Information Security Certification Authority"
CDN_DENIED = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
              b"<Message>Access Denied</Message></Error>")


@pytest.mark.parametrize("body, title, verified, control, expected", [
    # Over verified HTTPS, the control got the site's 200: the site refuses this client.
    (CDN_DENIED, None, True, (ctl(),), ("inconclusive", "server_side")),
    (AGCOM, "AGCOM Stop Page", True, (ctl(),), ("inconclusive", "server_side")),
    # No control page either: still the site's own answer, not an unconfirmed block page.
    (CDN_DENIED, None, True, (), ("inconclusive", "server_side")),
    # A chain that was not checked (OONI's no_tls_verify) proves nothing: the rules as before.
    (AGCOM, "AGCOM Stop Page", None, (ctl(),), ("blocked", "http.blockpage")),
    # A chain from Kazakhstan's interception CA validates where the volunteer installed its
    # root: the page came through the interception, never the site's own.
    (AGCOM, "AGCOM Stop Page", "kz", (ctl(),), ("blocked", "http.blockpage")),
])
def test_a_blockpage_inside_verified_tls_is_the_sites_own(
        body: bytes, title: str | None, verified: bool | str | None,
        control: tuple[dict[str, Any], ...], expected: tuple[str, str]) -> None:
    handshake = (tls(verified=True, chain=(cert(issuer=KZ_ISSUER),)) if verified == "kz"
                 else tls(verified=verified if isinstance(verified, bool) else None))
    m = meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(handshake,),
             http_=(http(status=403, body=body, title=title),), control=control)
    v = classify(m)
    assert (v.verdict.value, v.method) == expected, v.evidence
    if expected[1] == "server_side":
        assert "validates" in v.evidence
