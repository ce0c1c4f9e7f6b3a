"""Frozen records that flow through the probe: targets, observations, verdicts.

Everything the measurement layer learns is expressed as one of these records, one per network
operation, and nothing downstream sees a malformed value. Rules for this module:

* Records are frozen and slotted; they hold plain values (str, int, float, bytes, tuples).
* Times: ``t0``/``t`` are seconds relative to the start of the measurement they belong to;
  absolute instants are ISO 8601 UTC strings (``...Z``) produced by :func:`utcnow_iso`.
* ``failure`` is ``None`` for success, otherwise a string from :mod:`probe.failures`.
* ``tx_id`` groups the operations of one endpoint attempt (TCP → TLS → HTTP on one address),
  as OONI's transaction ids do; DNS lookups have their own ids.
* A field documented as "None = …" says what its absence means.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit


def utcnow_iso() -> str:
    """The current instant as ISO 8601 UTC with microseconds and a ``Z`` suffix."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def split_url(url: str) -> SplitResult:
    """:func:`urllib.parse.urlsplit` that never raises, for URLs read back from measurements.

    A stored URL is what a server or another tool wrote: a hostile redirect's ``Location:
    http://[x]/``, an OONI document's odd request URL, or a URL whose address the privacy
    scrubber replaced (``http://[scrubbed]:80/``) make ``urlsplit`` raise ``ValueError``, and
    one such value must not stop a run's classification or an import. Such a URL keeps its
    scheme and path and has no host (``hostname`` None).
    """
    try:
        return urlsplit(url)
    except ValueError:
        scheme, sep, rest = url.partition("://")
        path = "/" + rest.partition("/")[2] if sep else url
        return SplitResult(scheme.lower() if sep else "", "", path, "", "")


#: The web test (OONI's name): DNS, TCP, TLS and HTTP of a URL, redirects followed.
WEB_CONNECTIVITY = "web_connectivity"
#: TCP reachability of ``host:port`` (OONI's name), written ``tcp://host:port``.
TCP_CONNECT = "tcp_connect"
#: The messengers (OONI's test names): each measures its app's endpoint list (docs/kinds.md).
WHATSAPP = "whatsapp"
TELEGRAM = "telegram"
SIGNAL = "signal"
FACEBOOK_MESSENGER = "facebook_messenger"
#: Any ``host:port`` a named endpoint list declares (VPN servers…), over TCP, TLS or UDP.
ENDPOINT = "endpoint"
#: Tor's directory authorities and bridges (OONI's name, spec ts-023-tor), written
#: ``tor://LIST``: every target of the Tor list LIST (probe/measure/torlist.py) in one measurement.
TOR = "tor"
#: Kinds measuring an endpoint list (:mod:`probe.applists`) with the app measurer.
ENDPOINT_LIST_TESTS: tuple[str, ...] = (WHATSAPP, TELEGRAM, SIGNAL, FACEBOOK_MESSENGER, ENDPOINT)
#: Kinds whose input names a list, written ``NAME://LIST`` (``whatsapp://whatsapp``,
#: ``endpoint://vpn``, ``tor://tor``): one measurement of every entry the list declares, one
#: verdict. The endpoint lists' kinds, and ``tor`` with its own list format.
APP_TESTS: tuple[str, ...] = (*ENDPOINT_LIST_TESTS, TOR)
#: Reachability of an encrypted DNS resolver (OONI's name), written ``doh://host[:port]/path``
#: (DNS-over-HTTPS at ``https://host[:port]/path``) or ``dot://host[:port]`` (DNS-over-TLS).
DNSCHECK = "dnscheck"
#: The input schemes of each kind of test (docs/kinds.md): how a list line or a command-line
#: argument says which test measures it.
INPUT_SCHEMES: dict[str, tuple[str, ...]] = {
    WEB_CONNECTIVITY: ("http", "https"),
    TCP_CONNECT: ("tcp",),
    WHATSAPP: ("whatsapp",),
    TELEGRAM: ("telegram",),
    SIGNAL: ("signal",),
    FACEBOOK_MESSENGER: ("facebook_messenger",),
    ENDPOINT: ("endpoint",),
    DNSCHECK: ("doh", "dot"),
    TOR: ("tor",),
}
#: The input schemes of a test this probe does not run itself, stored from another source
#: (``probe import ooni``, docs/import.md: whatsapp, tor, …): its input URL, or
#: ``ooni://TEST_NAME`` for a test without one.
IMPORTED_SCHEMES: tuple[str, ...] = ("http", "https", "tcp", "ooni", "doh", "dot")


@dataclass(frozen=True, slots=True)
class Target:
    """One input to measure, normalised: a URL for the web test, ``tcp://host:port`` for
    ``tcp_connect`` (docs/kinds.md).

    ``url`` is the normalised input (IDNA host, lower-case scheme/host, default path ``/``
    for web URLs). ``path`` is empty for inputs that have none (``tcp://``).
    ``category`` is a Citizen Lab category code; None = not given (plain list / CLI URL).
    ``source`` is ``FILE:LINE`` where the target came from; None = command line.
    ``test_name`` is the kind of test that measures it (OONI's names: ``web_connectivity``,
    ``tcp_connect``).
    """

    url: str
    hostname: str
    scheme: str
    port: int
    path: str
    category: str | None = None
    source: str | None = None
    test_name: str = WEB_CONNECTIVITY

    def __post_init__(self) -> None:
        allowed = INPUT_SCHEMES.get(self.test_name, IMPORTED_SCHEMES)
        if self.test_name in APP_TESTS:  # OONI's own app measurements have no input
            allowed = (*allowed, "ooni")
        if self.scheme not in allowed:
            raise ValueError(f"unsupported scheme {self.scheme!r} for {self.test_name}")
        if not self.hostname:
            raise ValueError("empty hostname")
        if not 0 < self.port < 65536:
            raise ValueError(f"bad port {self.port}")


@dataclass(frozen=True, slots=True)
class DNSAnswer:
    """One resource record of a DNS answer section: ``rtype`` is A, AAAA or CNAME."""

    rtype: str
    value: str
    ttl: int | None = None  # None = the system resolver does not report TTLs


@dataclass(frozen=True, slots=True)
class DNSObservation:
    """One DNS response (or the lack of one) for one query.

    A UDP query yields one record per response received before the listening window closes:
    ``response_index`` 0 is the first (an on-path injector's, if any), 1 the next, and so on.
    A query with no response yields one record with a failure and ``response_index`` 0.
    ``engine`` is ``system`` (getaddrinfo), ``udp`` or ``doh``; ``resolver`` is ``ip:port`` or
    ``system`` or the DoH URL. ``rcode`` is the DNS rcode text (``NOERROR``, ``NXDOMAIN``…);
    None = no DNS message was seen (system resolver, timeout).
    """

    tx_id: int
    hostname: str
    query_type: str
    engine: str
    resolver: str
    t0: float
    t: float
    failure: str | None
    rcode: str | None = None
    answers: tuple[DNSAnswer, ...] = ()
    response_index: int = 0

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a.value for a in self.answers if a.rtype in ("A", "AAAA"))


@dataclass(frozen=True, slots=True)
class TCPObservation:
    """One TCP connect to ``ip:port``."""

    tx_id: int
    ip: str
    port: int
    t0: float
    t: float
    failure: str | None


@dataclass(frozen=True, slots=True)
class Certificate:
    """One certificate of a presented chain, leaf first. ``der`` is the raw certificate."""

    der: bytes
    sha256: str
    spki_sha256: str
    subject: str
    issuer: str
    not_before: str  # ISO 8601 UTC
    not_after: str  # ISO 8601 UTC
    san: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TLSObservation:
    """One TLS handshake on an established TCP connection.

    ``certificates`` is the whole chain the peer presented (empty when the handshake failed
    before the Certificate message). ``verified`` is the result of chain + hostname validation
    against the trust anchors; None = not attempted (handshake failed first).
    ``verify_error`` is a failure string (``ssl_unknown_authority``…) when ``verified`` is False.
    ``failure`` is the handshake's own failure (reset, timeout…); a certificate that does not
    validate is *not* a handshake failure here: the handshake is completed without
    verification so the chain is always recorded.
    """

    tx_id: int
    ip: str
    port: int
    server_name: str
    t0: float
    t: float
    failure: str | None
    tls_version: str | None = None
    cipher_suite: str | None = None
    alpn: str | None = None
    certificates: tuple[Certificate, ...] = ()
    verified: bool | None = None
    verify_error: str | None = None


@dataclass(frozen=True, slots=True)
class QUICHandshake:
    """One QUIC handshake (TLS 1.3 inside QUIC, RFC 9001) to ``ip:port`` over UDP.

    Recorded like a :class:`TLSObservation`: ``certificates`` is the whole presented chain
    (empty when the handshake failed first), ``verified``/``verify_error`` the result of our own
    validation (None = not attempted), ``failure`` the handshake's own failure (a dropped
    Initial is ``generic_timeout_error``). ``quic_version`` is ``QUICv1``, ``QUICv2`` or the
    version number in hex; ``alpn`` the negotiated protocol (``h3``). ``tx_id`` is shared with
    the HTTP/3 request sent over it (``Measurement.http3``).
    """

    tx_id: int
    ip: str
    port: int
    server_name: str
    t0: float
    t: float
    failure: str | None
    quic_version: str | None = None
    alpn: str | None = None
    certificates: tuple[Certificate, ...] = ()
    verified: bool | None = None
    verify_error: str | None = None


@dataclass(frozen=True, slots=True)
class HTTPObservation:
    """One HTTP request/response exchange (one redirect hop).

    ``redirect_index`` 0 is the request for the target URL, 1 the first redirect, and so on.
    ``status`` None = no response. ``headers`` keeps order and duplicates. ``body`` is the
    (capped) body as received; None = not stored (``--no-bodies``) or no response.
    ``location`` is the resolved absolute redirect URL, None = not a redirect.
    ``received_bytes`` counts the response bytes read from the connection (status line,
    headers and body as sent, before decoding); None = not recorded (imported or older data).
    ``last_byte_t`` is when the last of them arrived (same clock as ``t0``/``t``); None =
    nothing arrived, or not recorded. With ``t`` they tell a transfer that froze (silence
    long before the deadline) from one still trickling in when it hit.
    """

    tx_id: int
    url: str
    method: str
    ip: str | None
    port: int
    t0: float
    t: float
    failure: str | None
    redirect_index: int = 0
    request_headers: tuple[tuple[str, str], ...] = ()
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    body_length: int | None = None
    body_sha256: str | None = None
    body_truncated: bool = False
    title: str | None = None
    location: str | None = None
    received_bytes: int | None = None
    last_byte_t: float | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """Everything the probe observed for one target in one run.

    ``started_at``/``finished_at`` are absolute UTC instants; all ``t0``/``t`` of the
    observations are relative to ``started_at``. ``control`` holds the control vantage's
    answers (one dict per control queried, as returned by its client); empty = no control.
    ``extra`` is a place for step-specific frozen data (JSON-serialisable).
    ``quic``/``http3``: the QUIC handshakes and the HTTP/3 requests over them (the web test's
    HTTP/3 attempt, after the TCP path); kept apart from ``tls``/``http`` so the verdict on
    what users get over TCP never reads them by mistake.
    """

    target: Target
    started_at: str
    finished_at: str
    dns: tuple[DNSObservation, ...] = ()
    tcp: tuple[TCPObservation, ...] = ()
    tls: tuple[TLSObservation, ...] = ()
    http: tuple[HTTPObservation, ...] = ()
    control: tuple[dict[str, Any], ...] = ()
    quic: tuple[QUICHandshake, ...] = ()
    http3: tuple[HTTPObservation, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def test_name(self) -> str:
        """The kind of test that produced this measurement (its target's)."""
        return self.target.test_name


class VerdictKind(enum.StrEnum):
    """The closed set of verdicts (DESIGN.md contract)."""

    OK = "ok"
    BLOCKED = "blocked"
    INTERCEPTED = "intercepted"
    THROTTLED = "throttled"
    DOWN = "down"
    SHUTDOWN = "shutdown"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The classifier's judgement of one measurement.

    ``method`` None = not applicable (``ok``). ``evidence`` is a one-line human explanation;
    ``details`` the structured fields behind it (which observation, what the control saw).
    """

    verdict: VerdictKind
    method: str | None
    confidence: float
    evidence: str
    analysis_version: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} outside [0, 1]")


class HealthScope(enum.StrEnum):
    """What a canary stands for when telling a shutdown from blocking (DESIGN.md)."""

    GATEWAY = "gateway"  # the volunteer's own router / first hop
    RESOLVER = "resolver"  # the configured (ISP) resolver
    DOMESTIC = "domestic"  # hosts inside the country, on several networks
    INTERNATIONAL = "international"  # hosts abroad
    CONTROL = "control"  # the control helper
    PORTAL = "portal"  # a URL whose answer is known a priori (the OSes' captive-portal checks)


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One probe of one canary at one instant.

    ``at`` is the absolute UTC instant the probe started; ``elapsed`` its duration in seconds.
    ``phase`` is ``before``, ``during`` or ``after`` the run's measurements. ``target`` is the
    canary (URL, host or IP). ``failure`` None = the canary answered (for a gateway, any answer
    including a refused connection proves the link is up; for a portal canary, an HTTP answer
    arrived). ``unexpected``: for a portal canary that answered over HTTP with something other
    than its known answer, a short signature of what came instead (``302 portal.example``,
    ``200 title 'Log in'``, ``200 sha256 3f2a…``: :mod:`probe.measure.health`); None = the
    expected answer, a failure, or not a portal canary.
    """

    at: str
    phase: str
    scope: HealthScope
    target: str
    elapsed: float
    failure: str | None
    unexpected: str | None = None


@dataclass(frozen=True, slots=True)
class TraceHop:
    """One router on the path: the source of the ICMP time-exceeded for a probe sent with IP
    TTL ``ttl`` (the router ``ttl`` hops from the volunteer)."""

    ttl: int
    address: str


@dataclass(frozen=True, slots=True)
class TraceProbe:
    """One TTL-limited probe of a trace and what came back.

    ``variant`` is ``blocked`` (the triggering name or address) or ``innocuous`` (the same
    exchange with an innocuous name, or another address). ``ttl`` is the IP TTL the triggering
    packet was sent with. ``outcome``: ``expired`` (ICMP time-exceeded), ``unreachable`` (ICMP
    destination unreachable), ``reset``, ``eof`` (a FIN and no data), ``answer`` (data, a
    SYN-ACK, a DNS response), ``silent`` (nothing before the deadline) or ``error`` (the
    exchange could not be set up; ``note`` says why). ``source``: who answered (the router of
    an ICMP message, or the address the answer claims to come from); None = nothing came back.
    ``reply_ttl``: the IP TTL of that answer as received; None = nothing came back.
    ``note``: a short description of the answer (status line, certificate issuer, forged
    addresses); None = nothing to add. ``cert_error``: why the certificate chain of a TLS
    answer does not validate for the probe's name (a failure string); None = it validates, or
    no chain came back.
    """

    ttl: int
    variant: str
    outcome: str
    source: str | None = None
    reply_ttl: int | None = None
    note: str | None = None
    cert_error: str | None = None


@dataclass(frozen=True, slots=True)
class TraceObservation:
    """Where on the path a censor acts, found with TTL-limited packets (issue 8, docs/trace.md).

    ``kind``: ``dns`` (DNS queries to ``target``, an address that runs no resolver: any answer
    is injected), ``tls`` (a ClientHello with SNI ``name``), ``http`` (a request with Host
    ``name``) or ``tcp`` (a SYN to ``target``; the innocuous variant is a SYN to
    ``innocuous``, another address). ``target``/``port``: where the probes went. ``name``: the
    triggering name (None for ``tcp``); ``innocuous``: the comparison name or address.
    ``started_at``: absolute UTC instant; ``elapsed``: seconds the trace took.
    ``failure``: None = the trace ran; otherwise why it could not (a failure string, e.g. the
    TCP connection to ``target`` could not be made).
    ``result``: ``located`` (a censor found at ``hop``), ``injected`` (DNS answers from a
    silent address; ``hop`` set when the TTL sweep placed the injector), ``not_injected``,
    ``answering`` (``target`` answers innocuous queries too: it is no silent address),
    ``not_blocked`` (the blocked exchange got through like the innocuous one) or
    ``not_located`` (different, but no TTL showed where); None = the trace failed.
    ``signature``: what the censor does: ``reset``, ``drop``, ``eof``, ``blockpage``, ``cert``
    (an untrusted certificate), ``unreachable``, ``answer`` (another injected answer) or
    ``injected`` (DNS); None = nothing seen. ``trigger_ttl``: the first TTL at which it
    appeared; None = never. ``hop``: the censor's distance in router hops: an in-path device
    acts on what router ``hop`` forwards (it triggers from TTL ``hop + 1``), a device that
    terminates the connection (an interception proxy) *is* hop ``hop``; None = not located.
    ``hop_address``: the router that answered time-exceeded at ``hop``; None = unknown.
    ``path``: every router seen (time-exceeded sources by TTL); ``probes``: every probe.
    ``answers``: DNS: the addresses injected; empty = none.
    ``details``: further JSON-serialisable facts (endpoint distances, reply TTLs).
    """

    kind: str
    target: str
    port: int
    name: str | None
    innocuous: str | None
    started_at: str
    elapsed: float
    failure: str | None
    result: str | None = None
    signature: str | None = None
    trigger_ttl: int | None = None
    hop: int | None = None
    hop_address: str | None = None
    path: tuple[TraceHop, ...] = ()
    probes: tuple[TraceProbe, ...] = ()
    answers: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an imported measurement (someone else's, e.g. OONI's archive) comes from.

    ``source`` names who measured (``ooni``); ``origin`` is ``FILE:LINE`` it was read from
    (``-:LINE`` = standard input); ``dedup_key`` makes an import idempotent (the source's
    measurement uid, else a hash of report id, input and start time). ``test_name`` and
    ``test_version`` are the source's own. ``None`` = not in the document. ``ooni_blocking``,
    ``ooni_accessible`` hold the source's own verdict as the JSON values it published
    (``False``, ``"dns"``, ``None``…) and ``ooni_flags`` its ``x_blocking_flags`` (0.5 only);
    for OONI's app tests ``ooni_blocking`` is the object of the test's own verdict keys
    (``{"whatsapp_endpoints_status": "ok", …}``; ``probe.ingest.mapper.APP_VERDICT_KEYS``).
    ``missing`` names evidence our own probe would have collected and the source did not
    (``innocuous_sni_retry``, ``canaries``, ``second_dns_answer``…): the classifier says so
    and lowers its confidence instead of guessing.
    """

    source: str
    origin: str
    dedup_key: str
    test_name: str
    report_id: str | None = None
    measurement_uid: str | None = None
    software_name: str | None = None
    software_version: str | None = None
    test_version: str | None = None
    probe_asn: int | None = None
    probe_cc: str | None = None
    probe_network_name: str | None = None
    resolver_ip: str | None = None
    resolver_asn: int | None = None
    ooni_blocking: Any = None
    ooni_accessible: Any = None
    ooni_flags: int | None = None
    missing: tuple[str, ...] = ()
