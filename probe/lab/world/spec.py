"""Configuration of the simulated world's servers: validated, JSON-friendly dataclasses.

Everything that describes *what* the world serves lives here; the servers (:mod:`.dns_server`,
:mod:`.web_server`) only read it. Every class validates itself on construction and raises
:class:`ValueError` naming the offending key, so a bad scenario file fails before any socket is
opened. ``from_dict`` rejects unknown keys; ``to_dict`` returns plain JSON values and
``X.from_dict(x.to_dict()) == x``.

JSON shape of a whole world (:class:`WorldConfig`)::

    {
      "pki_dir": "pki",                      # relative paths: relative to the JSON file
      "dns": [DNSServerConfig, ...],
      "web": [WebServerConfig, ...]
    }

:class:`DNSServerConfig` keys:

``listen``      list of ``"ip:port"`` (``"[::1]:53"`` for IPv6); each is served over UDP *and* TCP.
                Port 0 = an OS-chosen free port (the same one for UDP and TCP).
``records``     ``{name: {"A": [ip...], "AAAA": [ip...], "CNAME": "target", "TXT": [text...],
                "ttl": 300}}``; every key of a record is optional (``ttl`` defaults to 300).
                ``"*.example.com"`` matches every subdomain (any depth) of example.com, not
                example.com itself. A name with records but none of the queried type gets an
                empty NOERROR answer (NODATA); CNAMEs are followed inside ``records``.
``behaviours``  ``{name: behaviour}``, see :data:`DNS_BEHAVIOURS`. Keys: an exact name,
                ``"*.example.com"`` (subdomains only) or ``".example.com"`` (the name and every
                subdomain, like dnsmasq's ``address=/example.com/``). The most specific key wins.
``default``     what to do with a name that has no records (or whose behaviour is ``answer``
                and which has none): ``nxdomain`` (default) | ``refused`` | ``servfail`` |
                ``silent`` | ``forward``.
``upstream``    ``"ip:port"`` of the resolver that ``forward`` sends queries to (required by
                ``default: "forward"`` and by a ``forward`` behaviour). None = no upstream.

:class:`WebServerConfig` keys:

``listen_ips``  list of IPs; every site is served on every IP.
``http_port``   default 80; ``null`` = no plain HTTP; 0 = an OS-chosen port shared by all IPs.
``https_port``  default 443; ``null`` = no HTTPS; 0 as above.
``sites``       ``{hostname: SiteConfig}``; hostnames may be ``"*.example.com"`` wildcards.
``default_site`` hostname (a key of ``sites``) served for an unknown Host header or SNI;
                null = unknown Host gets a 404, unknown SNI gets a certificate for the
                listen IPs.
``handshake_timeout`` seconds to wait for a ClientHello / the TLS handshake (default 10).
``request_timeout``   seconds to wait for a complete request head (default 30).

:class:`SiteConfig` keys (all optional):

``behaviour``   see :data:`WEB_BEHAVIOURS` (default ``ok``).
``title``       page title; "" (default) = the hostname.
``body``        page body; null = a generated page. A body containing ``<html``, or any
                body of a site whose ``content_type`` is not ``text/html`` (``""`` with status
                204, ``Microsoft Connect Test`` as ``text/plain``: the OSes' captive-portal
                checks), is served verbatim; anything else is wrapped as a paragraph in the
                generated page.
``cert``        ``valid`` | ``expired`` | ``not_yet_valid`` | ``wrong_host`` | ``unknown_ca`` |
                ``self_signed``, or hostile ``long_chain`` | ``huge_chain`` | ``malformed``
                (default ``valid``; see :mod:`probe.lab.world.pki`).
``status``      HTTP status of the normal page (default 200).
``headers``     extra response headers ``{name: value}`` (override the defaults).
``content_type`` default ``text/html; charset=utf-8``.
``aliases``     further hostnames served by this site (and put in its certificate).
``size``        pad the generated page to exactly this many bytes (null = natural size).
``delay``       seconds to wait before answering, for every behaviour (emulates latency:
                the kernel here has no netem). Default 0.
``region_block`` CIDRs whose clients get a 403 "not available in your region" page
                (checked before the behaviour).
``region_content`` ``{cidr: body}``: for behaviour ``geo``, the body served to clients in that
                range (most specific range wins; others get ``body``).
``http3``       also serve the page over HTTP/3 (QUIC, UDP on the HTTPS port of every listen
                IP) and advertise it in ``Alt-Svc`` (default false). Over HTTP/3 the site
                answers its normal page whatever its behaviour.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: DNS behaviours. ``bogon:``, ``twice:`` and ``delay:`` take an argument.
DNS_BEHAVIOURS: dict[str, str] = {
    "answer": "answer from records (default when a record exists), else the server default",
    "nxdomain": "rcode NXDOMAIN",
    "refused": "rcode REFUSED",
    "servfail": "rcode SERVFAIL",
    "silent": "no reply at all (the client times out)",
    "bogon:<ip>": "answer A (or AAAA for an IPv6 argument) with that address, TTL 60",
    "twice:<ip>": "a forged answer with <ip> at once, the genuine answer ~100 ms later "
    "(UDP: two datagrams; TCP: two framed messages in that order)",
    "garbage": "the query id followed by random bytes (unparseable)",
    "truncated": "the genuine answer cut short: a malformed message",
    "oversized": "a huge well-formed answer (hundreds of records, several KiB) even over UDP",
    "cname_only": "a CNAME (the record's, else cname-only.invalid) and no address",
    "tc": "UDP: empty answer with the TC flag (client should retry over TCP); TCP: genuine",
    "forward": "ask the upstream resolver (SERVFAIL when it fails)",
    "delay:<seconds>": "the genuine answer after that many seconds",
    # hostile: malformed or abusive answers (see probe.lab.world.hostile)
    "pointer_loop": "an answer record whose owner name is a compression pointer to itself",
    "huge_answer:<n>": "<n> A (or AAAA) records in one message, even over UDP (4000 ≈ 64 KiB)",
    "cname_loop": "the name CNAME x, x CNAME the name: a loop and no address",
    "bad_rdata": "an A record whose RDATA is 7 bytes long",
    "lying_counts": "a header announcing 65535 answers followed by one",
    "binary_names": "a CNAME to a name with binary labels (NUL, 0xFF, a dot inside a label) "
    "and an A record for it",
    "many_questions": "a response repeating the question 2000 times",
    "wrong_id_flood:<n>": "<n> answers with wrong ids, then the genuine answer",
    "dup_flood:<n>": "the genuine answer <n> times",
}

#: Web behaviours. ``status:``, ``slow:``, ``delay:``, ``redirect:`` and ``big:`` take an argument.
WEB_BEHAVIOURS: dict[str, str] = {
    "ok": "the page (HTML with a <title>) with the site's status",
    "status:<code>": "the page with that status code",
    "reset": "read the request, then RST (SO_LINGER 0 + close)",
    "close": "read the request, then close without answering (client sees EOF)",
    "hang": "read the request, never answer (client times out)",
    "slow:<bytes_per_s>": "headers at once, then the body trickled at that rate",
    "delay:<seconds>": "the page after that many seconds",
    "redirect:<url>": "302 to that URL",
    "redirect_loop": "302 to itself with an increasing ?hop=N counter, forever",
    "big:<bytes>": "the page padded to exactly that many bytes",
    "blockpage": "a block-page-like page (see probe.lab.world.web_server.BLOCKPAGE_TITLE)",
    "echo": "echo the client's IP: X-Client-IP header, 302 to /echo?ip=IP, then a page showing it",
    "challenge": "a Cloudflare-like 403 challenge page (server-side blocking)",
    "geo": "body chosen by the client's source range (region_content)",
    "tls_reset": "HTTPS only: RST right after the ClientHello (HTTP unaffected)",
    "tls_close": "HTTPS only: close (FIN) right after the ClientHello (HTTP unaffected)",
    "tls_hang": "HTTPS only: read the ClientHello, never answer (HTTP unaffected)",
    # hostile: responses that break the rules (wire scripts in probe.lab.world.rawhttp)
    "endless_body": "200 without Content-Length, then body bytes forever",
    "endless_headers": "a status line, then header lines forever",
    "huge_header:<bytes>": "one header line <bytes> long, then a page",
    "many_headers:<n>": "<n> tiny header lines, then a page",
    "slowloris:<seconds>": "the whole response (status line, headers, body) one byte every "
    "<seconds>",
    "drip:<seconds>": "headers at once, then an endless body, one byte every <seconds>",
    "gzip_bomb:<bytes>": "Content-Encoding gzip whose body inflates to <bytes> of zeros",
    "deflate_bomb:<bytes>": "Content-Encoding deflate whose body inflates to <bytes> of zeros",
    "gzip_junk": "Content-Encoding gzip: a gzip page, then non-gzip bytes forever",
    "redirect_chain:<n>": "302 to ?hop=N+1 until hop <n>, then the page",
    "huge_location:<bytes>": "302 whose Location URL is <bytes> long",
    "bad_status": "a malformed status line",
    "no_status": "HTTP/0.9 style: a body without status line or headers",
    "mojibake": "non-UTF-8 everything: raw bytes in reason phrase, headers, title and body, "
    "a bogus charset",
    "charset:<name>": "the page (title included) encoded in <name> and declared so, with "
    "invalid sequences appended",
    "bad_chunked": "Transfer-Encoding chunked with an invalid chunk-size line",
    "endless_chunks": "Transfer-Encoding chunked, small chunks forever",
    "length_long": "Content-Length larger than the body, then close",
    "length_short": "Content-Length smaller than what follows",
    "length_conflict": "two different Content-Length headers",
    "continue_forever": "'100 Continue' interim responses forever, never a final one",
    "close_after_headers": "status line and headers (Content-Length 100000), then close",
    "cookie_bomb:<n>": "302 to ?hop=N+1 with <n> new Set-Cookie headers, forever",
    "tls_stall": "HTTPS only: the server's first TLS record (ServerHello), then silence",
    "tls_garbage": "HTTPS only: random bytes instead of a ServerHello",
    "tls_trickle:<seconds>": "HTTPS only: the real server handshake, one byte every <seconds>",
}

DNS_DEFAULTS = ("nxdomain", "refused", "servfail", "silent", "forward")
CERT_KINDS = (
    "valid",
    "expired",
    "not_yet_valid",
    "wrong_host",
    "unknown_ca",
    "self_signed",
    "long_chain",
    "huge_chain",
    "malformed",
)
#: Certificate kinds of the hostile world (see :mod:`probe.lab.world.pki`).
HOSTILE_CERT_KINDS = ("long_chain", "huge_chain", "malformed")
RECORD_KEYS = ("A", "AAAA", "CNAME", "TXT", "ttl")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """A parsed behaviour string: ``kind`` plus its argument (None = takes none)."""

    kind: str
    arg: str | None = None

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


def _kinds(table: dict[str, str]) -> tuple[set[str], set[str]]:
    plain = {k for k in table if ":" not in k}
    with_arg = {k.split(":", 1)[0] for k in table if ":" in k}
    return plain, with_arg


def _positive_number(text: str, what: str, *, integer: bool, allow_zero: bool) -> float:
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{what}: {text!r} out of range")
    return value


def parse_dns_behaviour(text: str) -> Behaviour:
    """Parse and validate a DNS behaviour string (see :data:`DNS_BEHAVIOURS`)."""
    if not isinstance(text, str):
        raise ValueError(f"DNS behaviour must be a string, not {text!r}")
    plain, with_arg = _kinds(DNS_BEHAVIOURS)
    kind, sep, arg = text.partition(":")
    if not sep and kind in plain:
        return Behaviour(kind)
    if sep and kind in with_arg:
        if kind in ("bogon", "twice"):
            _ip(arg, f"DNS behaviour {text!r}")
        elif kind in ("huge_answer", "wrong_id_flood", "dup_flood"):
            _positive_number(arg, f"DNS behaviour {text!r}", integer=True, allow_zero=False)
        else:
            _positive_number(arg, f"DNS behaviour {text!r}", integer=False, allow_zero=True)
        return Behaviour(kind, arg)
    raise ValueError(f"unknown DNS behaviour {text!r}; known: {', '.join(DNS_BEHAVIOURS)}")


def parse_web_behaviour(text: str) -> Behaviour:
    """Parse and validate a web behaviour string (see :data:`WEB_BEHAVIOURS`)."""
    if not isinstance(text, str):
        raise ValueError(f"web behaviour must be a string, not {text!r}")
    plain, with_arg = _kinds(WEB_BEHAVIOURS)
    kind, sep, arg = text.partition(":")
    if not sep and kind in plain:
        return Behaviour(kind)
    if sep and kind in with_arg:
        what = f"web behaviour {text!r}"
        if kind == "status":
            code = _positive_number(arg, what, integer=True, allow_zero=False)
            if not 100 <= code <= 599:
                raise ValueError(f"{what}: status code out of range")
        elif kind in (
            "slow",
            "many_headers",
            "redirect_chain",
            "huge_header",
            "huge_location",
            "gzip_bomb",
            "deflate_bomb",
            "cookie_bomb",
        ):
            _positive_number(arg, what, integer=True, allow_zero=False)
        elif kind in ("slowloris", "drip", "tls_trickle"):
            _positive_number(arg, what, integer=False, allow_zero=False)
        elif kind == "charset" and not arg.strip():
            raise ValueError(f"{what}: empty charset")
        elif kind == "big":
            _positive_number(arg, what, integer=True, allow_zero=True)
        elif kind == "delay":
            _positive_number(arg, what, integer=False, allow_zero=True)
        elif kind == "redirect" and not arg:
            raise ValueError(f"{what}: empty URL")
        return Behaviour(kind, arg)
    raise ValueError(f"unknown web behaviour {text!r}; known: {', '.join(WEB_BEHAVIOURS)}")


def normalize_hostname(name: str) -> str:
    """Lower-case, strip a trailing dot, IDNA-encode non-ASCII labels; keeps ``*.`` / ``.``.

    Raises ValueError for an empty or malformed name.
    """
    if not isinstance(name, str) or not name.strip(". "):
        raise ValueError(f"bad hostname {name!r}")
    text = name.strip().rstrip(".").lower()
    prefix = ""
    if text.startswith("*."):
        prefix, text = "*.", text[2:]
    elif text.startswith("."):
        prefix, text = ".", text[1:]
    labels = []
    for label in text.split("."):
        if not label:
            raise ValueError(f"bad hostname {name!r}: empty label")
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise ValueError(f"bad hostname {name!r}: {exc}") from None
        if len(label) > 63 or any(c.isspace() or c in "/:@" for c in label):
            raise ValueError(f"bad hostname {name!r}")
        labels.append(label)
    return prefix + ".".join(labels)


def _ip(text: Any, where: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an IP address") from None


def _cidr(text: Any, where: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except (ValueError, TypeError):
        raise ValueError(f"{where}: {text!r} is not a CIDR range") from None


def parse_hostport(text: str, where: str = "address") -> tuple[str, int]:
    """``"1.2.3.4:53"`` / ``"[::1]:53"`` → (ip, port). Port 0 is allowed (OS-chosen)."""
    if not isinstance(text, str):
        raise ValueError(f"{where}: {text!r} is not an 'ip:port' string")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{where}: {text!r} is not 'ip:port'")
    return _ip(host, where), int(port)


def format_hostport(ip: str, port: int) -> str:
    """(ip, port) → ``"ip:port"`` (brackets around IPv6)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _check_keys(data: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(allowed)}"
        )
    return data


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: expected a list of strings, got {value!r}")
    return list(value)


def _normalize_record(name: str, rec: Any) -> dict[str, Any]:
    where = f"records[{name!r}]"
    _check_keys(rec, RECORD_KEYS, where)
    out: dict[str, Any] = {}
    if "A" in rec:
        out["A"] = [_ip(ip, f"{where}.A") for ip in _str_list(rec["A"], f"{where}.A")]
        if any(":" in ip for ip in out["A"]):
            raise ValueError(f"{where}.A: IPv6 address in an A record")
    if "AAAA" in rec:
        out["AAAA"] = [_ip(ip, f"{where}.AAAA") for ip in _str_list(rec["AAAA"], f"{where}.AAAA")]
        if any(":" not in ip for ip in out["AAAA"]):
            raise ValueError(f"{where}.AAAA: IPv4 address in an AAAA record")
    if rec.get("CNAME") is not None:
        if not isinstance(rec["CNAME"], str):
            raise ValueError(f"{where}.CNAME: expected one name")
        out["CNAME"] = normalize_hostname(rec["CNAME"])
        if out.get("A") or out.get("AAAA"):
            raise ValueError(f"{where}: a CNAME cannot coexist with A/AAAA records")
    if "TXT" in rec:
        out["TXT"] = _str_list(rec["TXT"], f"{where}.TXT")
    ttl = rec.get("ttl", 300)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl < 2**31:
        raise ValueError(f"{where}.ttl: {ttl!r} is not a TTL")
    out["ttl"] = ttl
    return out


@dataclass(frozen=True)
class DNSServerConfig:
    """One DNS server (authoritative for ``records``, optionally forwarding the rest)."""

    listen: list[str]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    behaviours: dict[str, str] = field(default_factory=dict)
    default: str = "nxdomain"
    upstream: str | None = None

    def __post_init__(self) -> None:
        listen = _str_list(self.listen, "dns.listen")
        if not listen:
            raise ValueError("dns.listen: at least one 'ip:port' is required")
        listen = [format_hostport(*parse_hostport(a, "dns.listen")) for a in listen]
        if not isinstance(self.records, dict):
            raise ValueError("dns.records: expected an object")
        records = {}
        for name, rec in self.records.items():
            key = normalize_hostname(name)
            if key.startswith(".") and not key.startswith("*."):
                raise ValueError(f"dns.records[{name!r}]: use '*.name' for wildcards")
            records[key] = _normalize_record(name, rec)
        if not isinstance(self.behaviours, dict):
            raise ValueError("dns.behaviours: expected an object")
        behaviours = {}
        for name, text in self.behaviours.items():
            try:
                behaviours[normalize_hostname(name)] = str(parse_dns_behaviour(text))
            except ValueError as exc:
                raise ValueError(f"dns.behaviours[{name!r}]: {exc}") from None
        if self.default not in DNS_DEFAULTS:
            raise ValueError(f"dns.default: {self.default!r} not one of {', '.join(DNS_DEFAULTS)}")
        upstream = self.upstream
        if upstream is not None:
            upstream = format_hostport(*parse_hostport(upstream, "dns.upstream"))
        needs_upstream = self.default == "forward" or "forward" in behaviours.values()
        if needs_upstream and upstream is None:
            raise ValueError("dns: 'forward' needs an 'upstream' resolver")
        object.__setattr__(self, "listen", listen)
        object.__setattr__(self, "records", records)
        object.__setattr__(self, "behaviours", behaviours)
        object.__setattr__(self, "upstream", upstream)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DNSServerConfig:
        keys = tuple(f.name for f in dataclasses.fields(cls))
        return cls(**_check_keys(data, keys, "dns"))

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class SiteConfig:
    """One web site: what it answers and with which certificate (see module docstring)."""

    behaviour: str = "ok"
    title: str = ""
    body: str | None = None
    cert: str = "valid"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"
    aliases: list[str] = field(default_factory=list)
    size: int | None = None
    delay: float = 0.0
    region_block: list[str] = field(default_factory=list)
    region_content: dict[str, str] = field(default_factory=dict)
    http3: bool = False

    def __post_init__(self) -> None:
        parse_web_behaviour(self.behaviour)
        if not isinstance(self.http3, bool):
            raise ValueError("site.http3: expected true/false")
        for key in ("title", "content_type"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"site.{key}: expected a string")
        if self.body is not None and not isinstance(self.body, str):
            raise ValueError("site.body: expected a string or null")
        if self.cert not in CERT_KINDS:
            raise ValueError(f"site.cert: {self.cert!r} not one of {', '.join(CERT_KINDS)}")
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ValueError(f"site.status: {self.status!r} is not an HTTP status")
        if not isinstance(self.headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
            for k, v in self.headers.items()
        ):
            raise ValueError("site.headers: expected {name: value} strings without newlines")
        aliases = [normalize_hostname(a) for a in _str_list(self.aliases, "site.aliases")]
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ValueError(f"site.size: {self.size!r} is not a byte count")
        if not isinstance(self.delay, int | float) or not 0 <= self.delay < 86400:
            raise ValueError(f"site.delay: {self.delay!r} is not a number of seconds")
        where = "site.region_block"
        block = [_cidr(c, where) for c in _str_list(self.region_block, where)]
        if not isinstance(self.region_content, dict) or not all(
            isinstance(v, str) for v in self.region_content.values()
        ):
            raise ValueError("site.region_content: expected {cidr: body}")
        content = {_cidr(k, "site.region_content"): v for k, v in self.region_content.items()}
        object.__setattr__(self, "aliases", aliases)
        object.__setattr__(self, "delay", float(self.delay))
        object.__setattr__(self, "region_block", block)
        object.__setattr__(self, "region_content", content)

    @property
    def parsed_behaviour(self) -> Behaviour:
        return parse_web_behaviour(self.behaviour)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteConfig:
        keys = tuple(f.name for f in dataclasses.fields(cls))
        return cls(**_check_keys(data, keys, "site"))

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


def _port(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError(f"{where}: {value!r} is not a port")
    return value


@dataclass(frozen=True)
class WebServerConfig:
    """An HTTP + HTTPS server on some IPs hosting several sites (by Host header / SNI)."""

    listen_ips: list[str]
    http_port: int | None = 80
    https_port: int | None = 443
    sites: dict[str, SiteConfig] = field(default_factory=dict)
    default_site: str | None = None
    handshake_timeout: float = 10.0
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        ips = [_ip(ip, "web.listen_ips") for ip in _str_list(self.listen_ips, "web.listen_ips")]
        if not ips:
            raise ValueError("web.listen_ips: at least one IP is required")
        _port(self.http_port, "web.http_port")
        _port(self.https_port, "web.https_port")
        if not isinstance(self.sites, dict):
            raise ValueError("web.sites: expected an object")
        sites: dict[str, SiteConfig] = {}
        for name, site in self.sites.items():
            key = normalize_hostname(name)
            if key.startswith(".") and not key.startswith("*."):
                raise ValueError(f"web.sites[{name!r}]: use '*.name' for wildcards")
            try:
                sites[key] = site if isinstance(site, SiteConfig) else SiteConfig.from_dict(site)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"web.sites[{name!r}]: {exc}") from None
        default = self.default_site
        if default is not None:
            default = normalize_hostname(default)
            if default not in sites:
                raise ValueError(f"web.default_site: {self.default_site!r} is not a site")
        for key in ("handshake_timeout", "request_timeout"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or not 0 < value <= 3600:
                raise ValueError(f"web.{key}: {value!r} is not a number of seconds")
        object.__setattr__(self, "listen_ips", ips)
        object.__setattr__(self, "sites", sites)
        object.__setattr__(self, "default_site", default)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WebServerConfig:
        keys = tuple(f.name for f in dataclasses.fields(cls))
        return cls(**_check_keys(data, keys, "web"))

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class WorldConfig:
    """Every server of one world process plus where its certificates live."""

    pki_dir: str
    dns: list[DNSServerConfig] = field(default_factory=list)
    web: list[WebServerConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.pki_dir, str | Path) or not str(self.pki_dir):
            raise ValueError("world.pki_dir: expected a directory path")
        if not isinstance(self.dns, list | tuple) or not isinstance(self.web, list | tuple):
            raise ValueError("world.dns and world.web must be lists")
        dns = []
        for i, d in enumerate(self.dns):
            try:
                dns.append(d if isinstance(d, DNSServerConfig) else DNSServerConfig.from_dict(d))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"dns[{i}]: {exc}") from None
        web = []
        for i, w in enumerate(self.web):
            try:
                web.append(w if isinstance(w, WebServerConfig) else WebServerConfig.from_dict(w))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"web[{i}]: {exc}") from None
        object.__setattr__(self, "pki_dir", str(self.pki_dir))
        object.__setattr__(self, "dns", dns)
        object.__setattr__(self, "web", web)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: str | Path | None = None) -> WorldConfig:
        """Build from a dict; a relative ``pki_dir`` is resolved against ``base_dir`` if given."""
        _check_keys(data, ("pki_dir", "dns", "web"), "world")
        if "pki_dir" not in data:
            raise ValueError("world: 'pki_dir' is required")
        pki_dir = Path(data["pki_dir"]) if isinstance(data["pki_dir"], str) else data["pki_dir"]
        if isinstance(pki_dir, Path) and base_dir is not None and not pki_dir.is_absolute():
            pki_dir = Path(base_dir) / pki_dir
        return cls(pki_dir=str(pki_dir), dns=data.get("dns", []), web=data.get("web", []))

    @classmethod
    def load(cls, path: str | Path) -> WorldConfig:
        """Read a JSON file (relative ``pki_dir`` = relative to the file's directory)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
        try:
            return cls.from_dict(data, base_dir=path.parent)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    from_json = load

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
