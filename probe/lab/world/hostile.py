"""The hostile world: loopback DNS and web servers that do everything a peer should not.

This module owns one ready-made scenario, :func:`hostile_world`, and the table that names its
sites, :data:`HOSTILE_SITES`. Each site exercises one hostile behaviour of
:mod:`probe.lab.world.dns_server`, :mod:`probe.lab.world.web_server`
(:mod:`probe.lab.world.rawhttp` scripts) or
:mod:`probe.lab.world.pki` (hostile certificate kinds); a probe measuring every URL must finish
within its deadlines, with bounded memory, and give every one a verdict.

Layout: one DNS server on 127.0.0.1 (free port) answers ``*.hostile.test`` with 127.0.0.1; the
names under ``dns.hostile.test`` carry the DNS behaviours. One web server on 127.0.0.1 (free
HTTP and HTTPS ports) serves every HTTP-layer site; ``*.dns.hostile.test`` is a healthy site,
so a DNS answer that does get through leads somewhere. Every TLS- and certificate-layer site
has an address of its own (127.0.0.20, .21, …; same ports) where it is the default site: it
misbehaves whatever SNI the client sends, as a broken server does (a server that misbehaved
only for one SNI would look like SNI filtering). Only loopback addresses appear anywhere, in
answers included (see :func:`probe.lab.world.dns_server._loopback_range`).

>>> with LoopbackWorld(hostile_world(tmp)) as world:          # doctest: +SKIP
...     urls = hostile_urls(world)                            # key -> URL with real ports
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .spec import DNSServerConfig, SiteConfig, WebServerConfig, WorldConfig

if TYPE_CHECKING:
    from .loopback import LoopbackWorld

HOSTILE_DOMAIN = "hostile.test"
DNS_DOMAIN = f"dns.{HOSTILE_DOMAIN}"
HOSTILE_IP = "127.0.0.1"
GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class HostileSite:
    """One site of the hostile world.

    ``layer`` is where the hostility lives: ``dns``, ``tls``, ``cert`` or ``http``.
    ``behaviour`` is the DNS or web behaviour (or the certificate kind for ``cert``).
    """

    hostname: str
    scheme: str
    layer: str
    behaviour: str
    description: str
    ip: str = HOSTILE_IP


def _web(key: str, behaviour: str, description: str, scheme: str = "https") -> HostileSite:
    return HostileSite(f"{key}.{HOSTILE_DOMAIN}", scheme, "http", behaviour, description)


_own_ips = (f"127.0.0.{n}" for n in range(20, 40))  # one per TLS/certificate site


def _tls(key: str, behaviour: str, description: str) -> HostileSite:
    host = f"{key}.{HOSTILE_DOMAIN}"
    return HostileSite(host, "https", "tls", behaviour, description, next(_own_ips))


def _cert(key: str, kind: str, description: str) -> HostileSite:
    host = f"{key}.{HOSTILE_DOMAIN}"
    return HostileSite(host, "https", "cert", kind, description, next(_own_ips))


def _dns(key: str, behaviour: str, description: str) -> HostileSite:
    return HostileSite(f"{key}.{DNS_DOMAIN}", "https", "dns", behaviour, description)


#: Every site of the hostile world by short name (the healthy ``ok`` site is the control).
HOSTILE_SITES: dict[str, HostileSite] = {
    "ok": _web("ok", "ok", "a healthy site (control)"),
    # -- bodies -------------------------------------------------------------------------------
    "endless-body": _web("endless-body", "endless_body", "body bytes forever, no length"),
    "endless-body-http": _web(
        "endless-body-http", "endless_body", "body bytes forever (plain HTTP)", "http"
    ),
    "huge-body": _web("huge-body", "big:300000000", "a 300 MB body, streamed"),
    "gzip-bomb": _web("gzip-bomb", f"gzip_bomb:{4 * GIB}", "gzip inflating to 4 GiB"),
    "deflate-bomb": _web("deflate-bomb", f"deflate_bomb:{4 * GIB}", "deflate inflating to 4 GiB"),
    "gzip-junk": _web("gzip-junk", "gzip_junk", "a gzip page, then junk forever"),
    "endless-chunks": _web("endless-chunks", "endless_chunks", "chunked encoding, forever"),
    "bad-chunked": _web("bad-chunked", "bad_chunked", "an invalid chunk-size line"),
    "length-long": _web("length-long", "length_long", "Content-Length > body, then close"),
    "length-short": _web("length-short", "length_short", "Content-Length < what follows"),
    "length-conflict": _web("length-conflict", "length_conflict", "two Content-Lengths"),
    "close-after-headers": _web(
        "close-after-headers", "close_after_headers", "headers, then close (no body)"
    ),
    # -- heads --------------------------------------------------------------------------------
    "endless-headers": _web("endless-headers", "endless_headers", "header lines forever"),
    "huge-header": _web("huge-header", "huge_header:10000000", "one 10 MB header line"),
    "many-headers": _web("many-headers", "many_headers:8000", "8000 tiny header lines"),
    "bad-status": _web("bad-status", "bad_status", "a malformed status line"),
    "no-status": _web("no-status", "no_status", "HTTP/0.9: a body without a head"),
    "continue-forever": _web(
        "continue-forever", "continue_forever", "'100 Continue' forever, no final response"
    ),
    # -- time ---------------------------------------------------------------------------------
    "slowloris": _web("slowloris", "slowloris:0.25", "the whole response, a byte every 0.25 s"),
    "drip": _web("drip", "drip:0.25", "headers, then a body byte every 0.25 s forever"),
    # -- redirects ----------------------------------------------------------------------------
    "redirect-loop": _web("redirect-loop", "redirect_loop", "302 to itself, forever"),
    "redirect-chain": _web("redirect-chain", "redirect_chain:15", "15 redirects, then a page"),
    "redirect-scheme": _web("redirect-scheme", "redirect:file:///etc/passwd", "302 to a file: URL"),
    "redirect-malformed": _web(
        "redirect-malformed", "redirect:https://[not-an-ip]:-1/%zz", "302 to a malformed URL"
    ),
    "redirect-long-label": _web(
        "redirect-long-label",
        "redirect:https://" + "x" * 70 + "." + HOSTILE_DOMAIN + "/",
        "302 to a host with a 70-character label",
    ),
    "huge-location": _web("huge-location", "huge_location:90000", "a 90 KB Location"),
    "cookie-bomb": _web("cookie-bomb", "cookie_bomb:2000", "2000 new cookies per redirect"),
    # -- text ---------------------------------------------------------------------------------
    "mojibake": _web("mojibake", "mojibake", "invalid bytes in status, headers, title, body"),
    "charset-utf16": _web("charset-utf16", "charset:utf-16", "UTF-16 page with invalid tail"),
    "charset-punycode": _web("charset-punycode", "charset:punycode", "a 'punycode' page"),
    "charset-escape": _web("charset-escape", "charset:unicode_escape", "a 'unicode_escape' page"),
    "charset-bogus": _web("charset-bogus", "charset:x-no-such-charset", "an unknown charset"),
    # -- TLS ----------------------------------------------------------------------------------
    "tls-stall": _tls("tls-stall", "tls_stall", "ServerHello, then silence"),
    "tls-garbage": _tls("tls-garbage", "tls_garbage", "random bytes instead of a ServerHello"),
    "tls-trickle": _tls("tls-trickle", "tls_trickle:0.25", "the handshake, a byte every 0.25 s"),
    "long-chain": _cert("long-chain", "long_chain", "a chain of 50 intermediates"),
    "huge-chain": _cert("huge-chain", "huge_chain", "a 2 MiB certificate chain"),
    "malformed-cert": _cert("malformed-cert", "malformed", "a leaf that is not DER"),
    # -- DNS ----------------------------------------------------------------------------------
    "dns-pointer-loop": _dns("pointer-loop", "pointer_loop", "a compression pointer loop"),
    "dns-huge-answer": _dns("huge-answer", "huge_answer:4000", "4000 records in one answer"),
    "dns-cname-loop": _dns("cname-loop", "cname_loop", "a CNAME loop, no address"),
    "dns-bad-rdata": _dns("bad-rdata", "bad_rdata", "an A record of 7 bytes"),
    "dns-lying-counts": _dns("lying-counts", "lying_counts", "65535 answers announced, 1 sent"),
    "dns-binary-names": _dns("binary-names", "binary_names", "CNAME to binary labels"),
    "dns-many-questions": _dns("many-questions", "many_questions", "2000 questions"),
    "dns-wrong-id-flood": _dns(
        "wrong-id-flood", "wrong_id_flood:5000", "5000 wrong-id answers, then the real one"
    ),
    "dns-dup-flood": _dns("dup-flood", "dup_flood:2000", "the answer 2000 times"),
    "dns-garbage": _dns("garbage", "garbage", "random bytes after the id"),
    "dns-truncated": _dns("truncated", "truncated", "an answer cut short"),
    "dns-oversized": _dns("oversized", "oversized", "400 records over UDP without TC"),
}


def hostile_world(directory: str | Path) -> WorldConfig:
    """The hostile world's config (certificates in ``directory/pki``); loopback, free ports.

    Start it with :class:`probe.lab.world.loopback.LoopbackWorld` (or ``python -m probe.lab.world``
    after ``to_json``); :func:`hostile_urls` gives the URLs with the real ports.
    """
    records: dict[str, dict[str, Any]] = {
        f"*.{HOSTILE_DOMAIN}": {"A": [HOSTILE_IP], "ttl": 60},
    }
    behaviours: dict[str, str] = {}
    sites: dict[str, SiteConfig] = {
        f"*.{DNS_DOMAIN}": SiteConfig(title="Reached through a hostile resolver"),
    }
    alone: list[WebServerConfig] = []  # TLS and certificate sites, one address each
    for key, site in HOSTILE_SITES.items():
        if site.layer == "dns":
            behaviours[site.hostname] = site.behaviour
            continue
        if site.layer == "cert":
            config = SiteConfig(title=f"Hostile: {key}", cert=site.behaviour)
        else:
            config = SiteConfig(title=f"Hostile: {key}", behaviour=site.behaviour)
        if site.ip == HOSTILE_IP:
            sites[site.hostname] = config
            continue
        records[site.hostname] = {"A": [site.ip], "ttl": 60}
        alone.append(_web_server(site.ip, {site.hostname: config}, default=site.hostname))
    return WorldConfig(
        pki_dir=str(Path(directory) / "pki"),
        dns=[DNSServerConfig(listen=[f"{HOSTILE_IP}:0"], records=records, behaviours=behaviours)],
        web=[_web_server(HOSTILE_IP, sites), *alone],
    )


def _web_server(
    ip: str, sites: dict[str, SiteConfig], default: str | None = None
) -> WebServerConfig:
    return WebServerConfig(
        listen_ips=[ip],
        http_port=0,
        https_port=0,
        sites=sites,
        default_site=default,
        handshake_timeout=10,
        request_timeout=10,
    )


def hostile_urls(world: LoopbackWorld) -> dict[str, str]:
    """Every hostile site's URL with the running world's real ports, by short name."""
    return {key: world.url(site.hostname, site.scheme) for key, site in HOSTILE_SITES.items()}
