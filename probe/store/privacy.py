"""The volunteer's own addresses never reach storage: find them and scrub them from records.

Everything that decides which addresses identify the volunteer and how they are removed lives
here. Rules for this module:

* The addresses to scrub are the volunteer's own: every address of the machine's interfaces
  (:func:`local_addresses`, loopback excepted) and the public address a control helper saw the
  request come from (the ``client_address`` field of its answer, learnt by
  :meth:`Scrubber.measurement`, kept in memory only and removed from the stored answer).
  Addresses of the measured sites are kept — unless one *is* the volunteer's address.
* Every textual form is replaced by :data:`PLACEHOLDER`: dotted and dashed IPv4
  (``192-0-2-7.isp.example``), IPv6 in any spelling (compressed, expanded, upper case, with a
  zone, with ``%3A`` for ``:``), IPv4-mapped IPv6; in text, URLs, header names and values,
  bodies (bytes), titles, certificates' text fields, failure strings, control answers, the
  ``extra`` dicts, verdict evidence and health samples.
* A certificate whose DER holds the address (as text or as an IP SAN) keeps its hashes and text
  fields but loses its DER (a certificate naming the volunteer is of no analytic interest).
  A scrubbed body gets a new ``body_sha256`` (of what is stored); ``body_length`` stays the
  length received.
* Records are frozen: scrubbing returns new records (``dataclasses.replace``) and returns the
  very same object when nothing changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from probe.model import Certificate, HealthSample, HTTPObservation, Measurement, Verdict

__all__ = [
    "CLIENT_ADDRESS_KEY",
    "PLACEHOLDER",
    "Scrubber",
    "local_addresses",
]

PLACEHOLDER = "[scrubbed]"
#: The control helper's answer field holding the address it saw the probe's request from.
CLIENT_ADDRESS_KEY = "client_address"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")

# An IPv6-looking token (hex groups and colons, maybe ``%3A`` for a colon, maybe an embedded
# IPv4 and a zone); every candidate is parsed before it is compared.
_IPV6_CANDIDATE = re.compile(
    r"(?<![0-9A-Za-z:])"
    r"(?:[0-9A-Fa-f]{0,4}(?::|%3[Aa])){2,7}"
    r"(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?"
    r"(?:%25[0-9A-Za-z._-]+|%[0-9A-Za-z._-]+)?"
    r"(?![0-9A-Za-z])"
)


def _parse(text: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _normalise(address: str) -> _IPAddress | None:
    """An address as the one form it is compared in (IPv4-mapped IPv6 → IPv4); None = bad."""
    ip = _parse(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Scrubber:
    """Replaces the volunteer's own addresses with :data:`PLACEHOLDER` in text, bytes and
    records. ``addresses``: the addresses to scrub (bad ones are ignored); more can be added
    with :meth:`add` (the control helper's view of the public address)."""

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self._ips: set[_IPAddress] = set()
        self._text: re.Pattern[str] | None = None
        # The literal prefilter (:func:`_must_hold`): per address, alternatives of clauses
        # that all hold in any spelling of it, a clause being substrings one of which occurs;
        # () = no filter for that address.
        self._needles: tuple[tuple[tuple[str, ...], ...], ...] = ()
        self._fold = False  # whether a needle holds a letter (then search the lower-cased text)
        self._mapped: re.Pattern[str] | None = None  # IPv4-mapped hex spellings (lower case)
        for address in addresses:
            self.add(address)

    @classmethod
    def for_this_host(cls, extra: Iterable[str] = ()) -> Scrubber:
        """A scrubber for every local interface address plus ``extra``."""
        return cls([*local_addresses(), *extra])

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(str(ip) for ip in self._ips)

    def add(self, address: Any) -> bool:
        """Scrub ``address`` from now on; True if it is a new, valid address."""
        if not isinstance(address, str):
            return False
        ip = _normalise(address)
        if ip is None or ip.is_unspecified or ip in self._ips:
            return False
        self._ips.add(ip)
        self._text = _literal_pattern(self._ips)
        self._needles = _must_hold(self._ips)
        self._mapped = _mapped_pattern(self._ips)
        self._fold = self._mapped is not None or any(
            c.isalpha() for alt in self._needles for clause in alt for n in clause for c in n)
        return True

    def might_hold(self, text: str) -> bool:
        """Whether ``text`` may hold one of the addresses in any spelling :meth:`scrub_text`
        replaces (False = certainly none: a few substring searches, no regular expression).
        Imported and measured text almost never holds the volunteer's address, so this check
        decides almost every write on its own."""
        if self._text is None or not text:
            return False
        if self._fold:
            text = text.lower()
        return any(all(any(n in text for n in clause) for clause in alt)
                   for alt in self._needles) or (
            self._mapped is not None and self._mapped.search(text) is not None)

    # --- text and bytes ------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """``text`` with every form of every address replaced."""
        if not self.might_hold(text):
            return text
        assert self._text is not None
        text = self._text.sub(PLACEHOLDER, text)
        if (":" in text or "%3" in text) and any(ip.version == 6 for ip in self._ips):
            text = _IPV6_CANDIDATE.sub(self._ipv6_match, text)
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` with every textual form of every address replaced (bytes kept as bytes)."""
        if self._text is None or not data:
            return data
        scrubbed = self.scrub_text(data.decode("latin-1"))
        return scrubbed.encode("latin-1", errors="replace")

    def _ipv6_match(self, m: re.Match[str]) -> str:
        token = m.group(0)
        ip = _normalise(token.replace("%3A", ":").replace("%3a", ":"))
        return PLACEHOLDER if ip is not None and ip in self._ips else token

    def _in_der(self, der: bytes) -> bool:
        return any(ip.packed in der for ip in self._ips) or self.scrub_bytes(der) != der

    # --- records -------------------------------------------------------------------------

    def value(self, value: T) -> T:
        """Any value with the addresses scrubbed: str, bytes, tuples, lists, dicts (keys too)
        and frozen records, recursively; numbers, booleans, enums and None as they are."""
        if self._text is None:
            return value
        return self._any(value)  # type: ignore[no-any-return]

    def _any(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | enum.Enum):
            return value
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, bytes):
            return self.scrub_bytes(value)
        if isinstance(value, tuple):
            items = tuple(self._any(v) for v in value)
            return value if items == value else items
        if isinstance(value, list):
            return [self._any(v) for v in value]
        if isinstance(value, dict):
            return {self._any(k): self._any(v) for k, v in value.items()}
        if isinstance(value, Certificate):
            return self._certificate(value)
        if isinstance(value, HTTPObservation):
            return self._http(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._record(value)
        return value

    def _record(self, record: Any, skip: tuple[str, ...] = ()) -> Any:
        changes = {}
        for f in dataclasses.fields(record):
            if f.name in skip:
                continue
            old = getattr(record, f.name)
            new = self._any(old)
            if new is not old and new != old:
                changes[f.name] = new
        return dataclasses.replace(record, **changes) if changes else record

    def _certificate(self, cert: Certificate) -> Certificate:
        scrubbed: Certificate = self._record(cert, skip=("der",))
        if cert.der and self._in_der(cert.der):
            scrubbed = dataclasses.replace(scrubbed, der=b"")
        return scrubbed

    def _http(self, http: HTTPObservation) -> HTTPObservation:
        scrubbed: HTTPObservation = self._record(http)
        if scrubbed.body is not None and scrubbed.body != http.body:
            scrubbed = dataclasses.replace(
                scrubbed, body_sha256=hashlib.sha256(scrubbed.body).hexdigest()
            )
        return scrubbed

    def measurement(self, m: Measurement) -> Measurement:
        """``m`` ready for storage: learn the public address from each control answer's
        ``client_address`` (then drop that field), and scrub every address everywhere."""
        control = m.control
        if any(CLIENT_ADDRESS_KEY in answer for answer in control):
            for answer in control:
                self.add(answer.get(CLIENT_ADDRESS_KEY))
            control = tuple(
                {k: v for k, v in answer.items() if k != CLIENT_ADDRESS_KEY}
                for answer in control
            )
            m = dataclasses.replace(m, control=control)
        return self.value(m)

    def verdict(self, v: Verdict) -> Verdict:
        """``v`` with the addresses scrubbed from its evidence and details."""
        return self.value(v)

    def health(self, samples: Iterable[HealthSample]) -> list[HealthSample]:
        """Health samples with the addresses scrubbed (targets, failure strings)."""
        return [self.value(s) for s in samples]

    def rows(self, rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """Database rows (column → value) with the addresses scrubbed from text and bytes.

        A batch that holds none of them (the usual case) is checked in one pass over all its
        text (:meth:`might_hold`) and returned as it is; otherwise each row is scrubbed as a
        plain value.
        """
        if self._text is None or not rows:
            return rows
        texts = [v.decode("latin-1") if isinstance(v, bytes) else v
                 for r in rows for v in r.values() if isinstance(v, str | bytes)]
        if not self.might_hold("\x00".join(texts)):
            return rows
        # Some of the batch's text holds the needles: look row by row (the needles of one
        # address may come from different rows), scrub only the rows that may hold one.
        return [self.value(r) if self.might_hold("\x00".join(
            v.decode("latin-1") if isinstance(v, bytes) else v
            for v in r.values() if isinstance(v, str | bytes))) else r for r in rows]


def _must_hold(ips: set[_IPAddress]) -> tuple[tuple[tuple[str, ...], ...], ...]:
    """The literal prefilter of :meth:`Scrubber.might_hold`: for each address, alternatives
    of clauses that all hold in every spelling :meth:`Scrubber.scrub_text` replaces, a clause
    being lower-case substrings one of which occurs (a necessary condition, never a
    sufficient one).

    * IPv4: its dotted or dashed form; when IPv6 addresses are scrubbed too, the IPv6 pass
      also replaces IPv4-mapped spellings (``::ffff:c000:207``): :func:`_mapped_pattern`.
    * IPv6: every spelling that parses to it (compressed or not, leading zeros, upper case,
      ``%3A``, a zone, the last 32 bits as dotted IPv4) writes each of its first six groups
      in hex followed by a separator (``:`` or ``%3A``), so each non-zero one of them,
      without leading zeros and followed by a separator, is a substring (the separator
      matters: bare 4-digit hex occurs by chance in every chunk of hashes and ids); an
      address whose first six groups are zero gets no filter (``()``: always checked).
    """
    alts: list[tuple[tuple[str, ...], ...]] = []
    for ip in ips:
        if ip.version == 4:
            alts += [((str(ip),),), ((str(ip).replace(".", "-"),),)]
        else:
            alts.append(_hex_groups(ip.exploded.split(":")[:6]))
    return tuple(dict.fromkeys(alts))


def _mapped_pattern(ips: set[_IPAddress]) -> re.Pattern[str] | None:
    """The prefilter for the IPv4-mapped hex spellings of the IPv4 addresses (the IPv6 pass
    replaces them when IPv6 addresses are scrubbed too): ``ffff``, a separator (``:`` or
    ``%3a``; two when a zero group is compressed), the high 16 bits in hex with any leading
    zeros, a separator, the low 16 bits — searched in lower-cased text (literal prefix
    ``ffff``: fast). None when there is nothing to look for."""
    if not any(ip.version == 6 for ip in ips):
        return None
    sep = "(?::|%3a)"
    forms = []
    for ip in ips:
        if ip.version == 4:
            hi, lo = (f"{int.from_bytes(ip.packed[i:i + 2], 'big'):x}" for i in (0, 2))
            forms.append(f"{sep}{{1,2}}0*{'' if hi == '0' else hi}"
                         f"{sep}{{1,2}}0*{'' if lo == '0' else lo}")
    return re.compile(f"ffff(?:{'|'.join(forms)})") if forms else None


def _hex_groups(groups: list[str]) -> tuple[tuple[str, ...], ...]:
    """A clause per distinct non-zero group of ``groups``: it, without its leading zeros,
    followed by a separator."""
    return tuple((f"{g}:", f"{g}%3a") for g in sorted({g.lstrip("0") for g in groups
                                                          if g.strip("0")}))


def _literal_pattern(ips: set[_IPAddress]) -> re.Pattern[str]:
    """One regex for the fixed textual forms of every address, case-insensitive."""
    v4: set[str] = set()
    v6: set[str] = set()
    for ip in ips:
        if ip.version == 4:
            dotted = str(ip)
            v4.update((re.escape(dotted), re.escape(dotted.replace(".", "-"))))
        else:
            assert isinstance(ip, ipaddress.IPv6Address)
            for text in (ip.compressed, ip.exploded,
                         ":".join(f"{int(g, 16):x}" for g in ip.exploded.split(":"))):
                v6.update((re.escape(text), re.escape(text.replace(":", "%3A"))))
    parts = []
    if v4:  # not inside a longer number: 10.0.0.1 must not match 10.0.0.12
        parts.append(rf"(?<![0-9])(?:{'|'.join(sorted(v4, key=len, reverse=True))})(?![0-9])")
    if v6:  # not inside a longer hex run
        parts.append(rf"(?<![0-9A-Fa-f:])(?:{'|'.join(sorted(v6, key=len, reverse=True))})"
                     r"(?![0-9A-Fa-f])")
    return re.compile("|".join(parts), re.IGNORECASE)


# --- finding the machine's own addresses -----------------------------------------------------


def _own(ip: _IPAddress | None) -> bool:
    """Whether an interface address identifies the volunteer (not loopback / unspecified /
    multicast)."""
    return ip is not None and not (ip.is_loopback or ip.is_unspecified or ip.is_multicast)


def _fib_trie(text: str) -> set[str]:
    """IPv4 addresses of the machine's interfaces from ``/proc/net/fib_trie``: each address
    line followed by a ``/32 host LOCAL`` line."""
    found: set[str] = set()
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("/32 host LOCAL") and previous.startswith("|-- "):
            found.add(previous[4:].strip())
        previous = stripped
    return found


def _if_inet6(text: str) -> set[str]:
    """IPv6 addresses of the machine's interfaces from ``/proc/net/if_inet6``."""
    found: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            with contextlib.suppress(ValueError):
                found.add(str(ipaddress.IPv6Address(int(fields[0], 16))))
    return found


def local_addresses() -> set[str]:
    """Every address of this machine's interfaces that could identify it (loopback excepted).

    Read from ``/proc/net/fib_trie`` and ``/proc/net/if_inet6`` (Linux), plus what the host
    name resolves to; never raises (an unreadable source adds nothing).
    """
    found: set[str] = set()
    for path, parse in (("/proc/net/fib_trie", _fib_trie), ("/proc/net/if_inet6", _if_inet6)):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            with open(path, encoding="ascii") as f:
                found |= parse(f.read())
    with contextlib.suppress(OSError, UnicodeError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    return {str(ip) for ip in map(_normalise, found) if ip is not None and _own(ip)}
