"""Fingerprints as data: load ``data/fingerprints.toml`` and match observations against it.

Responsibility: the *format* of our fingerprint file (documented in the file itself and in
``docs/classification.md``), its validation, and the pure predicates the rules use — "is this
certificate from a known interception CA", "is this response a known block page", "is this a
known server-side refusal", "is this address a censor's block-page server". Which rule uses a
match, and what it concludes, lives in the rule modules, not here.

Also the field's public collections in ``data/field/`` (OONI's blocking fingerprints, Citizen
Lab's block-page and DNS signatures, OONI's Kazakhstan interception CA list; provenance in
``data/field/SOURCES.toml``): :func:`load_field` validates them (``FILE:LINE: problem``) into a
:class:`FieldSet`, whose matchers find every field fingerprint in a body with one trie of all
literal patterns (see :class:`_Literals`) instead of one search per pattern. Semantics follow
the sources' own matchers (OONI's ``oonidata`` ``Fingerprint.matches_pattern``): case-sensitive
``full`` / ``prefix`` / ``contains`` / ``regexp``.

Loading reads package data with :mod:`tomllib` and :mod:`csv` (the classifier's only IO, and
only its own data); :func:`default_fingerprints` caches the packaged files, merged (ours first,
unchanged). :func:`load` takes TOML text so tests and analysts can pass their own fingerprints.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import ipaddress
import re
import tomllib
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import field as dc_field
from importlib import resources
from typing import Any, TypeVar

from probe.errors import ProbeError
from probe.model import Certificate

#: The format version this loader understands (``format`` at the top of the file).
FORMAT_VERSION = 1

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: How a match on a redirect's Location is described (see :attr:`Match.by_location`).
LOCATION_MATCH = "Location contains"
#: Every description of a match on the Location header starts so (ours and the field's).
LOCATION_PREFIX = "Location "


class FingerprintError(ProbeError, ValueError):
    """Raised when a fingerprint file is malformed; the message names the entry and the key."""


@functools.lru_cache(maxsize=16384)  # pure; the same needles, issuers and subjects recur
def _fold(text: str) -> str:
    """Case- and spacing-insensitive form for matching (``C=KZ, CN=x`` ≡ ``c=kz,cn=x``)."""
    return "".join(text.casefold().split())


def dn_key(text: str) -> str:
    """A distinguished name in a form independent of order, case and spacing: RFC 4514 text
    lists RDNs last-first (``CN=x,O=y,C=KZ``) while reports often write them first-last."""
    return ",".join(sorted(_fold(text).split(",")))


@dataclass(frozen=True, slots=True)
class InterceptionCA:
    """A certificate authority used for TLS interception.

    A presented chain matches when any of its certificates has an issuer or subject containing
    one of ``issuer_contains`` (case- and spacing-insensitive), or a certificate SHA-256 in
    ``sha256``, or a SubjectPublicKeyInfo SHA-256 in ``spki_sha256`` (lower-case hex), or a
    SHA-1 of its DER in ``sha1`` (keys: hex, values: what the source says about it), or an
    (issuer, serial) pair in ``serials`` — issuer folded like ``issuer_contains``; RFC 5280
    §4.1.2.2 makes the pair unique to one certificate. Exact identities are checked first,
    so the evidence names the very certificate when the source lists it.
    """

    name: str
    source: str
    issuer_contains: tuple[str, ...] = ()
    sha256: frozenset[str] = frozenset()
    spki_sha256: frozenset[str] = frozenset()
    sha1: Mapping[str, str] = field(default_factory=dict)
    serials: Mapping[tuple[str, int], str] = field(default_factory=dict)

    def match(self, chain: Sequence[Certificate], exact: bool | None = None) -> str | None:
        """What matched in ``chain`` (for the evidence), or None. ``exact`` True: only
        certificate identities; False: only issuer/subject text; None: both."""
        for depth, cert in enumerate(chain if exact is not False else ()):
            if cert.sha256.lower() in self.sha256:
                return f"certificate {depth} SHA-256 {cert.sha256.lower()}"
            if cert.spki_sha256.lower() in self.spki_sha256:
                return f"certificate {depth} SPKI SHA-256 {cert.spki_sha256.lower()}"
            if self.sha1 and cert.der:
                sha1 = hashlib.sha1(cert.der, usedforsecurity=False).hexdigest()
                if sha1 in self.sha1:
                    return f"certificate {depth} SHA-1 {sha1} ({self.sha1[sha1]})"
            if self.serials and cert.der:
                issuer = dn_key(cert.issuer)
                if any(i == issuer for i, _ in self.serials):
                    serial = der_serial(cert.der)
                    if serial is not None and (issuer, serial) in self.serials:
                        return (f"certificate {depth} serial {serial} issued by {cert.issuer} "
                                f"({self.serials[issuer, serial]})")
        needles = [_fold(n) for n in self.issuer_contains]
        for depth, cert in enumerate(chain if exact is not True else ()):
            for field_name, value in (("issuer", cert.issuer), ("subject", cert.subject)):
                folded = _fold(value)
                for needle, original in zip(needles, self.issuer_contains, strict=True):
                    if needle and needle in folded:
                        return f"certificate {depth} {field_name} contains {original!r}"
        return None


def der_serial(der: bytes) -> int | None:
    """The serial number of a DER certificate (RFC 5280 §4.1: Certificate → tbsCertificate →
    optional ``[0]`` version → serialNumber INTEGER), or None when ``der`` is not one."""
    try:
        i = _der_enter(der, 0, 0x30)  # Certificate
        i = _der_enter(der, i, 0x30)  # tbsCertificate
        if der[i] == 0xA0:  # [0] EXPLICIT version
            start, length = _der_header(der, i)
            i = start + length
        if der[i] != 0x02:
            return None
        start, length = _der_header(der, i)
        if length == 0 or start + length > len(der):
            return None
        return int.from_bytes(der[start:start + length], "big", signed=True)
    except (IndexError, ValueError):
        return None


def _der_header(der: bytes, i: int) -> tuple[int, int]:
    """(start of contents, length) of the DER element at ``i``."""
    n = der[i + 1]
    if n < 0x80:
        return i + 2, n
    count = n & 0x7F
    if not 1 <= count <= 4:
        raise ValueError("unsupported DER length")
    return i + 2 + count, int.from_bytes(der[i + 2:i + 2 + count], "big")


def _der_enter(der: bytes, i: int, tag: int) -> int:
    if der[i] != tag:
        raise ValueError("unexpected DER tag")
    return _der_header(der, i)[0]


@dataclass(frozen=True, slots=True)
class ResponsePattern:
    """An HTTP response pattern: a block page, or a server-side refusal (false positive).

    ``status``, when given, is required (AND). The other criteria are alternatives (OR): any
    substring of ``body_contains`` in the body, any of ``title_contains`` in the title, any
    ``headers`` entry (``(name, value)``: a response header of that name whose value contains
    the text; an empty value only requires the header), any ``location_contains`` in a
    redirect's ``Location``. An entry with only ``status`` matches on the status alone.
    Comparisons are case-insensitive.
    """

    name: str
    source: str
    body_contains: tuple[str, ...] = ()
    title_contains: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    location_contains: tuple[str, ...] = ()
    status: int | None = None

    def match(
        self,
        status: int | None,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        title: str | None,
        location: str | None = None,
        found: Container[str] | None = None,
    ) -> str | None:
        """What matched (for the evidence), or None. ``found``: the case-folded
        ``body_contains`` needles that occur in ``body``, when the caller already knows them
        (:meth:`Fingerprints.blockpage` folds a body once for all its patterns)."""
        if self.status is not None and status != self.status:
            return None
        if body and self.body_contains:
            text: Container[str] = found if found is not None else body.decode(
                "utf-8", errors="replace").casefold()
            for needle in self.body_contains:
                if needle.casefold() in text:
                    return f"body contains {needle!r}"
        if title:
            for needle in self.title_contains:
                if needle.casefold() in title.casefold():
                    return f"title contains {needle!r}"
        for name, value in self.headers:
            for hname, hvalue in headers:
                if hname.lower() == name and value.casefold() in hvalue.casefold():
                    return f"header {hname}: {hvalue}"
        if location:
            for needle in self.location_contains:
                if needle.casefold() in location.casefold():
                    return f"{LOCATION_MATCH} {needle!r}"
        only_status = not (self.body_contains or self.title_contains or self.headers
                           or self.location_contains)
        if only_status and self.status is not None:
            return f"status {status}"
        return None


@dataclass(frozen=True, slots=True)
class BlockpageIP:
    """Addresses a censor's resolver hands out instead of the real ones."""

    name: str
    source: str
    networks: tuple[Network, ...]

    def match(self, ip: str) -> bool:
        addr = _address(ip)
        return addr is not None and any(addr in net for net in self.networks)


@dataclass(frozen=True, slots=True)
class Match:
    """One fingerprint match: the entry's ``name`` and ``source`` and ``what`` matched.

    Field fingerprints add ``country`` (where the source expects the page: a fingerprint of a
    country is evidence everywhere — equipment is sold across borders — but the evidence says
    whose it is), ``confirmed`` (False: the source has not confirmed it; weaker evidence) and
    ``example`` (a measurement that shows it).
    """

    name: str
    source: str
    what: str
    country: str = ""
    confirmed: bool = True
    example: str = ""

    @property
    def by_location(self) -> bool:
        """The match is on a redirect's ``Location`` (a redirect *to* a block page)."""
        return self.what.startswith(LOCATION_PREFIX)

    @property
    def label(self) -> str:
        """The fingerprint's name, with whose it is and how sure its source is."""
        extra = [f"a fingerprint of {self.country}"] if self.country else []
        if not self.confirmed:
            extra.append("not confirmed by its source")
        return f"{self.name} ({'; '.join(extra)})" if extra else self.name

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fingerprint": self.name, "fingerprint_source": self.source,
                               "fingerprint_match": self.what}
        if self.country:
            out["fingerprint_country"] = self.country
        if not self.confirmed:
            out["fingerprint_confirmed"] = False
        if self.example:
            out["fingerprint_example"] = self.example
        return out


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """Every fingerprint of one file, by kind, in file order."""

    interception_cas: tuple[InterceptionCA, ...] = ()
    blockpages: tuple[ResponsePattern, ...] = ()
    blockpage_ips: tuple[BlockpageIP, ...] = ()
    false_positives: tuple[ResponsePattern, ...] = ()
    #: The field's collections (``data/field/``), consulted after our own entries.
    field: FieldSet | None = None
    #: Body digest → the case-folded body needles of our patterns found in it (a bounded
    #: memo: :func:`_body_memo`).
    _bodies: dict[bytes, frozenset[str]] = dc_field(
        default_factory=dict, init=False, compare=False, repr=False)

    def interception(self, chain: Sequence[Certificate]) -> Match | None:
        """The interception CA found in ``chain``: an exact certificate identity (hash,
        issuer + serial) of any entry first, then issuer/subject text, in file order."""
        for exact in (True, False):
            for ca in self.interception_cas:
                what = ca.match(chain, exact=exact)
                if what is not None:
                    return Match(ca.name, ca.source, what)
        return None

    def blockpage(self, status: int | None, headers: Sequence[tuple[str, str]],
                  body: bytes | None, title: str | None,
                  location: str | None = None) -> Match | None:
        """The first block-page pattern the response matches: ours first, then the strongest
        field fingerprint (confirmed before unconfirmed)."""
        ours = _first(self.blockpages, status, headers, body, title, location,
                      self._found(body))
        if ours is not None or self.field is None:
            return ours
        return self.field.blockpage(headers, body)

    def false_positive(self, status: int | None, headers: Sequence[tuple[str, str]],
                       body: bytes | None, title: str | None) -> Match | None:
        """The first server-side refusal pattern the response matches."""
        return _first(self.false_positives, status, headers, body, title, None,
                      self._found(body))

    def _found(self, body: bytes | None) -> frozenset[str] | None:
        """The case-folded ``body_contains`` needles of all our response patterns that occur
        in ``body``: the body is decoded and folded once per distinct body, not once per
        pattern (a 100 kB page costs ~0.7 ms to fold; block pages repeat across an archive)."""
        if not body:
            return None

        def scan() -> frozenset[str]:
            text = body.decode("utf-8", errors="replace").casefold()
            return frozenset(n for p in (*self.blockpages, *self.false_positives)
                             for n in (x.casefold() for x in p.body_contains) if n in text)

        return _body_memo(self._bodies, body, scan)

    def blockpage_ip(self, ip: str) -> Match | None:
        """The block-page server list ``ip`` belongs to (ours, then the field's DNS answers)."""
        for entry in self.blockpage_ips:
            if entry.match(ip):
                return Match(entry.name, entry.source, f"address {ip}")
        return self.field.dns_answer(ip) if self.field is not None else None

    def dns_answer(self, value: str) -> Match | None:
        """A DNS answer (address or CNAME target) that is a known censor's answer."""
        if _address(value) is None:
            return self.field.dns_answer(value) if self.field is not None else None
        return self.blockpage_ip(value)


def _first(patterns: Iterable[ResponsePattern], status: int | None,
           headers: Sequence[tuple[str, str]], body: bytes | None, title: str | None,
           location: str | None, found: frozenset[str] | None = None) -> Match | None:
    for p in patterns:
        what = p.match(status, headers, body, title, location, found)
        if what is not None:
            return Match(p.name, p.source, what)
    return None


#: Distinct bodies remembered per fingerprint set (a digest and a few needles each).
BODY_MEMO = 4096

T = TypeVar("T")


_last_digest: tuple[bytes, bytes] = (b"", hashlib.sha256(b"").digest())


def _digest(body: bytes) -> bytes:
    """SHA-256 of ``body``, remembered for the last body object seen: the rules ask about
    one response's body several times (refusal patterns, block pages ours and the field's),
    and hashing a large page costs more than the lookups it keys."""
    global _last_digest
    last = _last_digest  # one read: another thread may replace it meanwhile
    if last[0] is not body:
        last = _last_digest = (body, hashlib.sha256(body).digest())
    return last[1]


def _body_memo(memo: dict[bytes, T], body: bytes, scan: Callable[[], T]) -> T:
    """``scan()``'s result for ``body``, remembered by the body's SHA-256 (a pure function of
    the body, so exact): the same block page or landing page is judged again and again in an
    archive, and hashing it is ~20x cheaper than scanning it. Bounded (cleared when full)."""
    key = _digest(body)
    found = memo.get(key)
    if found is None:
        if len(memo) >= BODY_MEMO:
            memo.clear()
        found = memo[key] = scan()
    return found


# --- loading ----------------------------------------------------------------------------------

_KINDS = ("interception_ca", "blockpage", "blockpage_ip", "false_positive")
_COMMON = ("name", "source")
_KEYS: dict[str, frozenset[str]] = {
    "interception_ca": frozenset({*_COMMON, "issuer_contains", "sha256", "spki_sha256"}),
    "blockpage": frozenset({*_COMMON, "body_contains", "title_contains", "headers",
                            "location_contains", "status"}),
    "blockpage_ip": frozenset({*_COMMON, "ips"}),
    "false_positive": frozenset({*_COMMON, "body_contains", "title_contains", "headers",
                                 "status"}),
}


def load(text: str) -> Fingerprints:
    """Parse and validate a fingerprint file's TOML text (raises :class:`FingerprintError`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FingerprintError(f"not valid TOML: {e}") from None
    version = data.get("format", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise FingerprintError(f"format {version!r} is not supported (expected {FORMAT_VERSION})")
    unknown = set(data) - {"format", *_KINDS}
    if unknown:
        raise FingerprintError(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    names: set[str] = set()
    entries: dict[str, list[Any]] = {k: [] for k in _KINDS}
    for kind in _KINDS:
        raw = data.get(kind, [])
        if not isinstance(raw, list):
            raise FingerprintError(f"{kind}: expected an array of tables ([[{kind}]])")
        for i, item in enumerate(raw):
            where = f"{kind}[{i}]"
            if not isinstance(item, dict):
                raise FingerprintError(f"{where}: expected a table")
            extra = set(item) - _KEYS[kind]
            if extra:
                raise FingerprintError(f"{where}: unknown keys {', '.join(sorted(extra))}")
            name = _text(item, "name", where, required=True)
            where = f"{kind} {name!r}"
            if name in names:
                raise FingerprintError(f"{where}: duplicate name")
            names.add(name)
            entries[kind].append(_parse(kind, item, name, where))
    return Fingerprints(
        interception_cas=tuple(entries["interception_ca"]),
        blockpages=tuple(entries["blockpage"]),
        blockpage_ips=tuple(entries["blockpage_ip"]),
        false_positives=tuple(entries["false_positive"]),
    )


@functools.cache
def default_fingerprints() -> Fingerprints:
    """The fingerprints shipped with the package: ``data/fingerprints.toml`` merged with the
    field's collections in ``data/field/`` (ours first and unchanged; the Kazakhstan CA rows
    extend the entry they name). Cached: loaded once per process."""
    data = resources.files("probe.classify").joinpath("data")
    ours = load(data.joinpath("fingerprints.toml").read_text(encoding="utf-8"))
    folder = data.joinpath("field")
    # bytes, not read_text: universal newlines would turn the CR LF inside six of OONI's
    # patterns into LF, and they would never match the pages they describe
    texts = {e.name: e.read_bytes().decode("utf-8") for e in folder.iterdir()
             if e.name.endswith(".csv")}
    return merge_field(ours, load_field(texts, folder.joinpath("SOURCES.toml").read_text(
        encoding="utf-8")))


def _parse(kind: str, item: Mapping[str, Any], name: str, where: str) -> Any:
    source = _text(item, "source", where, required=True)
    if kind == "interception_ca":
        ca = InterceptionCA(
            name, source, _texts(item, "issuer_contains", where),
            frozenset(_hexes(item, "sha256", where)),
            frozenset(_hexes(item, "spki_sha256", where)),
        )
        if not (ca.issuer_contains or ca.sha256 or ca.spki_sha256):
            raise FingerprintError(f"{where}: needs issuer_contains, sha256 or spki_sha256")
        return ca
    if kind == "blockpage_ip":
        nets = []
        for ip in _texts(item, "ips", where):
            try:
                nets.append(ipaddress.ip_network(ip, strict=False))
            except ValueError:
                raise FingerprintError(f"{where}: {ip!r} is not an address or CIDR") from None
        if not nets:
            raise FingerprintError(f"{where}: ips is empty")
        return BlockpageIP(name, source, tuple(nets))
    status = item.get("status")
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise FingerprintError(f"{where}: status must be an HTTP status code")
    headers = []
    for h in _texts(item, "headers", where):
        hname, sep, value = h.partition(":")
        if not sep or not hname.strip():
            raise FingerprintError(f"{where}: header {h!r} must be 'name: value'")
        headers.append((hname.strip().lower(), value.strip()))
    pattern = ResponsePattern(
        name, source, _texts(item, "body_contains", where), _texts(item, "title_contains", where),
        tuple(headers), _texts(item, "location_contains", where), status,
    )
    if not (pattern.body_contains or pattern.title_contains or pattern.headers
            or pattern.location_contains or pattern.status is not None):
        raise FingerprintError(f"{where}: needs at least one criterion")
    return pattern


def _text(item: Mapping[str, Any], key: str, where: str, required: bool = False) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise FingerprintError(f"{where}: {key} must be a non-empty string")
    return value


def _texts(item: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FingerprintError(f"{where}: {key} must be a list of non-empty strings")
    return tuple(value)


def _hexes(item: Mapping[str, Any], key: str, where: str) -> list[str]:
    out = []
    for v in _texts(item, key, where):
        h = v.lower().replace(":", "")
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise FingerprintError(f"{where}: {key} {v!r} is not a SHA-256 in hex")
        out.append(h)
    return out


# --- the field's collections (data/field/) ----------------------------------------------------

#: ``confidence_no_fp`` from which a field fingerprint is *confirmed*. Citizen Lab rates each
#: signature 0-10 for how unlikely it is to match an innocent page; OONI's file copies that
#: rating where it took the row from Citizen Lab and otherwise leaves its default, 5 (the
#: ``oonidata`` ``Fingerprint`` default): 5 means nobody assessed it.
CONFIRMED_MIN = 8
#: Scopes (Citizen Lab's vocabulary, used by OONI too) that are never confirmed: ``vbw`` a
#: vague blocking word, and ``fp`` Censored Planet's labels of pages that are *not* block
#: pages, which are loaded and validated but never matched (data/field/README.md says why).
WEAK_SCOPES = frozenset({"vbw"})
NOT_MATCHED_SCOPES = frozenset({"fp"})
SCOPES = frozenset({"nat", "isp", "prod", "inst", "vbw", "fp", "injb", "prov", "br", "unk"})
PATTERN_TYPES = ("full", "prefix", "contains", "regexp")
#: Literal patterns shorter than this are too common to be evidence of anything.
MIN_LITERAL = 4
MAX_REGEXP = 500
FIELD_COLUMNS = ("name", "scope", "location", "header_name", "pattern_type", "pattern",
                 "country", "confidence_no_fp", "aliases", "origin", "example_url")
KZ_COLUMNS = ("fingerprint", "role", "sha1", "serial", "not_before_utc", "not_after_utc",
              "issuer", "root_crtsh_id", "root_sha1", "root_serial", "root_not_before_utc",
              "root_not_after_utc", "seen_in_measurement")
_COUNTRY = re.compile(r"[A-Z]{2}")
_HEADER_NAME = re.compile(r"[a-z0-9-]+")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}")


@dataclass(frozen=True, slots=True)
class FieldFingerprint:
    """One row of a field collection, validated. ``source`` is its provenance (collection,
    file, commit, and the row's own origin); ``line`` its line in the file."""

    name: str
    source: str
    file: str
    line: int
    scope: str
    location: str  # dns | body | header
    header_name: str  # "" with location header: the pattern matches "Name: value" lines
    pattern_type: str
    pattern: str
    countries: tuple[str, ...]
    confidence: int
    example_url: str = ""
    regexp: re.Pattern[str] | None = None

    @property
    def confirmed(self) -> bool:
        return self.confidence >= CONFIRMED_MIN and self.scope not in WEAK_SCOPES

    def matches(self, text: str) -> bool:
        """OONI's semantics (``oonidata`` ``Fingerprint.matches_pattern``): case-sensitive."""
        if self.pattern_type == "full":
            return text == self.pattern
        if self.pattern_type == "prefix":
            return text.startswith(self.pattern)
        if self.pattern_type == "contains":
            return self.pattern in text
        return self.regexp is not None and self.regexp.search(text) is not None

    def match(self, what: str) -> Match:
        return Match(self.name, self.source, what, ", ".join(self.countries), self.confirmed,
                     self.example_url)

    def describe(self, subject: str) -> str:
        verb = {"full": "is", "prefix": "starts with", "contains": "contains",
                "regexp": "matches"}[self.pattern_type]
        shown = self.pattern if len(self.pattern) <= 80 else self.pattern[:77] + "..."
        return f"{subject} {verb} {shown!r}"


class _Literals:
    """Every needle that occurs in a text, found with one pass per leading character.

    WHY this shape: all literal needles go into one trie; the trie is compiled into one
    regular expression per leading character (``c(?=(rest-of-trie))``), so :mod:`re` scans
    for that character at C speed and only then walks the trie. Measured on the 853 literal
    body patterns (5 KB page): 0.4 ms, against 1.1 ms for the same trie as a single
    expression (``re`` tries every top-level branch at every position) and 2.5 ms for one
    ``in`` per pattern. The lookahead finds the longest needle starting at *every* position;
    shorter needles that are prefixes of a found one are added from a table. Compiled on
    first use (~60 ms), so loading stays cheap for callers that never match a body.
    """

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = frozenset(needles)
        self._compiled: list[re.Pattern[str]] | None = None

    def _regexes(self) -> list[re.Pattern[str]]:
        if self._compiled is None:
            groups: dict[str, list[str]] = {}
            for w in sorted(self.needles):
                groups.setdefault(w[0], []).append(w[1:])
            self._compiled = [re.compile(re.escape(c) + "(?=(" + _trie(rest) + "))")
                              for c, rest in groups.items()]
        return self._compiled

    def find(self, text: str) -> set[str]:
        """The needles that occur in ``text``."""
        found: set[str] = set()
        if not self.needles or not text:
            return found
        for rx in self._regexes():
            for m in rx.finditer(text):
                found.add(m.group(0) + m.group(1))
        for w in list(found):
            found.update(w[:k] for k in range(MIN_LITERAL, len(w)) if w[:k] in self.needles)
        return found


def _trie(words: list[str]) -> str:
    """A regular expression matching the longest of ``words`` (which may include "")."""
    end = "" in words
    rest = [w for w in words if w]
    if not rest:
        return ""
    groups: dict[str, list[str]] = {}
    for w in rest:
        groups.setdefault(w[0], []).append(w)
    alts = []
    for ws in groups.values():
        prefix = ws[0]
        for w in ws[1:]:
            i = 0
            while i < len(prefix) and i < len(w) and prefix[i] == w[i]:
                i += 1
            prefix = prefix[:i]
        alts.append(re.escape(prefix) + _trie([w[len(prefix):] for w in ws]))
    body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    if end:
        return "(?:" + body + ")?" if len(alts) == 1 else body + "?"
    return body


class _HeaderIndex:
    """One header name's field fingerprints indexed by pattern type, so a value is matched
    against ~375 ``Location`` patterns with a dict lookup, one ``startswith`` of a tuple and
    the ``contains`` literals, not 375 Python calls. :meth:`matching` returns the positions
    in the original tuple that match, in order: exactly ``[i for i, fp in enumerate(fps) if
    fp.matches(value)]`` (tests/classify/test_classify_field_fingerprints.py checks it)."""

    __slots__ = ("contains", "full", "others", "prefixed", "starts")

    def __init__(self, fps: Sequence[FieldFingerprint]) -> None:
        self.full: dict[str, list[int]] = {}
        prefixed: list[tuple[str, int]] = []
        contains: list[tuple[str, int]] = []
        others: list[int] = []
        for i, fp in enumerate(fps):
            if fp.pattern_type == "full":
                self.full.setdefault(fp.pattern, []).append(i)
            elif fp.pattern_type == "prefix":
                prefixed.append((fp.pattern, i))
            elif fp.pattern_type == "contains":
                contains.append((fp.pattern, i))
            else:
                others.append(i)
        self.prefixed = tuple(prefixed)
        self.starts = tuple(p for p, _ in prefixed)
        self.contains = tuple(contains)
        self.others = [(fps[i], i) for i in others]

    def matching(self, value: str) -> list[int]:
        found = list(self.full.get(value, ()))
        if self.starts and value.startswith(self.starts):
            found += [i for p, i in self.prefixed if value.startswith(p)]
        found += [i for p, i in self.contains if p in value]
        found += [i for fp, i in self.others if fp.matches(value)]
        found.sort()
        return found


@dataclass(frozen=True)
class FieldSet:
    """The field's fingerprints, indexed for matching (scope ``fp`` and bogon DNS answers are
    kept in ``fingerprints`` but not matched; see the module's constants)."""

    fingerprints: tuple[FieldFingerprint, ...]
    dns: Mapping[str, tuple[FieldFingerprint, ...]]
    body_literals: _Literals
    body_by_pattern: Mapping[str, tuple[FieldFingerprint, ...]]
    body_others: tuple[FieldFingerprint, ...]  # prefix, full, regexp
    headers: Mapping[str, tuple[FieldFingerprint, ...]]  # by lower-case header name
    header_lines: _Literals  # Citizen Lab's "Name: value" patterns
    header_lines_by_pattern: Mapping[str, tuple[FieldFingerprint, ...]]
    kz_cas: Mapping[str, tuple[dict[str, str], dict[tuple[str, int], str], str]] = field(
        default_factory=dict)
    #: Body digest → its field hits (a bounded memo: :func:`_body_memo`).
    _bodies: dict[bytes, tuple[tuple[FieldFingerprint, str], ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    @functools.cached_property
    def _header_index(self) -> dict[str, _HeaderIndex]:
        """:attr:`headers` indexed by pattern type (built on first use)."""
        return {name: _HeaderIndex(fps) for name, fps in self.headers.items()}

    def dns_answer(self, value: str) -> Match | None:
        """The strongest field fingerprint for a DNS answer (address or CNAME target)."""
        fps = self.dns.get(_answer_key(value), ())
        best = _best(fps)
        return best.match(f"DNS answer {value}") if best is not None else None

    def blockpage(self, headers: Sequence[tuple[str, str]], body: bytes | None) -> Match | None:
        """The strongest field block-page fingerprint in a response's headers or body."""
        hits: list[tuple[FieldFingerprint, str]] = []
        index = self._header_index
        for hname, hvalue in headers:
            found = index.get(hname.lower())
            if found is not None:
                fps = self.headers[hname.lower()]
                hits.extend((fps[i], fps[i].describe(hname.title()))
                            for i in found.matching(hvalue))
        if headers and self.header_lines.needles:
            lines = "\n".join(f"{n}: {v}" for n, v in headers)
            for needle in self.header_lines.find(lines):
                hits.extend((fp, fp.describe("a header")) for fp in
                            self.header_lines_by_pattern[needle])
        if body:
            in_body = _body_memo(self._bodies, body, lambda: self._body_hits(body))
            hits.extend(in_body)
        if not hits:
            return None
        fp, what = min(hits, key=lambda h: (not h[0].confirmed, -h[0].confidence, h[0].file,
                                            h[0].line))
        return fp.match(what)

    def _body_hits(self, body: bytes) -> tuple[tuple[FieldFingerprint, str], ...]:
        hits: list[tuple[FieldFingerprint, str]] = []
        text = body.decode("utf-8", errors="replace")
        for needle in self.body_literals.find(text):
            hits.extend((fp, fp.describe("body")) for fp in self.body_by_pattern[needle])
        hits.extend((fp, fp.describe("body")) for fp in self.body_others if fp.matches(text))
        return tuple(hits)


def _best(fps: Iterable[FieldFingerprint]) -> FieldFingerprint | None:
    return min(fps, key=lambda fp: (not fp.confirmed, -fp.confidence, fp.file, fp.line),
               default=None)


@functools.lru_cache(maxsize=8192)
def _answer_key(value: str) -> str:
    """An answer's lookup form: a canonical address, or a lower-case name without the dot."""
    value = value.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


class _Problems:
    """Collects ``FILE:LINE: problem`` lines; raises them together as one FingerprintError."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, file: str, line: int | None, problem: str) -> None:
        self.lines.append(f"{file}:{line}: {problem}" if line is not None
                          else f"{file}: {problem}")

    def raise_any(self) -> None:
        if self.lines:
            shown = self.lines[:50]
            more = len(self.lines) - len(shown)
            raise FingerprintError("\n".join(shown + ([f"... and {more} more"] if more else [])))


def _rows(file: str, text: str, columns: Sequence[str],
          problems: _Problems) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV with their line numbers (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        problems.add(file, 1, "empty file")
        return
    if tuple(header) != tuple(columns):
        problems.add(file, 1, f"columns must be {','.join(columns)}")
        return
    line = reader.line_num + 1
    try:
        for row in reader:
            if len(row) != len(columns):
                problems.add(file, line, f"{len(row)} fields, expected {len(columns)}")
            else:
                yield line, dict(zip(columns, row, strict=True))
            line = reader.line_num + 1
    except csv.Error as e:
        problems.add(file, line, f"not valid CSV: {e}")


def regexp_problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be used on untrusted pages, or None.

    Refused: longer than :data:`MAX_REGEXP`, invalid, matching the empty string (it would
    match every page), back-references, and a repeat nested in a repeat (``(a+)+``, ``(.*)*``:
    exponential backtracking on a page that almost matches).
    """
    if len(pattern) > MAX_REGEXP:
        return f"regexp longer than {MAX_REGEXP} characters"
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        return f"invalid regexp: {e}"
    if compiled.search("") is not None:
        return "regexp matches the empty string (every page)"
    import re._parser as sre_parse  # noqa: PLC0415 - the stdlib's own parse tree
    from re._constants import (  # noqa: PLC0415
        GROUPREF,
        MAX_REPEAT,
        MIN_REPEAT,
        POSSESSIVE_REPEAT,
    )

    repeats = {MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT}

    def walk(items: Any, inside: bool) -> str | None:
        for op, av in items:
            if op is GROUPREF:
                return "regexp uses a back-reference"
            if op in repeats:
                lo, hi, sub = av
                if hi > 1 and inside:
                    return "regexp nests a repeat in a repeat (catastrophic backtracking)"
                why = walk(sub, inside or hi > 1)
                if why:
                    return why
                continue
            for child in av if isinstance(av, (list, tuple)) else ():
                if isinstance(child, sre_parse.SubPattern):
                    why = walk(child, inside)
                elif isinstance(child, (list, tuple)):
                    why = next((w for c in child if isinstance(c, sre_parse.SubPattern)
                                for w in [walk(c, inside)] if w), None)
                else:
                    why = None
                if why:
                    return why
        return None

    return walk(sre_parse.parse(pattern), False)


def load_field(files: Mapping[str, str], sources: str) -> FieldSet:
    """Validate the field collections (``files``: CSV name → text) against ``sources`` (the
    text of ``SOURCES.toml``) into a :class:`FieldSet`; raises :class:`FingerprintError` with
    one ``FILE:LINE: problem`` line per problem."""
    problems = _Problems()
    try:
        meta = tomllib.loads(sources).get("files", {})
    except tomllib.TOMLDecodeError as e:
        raise FingerprintError(f"SOURCES.toml: not valid TOML: {e}") from None
    fps: list[FieldFingerprint] = []
    kz: dict[str, tuple[dict[str, str], dict[tuple[str, int], str], str]] = {}
    for file in sorted(files):
        names: set[str] = set()  # unique per file: OONI's files repeat Citizen Lab's names
        info = meta.get(file)
        if not isinstance(info, dict) or not all(
                isinstance(info.get(k), str) and info[k] for k in ("label", "repository", "date")):
            problems.add(file, None, "no [files.\"...\"] entry with label, repository and date "
                         "in SOURCES.toml")
            continue
        commit = str(info.get("commit") or "")
        provenance = (f"{info['label']} ({info['repository']}"
                      f"{'@' + commit[:7] if commit else ''}, {info['date']}) {file}")
        if file.startswith("kz_"):
            rows = list(_rows(file, files[file], KZ_COLUMNS, problems))
            _kz_rows(file, rows, provenance, kz, problems)
        else:
            rows = list(_rows(file, files[file], FIELD_COLUMNS, problems))
            for line, row in rows:
                fp = _field_row(file, line, row, provenance, problems)
                if fp is None:
                    continue
                if fp.name in names:
                    problems.add(file, line, f"duplicate name {fp.name!r}")
                    continue
                names.add(fp.name)
                fps.append(fp)
        if info.get("rows") != len(rows):
            problems.add(file, None, f"{len(rows)} rows, SOURCES.toml says {info.get('rows')}")
    problems.raise_any()
    return _index(tuple(fps), kz)


def _field_row(file: str, line: int, row: Mapping[str, str], provenance: str,
               problems: _Problems) -> FieldFingerprint | None:
    def bad(problem: str) -> FieldFingerprint | None:
        problems.add(file, line, problem)
        return None

    name, scope, location = row["name"].strip(), row["scope"], row["location"]
    ptype, pattern, header = row["pattern_type"], row["pattern"], row["header_name"]
    if not name:
        return bad("empty name")
    if scope not in SCOPES:
        return bad(f"{name}: scope {scope!r} is not one of {', '.join(sorted(SCOPES))}")
    if location not in ("dns", "body", "header"):
        return bad(f"{name}: location {location!r} is not dns, body or header")
    if ptype not in PATTERN_TYPES:
        return bad(f"{name}: pattern_type {ptype!r} is not one of {', '.join(PATTERN_TYPES)}")
    if not pattern.strip():
        return bad(f"{name}: empty pattern")
    if header and (location != "header" or not _HEADER_NAME.fullmatch(header)):
        return bad(f"{name}: header_name {header!r} needs location header and a lower-case "
                   "header name")
    regexp = None
    if ptype == "regexp":
        why = regexp_problem(pattern)
        if why:
            return bad(f"{name}: {why}")
        regexp = re.compile(pattern)
    elif len(pattern) < MIN_LITERAL:
        return bad(f"{name}: pattern {pattern!r} is shorter than {MIN_LITERAL} characters")
    if location == "dns":
        if ptype != "full":
            return bad(f"{name}: a DNS answer pattern must be full")
        key = _answer_key(pattern)
        if key == pattern.strip().lower() and not _is_ip(key) and not _HOSTNAME.fullmatch(key):
            return bad(f"{name}: {pattern!r} is neither an address nor a host name")
    if location == "header" and not header and ptype != "contains":
        return bad(f"{name}: a pattern on 'Name: value' header lines must be contains")
    countries = tuple(c.strip() for c in row["country"].split(",") if c.strip())
    if any(not _COUNTRY.fullmatch(c) for c in countries):
        return bad(f"{name}: country {row['country']!r} is not a list of ISO country codes")
    try:
        confidence = int(row["confidence_no_fp"])
    except ValueError:
        confidence = -1
    if not 0 <= confidence <= 10:
        return bad(f"{name}: confidence_no_fp {row['confidence_no_fp']!r} is not 0-10")
    example = row["example_url"].strip()
    if example and not example.startswith(("https://", "http://")):
        return bad(f"{name}: example_url must be a URL")
    origin = row["origin"].strip()
    source = provenance + (f", from {origin}" if origin and origin.lower() not in
                           provenance.lower() else "")
    return FieldFingerprint(name, source, file, line, scope, location, header, ptype, pattern,
                            countries, confidence, example, regexp)


@functools.lru_cache(maxsize=16384)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` (brackets allowed) parsed as an address; None = not one. Cached: the same
    answers recur across an import, and parsing one costs ~10 µs."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=8192)
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _is_global(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_global


def _kz_rows(file: str, rows: Sequence[tuple[int, Mapping[str, str]]], provenance: str,
             out: dict[str, tuple[dict[str, str], dict[tuple[str, int], str], str]],
             problems: _Problems) -> None:
    """Interception CA rows: SHA-1 and (issuer, serial) of each certificate and of its root."""
    for line, row in rows:
        target = row["fingerprint"].strip()
        if not target:
            problems.add(file, line, "empty fingerprint (the fingerprints.toml entry to extend)")
            continue
        sha1s, serials, _ = out.setdefault(target, ({}, {}, provenance))
        seen = row["seen_in_measurement"].strip()
        what = (f"{row['role']} valid {row['not_before_utc']} to {row['not_after_utc']}"
                + (f", seen in OONI measurement {seen}" if seen else ""))
        root = (f"root of the {row['role']} seen in {seen}"
                + (f", crt.sh {row['root_crtsh_id']}" if row["root_crtsh_id"] else ""))
        for col_sha, col_serial, text, required in (("sha1", "serial", what, True),
                                                    ("root_sha1", "root_serial", root, False)):
            sha, serial = row[col_sha].strip().lower(), row[col_serial].strip()
            if not sha and not serial and not required:
                continue
            if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
                problems.add(file, line, f"{col_sha} {row[col_sha]!r} is not a SHA-1 in hex")
                continue
            if not serial.isdigit():
                problems.add(file, line, f"{col_serial} {serial!r} is not a decimal serial")
                continue
            if not row["issuer"].strip():
                problems.add(file, line, "empty issuer")
                continue
            sha1s.setdefault(sha, text)
            serials.setdefault((dn_key(row["issuer"]), int(serial)), text)


def _index(fps: tuple[FieldFingerprint, ...],
           kz: Mapping[str, tuple[dict[str, str], dict[tuple[str, int], str], str]]) -> FieldSet:
    dns: dict[str, list[FieldFingerprint]] = {}
    body: dict[str, list[FieldFingerprint]] = {}
    others: list[FieldFingerprint] = []
    headers: dict[str, list[FieldFingerprint]] = {}
    lines: dict[str, list[FieldFingerprint]] = {}
    for fp in fps:
        if fp.scope in NOT_MATCHED_SCOPES:
            continue
        if fp.location == "dns":
            key = _answer_key(fp.pattern)
            if _is_ip(key) and not _is_global(key):
                continue  # a bogon: the bogon rule judges those (it knows local test answers)
            dns.setdefault(key, []).append(fp)
        elif fp.location == "body":
            if fp.pattern_type == "contains":
                body.setdefault(fp.pattern, []).append(fp)
            else:
                others.append(fp)
        elif fp.header_name:
            headers.setdefault(fp.header_name, []).append(fp)
        else:
            lines.setdefault(fp.pattern, []).append(fp)
    return FieldSet(
        fps, {k: tuple(v) for k, v in dns.items()}, _Literals(body),
        {k: tuple(v) for k, v in body.items()}, tuple(others),
        {k: tuple(v) for k, v in headers.items()}, _Literals(lines),
        {k: tuple(v) for k, v in lines.items()}, dict(kz))


def merge_field(ours: Fingerprints, field_set: FieldSet) -> Fingerprints:
    """Our fingerprints with the field's: the Kazakhstan CA rows extend the interception CA
    entry they name (an unknown name is an error); the rest is consulted after ours."""
    cas = list(ours.interception_cas)
    for target, (sha1s, serials, provenance) in field_set.kz_cas.items():
        at = next((i for i, ca in enumerate(cas) if ca.name == target), None)
        if at is None:
            raise FingerprintError(f"kz_interception_ca.csv: fingerprint {target!r} is not an "
                                   "[[interception_ca]] of fingerprints.toml")
        ca = cas[at]
        cas[at] = replace(ca, source=f"{ca.source}; SHA-1 and serials: {provenance}",
                          sha1={**sha1s, **ca.sha1}, serials={**serials, **ca.serials})
    return replace(ours, interception_cas=tuple(cas), field=field_set)
