"""The control vantage as typed values: read the control helper's answers once, defensively.

Responsibility: turn ``Measurement.control`` (one v1 answer dict per helper queried, see
:mod:`probe.control.protocol`; the classifier must not import it, so the shape is restated
here) into a :class:`ControlView` the rules can ask simple questions of — "did the control
resolve the name", "did it connect to this address", "did it complete a handshake with a valid
chain", "did it fetch the page". Missing or malformed fields read as "not measured", never as
success, so a partial answer cannot make a failure look like blocking.

Fields read from each answer (everything else is ignored)::

    control            helper URL                       control_failure   None | why no answer
    failure            None | why the helper failed     url               the URL it measured
    dns.addrs          [ip, ...]                        dns.failure       None | failure string
    endpoints["ip:port"].origin / tcp_failure / tls_failure / verified / verify_error /
                         chain_sha256 / spki_sha256 / issuers / tls_handshake_time
    http.status / failure / headers / body_length / body_sha256 / title / redirect_chain /
         elapsed / throughput_bps

Several helpers: their answers are merged — addresses and endpoints are united, a success by
any helper counts as the control succeeding, and disagreement is reported (``flaky``).
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from probe import failures as f
from probe.model import split_url

#: Type tuples for ``isinstance``: a ``X | Y`` union is checked ~5x slower (types.UnionType),
#: and a bare ``Mapping`` goes through the ABC machinery; a dict is recognised by its type
#: first (the answers are JSON objects). Same truth, checked once per field of every answer.
_MAPPING = (dict, Mapping)
_SEQUENCE = (list, tuple)
_NUMBER = (int, float)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, _SEQUENCE):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


@functools.lru_cache(maxsize=16384)
def _ip(value: str) -> str | None:  # cached: the same addresses recur (~10 µs to parse one)
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        return None


def split_endpoint(key: str) -> tuple[str, int] | None:
    """``("1.2.3.4", 443)`` of ``1.2.3.4:443`` / ``[::1]:443``; None when malformed."""
    host, sep, port = key.rpartition(":")
    if not sep or not port.isdigit():
        return None
    ip = _ip(host)
    return (ip, int(port)) if ip is not None else None


@dataclass(frozen=True, slots=True)
class ControlEndpoint:
    """What one helper saw connecting to one address (the probe's or its own).

    ``tcp_failure``/``tls_failure`` None = success *if attempted*: ``tcp_done``/``tls_done``
    say whether the step was measured at all.
    """

    helper: str
    ip: str
    port: int
    origin: str
    tcp_done: bool
    tcp_failure: str | None
    tls_done: bool
    tls_failure: str | None
    verified: bool | None
    verify_error: str | None
    chain_sha256: tuple[str, ...]
    spki_sha256: tuple[str, ...]
    issuers: tuple[str, ...]
    tls_handshake_time: float | None

    @property
    def connected(self) -> bool:
        return self.tcp_done and self.tcp_failure is None

    @property
    def handshake_ok(self) -> bool:
        return self.connected and self.tls_done and self.tls_failure is None

    @property
    def valid(self) -> bool:
        """Completed a handshake whose chain validated for the host."""
        return self.handshake_ok and self.verified is True

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoint": f"{_fmt(self.ip, self.port)}", "origin": self.origin}
        if self.tcp_done:
            out["tcp_failure"] = self.tcp_failure
        if self.tls_done:
            out.update(tls_failure=self.tls_failure, verified=self.verified,
                       verify_error=self.verify_error,
                       leaf_sha256=self.chain_sha256[0] if self.chain_sha256 else None,
                       issuer=self.issuers[0] if self.issuers else None,
                       tls_handshake_time=self.tls_handshake_time)
        return out


@dataclass(frozen=True, slots=True)
class ControlHTTP:
    """One helper's HTTP fetch of the URL (redirects followed)."""

    helper: str
    status: int | None
    failure: str | None
    headers: tuple[tuple[str, str], ...]
    body_length: int | None
    body_sha256: str | None
    title: str | None
    redirect_chain: tuple[str, ...]
    elapsed: float | None
    throughput_bps: float | None
    body_truncated: bool = False

    @property
    def ok(self) -> bool:
        """A response arrived without failure."""
        return self.status is not None and self.failure is None

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "failure": self.failure, "title": self.title,
                "body_length": self.body_length, "elapsed": self.elapsed,
                "throughput_bps": self.throughput_bps,
                "redirect_chain": list(self.redirect_chain) or None}


@dataclass(frozen=True, slots=True)
class ControlView:
    """Every control answer of one measurement, merged.

    ``helpers`` answered; ``failed`` lists ``(helper, why)`` for those that did not.
    ``hostname`` is the host of the URL the control measured (its DNS and endpoints are about
    that name only). ``dns_addrs`` is the union of the helpers' answers; ``dns_failure`` is
    the failure when no helper resolved the name (None when one did or none tried).
    ``https`` holds each helper's fetch, best first (a success before a failure).
    """

    helpers: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    hostname: str | None = None
    dns_done: bool = False
    dns_addrs: tuple[str, ...] = ()
    dns_failure: str | None = None
    endpoints: tuple[ControlEndpoint, ...] = ()
    https: tuple[ControlHTTP, ...] = ()

    @property
    def available(self) -> bool:
        """At least one helper answered."""
        return bool(self.helpers)

    @property
    def queried(self) -> bool:
        return bool(self.helpers or self.failed)

    @property
    def http(self) -> ControlHTTP | None:
        """The best fetch (a success if any helper had one)."""
        return self.https[0] if self.https else None

    @property
    def fetched(self) -> bool:
        return self.http is not None and self.http.ok

    @property
    def resolved(self) -> bool:
        return bool(self.dns_addrs)

    @property
    def disagree(self) -> bool:
        """Some helpers fetched the page and others failed: the control itself is flaky."""
        return any(h.ok for h in self.https) and any(not h.ok for h in self.https)

    def at(self, ip: str, port: int | None = None) -> tuple[ControlEndpoint, ...]:
        """The endpoints measured at ``ip`` (and ``port`` when given)."""
        key = _ip(ip) or ip
        return tuple(e for e in self.endpoints
                     if e.ip == key and (port is None or e.port == port))

    def about(self, hostname: str) -> bool:
        """True when the control's DNS and endpoints are about ``hostname``."""
        return self.hostname is not None and self.hostname == hostname

    def visited(self, hostname: str) -> bool:
        """The control's fetch went through ``hostname`` (the URL's host or a redirect)."""
        if self.about(hostname):
            return True
        return any((split_url(u).hostname or "").rstrip(".").lower() == hostname
                   for h in self.https for u in h.redirect_chain)

    def summary(self) -> dict[str, Any]:
        """The control fields a verdict's details carry."""
        out: dict[str, Any] = {"helpers": list(self.helpers)}
        if self.failed:
            out["failed"] = [{"helper": h, "failure": why} for h, why in self.failed]
        if self.dns_done:
            out["dns_addrs"] = list(self.dns_addrs)
            out["dns_failure"] = self.dns_failure
        if self.http is not None:
            out["http"] = self.http.summary()
        return out


def _fmt(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


#: The last ``(answers, view)`` read: judging a measurement and taking its population fact
#: read the same answers one after the other (a measurement's ``control`` is a tuple).
_last: tuple[object, ControlView | None] = ((), None)


def read(answers: Sequence[Mapping[str, Any]]) -> ControlView:
    """Merge the control answers of one measurement into a :class:`ControlView`."""
    global _last
    seen, view = _last
    if answers is seen and view is not None and isinstance(answers, tuple):
        return view
    view = _read(answers)
    _last = (answers, view)
    return view


def _read(answers: Sequence[Mapping[str, Any]]) -> ControlView:
    helpers: list[str] = []
    failed: list[tuple[str, str]] = []
    url: str | None = None
    addrs: list[str] = []
    dns_failures: list[str] = []
    dns_done = False
    endpoints: list[ControlEndpoint] = []
    https: list[ControlHTTP] = []
    for i, answer in enumerate(answers):
        if not isinstance(answer, _MAPPING):
            failed.append((f"control {i}", "unknown_failure: malformed answer"))
            continue
        helper = _str(answer.get("control")) or f"control {i}"
        why = _str(answer.get("control_failure")) or _str(answer.get("failure"))
        if why is not None:
            failed.append((helper, why))
            continue
        helpers.append(helper)
        url = url or _str(answer.get("url"))
        dns = answer.get("dns")
        if isinstance(dns, _MAPPING):
            dns_done = True
            for a in _strs(dns.get("addrs")):
                ip = _ip(a)
                if ip is not None and ip not in addrs:
                    addrs.append(ip)
            failure = _str(dns.get("failure"))
            if failure is not None:
                dns_failures.append(failure)
        eps = answer.get("endpoints")
        if isinstance(eps, _MAPPING):
            for key, e in eps.items():
                where = split_endpoint(str(key))
                if where is None or not isinstance(e, _MAPPING):
                    continue
                endpoints.append(_endpoint(helper, where, e))
        h = answer.get("http")
        if isinstance(h, _MAPPING):
            fetch = _http(helper, h)
            if fetch.status is None and fetch.failure is None:
                # The helper stopped before HTTP: name the step that stopped it.
                mine = [e for e in endpoints if e.helper == helper]
                fetch = replace(fetch, failure=_why_no_fetch(dns, mine))
            https.append(fetch)
    https.sort(key=lambda h: not h.ok)
    hostname = (split_url(url).hostname or "").rstrip(".").lower() if url else None
    return ControlView(
        helpers=tuple(helpers), failed=tuple(failed), url=url, hostname=hostname or None,
        dns_done=dns_done, dns_addrs=tuple(addrs),
        dns_failure=None if addrs or not dns_failures else dns_failures[0],
        endpoints=tuple(endpoints), https=tuple(https),
    )


def _why_no_fetch(dns: Any, endpoints: Sequence[ControlEndpoint]) -> str:
    """The failure that kept a helper from sending its HTTP request (its measure step sends
    none when DNS, every connect or every handshake failed, or no chain validated)."""
    if isinstance(dns, _MAPPING) and not _strs(dns.get("addrs")) and _str(dns.get("failure")):
        return str(dns["failure"])
    own = [e for e in endpoints if e.origin in ("control", "both")] or list(endpoints)
    if own and all(e.tcp_done and e.tcp_failure for e in own):
        return own[0].tcp_failure or ""
    tls = [e for e in own if e.tls_done]
    if tls and all(e.tls_failure for e in tls):
        return tls[0].tls_failure or ""
    if tls and all(e.verified is False for e in tls):
        return tls[0].verify_error or f.SSL_INVALID_CERTIFICATE
    return f.unknown("no HTTP response")


def _endpoint(helper: str, where: tuple[str, int], e: Mapping[str, Any]) -> ControlEndpoint:
    tcp_done = "tcp_failure" in e
    tls_keys = ("tls_failure", "verified", "chain_sha256", "tls_handshake_time")
    tls_done = tcp_done and e.get("tcp_failure") is None and any(
        e.get(k) not in (None, [], ()) for k in tls_keys)
    verified = e.get("verified")
    return ControlEndpoint(
        helper=helper, ip=where[0], port=where[1], origin=_str(e.get("origin")) or "control",
        tcp_done=tcp_done, tcp_failure=_str(e.get("tcp_failure")),
        tls_done=tls_done, tls_failure=_str(e.get("tls_failure")),
        verified=verified if isinstance(verified, bool) else None,
        verify_error=_str(e.get("verify_error")),
        chain_sha256=tuple(s.lower() for s in _strs(e.get("chain_sha256"))),
        spki_sha256=tuple(s.lower() for s in _strs(e.get("spki_sha256"))),
        issuers=_strs(e.get("issuers")),
        tls_handshake_time=_num(e.get("tls_handshake_time")),
    )


def _http(helper: str, h: Mapping[str, Any]) -> ControlHTTP:
    headers: list[tuple[str, str]] = []
    raw = h.get("headers")
    if isinstance(raw, _SEQUENCE):
        for pair in raw:
            if (isinstance(pair, _SEQUENCE) and len(pair) == 2
                    and isinstance(pair[0], str) and isinstance(pair[1], str)):
                headers.append((pair[0], pair[1]))
    elif isinstance(raw, _MAPPING):
        headers = [(str(k), str(v)) for k, v in raw.items()]
    status = _int(h.get("status"))
    return ControlHTTP(
        helper=helper, status=status, failure=_str(h.get("failure")), headers=tuple(headers),
        body_length=_int(h.get("body_length")), body_sha256=_str(h.get("body_sha256")),
        title=_str(h.get("title")), redirect_chain=_strs(h.get("redirect_chain")),
        elapsed=_num(h.get("elapsed")), throughput_bps=_num(h.get("throughput_bps")),
        body_truncated=h.get("body_truncated") is True,
    )
