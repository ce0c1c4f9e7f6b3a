"""The verdict for one measurement: a pure function of its stored observations.

Rules for this module:

* Pure: imports only :mod:`probe.model`, :mod:`probe.failures` and the standard library; no
  IO, no clock. The same observations always give the same verdict for one
  :data:`ANALYSIS_VERSION`; change the version whenever a rule changes an outcome.
* The decision is an ordered list of rules (:data:`RULES`); each rule looks at the measurement
  and returns a Verdict or None ("not mine"). The first verdict wins. Later rules (control
  comparison, network health, blockpage/CA fingerprints, throttling) slot into that list.
* Without a control vantage (this version) a failure cannot be told apart from the site being
  down, so every failure is ``inconclusive`` with low confidence and a ``method`` naming the
  failing step in DESIGN.md's vocabulary (``dns.nxdomain``, ``tcp.timeout``, ``tls.reset``…).

Order of the rules and why:

1. DNS tampering seen in the answers themselves: two different responses to one UDP query
   (``dns.injected``: an on-path injector answers first, the resolver second) and bogon answers
   (``dns.bogon``: private/loopback/reserved addresses for a public name; OONI's QA suite
   counts "resolver answers 10.10.34.35" and "spoofed to 127.0.0.1" as DNS blocking). They come
   before the success rule because a lying resolver often points at a block-page server that
   answers HTTP 200 — that response must not read as "ok".
2. The final response arrived (the last redirect hop has a status and no failure, over a
   verified TLS connection for https) → ``ok``.
3. Otherwise, blame the first step that failed for the last URL the probe tried to fetch
   (after redirects): DNS → TCP (all addresses) → TLS (all handshakes, then certificate
   validation) → HTTP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from probe import failures as f
from probe.model import (
    DNSObservation,
    HTTPObservation,
    Measurement,
    TCPObservation,
    TLSObservation,
    Verdict,
    VerdictKind,
)

#: Version of the rules; stored with every verdict so re-analysis can tell old from new.
ANALYSIS_VERSION = "0.1.0"

#: Confidence of an ``ok``: the site answered, but without a control we cannot rule out a
#: transparent proxy serving a modified page.
OK_CONFIDENCE = 0.9
#: Confidence of an ``inconclusive`` failure: blocked and down look the same from one vantage.
INCONCLUSIVE_CONFIDENCE = 0.3

#: Redirect hops the measure step follows by default (``MeasureSettings.max_redirects``).
DEFAULT_MAX_REDIRECTS = 10

# --- failure string → method, one table per step -------------------------------------------

DNS_METHODS: dict[str, str] = {
    f.DNS_NXDOMAIN: "dns.nxdomain",
    f.DNS_REFUSED: "dns.refused",
    f.DNS_SERVFAIL: "dns.servfail",
    f.GENERIC_TIMEOUT: "dns.timeout",
    f.DNS_NO_ANSWER: "dns.no_answer",
    f.DNS_BOGON: "dns.bogon",
}
TCP_METHODS: dict[str, str] = {
    f.GENERIC_TIMEOUT: "tcp.timeout",
    f.CONNECTION_RESET: "tcp.reset",
    f.CONNECTION_REFUSED: "tcp.refused",
    f.HOST_UNREACHABLE: "tcp.unreachable",
    f.NETWORK_UNREACHABLE: "tcp.unreachable",
}
TLS_METHODS: dict[str, str] = {
    f.CONNECTION_RESET: "tls.reset",
    f.GENERIC_TIMEOUT: "tls.timeout",
    f.EOF_ERROR: "tls.eof",
    f.SSL_FAILED_HANDSHAKE: "tls.handshake",
    f.SSL_UNKNOWN_AUTHORITY: "tls.cert_invalid",
    f.SSL_INVALID_CERTIFICATE: "tls.cert_invalid",
    f.SSL_INVALID_HOSTNAME: "tls.cert_invalid",
}
HTTP_METHODS: dict[str, str] = {
    f.CONNECTION_RESET: "http.reset",
    f.GENERIC_TIMEOUT: "http.timeout",
    f.EOF_ERROR: "http.eof",
    f.HTTP_TOO_MANY_REDIRECTS: "http.too_many_redirects",
}
#: Fallback method per step for failures without a specific entry (server_misbehaving,
#: temporary_failure, protocol errors, ``unknown_failure: …``).
STEP_FALLBACK = {"dns": "dns.error", "tcp": "tcp.error", "tls": "tls.handshake",
                 "http": "http.error"}
INTERRUPTED_METHOD = "interrupted"
NO_DATA_METHOD = "incomplete"

#: Every method this version can produce.
METHODS: frozenset[str] = frozenset(
    {*DNS_METHODS.values(), *TCP_METHODS.values(), *TLS_METHODS.values(),
     *HTTP_METHODS.values(), *STEP_FALLBACK.values(), "dns.injected", "tls.cert_invalid",
     INTERRUPTED_METHOD, NO_DATA_METHOD}
)

# When a step failed in several ways (several resolvers, addresses or handshakes), the one
# reported is the most telling: specific answers before silence, silence before local trouble
# (an unreachable IPv6 route says more about the volunteer's link than about the site).
_RANK: dict[str, Sequence[str]] = {
    "dns": (f.DNS_NXDOMAIN, f.DNS_REFUSED, f.DNS_SERVFAIL, f.DNS_BOGON, f.GENERIC_TIMEOUT,
            f.DNS_NO_ANSWER),
    "tcp": (f.CONNECTION_RESET, f.CONNECTION_REFUSED, f.GENERIC_TIMEOUT, f.HOST_UNREACHABLE,
            f.NETWORK_UNREACHABLE),
    "tls": (f.CONNECTION_RESET, f.EOF_ERROR, f.GENERIC_TIMEOUT, f.SSL_FAILED_HANDSHAKE),
    "http": (),
}


def method_for(step: str, failure: str) -> str:
    """The verdict method for ``failure`` observed at ``step`` (dns, tcp, tls or http).

    A failure seen on an HTTP hop that belongs to an earlier layer (a redirect hop whose
    connection httpx made itself) is named after that layer.
    """
    if failure == f.INTERRUPTED:
        return INTERRUPTED_METHOD
    table = {"dns": DNS_METHODS, "tcp": TCP_METHODS, "tls": TLS_METHODS}.get(step)
    if table is not None:
        return table.get(failure, STEP_FALLBACK[step])
    if failure in HTTP_METHODS:
        return HTTP_METHODS[failure]
    if failure.startswith("dns_"):
        return DNS_METHODS.get(failure, STEP_FALLBACK["dns"])
    if failure in (f.CONNECTION_REFUSED, f.HOST_UNREACHABLE, f.NETWORK_UNREACHABLE):
        return TCP_METHODS[failure]
    if failure.startswith("ssl_"):
        return TLS_METHODS.get(failure, STEP_FALLBACK["tls"])
    return STEP_FALLBACK["http"]


def _rank(step: str, failure: str | None) -> int:
    order = _RANK[step]
    return order.index(failure) if failure in order else len(order)


# --- small helpers ----------------------------------------------------------------------------


def _endpoint(ip: str | None, port: int) -> str:
    if ip is None:
        return f"port {port}"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _took(obs: Any) -> str:
    return f"{max(0.0, obs.t - obs.t0):.1f} s"


def _via(d: DNSObservation) -> str:
    return "system resolver" if d.engine == "system" else f"{d.resolver} ({d.engine})"


def _host(name: str) -> str:
    return name.strip("[]").rstrip(".").lower()


def is_bogon(ip: str) -> bool:
    """True for an address no public name should resolve to: private, loopback, link-local,
    shared (CGNAT), documentation, multicast, reserved or unspecified (RFC 6890 special-purpose
    registries: everything Python does not call ``is_global``)."""
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not addr.is_global or addr.is_multicast


def _is_loopback(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return False
    return addr.is_loopback or addr.is_unspecified


def _resolver_ip(resolver: str) -> str:
    """``1.2.3.4`` of ``1.2.3.4:53`` / ``[::1]:53``; the text itself otherwise."""
    if resolver.startswith("["):
        return resolver[1 : resolver.find("]")]
    return resolver.rsplit(":", 1)[0] if resolver.count(":") == 1 else resolver


def _verdict(kind: VerdictKind, method: str | None, confidence: float, evidence: str,
             **details: Any) -> Verdict:
    return Verdict(kind, method, confidence, evidence, ANALYSIS_VERSION,
                   {k: v for k, v in details.items() if v is not None})


def _inconclusive(method: str, evidence: str, **details: Any) -> Verdict:
    return _verdict(VerdictKind.INCONCLUSIVE, method, INCONCLUSIVE_CONFIDENCE, evidence,
                    **details)


# --- which observations belong to the last URL tried -------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """The last URL the probe tried to fetch and the observations that belong to it.

    ``redirect_index`` 0 is the target URL. ``via`` is the redirect hop that pointed here
    (None for the target); ``visited`` the URLs of the hops before it. ``http`` holds the HTTP
    observations for this URL's hop.
    """

    url: str
    hostname: str
    scheme: str
    redirect_index: int
    via: HTTPObservation | None
    visited: tuple[str, ...]
    dns: tuple[DNSObservation, ...]
    tcp: tuple[TCPObservation, ...]
    tls: tuple[TLSObservation, ...]
    http: tuple[HTTPObservation, ...]

    def location_details(self) -> dict[str, Any]:
        return {"url": self.url, "redirect_index": self.redirect_index or None}


def _succeeded(h: HTTPObservation) -> bool:
    return h.status is not None and h.failure is None


def final_hop(m: Measurement) -> HTTPObservation | None:
    """The HTTP observation of the deepest redirect hop (a successful one if there is one)."""
    if not m.http:
        return None
    depth = max(h.redirect_index for h in m.http)
    hops = [h for h in m.http if h.redirect_index == depth]
    return next((h for h in reversed(hops) if _succeeded(h)), hops[-1])


def last_attempt(m: Measurement) -> Attempt:
    """Scope the observations to the last URL tried.

    That is the deepest hop's URL, or the URL it redirected to when the chain stopped at a
    redirect (the next hop then failed before any HTTP exchange). Connections used by earlier
    hops are left out; DNS and TLS are matched by name, TCP by the addresses that name resolved
    to when known.
    """
    t = m.target
    hop = final_hop(m)
    url, index, via = t.url, 0, None
    if hop is not None:
        url, index = hop.url, hop.redirect_index
        if hop.location is not None and _succeeded(hop):
            url, index, via = hop.location, hop.redirect_index + 1, hop
    parts = urlsplit(url)
    hostname = _host(parts.hostname or t.hostname)
    scheme = parts.scheme or t.scheme
    earlier = {h.tx_id for h in m.http if h.redirect_index < index}
    dns = tuple(d for d in m.dns if _host(d.hostname) == hostname)
    addresses = {a for d in dns for a in d.addresses}
    tcp = tuple(c for c in m.tcp if c.tx_id not in earlier)
    if addresses and any(c.ip in addresses for c in tcp):
        tcp = tuple(c for c in tcp if c.ip in addresses)
    tls = tuple(h for h in m.tls if h.tx_id not in earlier and _host(h.server_name) == hostname)
    http = tuple(h for h in m.http if h.redirect_index == index)
    visited = tuple(h.url for h in m.http if h.redirect_index < index)
    return Attempt(url, hostname, scheme, index, via, visited, dns, tcp, tls, http)


# --- rules: DNS tampering -----------------------------------------------------------------------


def _responses(m: Measurement) -> dict[tuple[int, str, str, str], list[DNSObservation]]:
    """DNS responses grouped per query (transaction, resolver, name, type), in arrival order."""
    groups: dict[tuple[int, str, str, str], list[DNSObservation]] = {}
    for d in m.dns:
        groups.setdefault((d.tx_id, d.resolver, _host(d.hostname), d.query_type), []).append(d)
    for group in groups.values():
        group.sort(key=lambda d: d.response_index)
    return groups


def dns_injected(m: Measurement) -> Verdict | None:
    """Two responses that parsed and disagree (rcode or addresses) for one query."""
    for (tx_id, resolver, hostname, qtype), group in _responses(m).items():
        parsed = [d for d in group if d.rcode is not None]
        if len(parsed) < 2:
            continue
        first = parsed[0]
        other = next(
            (d for d in parsed[1:]
             if (d.rcode, sorted(d.addresses)) != (first.rcode, sorted(first.addresses))),
            None,
        )
        if other is None:
            continue

        def show(d: DNSObservation) -> str:
            return ", ".join(d.addresses) or d.rcode or "nothing"

        return _inconclusive(
            "dns.injected",
            f"two different DNS responses to one {qtype} query for {hostname} via "
            f"{_via(first)}: {show(first)} first, then {show(other)}",
            step="dns", tx_id=tx_id, hostname=hostname, query_type=qtype, resolver=resolver,
            engine=first.engine,
            responses=[{"rcode": d.rcode, "addresses": list(d.addresses),
                        "failure": d.failure, "t": d.t} for d in parsed],
        )
    return None


def dns_bogon(m: Measurement) -> Verdict | None:
    """An answer with a bogon address (loopback answers of a loopback resolver excepted:
    that is a local test world, and the measure step dials them too)."""
    for d in m.dns:
        local = _is_loopback(_resolver_ip(d.resolver))
        bogons = [a for a in d.addresses if is_bogon(a) and not (local and _is_loopback(a))]
        if bogons:
            return _inconclusive(
                "dns.bogon",
                f"DNS {d.query_type} answer for {d.hostname} via {_via(d)} is a bogon address: "
                f"{', '.join(bogons)}",
                step="dns", tx_id=d.tx_id, hostname=d.hostname, query_type=d.query_type,
                resolver=d.resolver, engine=d.engine, bogons=bogons,
                addresses=list(d.addresses),
            )
    return None


# --- rule: the final response arrived --------------------------------------------------------


def final_response(m: Measurement) -> Verdict | None:
    """``ok`` when the last hop got a response without failure, not a redirect left
    unfollowed, and (for https) over a connection whose certificate validated."""
    hop = final_hop(m)
    if hop is None or not _succeeded(hop) or hop.location is not None:
        return None
    if urlsplit(hop.url).scheme == "https":
        tls = next((h for h in m.tls if h.tx_id == hop.tx_id and h.failure is None), None)
        if tls is not None and tls.verified is False:
            return _cert_invalid(tls)
    redirects = hop.redirect_index
    after = f" after {redirects} redirect{'s' if redirects != 1 else ''}" if redirects else ""
    return _verdict(
        VerdictKind.OK, None, OK_CONFIDENCE,
        f"HTTP {hop.status} for {hop.url} from {_endpoint(hop.ip, hop.port)}{after}",
        step="http", tx_id=hop.tx_id, url=hop.url, status=hop.status, ip=hop.ip, port=hop.port,
        redirect_index=redirects, title=hop.title, body_length=hop.body_length,
    )


# --- rule: blame the first failing step --------------------------------------------------------


def _pick(step: str, items: Iterable[Any]) -> Any:
    """The most telling failed observation (see ``_RANK``); first seen among equals."""
    return min(items, key=lambda o: _rank(step, o.failure))


def dns_failure(a: Attempt) -> Verdict | None:
    """Every DNS query for the name failed (or answered no address)."""
    if not a.dns or any(d.addresses for d in a.dns):
        return None
    failed = [d if d.failure else _with_failure(d, f.DNS_NO_ANSWER) for d in a.dns]
    # Among equally telling failures prefer the system resolver and the A query: the path a
    # browser on this machine takes.
    failed.sort(key=lambda d: (d.engine != "system", d.query_type != "A"))
    d = _pick("dns", failed)
    assert d.failure is not None
    return _inconclusive(
        method_for("dns", d.failure),
        f"DNS {d.query_type} lookup of {d.hostname} via {_via(d)} failed: {d.failure} after "
        f"{_took(d)}" + (f" (all {len(failed)} queries failed)" if len(failed) > 1 else ""),
        step="dns", tx_id=d.tx_id, failure=d.failure, hostname=d.hostname,
        query_type=d.query_type, resolver=d.resolver, engine=d.engine, rcode=d.rcode,
        failures=[{"resolver": x.resolver, "query_type": x.query_type, "failure": x.failure}
                  for x in failed],
        **a.location_details(),
    )


def _with_failure(d: DNSObservation, failure: str) -> DNSObservation:
    return DNSObservation(d.tx_id, d.hostname, d.query_type, d.engine, d.resolver, d.t0, d.t,
                          failure, d.rcode, d.answers, d.response_index)


def tcp_failure(a: Attempt) -> Verdict | None:
    """Every TCP connect failed."""
    if not a.tcp or any(c.failure is None for c in a.tcp):
        return None
    c = _pick("tcp", a.tcp)
    n = len({(x.ip, x.port) for x in a.tcp})
    return _inconclusive(
        method_for("tcp", c.failure),
        f"TCP connect to {_endpoint(c.ip, c.port)} failed: {c.failure} after {_took(c)}"
        + (f" (all {n} addresses failed)" if n > 1 else ""),
        step="tcp", tx_id=c.tx_id, failure=c.failure, ip=c.ip, port=c.port,
        hostname=a.hostname,
        failures=[{"ip": x.ip, "port": x.port, "failure": x.failure} for x in a.tcp],
        **a.location_details(),
    )


def tls_failure(a: Attempt) -> Verdict | None:
    """Every TLS handshake failed, or every completed one presented an invalid chain."""
    if a.scheme != "https" or not a.tls:
        return None
    done = [h for h in a.tls if h.failure is None]
    if not done:
        h = _pick("tls", a.tls)
        n = len(a.tls)
        return _inconclusive(
            method_for("tls", h.failure),
            f"TLS handshake with {_endpoint(h.ip, h.port)} (SNI {h.server_name}) failed: "
            f"{h.failure} after {_took(h)}" + (f" (all {n} handshakes failed)" if n > 1 else ""),
            step="tls", tx_id=h.tx_id, failure=h.failure, ip=h.ip, port=h.port,
            server_name=h.server_name,
            failures=[{"ip": x.ip, "port": x.port, "failure": x.failure} for x in a.tls],
            **a.location_details(),
        )
    if all(h.verified is False for h in done):
        return _cert_invalid(done[0], a)
    return None


def _cert_invalid(h: TLSObservation, a: Attempt | None = None) -> Verdict:
    leaf = h.certificates[0] if h.certificates else None
    error = h.verify_error or f.SSL_INVALID_CERTIFICATE
    issuer = f" (issuer {leaf.issuer})" if leaf is not None else ""
    return _inconclusive(
        "tls.cert_invalid",
        f"TLS certificate from {_endpoint(h.ip, h.port)} (SNI {h.server_name}) does not "
        f"validate: {error}{issuer}",
        step="tls", tx_id=h.tx_id, failure=error, verify_error=h.verify_error, ip=h.ip,
        port=h.port, server_name=h.server_name,
        subject=leaf.subject if leaf else None, issuer=leaf.issuer if leaf else None,
        leaf_sha256=leaf.sha256 if leaf else None,
        spki_sha256=leaf.spki_sha256 if leaf else None,
        **(a.location_details() if a is not None else {}),
    )


def http_failure(a: Attempt) -> Verdict | None:
    """The HTTP exchange for the last URL failed (or ended without a status)."""
    if not a.http or any(_succeeded(h) for h in a.http):
        return None
    h = a.http[-1]
    failure = h.failure or f.unknown("no response status")
    status = f" (status {h.status} received)" if h.status is not None else ""
    return _inconclusive(
        method_for("http", failure),
        f"HTTP {h.method} {h.url} via {_endpoint(h.ip, h.port)} failed: {failure} after "
        f"{_took(h)}{status}",
        step="http", tx_id=h.tx_id, failure=failure, url=h.url, ip=h.ip, port=h.port,
        status=h.status, redirect_index=h.redirect_index or None,
    )


def unexplained(a: Attempt) -> Verdict:
    """No step failed, yet no final response: the chain stopped at a redirect or the
    measurement ended early (interrupted, or a step that recorded nothing)."""
    if a.via is not None:
        hop = a.via
        if hop.redirect_index + 1 >= DEFAULT_MAX_REDIRECTS or a.url in a.visited:
            return _inconclusive(
                "http.too_many_redirects",
                f"stopped after {hop.redirect_index + 1} redirects, the last to {a.url}",
                step="http", tx_id=hop.tx_id, url=hop.url, location=a.url,
                redirect_index=hop.redirect_index,
            )
        return _inconclusive(
            NO_DATA_METHOD,
            f"redirect from {hop.url} to {a.url} was not followed",
            step="http", tx_id=hop.tx_id, url=hop.url, location=a.url,
            redirect_index=hop.redirect_index,
        )
    return _inconclusive(
        NO_DATA_METHOD, f"no failure recorded for {a.url}, but no response either",
        step=None, url=a.url,
    )


#: Steps in pipeline order; the first that reports a failure is blamed.
STEPS: tuple[Callable[[Attempt], Verdict | None], ...] = (
    dns_failure, tcp_failure, tls_failure, http_failure,
)


def failing_step(m: Measurement) -> Verdict | None:
    """Blame the first failing step for the last URL tried."""
    a = last_attempt(m)
    for step in STEPS:
        v = step(a)
        if v is not None:
            return v
    return unexplained(a)


#: The rules in order; the first verdict wins.
RULES: tuple[Callable[[Measurement], Verdict | None], ...] = (
    dns_injected, dns_bogon, final_response, failing_step,
)


def classify(m: Measurement) -> Verdict:
    """The verdict for one measurement (pure; see the module docstring for the rules)."""
    for rule in RULES:
        v = rule(m)
        if v is not None:
            return v
    raise AssertionError("failing_step always returns a verdict")  # pragma: no cover
