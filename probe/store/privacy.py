"""The volunteer's own addresses never reach storage: find them and scrub them from records.

Everything that decides which addresses identify the volunteer and how they are removed lives
here. Rules for this module:

* The addresses to scrub are the volunteer's own: every address of the machine's interfaces
  (:func:`local_addresses`, loopback excepted) and the public address a control helper saw the
  request come from (the ``client_address`` field of its answer, learnt by
  :meth:`Scrubber.measurement`, kept in memory only and removed from the stored answer).
  Addresses of the measured sites are kept — unless one *is* the volunteer's address.
* Every spelling is replaced by :data:`PLACEHOLDER` (issue 13): dotted, dashed and
  underscored IPv4, in order or reversed (``4.3.2.1.in-addr.arpa``, ``1-2-3-4.dyn.isp``,
  labels of host names), zero-padded (``001.002.003.004``) or hexadecimal numbers, dots
  percent-encoded (once or twice), HTML character references (``&#46;``, ``&period;``),
  fullwidth digits and full stops, one decimal integer (``16909060``, on token boundaries:
  never inside a longer number) or hex (``0x01020304``, ``01020304``, both byte orders), the
  ip6.arpa nibbles; base64 of the address at each of its three alignments in the encoded
  data (cookies, bodies; both alphabets); IPv6 in any spelling (compressed, expanded, upper
  case, with a zone, with ``%3A`` for ``:``, dashed, 32 bare digits, ip6.arpa) and every IPv6
  form that carries the IPv4 address (IPv4-mapped or -compatible, NAT64, 6to4, ISATAP,
  Teredo) — in text, URLs, header names and values, bodies (bytes), titles, certificates'
  text fields, failure strings, control answers, the ``extra`` dicts, verdict evidence and
  health samples. The machine's private and link-local interface addresses are looked for
  in their usual forms only (:meth:`Scrubber.add`).
* Bodies are read as UTF-8 and, when they hold NUL bytes, as UTF-16/32 (either byte order,
  BOM or not), and in the charset the response declares (Shift_JIS, EBCDIC …); each reading
  is written back in its encoding. A body is first decoded through every content-coding
  still applied to it (``gzip, gzip``, ``deflate``, ``br`` when the brotli library is there:
  :func:`decode_body`), bounded by :data:`DECODE_CAP`; what is stored is the decoded body.
  A body that cannot be decoded (or scrubbed in its charset) is not stored, and why is
  recorded in the measurement's ``extra["privacy"]``.
* Cheap when there is nothing to find (the OONI importer calls :meth:`Scrubber.rows` for
  every chunk): :meth:`Scrubber.might_hold` decides with substring searches and a few
  regexes that start with a literal; the full patterns run only on a hit.
* A certificate whose DER holds the address (as text or as an IP SAN) keeps its hashes and text
  fields but loses its DER (a certificate naming the volunteer is of no analytic interest).
  A scrubbed body gets a new ``body_sha256`` (of what is stored); ``body_length`` stays the
  length received.
* Records are frozen: scrubbing returns new records (``dataclasses.replace``) and returns the
  very same object when nothing changed.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import dataclasses
import enum
import hashlib
import ipaddress
import re
import socket
import zlib
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

# --- the spellings of an address ------------------------------------------------------------

#: A decimal digit, ASCII or fullwidth (U+FF10–U+FF19).
_DIGIT = "[0-9\uff10-\uff19]"
#: What may stand between an IPv4 address's four numbers: a dot (fullwidth, ideographic,
#: backslash-escaped, percent-encoded once or twice, an HTML character reference), a dash or
#: an underscore (reverse-DNS and ISP host names: ``1-2-3-4.dyn.isp.example``).
_SEP = r"(?:[._\-\uff0e\u3002\uff0d]|\\\.|%(?:25)?2e|&#0*46;?|&#x0*2e;?|&period;)"
#: A colon in an IPv6 spelling: plain, percent-encoded once or twice.
_V6SEP = r"(?::|%(?:25)?3a)"

# An IPv6-looking token (hex groups and colons, maybe ``%3A`` for a colon, maybe an embedded
# IPv4 and a zone); every candidate is parsed before it is compared.
_IPV6_CANDIDATE = re.compile(
    r"(?<![0-9A-Za-z:])"
    r"(?:[0-9A-Fa-f]{0,4}(?::|%(?:25)?3[Aa])){2,7}"
    r"(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?"
    r"(?:%25[0-9A-Za-z._-]+|%[0-9A-Za-z._-]+)?"
    r"(?![0-9A-Za-z])"
)
_ENCODED_COLON = re.compile(r"%(?:25)?3a", re.IGNORECASE)


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


def _digits(number: int) -> str:
    """A regex for ``number`` in decimal, each digit ASCII or fullwidth."""
    return "".join(f"[{c}{chr(0xFF10 + int(c))}]" for c in str(number))


def _octet(n: int) -> str:
    """One IPv4 number: decimal with any zero padding, or hexadecimal (``0x7f``)."""
    return rf"(?:[0\uff10]*{_digits(n)}|0x0*{n:x})"


def _v4_forms(ip: ipaddress.IPv4Address, every: bool = True) -> list[str]:
    """Regexes (case-insensitive) for the textual spellings of one IPv4 address (``every``
    False: dotted and dashed only)."""
    if not every:
        dotted = re.escape(str(ip))
        return [rf"(?<![0-9])(?:{dotted}|{dotted.replace(chr(92) + '.', '-')})(?![0-9])"]
    octets = list(ip.packed)
    big, little = ip.packed.hex(), ip.packed[::-1].hex()
    fwd = _SEP.join(_octet(o) for o in octets)
    rev = _SEP.join(_octet(o) for o in reversed(octets))
    edge = "[0-9\uff10-\uff19]"
    return [
        # dotted, dashed, zero-padded, fullwidth, encoded dots; reversed (in-addr.arpa)
        rf"(?<!{edge})(?:{fwd}|{rev})(?!{edge})",
        # one decimal integer (16909060), on token boundaries: never inside a longer number
        rf"(?<![\w.]){_digits(int(ip))}(?!\w|[.,]{_DIGIT})",
        # hexadecimal, big- or little-endian, with 0x (any padding) or as 8 bare digits
        rf"(?<!\w)0x0*(?:{int(big, 16):x}|{int(little, 16):x})(?![0-9a-f])",
        rf"(?<![0-9a-z])(?:{big}|{little})(?![0-9a-z])",
        # the nibbles of an ip6.arpa name holding it (IPv4-mapped, 6to4, NAT64 …)
        r"\.".join(big[::-1]),
    ]


def _v6_forms(ip: ipaddress.IPv6Address, every: bool = True) -> list[str]:
    """Regexes (case-insensitive) for the fixed textual spellings of one IPv6 address
    (``every`` False: with colons, plain or percent-encoded, only)."""
    groups = ip.exploded.split(":")
    texts = {ip.compressed, ip.exploded, ":".join(f"{int(g, 16):x}" for g in groups)}
    separators = (":", "%3A", "%253A", "-") if every else (":", "%3A")
    spelled = {t.replace(":", sep) for t in texts for sep in separators}
    literal = "|".join(re.escape(t) for t in sorted(spelled, key=len, reverse=True))
    flat = "".join(groups)
    exact = rf"(?<![0-9A-Fa-f:])(?:{literal})(?![0-9A-Fa-f])"  # not inside a longer hex run
    if not every:
        return [exact]
    return [
        exact,
        rf"(?<![0-9a-z]){flat}(?![0-9a-z])",  # 32 bare hex digits
        r"\.".join(flat[::-1]),  # the ip6.arpa nibbles
    ]


def _base64_needles(text: str) -> set[str]:
    """What base64 of any data holding ``text`` certainly contains, at each of the three
    alignments ``text`` can have in the encoded data (standard and URL-safe alphabets):
    the characters whose six bits all come from ``text``."""
    raw = text.encode("ascii")
    found: set[str] = set()
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw).decode("ascii")
        first, last = -(-8 * k // 6), 8 * (k + len(raw)) // 6
        needle = encoded[first:last]
        if len(needle) >= 6:
            found |= {needle, needle.replace("+", "-").replace("/", "_")}
    return found


def _literal_gate(text: str) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    """How the gate looks for a literal that may hold hex letters in any case: the literal
    itself (no letters); its longest run without letters, confirmed by a case-insensitive
    pattern (a run long enough to be rare); or, when that run is short, the literal in lower
    and in upper case (mixed case is then not looked for by the gate)."""
    run = _caseless(text)
    if run == text:
        return (text,), None
    if len(run) >= 6:
        return (run,), re.compile(re.escape(text), re.IGNORECASE)
    return (text.lower(), text.upper()), None


def _caseless(text: str) -> str:
    """The longest run of ``text`` without letters: a substring of every spelling of
    ``text`` in any letter case (hex), searched without lower-casing the haystack."""
    runs = re.split("[a-zA-Z]+", text)
    return max(runs, key=len)


def _pair_gates(ip: ipaddress.IPv4Address) -> tuple[re.Pattern[str], ...]:
    """The gate of the separated spellings of an IPv4 address (in text with fullwidth
    characters folded to ASCII): every one of them writes each two neighbouring numbers next
    to each other around a separator, in that order or reversed, each in decimal (any zero
    padding) or hexadecimal. One pattern per order that starts with the first number in
    decimal (a literal, which the regex engine scans for quickly), and one per order that
    starts with ``0x`` (run only when the text holds ``0x``)."""
    o = ip.packed
    # any two neighbours will do: the pair whose shorter number is longest is the rarest
    a, b = max(((o[i], o[i + 1]) for i in range(3)),
               key=lambda pair: min(len(str(pair[0])), len(str(pair[1]))))
    gates = []
    for first, second in ((a, b), (b, a)):
        after = rf"(?i:{_SEP}(?:0*{second}|0x0*{second:x}))(?![0-9])"
        gates.append(re.compile(f"{first}{after}"))
    for first, second in ((a, b), (b, a)):
        after = rf"(?i:{_SEP}(?:0*{second}|0x0*{second:x}))(?![0-9])"
        gates.append(re.compile(rf"0(?i:x)0*(?i:{first:x}){after}"))
    return tuple(gates)


def _carried_halves(v4s: list[ipaddress.IPv4Address]
                    ) -> tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] | None:
    """The gate of the IPv6 pass for IPv4 addresses: an IPv6 spelling that carries one
    (IPv4-mapped or -compatible, NAT64, 6to4, ISATAP) writes its two 16-bit halves in hex,
    the high one followed by one or two separators (Teredo, which obfuscates it, is gated by
    its prefix ``2001:0::/32``). Per address: literals one of which occurs (a half without
    letters, else the halves in lower and upper case) and the pattern that confirms it; None
    = a zero half makes that unreliable (then any colon opens the pass)."""
    halves = []
    for ip in v4s:
        value = int(ip)
        hi, lo = f"{value >> 16:x}", f"{value & 0xFFFF:x}"
        if not int(hi, 16) or not int(lo, 16):
            return None
        literal = next((h for h in (hi, lo) if h.isdigit()), None)
        literals = (literal,) if literal else (hi, hi.upper())
        halves.append((literals, re.compile(
            rf"(?i:{hi}{_V6SEP}{{1,2}}0*{lo})(?![0-9a-fA-F])")))
    return tuple(halves)


_V6_SEPARATORS = (":", "%3a", "%253a")
_HEX_PREFIX = re.compile("0[xX]")
#: Teredo (RFC 4380): 2001:0::/32, whatever the spelling of its zero group.
_TEREDO = re.compile(r"2001(?::|%(?:25)?3[aA])(?:0{1,4}(?::|%(?:25)?3[aA])|(?::|%(?:25)?3[aA]))")
#: Fullwidth digits, full stop and hyphen, and the ideographic full stop, folded to ASCII
#: for the gates (the full patterns match them as they are).
_FOLD = {**{0xFF10 + d: str(d) for d in range(10)}, 0xFF0E: ".", 0x3002: ".", 0xFF0D: "-"}
_FOLDED = re.compile("[\uff10-\uff19\uff0e\u3002\uff0d]")


def _v6_gate(ips: list[ipaddress.IPv6Address]) -> tuple[tuple[re.Pattern[str], ...], ...]:
    """The gate of the IPv6 spellings of IPv6 addresses: per address, patterns that all
    match in every spelling with separators it has. Each of its first six groups is written
    in hex followed by a separator (``:``, ``%3a``, ``%253a`` or ``-``), so each non-zero
    group without its leading zeros, followed by ``:``, ``%`` or ``-``, occurs; groups
    without letters come first (a literal prefix: a fast scan), the most selective first. An
    address whose first six groups are zero gets no pattern (``()``: always open). The
    spellings without separators (32 bare digits, ip6.arpa nibbles) are literals of their
    own (:meth:`Scrubber.add`)."""
    alts = []
    for ip in ips:
        wanted = {g.lstrip("0") for g in ip.exploded.split(":")[:6] if g.strip("0")}
        ordered = sorted(wanted, key=lambda g: (not g.isdigit(), -len(g), g))
        alts.append(tuple(re.compile(f"{g}(?::|%|-)") if g.isdigit()
                          else re.compile(f"(?i:{g})(?::|%|-)") for g in ordered))
    return tuple(dict.fromkeys(alts))


class Scrubber:
    """Replaces the volunteer's own addresses with :data:`PLACEHOLDER` in text, bytes and
    records. ``addresses``: the addresses to scrub (bad ones are ignored); more can be added
    with :meth:`add` (the control helper's view of the public address).

    Built once per address (:meth:`add`): one compiled case-insensitive regex of every fixed
    spelling, and the gates (:meth:`might_hold`) that decide cheaply, with substring searches
    and a few regexes that start with a literal, whether that regex must run at all.
    """

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self._ips: set[_IPAddress] = set()
        self._full: set[_IPAddress] = set()  # looked for in every spelling
        self._v4: frozenset[ipaddress.IPv4Address] = frozenset()
        self._v6: frozenset[ipaddress.IPv6Address] = frozenset()
        self._text: re.Pattern[str] | None = None  # every fixed spelling
        self._b64: tuple[str, ...] = ()  # base64 needles (case matters)
        # the gates: literals in ASCII-folded text / its lower case, pair patterns
        # literals: what to search for, and a confirming pattern (hex in any letter case)
        self._literals: tuple[tuple[tuple[str, ...], re.Pattern[str] | None], ...] = ()
        self._pairs: tuple[re.Pattern[str], ...] = ()  # decimal first
        self._hex_pairs: tuple[re.Pattern[str], ...] = ()  # 0x first
        self._halves: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] | None = ()
        self._v6_needles: tuple[tuple[re.Pattern[str], ...], ...] = ()
        self._dropped: list[dict[str, Any]] | None = None  # bodies dropped by measurement()
        for address in addresses:
            self.add(address)

    @classmethod
    def for_this_host(cls, extra: Iterable[str] = ()) -> Scrubber:
        """A scrubber for every local interface address plus ``extra`` (the private and
        link-local ones in their usual forms only: :meth:`add`)."""
        scrubber = cls(extra)
        for address in sorted(local_addresses()):
            scrubber.add(address, every_spelling=ipaddress.ip_address(address).is_global)
        return scrubber

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(str(ip) for ip in self._ips)

    def add(self, address: Any, *, every_spelling: bool = True) -> bool:
        """Scrub ``address`` from now on; True if it is a new, valid address.

        ``every_spelling``: look for every spelling of it (the public address, and any
        address given); False = only its usual forms (dotted or dashed IPv4, IPv6 text), for
        the machine's private and link-local interface addresses, which identify nobody
        outside the volunteer's own network and would only slow every write down.
        """
        if not isinstance(address, str):
            return False
        ip = _normalise(address)
        if ip is None or ip.is_unspecified or (ip in self._ips and (
                not every_spelling or ip in self._full)):
            return False
        self._ips.add(ip)
        if every_spelling:
            self._full.add(ip)
        self._rebuild()
        return True

    def _rebuild(self) -> None:
        v4 = sorted(i for i in self._ips if isinstance(i, ipaddress.IPv4Address))
        v6 = sorted(i for i in self._ips if isinstance(i, ipaddress.IPv6Address))
        self._v4, self._v6 = frozenset(v4), frozenset(v6)
        full4 = [i for i in v4 if i in self._full]
        full6 = [i for i in v6 if i in self._full]
        forms = ([f for i in v4 for f in _v4_forms(i, i in self._full)]
                 + [f for i in v6 for f in _v6_forms(i, i in self._full)])
        self._text = re.compile("|".join(f"(?:{f})" for f in forms), re.IGNORECASE)
        self._b64 = tuple(sorted({n for i in self._full for n in _base64_needles(str(i))},
                                 key=len, reverse=True))
        literals = (
            [t for i in v4 if i not in self._full for t in (str(i), str(i).replace(".", "-"))]
            + [str(int(i)) for i in full4]
            + [t for i in full4 for t in (f"{int(i):x}", f"{int.from_bytes(i.packed[::-1]):x}",
                                          ".".join(i.packed.hex()[::-1]))]
            + [t for i in full6 for t in ("".join(i.exploded.split(":")),
                                          ".".join(i.exploded.replace(":", "")[::-1]))])
        self._literals = tuple(_literal_gate(t) for t in dict.fromkeys(literals))
        gates = [_pair_gates(i) for i in full4]
        self._pairs = tuple(p for g in gates for p in g[:2])
        self._hex_pairs = tuple(p for g in gates for p in g[2:])
        self._halves = _carried_halves(full4)
        self._v6_needles = _v6_gate(v6)

    def might_hold(self, text: str) -> bool:
        """Whether ``text`` may hold one of the addresses in a spelling :meth:`scrub_text`
        replaces (False = certainly none). Imported and measured text almost never holds the
        volunteer's address, so this check decides almost every write on its own: substring
        searches and a few regexes starting with a literal, all in C."""
        if self._text is None or not text:
            return False
        if any(n in text for n in self._b64):
            return True
        folded = text
        if not text.isascii() and _FOLDED.search(text):
            folded = text.translate(_FOLD)
        for runs, whole in self._literals:
            if any(r in folded for r in runs) and (whole is None or whole.search(folded)):
                return True
        if any(p.search(folded) for p in self._pairs):
            return True
        if self._hex_pairs and _HEX_PREFIX.search(folded) and any(
                p.search(folded) for p in self._hex_pairs):
            return True
        if self._v6_needles and self._v6_clauses_hold(folded):
            return True
        return self._v4_in_v6(folded)

    def _v6_clauses_hold(self, text: str) -> bool:
        """Whether every pattern of the IPv6 gate of some IPv6 address matches ``text``."""
        return any(all(p.search(text) for p in alt) for alt in self._v6_needles)

    def _ipv6_pass_open(self, text: str) -> bool:
        """Whether the IPv6 pass (parse every IPv6-looking token) may replace something in
        ``text``: an IPv6 address's gate, or an IPv4 address's halves."""
        return bool(self._v6_needles) and self._v6_clauses_hold(text) or self._v4_in_v6(text)

    def _v4_in_v6(self, text: str) -> bool:
        """Whether ``text`` may hold an IPv6 spelling that carries an IPv4 address."""
        if not self._v4 or (":" not in text and "%" not in text):
            return False
        if self._halves is None or _TEREDO.search(text):
            return True
        return any(any(n in text for n in literals) and p.search(text)
                   for literals, p in self._halves)

    # --- text and bytes ------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """``text`` with every spelling of every address replaced."""
        if not self.might_hold(text):
            return text
        assert self._text is not None
        text = self._text.sub(PLACEHOLDER, text)
        for needle in self._b64:
            text = text.replace(needle, PLACEHOLDER)
        if self._ipv6_pass_open(text):
            text = _IPV6_CANDIDATE.sub(self._ipv6_match, text)
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` with every spelling of every address replaced, bytes kept as bytes.

        Read as UTF-8 (bytes that are not, kept as they are: ASCII-compatible charsets and
        binary alike) and, when it holds NUL bytes, also as UTF-16 (both byte orders, both
        alignments, BOM or not) and UTF-32: each reading that holds an address is scrubbed
        and written back in the same encoding.
        """
        if self._text is None or not data:
            return data
        text = data.decode("utf-8", "surrogateescape")
        if self.might_hold(text):
            data = self.scrub_text(text).encode("utf-8", "surrogateescape")
        if b"\x00" in data:
            data = self._scrub_wide(data)
        return data

    def _scrub_wide(self, data: bytes) -> bytes:
        for codec, width, offsets in (("utf-16-le", 2, (0, 1)), ("utf-16-be", 2, (0, 1)),
                                      ("utf-32-le", 4, (0,)), ("utf-32-be", 4, (0,))):
            for offset in offsets:
                part = data[offset:]
                whole = len(part) - len(part) % width
                try:
                    text = part[:whole].decode(codec, "surrogatepass")
                except UnicodeDecodeError:
                    continue
                if self.might_hold(text):
                    scrubbed = self.scrub_text(text).encode(codec, "surrogatepass")
                    data = data[:offset] + scrubbed + part[whole:]
        return data

    def scrub_charset(self, data: bytes, charset: str | None) -> bytes | None:
        """``data`` scrubbed as :meth:`scrub_bytes` does and, when ``charset`` names another
        text encoding (Shift_JIS, EBCDIC, UTF-7 …), also as text in that encoding. None = it
        holds an address that cannot be written back in that encoding (drop the body)."""
        data = self.scrub_bytes(data)
        codec = _codec(charset)
        if codec is None or self._text is None:
            return data
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError, ValueError):
            return data
        if not self.might_hold(text):
            return data
        try:
            return self.scrub_text(text).encode(codec)
        except (UnicodeEncodeError, LookupError, ValueError):
            return None

    def _ipv6_match(self, m: re.Match[str]) -> str:
        token = m.group(0)
        ip = _parse(_ENCODED_COLON.sub(":", token))
        if ip is None:
            return token
        if ip in self._ips:
            return PLACEHOLDER
        if isinstance(ip, ipaddress.IPv6Address) and self._v4:
            carried = {ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), ip.sixtofour}
            if ip.teredo is not None:
                carried.add(ip.teredo[1])
            if carried & self._v4:
                return PLACEHOLDER
        return token

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
        decoded, why = decode_body(http)
        if why is not None:  # a body we cannot read could hide the address: not stored
            if self._dropped is not None:
                self._dropped.append({"tx_id": http.tx_id,
                                      "redirect_index": http.redirect_index, "reason": why})
            decoded = dataclasses.replace(http, body=None)
        scrubbed: HTTPObservation = self._record(decoded, skip=("body",))
        body = decoded.body
        if body is not None:
            body = self.scrub_charset(body, _declared_charset(decoded.headers, body))
            if body is None:
                if self._dropped is not None:
                    self._dropped.append({"tx_id": http.tx_id,
                                          "redirect_index": http.redirect_index,
                                          "reason": "body_dropped: the address cannot be "
                                                    "removed in its charset"})
            if body != decoded.body:
                scrubbed = dataclasses.replace(scrubbed, body=body)
        if scrubbed.body is not None and scrubbed.body != http.body:
            scrubbed = dataclasses.replace(
                scrubbed, body_sha256=hashlib.sha256(scrubbed.body).hexdigest())
        return scrubbed

    def measurement(self, m: Measurement) -> Measurement:
        """``m`` ready for storage: learn the public address from each control answer's
        ``client_address`` (then drop that field), decode every body's content-encoding chain,
        and scrub every address everywhere. A body that cannot be decoded (or cannot be
        scrubbed in its charset) is not stored; why is in ``extra["privacy"]``."""
        control = m.control
        if any(CLIENT_ADDRESS_KEY in answer for answer in control):
            for answer in control:
                self.add(answer.get(CLIENT_ADDRESS_KEY))
            control = tuple(
                {k: v for k, v in answer.items() if k != CLIENT_ADDRESS_KEY}
                for answer in control
            )
            m = dataclasses.replace(m, control=control)
        self._dropped = []
        try:
            out = self.value(m)
            if self._text is None:  # nothing to scrub, but bodies are decoded all the same
                out = dataclasses.replace(m, http=tuple(self._http(h) for h in m.http)) \
                    if any(_content_codings(h.headers) for h in m.http) else m
            dropped = self._dropped
        finally:
            self._dropped = None
        if dropped:
            out = dataclasses.replace(out, extra={**out.extra, "privacy": dropped})
        return out

    def verdict(self, v: Verdict) -> Verdict:
        """``v`` with the addresses scrubbed from its evidence and details."""
        return self.value(v)

    def health(self, samples: Iterable[HealthSample]) -> list[HealthSample]:
        """Health samples with the addresses scrubbed (targets, failure strings)."""
        return [self.value(s) for s in samples]

    def rows(self, rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """Database rows (column → value) with the addresses scrubbed from text and bytes.

        A batch that holds none of them (the usual case) is checked with one search per
        pattern over all its text (:meth:`might_hold`; bytes read as UTF-8, and as UTF-16/32
        when they hold NUL bytes) and returned as it is; otherwise the rows that may hold one
        are scrubbed as plain values.
        """
        if self._text is None or not rows:
            return rows
        if not self._row_may_hold([v for r in rows for v in r.values()]):
            return rows
        return [self.value(r) if self._row_may_hold(list(r.values())) else r for r in rows]

    def _row_may_hold(self, values: list[Any]) -> bool:
        texts: list[str] = []
        for v in values:
            if isinstance(v, str):
                texts.append(v)
            elif isinstance(v, bytes):
                texts.append(v.decode("utf-8", "surrogateescape"))
                if b"\x00" in v and self._scrub_wide(v) != v:
                    return True
        return self.might_hold("\x00".join(texts))


# --- bodies: content-encoding and charset ---------------------------------------------------

#: Most bytes a body grows to when its content-encoding is decoded here (more is truncated).
DECODE_CAP = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LZW_MAGIC = b"\x1f\x9d"
_CHARSET_HEADER = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_CHARSET_META = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)",
                           re.IGNORECASE)
#: Codecs :meth:`Scrubber.scrub_bytes` already reads (digits are ASCII bytes, or UTF-16/32).
_READ_ANYWAY = ("utf_8", "ascii", "latin_1", "iso8859", "cp125", "utf_16", "utf_32")


def _content_codings(headers: Sequence[tuple[str, str]]) -> list[str]:
    """The content-codings of a response, in the order they were applied (RFC 9110 §8.4)."""
    return [c.strip().lower() for k, v in headers if k.lower() == "content-encoding"
            for c in v.split(",") if c.strip() and c.strip().lower() != "identity"]


def _inflate(data: bytes, wbits: int) -> tuple[bytes, bool] | None:
    """``data`` inflated (several gzip members too), at most :data:`DECODE_CAP` bytes, and
    whether it was cut there; None = not a valid stream of that kind."""
    out = bytearray()
    rest = data
    try:
        while rest:
            z = zlib.decompressobj(wbits)
            out += z.decompress(rest, DECODE_CAP + 1 - len(out))
            if len(out) > DECODE_CAP or z.unconsumed_tail:
                return bytes(out[:DECODE_CAP]), True
            if not z.eof:  # cut short (a truncated body): what came out is kept
                return (bytes(out), True) if out else None
            rest = z.unused_data
            if wbits < 0 and rest:  # raw deflate has no checksum: bytes after its end say
                return None          # this was never a deflate stream
            if wbits != 31 or not rest.startswith(_GZIP_MAGIC):
                break  # trailing bytes after the stream are not part of the body
    except zlib.error:
        return None
    return bytes(out), False


def _brotli(data: bytes) -> tuple[bytes, bool] | None | str:
    """``data`` brotli-decoded (cut at :data:`DECODE_CAP`); None = not brotli; a string =
    cannot tell here (no brotli library)."""
    try:
        import brotli  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "content-encoding br cannot be decoded here (no brotli library)"
    try:
        out = brotli.decompress(data)
    except Exception:  # brotli.error: not a brotli stream
        return None
    return (out[:DECODE_CAP], True) if len(out) > DECODE_CAP else (out, False)


def decode_body(http: HTTPObservation) -> tuple[HTTPObservation, str | None]:
    """``http`` with its body decoded through every content-coding still applied to it, and
    None; or ``http`` and why its body cannot be read (then it must not be stored).

    The measuring step decodes a single ``gzip`` or ``deflate`` itself; what it could not
    (chains like ``gzip, gzip``, ``br``, unknown codings) arrives as received. Codings are
    undone from the last applied: ``gzip`` when the body starts with its magic, ``deflate``
    when it is a whole zlib or raw deflate stream, ``br`` when the brotli library is
    installed; a body that is not in the coding named is taken as already decoded (a server
    that mislabels plain text). A coding that cannot be undone here (``br`` without brotli,
    ``zstd``, ``compress``, unknown names) leaves the body unreadable.
    """
    codings = _content_codings(http.headers)
    if http.body is None or not codings:
        return http, None
    body, truncated, changed = http.body, http.body_truncated, False
    for coding in reversed(codings):
        result: tuple[bytes, bool] | None | str
        if coding in ("gzip", "x-gzip"):
            result = _inflate(body, 31) if body.startswith(_GZIP_MAGIC) else None
            if body.startswith(_GZIP_MAGIC) and result is None:
                result = f"content-encoding {coding}: corrupt stream"
        elif coding == "deflate":
            result = _inflate(body, 15) or _inflate(body, -15)
            # no magic number: a stream cut short is taken only from a body cut short too
            # (else it is the measuring step's decoded text that happened to inflate a bit)
            if result is not None and result[1] and len(result[0]) < DECODE_CAP and not (
                    truncated and result[0]):
                result = None
        elif coding == "br":
            result = _brotli(body)
        elif coding == "zstd" and not body.startswith(_ZSTD_MAGIC):
            result = None
        elif coding in ("compress", "x-compress") and not body.startswith(_LZW_MAGIC):
            result = None
        else:
            result = f"content-encoding {coding} cannot be decoded here"
        if result is None:
            break  # not (or no longer) in this coding: decoded already
        if isinstance(result, str):
            return http, f"body_dropped: {result}"
        body, cut = result
        truncated, changed = truncated or cut, True
    if not changed:
        return http, None
    return dataclasses.replace(http, body=body, body_length=len(body),
                               body_sha256=hashlib.sha256(body).hexdigest(),
                               body_truncated=truncated), None


def _declared_charset(headers: Sequence[tuple[str, str]], body: bytes) -> str | None:
    """The charset a response declares: its Content-Type header, else a ``<meta>`` near the
    start of the body; None = none."""
    for k, v in headers:
        if k.lower() == "content-type" and (m := _CHARSET_HEADER.search(v)):
            return m.group(1)
    m2 = _CHARSET_META.search(body[:4096])
    return m2.group(1).decode("ascii", "replace") if m2 else None


def _codec(charset: str | None) -> str | None:
    """A Python text codec for ``charset`` that :meth:`Scrubber.scrub_bytes` does not already
    read; None = none needed (or not a text encoding)."""
    if not charset:
        return None
    try:
        info = codecs.lookup(charset)
    except (LookupError, ValueError):
        return None
    name = info.name.replace("-", "_")
    if not getattr(info, "_is_text_encoding", True) or name.startswith(_READ_ANYWAY):
        return None
    return info.name



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
