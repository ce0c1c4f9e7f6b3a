"""Target lists: read, validate and normalise the URLs the probe measures, and its canaries.

Everything that decides what a target list may contain lives here: the Citizen Lab CSV
format, plain text lists, the canaries CSV, URL normalisation and the category codes. Rules:

* Every URL goes through :func:`parse_url`; nothing downstream sees an unnormalised URL.
* A bad row never stops reading: each one becomes a problem ``FILE:LINE: reason`` and the
  loaders raise one :class:`~probe.errors.TargetListError` holding them all.
* Reading never raises for bad bytes, a BOM or CRLF line ends: they are problems or ignored.
* No network IO: a URL given as a source is parsed, never fetched.
"""

from __future__ import annotations

import csv
import ipaddress
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Literal
from urllib.parse import quote, urlsplit

from probe.errors import InvalidValue, TargetListError
from probe.model import APP_TESTS, INPUT_SCHEMES, WEB_CONNECTIVITY, Target

try:  # a dependency of httpx; IDNA 2008 + UTS 46, unlike the stdlib's IDNA 2003 codec
    import idna as _idna
except ImportError:  # pragma: no cover
    _idna = None  # type: ignore[assignment]

__all__ = [
    "CANARY_HEADER",
    "CANARY_SCOPES",
    "CATEGORIES",
    "CSV_HEADER",
    "Canary",
    "iter_file",
    "iter_sources",
    "load_canaries",
    "load_file",
    "load_sources",
    "parse_endpoint",
    "parse_input",
    "parse_url",
    "validate_file",
]

#: Citizen Lab test-list category codes (github.com/citizenlab/test-lists) → short description.
CATEGORIES: dict[str, str] = {
    "ALDR": "Alcohol & Drugs",
    "REL": "Religion",
    "PORN": "Pornography",
    "PROV": "Provocative Attire",
    "POLR": "Political Criticism",
    "HUMR": "Human Rights Issues",
    "ENV": "Environment",
    "MILX": "Terrorism and Militants",
    "HATE": "Hate Speech",
    "NEWS": "News Media",
    "XED": "Sex Education",
    "PUBH": "Public Health",
    "GMB": "Gambling",
    "ANON": "Anonymization and circumvention tools",
    "DATE": "Online Dating",
    "GRP": "Social Networking",
    "LGBT": "LGBT",
    "FILE": "File-sharing",
    "HACK": "Hacking Tools",
    "COMT": "Communication Tools",
    "MMED": "Media sharing",
    "HOST": "Hosting and Blogging Platforms",
    "SRCH": "Search Engines",
    "GAME": "Gaming",
    "CULTR": "Culture",
    "ECON": "Economics",
    "GOVT": "Government",
    "COMM": "E-commerce",
    "CTRL": "Control content",
    "IGO": "Intergovernmental Organizations",
    "MISC": "Miscellaneous content",
}

CSV_HEADER = ("url", "category_code", "category_description", "date_added", "source", "notes")
CANARY_HEADER = ("target", "scope", "name", "notes")
#: Canary scopes, innermost first: the layers a probe checks to tell a shutdown from blocking.
CANARY_SCOPES = ("gateway", "resolver", "domestic", "international", "control", "portal")
_IP_SCOPES = ("gateway", "resolver")  # bare IP or "auto" (discovered at run time)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")
_PATH_SAFE = "/%:@!$&'()*+,;=~"  # RFC 3986 pchar + "/"; quote() keeps letters, digits, _.-~
_QUERY_SAFE = _PATH_SAFE + "?"
_COMMENT = re.compile(r"(?:^|\s)#")


@dataclass(frozen=True, slots=True)
class Canary:
    """One host the health check uses to tell a network shutdown from blocking.

    ``url_or_host`` is a normalised URL (``https://host/``) for ``domestic``, ``international``
    and ``control`` canaries; for ``gateway`` and ``resolver`` it is a bare IP address or
    ``auto`` (= the default gateway / system resolver, discovered at run time).
    ``scope`` is one of :data:`CANARY_SCOPES`; ``notes`` "" = none.
    """

    url_or_host: str
    scope: str
    name: str
    notes: str = ""

    def __post_init__(self) -> None:
        if self.scope not in CANARY_SCOPES:
            raise InvalidValue(f"unknown scope {self.scope!r}")


def parse_url(text: str, category: str | None = None, source: str | None = None) -> Target:
    """Normalise one URL into a :class:`Target`; raise InvalidValue with a short reason.

    Strips surrounding whitespace, lower-cases scheme and host, IDNA-encodes a non-ASCII
    host, drops a trailing dot, a default port (80/443) and the fragment, keeps an explicit
    port and the query, defaults the path to ``/`` and percent-encodes non-ASCII in path and
    query. Only http and https; no userinfo, no whitespace inside. ``category`` is checked
    against :data:`CATEGORIES` (case-insensitive, stored upper-case).
    """
    url = text.strip()
    if not url:
        raise InvalidValue("bad URL: empty")
    if any(c.isspace() for c in url):
        raise InvalidValue("bad URL: whitespace inside")
    if any(ord(c) < 32 or ord(c) == 127 for c in url) or _undecodable(url):
        raise InvalidValue("bad URL: control character or invalid text inside")
    prefix, sep, _ = url.partition("://")
    if not sep or not _SCHEME.match(prefix):
        raise InvalidValue("bad URL: missing scheme (want http:// or https://)")
    scheme = prefix.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidValue(f"unknown scheme {scheme!r}")
    try:
        parts = urlsplit(url)
    except ValueError as e:  # urlsplit checks bracketed (IPv6) hosts itself
        authority = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
        reason = "invalid IPv6 address" if "[" in authority else str(e)
        raise InvalidValue(f"bad URL: {reason}") from None
    if "@" in parts.netloc:
        raise InvalidValue("bad URL: userinfo (user@) not allowed")
    host, port = _host_port(parts.netloc, _DEFAULT_PORTS[scheme])

    netloc = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = quote(parts.query, safe=_QUERY_SAFE)
    normalised = f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
    return Target(
        url=normalised,
        hostname=host,
        scheme=scheme,
        port=port,
        path=path,
        category=_category(category) if category is not None else None,
        source=source,
    )


#: Input schemes of kinds whose input is an endpoint ``scheme://host:port`` → test name.
_ENDPOINT_KINDS: dict[str, str] = {
    scheme: name for name, schemes in INPUT_SCHEMES.items()
    if name != WEB_CONNECTIVITY and name not in APP_TESTS
    for scheme in schemes
}
#: Input schemes of kinds whose input names a list (``whatsapp://whatsapp``, ``tor://tor``).
_LIST_KINDS: dict[str, str] = {
    scheme: name for name in APP_TESTS for scheme in INPUT_SCHEMES[name]
}
_LIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


def parse_input(text: str, category: str | None = None, source: str | None = None) -> Target:
    """Normalise one input of any kind of test (docs/kinds.md); raise InvalidValue with a short
    reason. ``tcp://host:port`` is a ``tcp_connect`` input (:func:`parse_endpoint`); anything
    else is a web URL (:func:`parse_url`, with its reasons for what is not)."""
    scheme = text.strip().partition("://")[0].lower()
    if "://" in text and scheme in _RESOLVER_PORTS:
        return parse_resolver(text, category, source)
    if "://" in text and scheme in _ENDPOINT_KINDS:
        return parse_endpoint(text, category, source)
    if "://" in text and scheme in _LIST_KINDS:
        return parse_list_input(text, category, source)
    return parse_url(text, category, source)


def parse_list_input(text: str, category: str | None = None,
                     source: str | None = None) -> Target:
    """Normalise a list input ``KIND://LIST`` (``whatsapp://whatsapp``, ``endpoint://vpn``,
    ``tor://tor``): the kind of test and the name of its list (an endpoint list,
    :mod:`probe.applists`, or a Tor list). ``hostname`` holds the list name; ``port`` is
    unused (443)."""
    prefix, _, rest = text.strip().partition("://")
    scheme = prefix.lower()
    test_name = _LIST_KINDS.get(scheme)
    if test_name is None:
        raise InvalidValue(f"unknown scheme {scheme!r}")
    name = rest.rstrip("/").lower()
    if not _LIST_NAME.match(name):
        raise InvalidValue(f"bad input: want {scheme}://LIST (a list name such as {scheme})")
    return Target(url=f"{scheme}://{name}", hostname=name, scheme=scheme, port=443, path="",
                  category=_category(category) if category is not None else None,
                  source=source, test_name=test_name)
#: ``dnscheck`` input schemes and their default ports (RFC 8484 HTTPS, RFC 7858 §3.1).
_RESOLVER_PORTS: dict[str, int] = {"doh": 443, "dot": 853}


def parse_resolver(text: str, category: str | None = None,
                   source: str | None = None) -> Target:
    """Normalise a ``dnscheck`` input: ``doh://host[:port]/path`` (the DoH URL
    ``https://host[:port]/path``; path ``/dns-query`` when none) or ``dot://host[:port][/]``
    (OONI's dnscheck form ``dot://1.1.1.1:853/``). The port is always written out."""
    url = text.strip()
    if not url or any(c.isspace() for c in url):
        raise InvalidValue("bad input: empty or whitespace inside")
    if any(ord(c) < 32 or ord(c) == 127 for c in url) or _undecodable(url):
        raise InvalidValue("bad input: control character or invalid text inside")
    prefix, _, rest = url.partition("://")
    scheme = prefix.lower()
    netloc, slash, path = rest.partition("/")
    path = slash + path
    if not netloc or any(c in rest for c in "?#"):
        raise InvalidValue(f"bad input: want {scheme}://host[:port]"
                           + ("/path" if scheme == "doh" else ""))
    if "@" in netloc:
        raise InvalidValue("bad input: userinfo (user@) not allowed")
    if scheme == "dot" and path not in ("", "/"):
        raise InvalidValue("bad input: a dot:// input has no path")
    host, port = _host_port(netloc, _RESOLVER_PORTS[scheme])
    path = (path or "/dns-query") if scheme == "doh" else ""
    shown = f"[{host}]" if ":" in host else host
    return Target(url=f"{scheme}://{shown}:{port}{path}", hostname=host, scheme=scheme,
                  port=port, path=path,
                  category=_category(category) if category is not None else None,
                  source=source, test_name=_ENDPOINT_KINDS[scheme])


def parse_endpoint(text: str, category: str | None = None,
                   source: str | None = None) -> Target:
    """Normalise an endpoint input ``scheme://host:port`` (``tcp://example.org:443``).

    The port is required; a trailing ``/`` is dropped; no path, query, fragment or userinfo.
    The host is normalised as in :func:`parse_url` (IDNA, lower case, IPv6 in brackets).
    """
    url = text.strip()
    if not url or any(c.isspace() for c in url):
        raise InvalidValue("bad input: empty or whitespace inside")
    if any(ord(c) < 32 or ord(c) == 127 for c in url) or _undecodable(url):
        raise InvalidValue("bad input: control character or invalid text inside")
    prefix, _, rest = url.partition("://")
    scheme = prefix.lower()
    test_name = _ENDPOINT_KINDS.get(scheme)
    if test_name is None:
        raise InvalidValue(f"unknown scheme {scheme!r}")
    netloc = rest[:-1] if rest.endswith("/") else rest
    if not netloc or any(c in netloc for c in "/?#"):
        raise InvalidValue(f"bad input: want {scheme}://host:port")
    if "@" in netloc:
        raise InvalidValue("bad input: userinfo (user@) not allowed")
    bare = netloc.rpartition("]")[2] if netloc.startswith("[") else netloc
    if ":" not in bare:
        raise InvalidValue(f"bad input: missing port (want {scheme}://host:port)")
    host, port = _host_port(netloc, 0)
    shown = f"[{host}]" if ":" in host else host
    return Target(
        url=f"{scheme}://{shown}:{port}",
        hostname=host,
        scheme=scheme,
        port=port,
        path="",
        category=_category(category) if category is not None else None,
        source=source,
        test_name=test_name,
    )


def _category(code: str) -> str:
    norm = code.strip().upper()
    if not norm:
        raise InvalidValue("missing category code")
    if norm not in CATEGORIES:
        raise InvalidValue(f"unknown category {code.strip()!r}")
    return norm


def _host_port(netloc: str, default_port: int) -> tuple[str, int]:
    """Split and validate ``host[:port]``; the host comes back normalised."""
    if netloc.startswith("["):
        inside, bracket, after = netloc[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise InvalidValue("bad URL: invalid IPv6 address")
        try:
            host = str(ipaddress.IPv6Address(inside)) if "%" not in inside else ""
        except ValueError:
            host = ""
        if not host:
            raise InvalidValue("bad URL: invalid IPv6 address")
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = netloc.partition(":")
        host = _hostname(host)

    if not port_text:
        return host, default_port
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
    if not 0 < port < 65536:
        raise InvalidValue(f"bad URL: bad port {port_text!r}")
    return host, port


def _hostname(raw: str) -> str:
    host = raw[:-1] if raw.endswith(".") else raw
    if not host:
        raise InvalidValue("bad URL: missing host")
    if not host.isascii():
        try:
            if _idna is not None:
                host = _idna.encode(host, uts46=True).decode("ascii")
            else:  # pragma: no cover
                host = host.encode("idna").decode("ascii")
        except UnicodeError:  # idna.IDNAError is a UnicodeError
            raise InvalidValue(f"bad URL: invalid host {raw!r}") from None
    host = host.lower()
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidValue(f"bad URL: invalid host {raw!r}")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidValue(f"bad URL: invalid host {raw!r}") from None
    return host


def _undecodable(text: str) -> str | None:
    """A reason if ``text`` holds bytes that were not UTF-8 (read with surrogateescape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        byte = ord(text[e.start]) - 0xDC00
        return f"not UTF-8 text (byte 0x{byte:02x})" if 0x80 <= byte <= 0xFF else "invalid text"
    return None


# --- reading files ---------------------------------------------------------------------------

_Kind = Literal["targets", "canaries", "any"]


def _scan(path: str, want: _Kind) -> Iterator[tuple[int, Target | Canary | str]]:
    """Yield ``(line, Target | Canary | reason)`` for every row of ``path``; line 0 = no line.

    ``want`` picks the format: a target list (Citizen Lab CSV or plain text), a canaries
    file, or whichever the header says. Duplicates are reported here, after normalisation
    (a canary is a duplicate when the same address or URL has the same scope twice).
    """
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            first = f.readline()
            lines = chain([first], f)
            rows: Iterator[tuple[int, Target | Canary | str]]
            if bad := _undecodable(first):
                yield 1, bad
                return
            try:
                header = tuple(h.strip().lower() for h in next(csv.reader([first]), []))
            except csv.Error:
                header = ()
            if header == CANARY_HEADER and want != "targets":
                rows = _canary_rows(path, lines)
            elif header == CANARY_HEADER:
                yield 1, "canaries file, not a target list"
                return
            elif want == "canaries":
                yield 1, f"missing header (expected {','.join(CANARY_HEADER)})"
                return
            elif header == CSV_HEADER:
                rows = _csv_rows(path, lines)
            elif path.lower().endswith(".csv"):
                yield 1, f"missing header (expected {','.join(CSV_HEADER)})"
                return
            else:
                rows = _text_rows(path, lines)
            first_seen: dict[str, int] = {}
            for line, item in rows:
                if not isinstance(item, str):
                    value = item.url if isinstance(item, Target) else item.url_or_host
                    # Canaries are duplicates within a scope only: one address is often
                    # both the gateway and the resolver (a home router does both).
                    key = f"{item.scope}:{value}" if isinstance(item, Canary) else value
                    if key in first_seen:
                        item = f"duplicate of line {first_seen[key]} ({value})"
                    else:
                        first_seen[key] = line
                yield line, item
    except OSError as e:
        yield 0, f"cannot read: {e.strerror or e}"


def _text_rows(path: str, lines: Iterable[str]) -> Iterator[tuple[int, Target | str]]:
    """Plain text: one URL a line; blank lines and ``#`` comments (whole line or after a
    space) are skipped."""
    for line, raw in enumerate(lines, 1):
        if bad := _undecodable(raw):
            yield line, bad
            continue
        text = _COMMENT.split(raw, maxsplit=1)[0].strip()
        if text:
            yield line, _target_or_reason(text, None, f"{path}:{line}")


def _records(lines: Iterable[str]) -> Iterator[tuple[int, list[str] | str]]:
    """CSV records after the header with the line each starts on; blank records skipped."""
    reader = csv.reader(lines)
    next(reader, None)
    end = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield end + 1, f"bad CSV: {e}"
            return
        line, end = end + 1, reader.line_num
        if not any(field.strip() for field in row):
            continue
        bad = next(filter(None, map(_undecodable, row)), None)
        yield line, bad or row


def _csv_rows(path: str, lines: Iterable[str]) -> Iterator[tuple[int, Target | str]]:
    for line, row in _records(lines):
        if isinstance(row, str):
            yield line, row
        elif len(row) != len(CSV_HEADER):
            yield line, f"expected {len(CSV_HEADER)} columns, got {len(row)}"
        else:
            yield line, _target_or_reason(row[0], row[1], f"{path}:{line}")


def _target_or_reason(url: str, category: str | None, source: str) -> Target | str:
    try:
        return parse_input(url, category, source)
    except ValueError as e:
        return str(e)


def _canary_rows(path: str, lines: Iterable[str]) -> Iterator[tuple[int, Canary | str]]:
    for line, row in _records(lines):
        if isinstance(row, str):
            yield line, row
        elif len(row) != len(CANARY_HEADER):
            yield line, f"expected {len(CANARY_HEADER)} columns, got {len(row)}"
        else:
            yield line, _canary_or_reason(*(field.strip() for field in row))


def _canary_or_reason(target: str, scope: str, name: str, notes: str) -> Canary | str:
    scope = scope.lower()
    if scope not in CANARY_SCOPES:
        return f"unknown scope {scope!r} (want {', '.join(CANARY_SCOPES)})"
    if not name:
        return "missing name"
    if scope in _IP_SCOPES:
        if target.lower() == "auto":
            return Canary("auto", scope, name, notes)
        try:
            return Canary(str(ipaddress.ip_address(target)), scope, name, notes)
        except ValueError:
            return f"{scope} canary must be an IP address or 'auto', got {target!r}"
    try:
        url = parse_url(target).url
    except ValueError as e:
        return str(e)
    if scope == "portal" and not url.startswith("http://"):
        return f"portal canary must be a plain http:// URL, got {target!r}"
    return Canary(url, scope, name, notes)


def _problem(path: str, line: int, reason: str) -> str:
    return f"{path}:{line}: {reason}" if line else f"{path}: {reason}"


def validate_file(path: str | os.PathLike[str]) -> list[str]:
    """Every problem in a target list or canaries file (format from its header), as
    ``FILE:LINE: reason``; empty = the file is fine."""
    p = os.fspath(path)
    return [_problem(p, line, item) for line, item in _scan(p, "any") if isinstance(item, str)]


def iter_file(path: str | os.PathLike[str]) -> Iterator[Target]:
    """Stream the good targets of one list, then raise TargetListError if any row was bad.

    For long lists: memory holds only the URLs seen (for duplicates) and the problems.
    """
    p = os.fspath(path)
    problems: list[str] = []
    for line, item in _scan(p, "targets"):
        if isinstance(item, Target):
            yield item
        elif isinstance(item, str):
            problems.append(_problem(p, line, item))
    if problems:
        raise TargetListError(problems)


def load_file(
    path: str | os.PathLike[str], categories: Iterable[str] | None = None
) -> list[Target]:
    """All targets of one list, optionally only those in ``categories`` (codes, any case).

    Raises TargetListError with every problem if any row is bad, InvalidValue for an unknown
    code in ``categories``.
    """
    wanted = _category_filter(categories)
    return [t for t in iter_file(path) if wanted is None or t.category in wanted]


def load_sources(sources: list[str], categories: Iterable[str] | None = None) -> list[Target]:
    """Targets from URLs (anything containing ``://``) and list files, in order.

    A URL met again in a later source (or a later URL argument) is dropped, keeping the first.
    ``categories`` filters the rows of list files; URLs given directly are always kept. Every
    problem of every source is collected and raised as one TargetListError; an unknown code
    in ``categories`` raises InvalidValue before anything is read.
    """
    wanted = _category_filter(categories)
    problems: list[str] = []
    seen: set[str] = set()
    out: list[Target] = []
    for source in sources:
        if "://" in source:
            try:
                found = [parse_input(source)]
            except ValueError as e:
                problems.append(f"{source}: {e}")
                continue
        else:
            try:
                found = list(iter_file(source))
            except TargetListError as e:
                problems.extend(e.problems)
                continue
            if wanted is not None:
                found = [t for t in found if t.category in wanted]
        for target in found:
            if target.url not in seen:
                seen.add(target.url)
                out.append(target)
    if problems:
        raise TargetListError(problems)
    return out


def iter_sources(sources: list[str], categories: Iterable[str] | None = None
                 ) -> Iterator[Target]:
    """The targets of :func:`load_sources`, streamed: memory holds the URLs seen, not the
    targets. Every good target is yielded first; the problems of every source are raised
    together at the end as one TargetListError (so count the targets once — which validates —
    before a run that must not start on a bad list)."""
    wanted = _category_filter(categories)
    problems: list[str] = []
    seen: set[str] = set()
    for source in sources:
        found: Iterable[Target]
        if "://" in source:
            try:
                found = [parse_input(source)]
            except ValueError as e:
                problems.append(f"{source}: {e}")
                continue
        else:
            found = iter_file(source)
        try:
            for target in found:
                if (wanted is None or "://" in source or target.category in wanted) and (
                    target.url not in seen
                ):
                    seen.add(target.url)
                    yield target
        except TargetListError as e:
            problems.extend(e.problems)
    if problems:
        raise TargetListError(problems)


def _category_filter(categories: Iterable[str] | None) -> set[str] | None:
    if categories is None:
        return None
    if isinstance(categories, str):
        categories = [categories]
    wanted = {c.strip().upper() for c in categories}
    unknown = sorted(wanted - CATEGORIES.keys())
    if unknown:
        raise InvalidValue(f"unknown category code in filter: {', '.join(unknown)}")
    return wanted


def load_canaries(path: str | os.PathLike[str]) -> list[Canary]:
    """All canaries of a ``target,scope,name,notes`` CSV; TargetListError with every
    ``FILE:LINE: reason`` if any row is bad."""
    p = os.fspath(path)
    canaries: list[Canary] = []
    problems: list[str] = []
    for line, item in _scan(p, "canaries"):
        if isinstance(item, Canary):
            canaries.append(item)
        elif isinstance(item, str):
            problems.append(_problem(p, line, item))
    if problems:
        raise TargetListError(problems)
    return canaries
