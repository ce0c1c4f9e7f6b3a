"""Network health: probe the canaries (gateway, resolver, domestic, international, control).

One round asks every canary one cheap question at the same moment and records a
:class:`~probe.model.HealthSample` each; the classifier later turns rounds into a network state
(:mod:`probe.classify.health`). The questions:

* gateway: a TCP connect to port 53 of the default gateway (``auto`` = from the routing table);
  an answer of any kind, a refused connection included, proves the local link is up;
* resolver: one UDP DNS query to the resolver (``auto`` = the run's resolvers: the system
  resolver, first ``nameserver`` of /etc/resolv.conf, when the run uses it, else the first
  ``--resolver``); any DNS response, even an error rcode, proves it is reachable;
* domestic, international, control: a TCP connect to the URL's host and port. Names are
  resolved with the run's resolvers — the ``--resolver`` list first, the system resolver only
  when the run uses it (``--no-system-resolver`` means a dead system resolver must not turn into
  a shutdown: issue 12) — and addresses seen in earlier rounds are remembered, so a cut
  resolver does not hide whether the hosts themselves are reachable.

IPv6 (issue 15): when the run has IPv6 on (``ipv6``; ``None`` = this host has an IPv6 default
route, :func:`has_ipv6_route`), every *named* domestic, international and control canary is
also asked over IPv6: its AAAA records (the run's resolvers, then the system resolver for IPv6
only), and a TCP connect to the first IPv6 address. That sample's target is the canary's with
the fragment ``#ipv6`` (``https://name/#ipv6``; a fragment is never sent), which
:func:`probe.classify.health.sample_family` reads as an IPv6 sample, so the classifier learns
whether this network's IPv6 works from ordinary names, not only from IPv6-literal canaries. A
name without AAAA records (now or in an earlier round) gives no IPv6 sample: it says nothing
about IPv6.

Portal (captive portals): a ``portal`` canary is a plain-HTTP URL whose answer is known a
priori — the URLs operating systems fetch to detect a captive portal (:data:`PORTAL_ANSWERS`).
One GET each (no redirect followed, at most :data:`PORTAL_BODY_CAP` bytes of body, the
round's step timeout, the name resolved like the other canaries'); the sample records whether
the answer was the known one and, when not, a short signature of what came instead
(:func:`answer_signature`), which :func:`probe.classify.health.portal_signature` compares
across checks. A check that fails at DNS/TCP/HTTP level is an ordinary failure, not a portal.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import dns.asyncquery
import dns.message
import dns.rdatatype

from probe import failures
from probe.measure import http, tcp
from probe.measure.settings import MeasureSettings
from probe.model import HealthSample, HealthScope, HTTPObservation, utcnow_iso


def default_gateway(route_file: str = "/proc/net/route") -> str | None:
    """The IPv4 default gateway from the kernel's routing table; None = no default route."""
    try:
        lines = Path(route_file).read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000" and fields[2] != "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
    return None


#: The fragment that marks a named canary's IPv6 sample (see the module docstring).
IPV6_MARK = "#ipv6"
_NAMED = frozenset({HealthScope.DOMESTIC, HealthScope.INTERNATIONAL, HealthScope.CONTROL})


def has_ipv6_route(route_file: str = "/proc/net/ipv6_route") -> bool:
    """Whether the kernel has an IPv6 default route (``::/0``): the run has IPv6 on."""
    try:
        lines = Path(route_file).read_text().splitlines()
    except OSError:
        return False
    return any(f[0] == "0" * 32 and f[1] == "00" for f in (line.split() for line in lines)
               if len(f) > 2)


def system_resolver(resolv_conf: str = "/etc/resolv.conf") -> str | None:
    """The first ``nameserver`` of resolv.conf; None = none configured."""
    try:
        for line in Path(resolv_conf).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return parts[1]
    except OSError:
        pass
    return None


@dataclass(frozen=True, slots=True)
class PortalAnswer:
    """The answer a portal check gets on an open network: the status, and the body (stripped
    of surrounding whitespace; None = not checked) or the page's ``<title>`` (None = not
    checked)."""

    status: int
    body: bytes | None = None
    title: str | None = None

    def matches(self, h: HTTPObservation) -> bool:
        body = (h.body or b"").strip()
        return (h.status == self.status
                and (self.body is None or body == self.body)
                and (self.title is None or h.title == self.title))


#: The operating systems' captive-portal checks and their known answers. Android and Chrome
#: OS fetch ``generate_204`` and expect HTTP 204 with an empty body (AOSP
#: NetworkMonitor's default HTTP probe URL; Chromium's captive portal detector). Apple's
#: Captive Network Assistant fetches ``hotspot-detect.html`` and expects HTTP 200 with a page
#: titled and saying ``Success``. Windows' Network Connectivity Status Indicator fetches
#: ``connecttest.txt`` and expects HTTP 200 with the body ``Microsoft Connect Test``
#: (Microsoft Learn, "Network Connectivity Status Indicator (NCSI)"). Any other portal canary
#: is held to the ``generate_204`` convention (204, empty body) that many vendors copy.
PORTAL_ANSWERS: dict[str, PortalAnswer] = {
    "http://connectivitycheck.gstatic.com/generate_204": PortalAnswer(204, body=b""),
    "http://captive.apple.com/hotspot-detect.html": PortalAnswer(200, title="Success"),
    "http://www.msftconnecttest.com/connecttest.txt": PortalAnswer(
        200, body=b"Microsoft Connect Test"),
}
_DEFAULT_PORTAL_ANSWER = PortalAnswer(204, body=b"")
#: Bytes of a portal check's body read: the known answers are tiny; a portal page's title
#: and digest are taken from this much.
PORTAL_BODY_CAP = 16 * 1024


def answer_signature(h: HTTPObservation) -> str:
    """A short, comparable signature of an unexpected HTTP answer: the status and the
    ``Location`` host for a redirect (never the path or query: portals put the client's
    address, MAC or original URL there), else the status and the page's title, else the
    status and the first 16 hex digits of the body's SHA-256."""
    if h.location:
        host = urlsplit(h.location).hostname or "?"
        return f"{h.status} {host}"
    if h.title:
        return f"{h.status} title {h.title[:80]!r}"
    digest = h.body_sha256 or hashlib.sha256(h.body or b"").hexdigest()
    return f"{h.status} sha256 {digest[:16]}"


class HealthSampler:
    """Samples a fixed list of canaries, one round at a time (see the module docstring)."""

    def __init__(self, canaries: Sequence[tuple[str, str]], step_timeout: float = 3.0,
                 query_name: str = "example.com",
                 resolvers: Sequence[tuple[str, int]] = (),
                 use_system_resolver: bool = True, ipv6: bool | None = None) -> None:
        """``canaries``: (scope, target) pairs; ``query_name``: the resolver canary's question;
        ``resolvers``: the run's UDP resolvers (ip, port), asked first for canary names;
        ``use_system_resolver``: False = never the system resolver (``--no-system-resolver``);
        ``ipv6``: also ask the named canaries over IPv6 (None = when this host has an IPv6
        default route).
        """
        self.canaries = [(HealthScope(scope), target) for scope, target in canaries]
        self.step_timeout = step_timeout
        self.query_name = query_name
        self.resolvers = tuple(resolvers)
        self.use_system_resolver = use_system_resolver or not self.resolvers
        self.ipv6 = has_ipv6_route() if ipv6 is None else ipv6
        self._known: dict[str, list[str]] = {}
        self._known6: dict[str, list[str]] = {}

    async def round(self, phase: str) -> list[HealthSample]:
        """Probe every canary concurrently; one sample each, in canary order, then the named
        canaries' IPv6 samples (when IPv6 is on and the name has AAAA records)."""
        at = utcnow_iso()
        named = [(scope, target) for scope, target in self.canaries
                 if self.ipv6 and scope in _NAMED and not _is_ip(_host_port(target)[0])]
        found = await asyncio.gather(
            *(self._one(scope, target, phase, at) for scope, target in self.canaries),
            *(self._one6(scope, target, phase, at) for scope, target in named))
        return [x for x in found if x is not None]

    async def _one(self, scope: HealthScope, target: str, phase: str, at: str) -> HealthSample:
        start = time.monotonic()
        unexpected: str | None = None
        try:
            async with asyncio.timeout(self.step_timeout):
                if scope is HealthScope.PORTAL:
                    failure, unexpected = await self._portal(target)
                else:
                    failure = await self._probe(scope, target)
        except TimeoutError:
            failure = failures.GENERIC_TIMEOUT
        except Exception as e:  # every network error is a sample, not an exception
            failure = failures.classify_exception(e)
        return HealthSample(at=at, phase=phase, scope=scope, target=target,
                            elapsed=round(time.monotonic() - start, 6), failure=failure,
                            unexpected=unexpected)

    async def _portal(self, url: str) -> tuple[str | None, str | None]:
        """One plain GET of a portal check: (failure, signature of an unexpected answer)."""
        host, port = _host_port(url)
        addresses = await self._addresses(host)
        if not addresses:
            return failures.DNS_TEMPORARY_FAILURE, None
        obs, conn = await tcp.connect(addresses[0], port, self.step_timeout, 0, lambda: 0.0)
        if conn is None:
            return obs.failure, None
        settings = MeasureSettings(http_timeout=self.step_timeout, body_cap=PORTAL_BODY_CAP)
        h = await http.fetch(conn, url, addresses[0], port, settings, 0, 0, lambda: 0.0)
        if h.failure is not None or h.status is None:
            return h.failure or failures.GENERIC_TIMEOUT, None
        if PORTAL_ANSWERS.get(url, _DEFAULT_PORTAL_ANSWER).matches(h):
            return None, None
        return None, answer_signature(h)

    async def _one6(self, scope: HealthScope, target: str, phase: str,
                    at: str) -> HealthSample | None:
        """The named canary over IPv6; None = the name has no AAAA records."""
        start = time.monotonic()
        host, port = _host_port(target)
        try:
            async with asyncio.timeout(self.step_timeout):
                addresses = await self._addresses6(host)
                if not addresses:
                    return None
                failure = await self._connect(addresses[0], port)
        except TimeoutError:
            failure = failures.GENERIC_TIMEOUT
        except Exception as e:  # every network error is a sample, not an exception
            failure = failures.classify_exception(e)
        return HealthSample(at=at, phase=phase, scope=scope, target=target + IPV6_MARK,
                            elapsed=round(time.monotonic() - start, 6), failure=failure)

    async def _addresses6(self, host: str) -> list[str]:
        """AAAA of ``host`` (the run's resolvers, then the system resolver for IPv6 only);
        the addresses of an earlier round when the lookup finds none now."""
        found, answered = await self._udp_query(host, "AAAA")
        # a run resolver that answered without AAAA has said it: no IPv6 for this name (and
        # no question to the system resolver that the run's own resolvers answered)
        if not found and not answered and self.use_system_resolver:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, family=socket.AF_INET6, type=socket.SOCK_STREAM)
                found = list(dict.fromkeys(str(i[4][0]) for i in infos))
            except OSError:
                found = []
        if found:
            self._known6[host] = found
        return found or self._known6.get(host, [])

    async def _probe(self, scope: HealthScope, target: str) -> str | None:
        if scope is HealthScope.GATEWAY:
            ip = default_gateway() if target == "auto" else target
            if ip is None:
                return failures.NETWORK_UNREACHABLE
            failure = await self._connect(*_ip_port(ip, 53))
            return None if failure == failures.CONNECTION_REFUSED else failure
        if scope is HealthScope.RESOLVER:
            if target != "auto":
                ip, port = _ip_port(target, 53)
            elif self.use_system_resolver:
                found = system_resolver()
                if found is None:
                    return failures.DNS_SERVER_MISBEHAVING
                ip, port = _ip_port(found, 53)
            else:
                ip, port = self.resolvers[0]
            query = dns.message.make_query(self.query_name, "A")
            await dns.asyncquery.udp(query, ip, port=port, timeout=self.step_timeout)
            return None
        host, port = _host_port(target)
        addresses = await self._addresses(host)
        if not addresses:
            return failures.DNS_TEMPORARY_FAILURE
        return await self._connect(addresses[0], port)

    async def _addresses(self, host: str) -> list[str]:
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        found = await self._udp_lookup(host)
        if not found and self.use_system_resolver:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM)
                found = sorted({str(i[4][0]) for i in infos}, key=lambda a: ":" in a)
            except OSError:
                found = []
        if found:
            self._known[host] = found
        return found or self._known.get(host, [])

    async def _udp_lookup(self, host: str) -> list[str]:
        """A records of ``host`` from the run's own resolvers (:meth:`_udp_query`)."""
        return (await self._udp_query(host, "A"))[0]

    async def _udp_query(self, host: str, rtype: str) -> tuple[list[str], bool]:
        """``rtype`` (A or AAAA) records of ``host`` from the run's own resolvers, in order,
        and whether any of them answered; the first that answers with addresses wins. Each
        query gets a share of the step's deadline, so a dead resolver leaves time for the next
        one (and for the connect)."""
        share = self.step_timeout / (2 * len(self.resolvers)) if self.resolvers else 0.0
        wanted = dns.rdatatype.from_text(rtype)
        answered = False
        for ip, port in self.resolvers:
            query = dns.message.make_query(host, rtype)
            try:
                response = await dns.asyncquery.udp(query, ip, port=port, timeout=share)
            except Exception:  # noqa: BLE001 - a resolver that fails is just not an answer
                continue
            answered = True
            found = [str(rd) for rrset in response.answer if rrset.rdtype == wanted
                     for rd in rrset]
            if found:
                return found, True
        return [], answered

    async def _connect(self, ip: str, port: int) -> str | None:
        obs, conn = await tcp.connect(ip, port, self.step_timeout, 0, lambda: 0.0)
        if conn is not None:
            conn.close()
        return obs.failure


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _ip_port(text: str, default_port: int) -> tuple[str, int]:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest[1:].isdigit() else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port) if port.isdigit() else default_port
    return text, default_port


def _host_port(target: str) -> tuple[str, int]:
    if "://" not in target:
        return target.strip("[]"), 443
    parts = urlsplit(target)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (parts.hostname or "").strip("[]"), port
