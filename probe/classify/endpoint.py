"""Endpoint rules: TLS interception, and TCP/TLS failures judged against the control.

Responsibility: what the probe's TCP connects and TLS handshakes mean once compared with the
control's connects and handshakes to the same addresses (the control helper measures the
probe's addresses as well as its own).

WHY compare at the same address: a failure the control also sees at that address is the
site (or that address) being down; a failure the control does not see there is interference
on the probe's path. "The control fetched the page" without per-address data is weaker
evidence (the control may have used other addresses). OONI's analysis pipeline uses the same
idea ("TCP failure, control OK" → blocked; "control also failing" → down).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from probe import failures as f
from probe.classify.base import (
    CONTROL_FETCHED,
    FINGERPRINT,
    SAME_ADDRESS,
    Case,
    blocked,
    by_failed_fetch,
    down,
    flaky,
    inconclusive,
    verdict,
    without_control,
)
from probe.classify.control import ControlEndpoint
from probe.classify.dns import supported
from probe.classify.observations import (
    Attempt,
    endpoint,
    host,
    is_ipv6,
    secs,
    sni_retries,
    took,
)
from probe.model import TCPObservation, TLSObservation, Verdict, VerdictKind, split_url

TCP_METHODS: dict[str, str] = {
    f.GENERIC_TIMEOUT: "tcp.timeout",
    f.CONNECTION_RESET: "tcp.reset",
    # A RST in answer to the SYN (iptables REJECT --reject-with tcp-reset) reads as
    # "connection refused" to the client: where the control connects, that is a reset.
    f.CONNECTION_REFUSED: "tcp.reset",
    f.HOST_UNREACHABLE: "tcp.unreachable",
    f.NETWORK_UNREACHABLE: "tcp.unreachable",
}
TLS_METHODS: dict[str, str] = {
    f.CONNECTION_RESET: "tls.reset",
    f.GENERIC_TIMEOUT: "tls.timeout",
    f.EOF_ERROR: "tls.eof",
    # A TLS alert or garbage instead of the ServerHello: an injected alert (extension of the
    # DESIGN vocabulary; OONI counts it as "http-failure").
    f.SSL_FAILED_HANDSHAKE: "tls.handshake",
}
#: IPv6 failures that say the probe has no IPv6 route, not that the site is unreachable
#: (broken local IPv6 producing false "tcp_ip" blocking: ooni/probe#2456, #2192).
LOCAL_V6 = (f.NETWORK_UNREACHABLE, f.HOST_UNREACHABLE)

_TCP_RANK = (f.CONNECTION_RESET, f.CONNECTION_REFUSED, f.GENERIC_TIMEOUT, f.HOST_UNREACHABLE,
             f.NETWORK_UNREACHABLE)
_TLS_RANK = (f.CONNECTION_RESET, f.EOF_ERROR, f.GENERIC_TIMEOUT, f.SSL_FAILED_HANDSHAKE)

_WORDS = {f.GENERIC_TIMEOUT: "timed out", f.CONNECTION_RESET: "was reset",
          f.CONNECTION_REFUSED: "was refused", f.EOF_ERROR: "was closed (EOF)",
          f.HOST_UNREACHABLE: "failed: host unreachable",
          f.NETWORK_UNREACHABLE: "failed: network unreachable",
          f.SSL_FAILED_HANDSHAKE: "failed (TLS alert or garbage)"}


def failed_how(failure: str | None) -> str:
    return _WORDS.get(failure or "", f"failed: {failure}")


_Obs = TypeVar("_Obs", TCPObservation, TLSObservation)


def _pick(items: Sequence[_Obs], rank: Sequence[str]) -> _Obs:
    return min(items, key=lambda o: rank.index(o.failure) if o.failure in rank else len(rank))


def _chain_text(t: TLSObservation) -> str:
    if not t.certificates:
        return "no certificate"
    leaf = t.certificates[0]
    return f"issuer {leaf.issuer}, leaf SHA-256 {leaf.sha256[:16]}…"


def _chain_details(t: TLSObservation) -> dict[str, object]:
    return {
        "issuers": [c.issuer for c in t.certificates],
        "subjects": [c.subject for c in t.certificates],
        "chain_sha256": [c.sha256 for c in t.certificates],
        "spki_sha256": [c.spki_sha256 for c in t.certificates],
        "verified": t.verified, "verify_error": t.verify_error,
    }


def _control_chain_text(case: Case, eps: Sequence[ControlEndpoint]) -> str:
    if not case.control.available:
        return "no control measurement"
    e = next((e for e in eps if e.valid), None)
    if e is None:
        return "the control saw no valid chain"
    issuer = f"issuer {e.issuers[0]}" if e.issuers else "a chain"
    at = f" at {endpoint(e.ip, e.port)}"
    return f"the control saw {issuer}{at}, which validates"


# --- interception ------------------------------------------------------------------------------


def interception(case: Case) -> Verdict | None:
    """A presented chain from a known interception CA, or one that differs from the control's
    and does not validate at an address the control vouches for.

    WHY: Kazakhstan's 2019, 2020 and 2021-24 interception used national CAs whose names and
    fingerprints are public (reference/kazakhstan.md); a match is proof on its own, even when
    the volunteer installed the root and the chain validates. An unknown rogue CA shows as a
    chain the control does not see that fails validation while the control's validates; the
    address must be the site's (else the DNS lied: ``dns.inconsistent``). OONI does not model
    interception at all.
    """
    fp = case.ctx.fingerprints
    for t in case.m.tls:
        if t.failure is not None or not t.certificates:
            continue
        match = fp.interception(t.certificates)
        if match is None:
            continue
        seen = _control_chain_text(case, case.control.at(t.ip) or case.control.endpoints)
        return verdict(
            case, VerdictKind.INTERCEPTED, "tls.mitm", FINGERPRINT,
            f"TLS handshake with {endpoint(t.ip, t.port)} (SNI {t.server_name}) presented a "
            f"chain from the known interception CA {match.name} ({match.what}; "
            f"{_chain_text(t)}); {seen}",
            step="tls", tx_id=t.tx_id, ip=t.ip, port=t.port, server_name=t.server_name,
            **_chain_details(t), **match.details())
    cv = case.control
    for t in case.attempt.tls:
        hostname = host(t.server_name)
        if (t.failure is not None or t.verified is not False or not t.certificates
                or not case.control_about(hostname)):
            continue
        valid = [e for e in cv.endpoints if e.valid]
        if not valid:
            continue  # no valid chain anywhere: a bad certificate, judged by tls_failure
        leaf = t.certificates[0]
        if any(leaf.sha256.lower() == (e.chain_sha256[:1] or ("",))[0] for e in cv.endpoints):
            continue  # the same certificate the control saw: a trust-store difference
        why = supported(case, t.ip, hostname)
        if why is None:
            continue  # not the site's address: judged as DNS
        same_ip = [e for e in valid if e.ip == t.ip]
        retries = [r for r in sni_retries(case.m, hostname) if r.ip == t.ip
                   and r.failure is None and r.certificates
                   and r.certificates[-1].issuer != leaf.issuer]
        return verdict(
            case, VerdictKind.INTERCEPTED, "tls.mitm",
            SAME_ADDRESS + (0.05 if same_ip else 0.0),
            f"TLS certificate from {endpoint(t.ip, t.port)} (SNI {t.server_name}) does not "
            f"validate ({t.verify_error or 'invalid'}; {_chain_text(t)}) and is not the one "
            f"the control saw; {_control_chain_text(case, same_ip or valid)}; the address is "
            f"the site's ({why})",
            step="tls", tx_id=t.tx_id, ip=t.ip, port=t.port, server_name=t.server_name,
            control_endpoint=(same_ip or valid)[0].summary(),
            innocuous_sni_issuer=retries[0].certificates[0].issuer if retries else None,
            **_chain_details(t))
    return None


# --- TCP ----------------------------------------------------------------------------------------


#: The port of a URL without one, by scheme.
_SCHEME_PORTS = {"http": 80, "https": 443}


def _fetch_connects(a: Attempt) -> tuple[TCPObservation, ...]:
    """The last URL's connects to its own port (all of them when none used it).

    WHY: for an ``http://`` URL Web Connectivity 0.5 also connects to port 443 of every
    address, only to check with a TLS handshake that the address serves the site (ooni/spec
    ts-017, "Extension E001: TLS-based IP address validation"). Those connects say nothing
    about whether the page could be fetched: port 80 timing out everywhere while 443 answers
    is a failed fetch, not a success.
    """
    try:
        parts = split_url(a.url)
        port = parts.port or _SCHEME_PORTS.get(parts.scheme)
    except ValueError:
        return a.tcp
    own = tuple(c for c in a.tcp if c.port == port)
    return own or a.tcp


def tcp_failure(case: Case) -> Verdict | None:
    """Every TCP connect for the last URL (to its own port) failed."""
    a = case.attempt
    tcp = _fetch_connects(a)
    if not tcp or any(c.failure is None for c in tcp):
        return None
    relevant = [c for c in tcp if not (is_ipv6(c.ip) and c.failure in LOCAL_V6)]
    common_all = [{"ip": x.ip, "port": x.port, "failure": x.failure} for x in tcp]
    cv = case.control
    if not relevant:
        c = tcp[0]
        return inconclusive(
            case, "local_ipv6",
            f"every address tried for {a.hostname} was IPv6 and the probe has no IPv6 route "
            f"({c.failure}); nothing is known about IPv4",
            step="tcp", tx_id=c.tx_id, failure=c.failure, ip=c.ip, port=c.port,
            failures=common_all, **a.location_details())
    c = _pick(relevant, _TCP_RANK)
    method = TCP_METHODS.get(c.failure or "", "tcp.error")
    n = len({(x.ip, x.port) for x in relevant})
    what = (f"TCP connect to {endpoint(c.ip, c.port)} {failed_how(c.failure)} after "
            f"{secs(took(c))}" + (f" (all {n} addresses failed)" if n > 1 else ""))
    common = dict(step="tcp", tx_id=c.tx_id, failure=c.failure, ip=c.ip, port=c.port,
                  hostname=a.hostname, failures=common_all, **a.location_details())
    if (not cv.available and all(x.failure == f.NETWORK_UNREACHABLE for x in relevant)):
        return inconclusive(case, "local_outage",
                            f"{what}; no route to any address and no control answered: the "
                            "probe's own link looks down", 0.5, **common)
    if cv.available and cv.disagree:
        return flaky(case, method, what, **common)
    if case.control_about(a.hostname):
        here = cv.at(c.ip, c.port)
        if any(e.connected for e in here):
            return blocked(case, method, SAME_ADDRESS,
                           f"{what}; the control connected to the same address", **common)
        if here and all(e.tcp_done for e in here):
            others = [e for e in cv.endpoints if e.connected]
            if others and cv.fetched:
                return down(case, "down.tcp", 0.6,
                            f"{what}; the control cannot connect to it either "
                            f"({here[0].tcp_failure}) but reached the site at "
                            f"{endpoint(others[0].ip, others[0].port)}", **common)
            return down(case, "down.tcp", SAME_ADDRESS,
                        f"{what}; the control's connect failed too ({here[0].tcp_failure})",
                        **common)
        reached = [e for e in cv.endpoints if e.connected]
        if reached:
            return blocked(case, method, CONTROL_FETCHED,
                           f"{what}; the control connected to the site at "
                           f"{endpoint(reached[0].ip, reached[0].port)}", **common)
        if cv.endpoints:
            return down(case, "down.tcp", CONTROL_FETCHED,
                        f"{what}; the control could not connect to any address either "
                        f"({cv.endpoints[0].tcp_failure})", **common)
    return _by_control_fetch(case, method, "down.tcp", what, **common)


def _by_control_fetch(case: Case, method: str, down_method: str, what: str,
                      **common: object) -> Verdict:
    """Judge a failure by the control's fetch alone (no per-address data)."""
    cv = case.control
    h = cv.http
    if h is not None and (h.ok or h.status is not None):
        hostname = case.attempt.hostname
        through = (f" through {hostname}" if hostname != case.target_host
                   and cv.visited(hostname) else "")
        return blocked(case, method, CONTROL_FETCHED if cv.visited(hostname) else 0.6,
                       f"{what}; the control fetched {cv.url or 'the page'}{through} "
                       f"(HTTP {h.status})", **common)
    if h is not None and h.failure:
        return by_failed_fetch(case, down_method.split(".")[1], method, what, **common)
    return without_control(case, method, what, **common)


# --- TLS ----------------------------------------------------------------------------------------


#: Input schemes whose connections are TLS: web HTTPS, and the encrypted resolvers of the
#: ``dnscheck`` test (a DoT input has no HTTP exchange to make its attempt's URL https).
TLS_SCHEMES = ("https", "doh", "dot")


def tls_failure(case: Case) -> Verdict | None:
    """Every TLS handshake for the last URL failed, or every completed one presented a chain
    that does not validate (interception having been ruled out by :func:`interception`)."""
    a = case.attempt
    if a.scheme not in TLS_SCHEMES or not a.tls:
        return None
    done = [t for t in a.tls if t.failure is None]
    if not done:
        return _handshake_failed(case, list(a.tls))
    if all(t.verified is False for t in done):
        return _cert_invalid(case, done[0])
    return None


def _handshake_failed(case: Case, handshakes: list[TLSObservation]) -> Verdict:
    """WHY: Kazakhstan's dominant technique since 2023 is a drop after the ClientHello (the
    handshake times out) and earlier an SNI-triggered reset; OONI's QA lists RST/FIN on SNI and
    a silent drop after the ClientHello as blocking. A successful handshake with an innocuous
    SNI to the same address shows the SNI is the trigger, not the server."""
    a = case.attempt
    t = _pick(handshakes, _TLS_RANK)
    method = TLS_METHODS.get(t.failure or "", "tls.handshake")
    retries = [r for r in sni_retries(case.m, a.hostname) if r.ip == t.ip and r.failure is None]
    n = len(handshakes)
    what = (f"TLS handshake with {endpoint(t.ip, t.port)} (SNI {t.server_name}) "
            f"{failed_how(t.failure)} after the ClientHello ({secs(took(t))})"
            + (f" (all {n} handshakes failed)" if n > 1 else ""))
    sni = (f"; an innocuous SNI ({retries[0].server_name}) to the same address succeeded"
           if retries else "")
    bonus = 0.1 if retries else 0.0
    common = dict(step="tls", tx_id=t.tx_id, failure=t.failure, ip=t.ip, port=t.port,
                  server_name=t.server_name,
                  failures=[{"ip": x.ip, "port": x.port, "failure": x.failure}
                            for x in handshakes],
                  innocuous_sni=retries[0].server_name if retries else None,
                  innocuous_sni_tx_id=retries[0].tx_id if retries else None,
                  **a.location_details())
    cv = case.control
    if cv.available and cv.disagree:
        return flaky(case, method, what + sni, **common)
    if case.control_about(a.hostname):
        here = [e for e in cv.at(t.ip, t.port) if e.tls_done]
        ok_here = [e for e in here if e.handshake_ok]
        if ok_here:
            e = ok_here[0]
            timing = (f" in {secs(e.tls_handshake_time)}" if e.tls_handshake_time is not None
                      else "")
            cert = " with a valid certificate" if e.valid else ""
            return blocked(case, method, SAME_ADDRESS + bonus,
                           f"{what}; the control completed it{timing}{cert}{sni}",
                           control_endpoint=e.summary(), **common)
        if here:
            return down(case, "down.tls", SAME_ADDRESS - (0.2 if retries else 0.0),
                        f"{what}; the control's handshake with it failed too "
                        f"({here[0].tls_failure}){sni}", control_endpoint=here[0].summary(),
                        **common)
        elsewhere = [e for e in cv.endpoints if e.handshake_ok]
        if elsewhere:
            return blocked(case, method, CONTROL_FETCHED + bonus,
                           f"{what}; the control completed a handshake with the site at "
                           f"{endpoint(elsewhere[0].ip, elsewhere[0].port)}{sni}",
                           control_endpoint=elsewhere[0].summary(), **common)
        failed = [e for e in cv.endpoints if e.tls_done]
        if failed:
            return down(case, "down.tls", CONTROL_FETCHED,
                        f"{what}; the control's handshakes failed too "
                        f"({failed[0].tls_failure})", **common)
    if retries and not cv.available:
        # The server at that address completes a handshake, only not for this name: no
        # server refuses its own name, so the SNI is the trigger even without a control
        # (OONI's QA can only say "unknown" when the control is unreachable).
        why = "no control measurement" if not cv.failed else \
            f"the control helper did not answer ({cv.failed[0][1]})"
        return blocked(case, method, 0.75,
                       f"{what}{sni}; {why}, but no server refuses its own name", **common)
    return _by_control_fetch(case, method, "down.tls", what + sni, **common)


def _cert_invalid(case: Case, t: TLSObservation) -> Verdict:
    """WHY: a certificate that is bad everywhere (expired, wrong host, unknown CA) is the
    site's fault: OONI's QA counts it as down, not blocked. Only a chain that the control does
    not see is interference (handled by :func:`interception`)."""
    a = case.attempt
    error = t.verify_error or f.SSL_INVALID_CERTIFICATE
    what = (f"TLS certificate from {endpoint(t.ip, t.port)} (SNI {t.server_name}) does not "
            f"validate: {error} ({_chain_text(t)})")
    common = dict(step="tls", tx_id=t.tx_id, failure=error, ip=t.ip, port=t.port,
                  server_name=t.server_name, subject=t.certificates[0].subject
                  if t.certificates else None, issuer=t.certificates[0].issuer
                  if t.certificates else None,
                  leaf_sha256=t.certificates[0].sha256 if t.certificates else None,
                  spki_sha256=t.certificates[0].spki_sha256 if t.certificates else None,
                  verify_error=t.verify_error, **a.location_details())
    cv = case.control
    if case.control_about(a.hostname):
        tls_eps = [e for e in cv.endpoints if e.handshake_ok]
        valid = [e for e in tls_eps if e.valid]
        if tls_eps and not valid:
            e = tls_eps[0]
            return down(case, "down.tls", SAME_ADDRESS,
                        f"{what}; the control's certificate does not validate either "
                        f"({e.verify_error or 'invalid'}): bad everywhere",
                        control_endpoint=e.summary(), **common)
        if valid:
            leaf = t.certificates[0].sha256.lower() if t.certificates else ""
            if any(e.chain_sha256[:1] == (leaf,) for e in valid):
                return inconclusive(
                    case, "trust_store",
                    f"{what}; the control saw the same certificate and it validated there: "
                    "the probe's trust anchors or clock differ", 0.5,
                    control_endpoint=valid[0].summary(), **common)
            return verdict(case, VerdictKind.INTERCEPTED, "tls.mitm", 0.6,
                           f"{what}; {_control_chain_text(case, valid)}",
                           control_endpoint=valid[0].summary(), **_chain_details(t), **common)
    h = cv.http
    if h is not None and (h.failure or "").startswith("ssl_"):
        return down(case, "down.tls", CONTROL_FETCHED,
                    f"{what}; the control's fetch failed on the certificate too ({h.failure})",
                    **common)
    if h is not None and h.ok and cv.about(a.hostname) and a.scheme == "https":
        return verdict(case, VerdictKind.INTERCEPTED, "tls.mitm", 0.6,
                       f"{what}; the control fetched {cv.url} over HTTPS with a valid chain",
                       **_chain_details(t), **common)
    return without_control(case, "tls.cert_invalid", what, **common)
