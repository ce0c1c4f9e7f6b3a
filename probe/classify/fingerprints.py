"""Fingerprints as data: load ``data/fingerprints.toml`` and match observations against it.

Responsibility: the *format* of our fingerprint file (documented in the file itself and in
``docs/classification.md``), its validation, and the pure predicates the rules use — "is this
certificate from a known interception CA", "is this response a known block page", "is this a
known server-side refusal", "is this address a censor's block-page server". Which rule uses a
match, and what it concludes, lives in the rule modules, not here.

Loading reads package data with :mod:`tomllib` (the classifier's only IO, and only its own
data); :func:`default_fingerprints` caches the packaged file. :func:`load` takes TOML text so
tests and analysts can pass their own fingerprints.
"""

from __future__ import annotations

import functools
import ipaddress
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from probe.errors import ProbeError
from probe.model import Certificate

#: The format version this loader understands (``format`` at the top of the file).
FORMAT_VERSION = 1

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: How a match on a redirect's Location is described (see :attr:`Match.by_location`).
LOCATION_MATCH = "Location contains"


class FingerprintError(ProbeError, ValueError):
    """Raised when a fingerprint file is malformed; the message names the entry and the key."""


def _fold(text: str) -> str:
    """Case- and spacing-insensitive form for matching (``C=KZ, CN=x`` ≡ ``c=kz,cn=x``)."""
    return "".join(text.casefold().split())


@dataclass(frozen=True, slots=True)
class InterceptionCA:
    """A certificate authority used for TLS interception.

    A presented chain matches when any of its certificates has an issuer or subject containing
    one of ``issuer_contains`` (case- and spacing-insensitive), or a certificate SHA-256 in
    ``sha256``, or a SubjectPublicKeyInfo SHA-256 in ``spki_sha256`` (lower-case hex).
    """

    name: str
    source: str
    issuer_contains: tuple[str, ...] = ()
    sha256: frozenset[str] = frozenset()
    spki_sha256: frozenset[str] = frozenset()

    def match(self, chain: Sequence[Certificate]) -> str | None:
        """What matched in ``chain`` (for the evidence), or None."""
        needles = [_fold(n) for n in self.issuer_contains]
        for depth, cert in enumerate(chain):
            if cert.sha256.lower() in self.sha256:
                return f"certificate {depth} SHA-256 {cert.sha256.lower()}"
            if cert.spki_sha256.lower() in self.spki_sha256:
                return f"certificate {depth} SPKI SHA-256 {cert.spki_sha256.lower()}"
            for field_name, value in (("issuer", cert.issuer), ("subject", cert.subject)):
                folded = _fold(value)
                for needle, original in zip(needles, self.issuer_contains, strict=True):
                    if needle and needle in folded:
                        return f"certificate {depth} {field_name} contains {original!r}"
        return None


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
    ) -> str | None:
        """What matched (for the evidence), or None."""
        if self.status is not None and status != self.status:
            return None
        if body:
            text = body.decode("utf-8", errors="replace").casefold()
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
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return False
        return any(addr in net for net in self.networks)


@dataclass(frozen=True, slots=True)
class Match:
    """One fingerprint match: the entry's ``name`` and ``source`` and ``what`` matched."""

    name: str
    source: str
    what: str

    @property
    def by_location(self) -> bool:
        """The match is on a redirect's ``Location`` (a redirect *to* a block page)."""
        return self.what.startswith(LOCATION_MATCH)

    def details(self) -> dict[str, str]:
        return {"fingerprint": self.name, "fingerprint_source": self.source,
                "fingerprint_match": self.what}


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """Every fingerprint of one file, by kind, in file order."""

    interception_cas: tuple[InterceptionCA, ...] = ()
    blockpages: tuple[ResponsePattern, ...] = ()
    blockpage_ips: tuple[BlockpageIP, ...] = ()
    false_positives: tuple[ResponsePattern, ...] = ()

    def interception(self, chain: Sequence[Certificate]) -> Match | None:
        """The first interception CA found in ``chain``."""
        for ca in self.interception_cas:
            what = ca.match(chain)
            if what is not None:
                return Match(ca.name, ca.source, what)
        return None

    def blockpage(self, status: int | None, headers: Sequence[tuple[str, str]],
                  body: bytes | None, title: str | None,
                  location: str | None = None) -> Match | None:
        """The first block-page pattern the response matches."""
        return _first(self.blockpages, status, headers, body, title, location)

    def false_positive(self, status: int | None, headers: Sequence[tuple[str, str]],
                       body: bytes | None, title: str | None) -> Match | None:
        """The first server-side refusal pattern the response matches."""
        return _first(self.false_positives, status, headers, body, title, None)

    def blockpage_ip(self, ip: str) -> Match | None:
        """The block-page server list ``ip`` belongs to."""
        for entry in self.blockpage_ips:
            if entry.match(ip):
                return Match(entry.name, entry.source, f"address {ip}")
        return None


def _first(patterns: Iterable[ResponsePattern], status: int | None,
           headers: Sequence[tuple[str, str]], body: bytes | None, title: str | None,
           location: str | None) -> Match | None:
    for p in patterns:
        what = p.match(status, headers, body, title, location)
        if what is not None:
            return Match(p.name, p.source, what)
    return None


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
    """The fingerprints shipped with the package (``probe/classify/data/fingerprints.toml``)."""
    text = resources.files("probe.classify").joinpath("data/fingerprints.toml").read_text(
        encoding="utf-8")
    return load(text)


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
