"""HTTP rules: server-side refusals, block pages, 451, 5xx, content differences, failures.

Responsibility: what the probe's HTTP responses (and their absence) mean once compared with
the fingerprints and with the control's fetch of the same URL.

WHY a verified HTTPS response is treated apart: over TLS whose chain validates for the host,
the response is the site's own (or its CDN's) — a network censor cannot forge it without
interception, which is judged before. So a refusal, an error or different content that
arrives that way is the *site* treating this client differently (server-side blocking,
geo-restriction, region-dependent content), never network interference. Over plain HTTP the
network can inject anything, and OONI's comparison tests apply (lower confidence without a
fingerprint).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from probe import failures as f
from probe.classify.base import (
    CONTENT_DIFF,
    CONTROL_FETCHED,
    FINGERPRINT,
    SAME_ADDRESS,
    Case,
    blocked,
    by_failed_fetch,
    down,
    flaky,
    inconclusive,
    ok,
    without_control,
)
from probe.classify.control import ControlHTTP
from probe.classify.dns import DNS_METHODS, supported
from probe.classify.endpoint import TCP_METHODS, failed_how
from probe.classify.fingerprints import Match
from probe.classify.observations import (
    endpoint,
    host,
    is_bogon,
    secs,
    succeeded,
    tls_of,
    took,
)
from probe.model import HTTPObservation, Verdict, split_url

HTTP_METHODS: dict[str, str] = {
    f.CONNECTION_RESET: "http.reset",
    f.GENERIC_TIMEOUT: "http.timeout",
    f.EOF_ERROR: "http.eof",
}

#: Header names too common to tell two servers apart (OONI web_connectivity's list, plus the
#: hop-by-hop and framing headers every response has).
COMMON_HEADERS = frozenset({
    "date", "content-type", "server", "cache-control", "vary", "set-cookie", "location",
    "expires", "x-powered-by", "content-encoding", "last-modified", "accept-ranges", "pragma",
    "x-frame-options", "etag", "x-content-type-options", "age", "via", "p3p",
    "x-xss-protection", "content-language", "cf-ray", "strict-transport-security", "link",
    "x-varnish", "content-length", "connection", "transfer-encoding", "keep-alive",
})
#: OONI: body lengths match when min/max exceeds this (and neither body was truncated).
BODY_PROPORTION = 0.7
#: OONI: title words of at least this many characters must appear in both titles.
TITLE_WORD = 5

_WORD = re.compile(r"\w+", re.UNICODE)


# --- comparing with the control -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    """OONI's four tests between the probe's final response and the control's.

    Each is True/False, or None when it cannot be computed (missing data). ``differs`` is
    OONI's rule: no difference ⇔ status codes equal AND (body OR headers OR title match).
    """

    same_body: bool
    status: bool
    body_length: bool | None
    headers: bool | None
    title: bool | None

    @property
    def differs(self) -> bool:
        if self.same_body:
            return False
        return not (self.status and (self.body_length or self.headers or self.title))

    def details(self) -> dict[str, Any]:
        return {"status_match": self.status, "body_length_match": self.body_length,
                "headers_match": self.headers, "title_match": self.title,
                "same_body": self.same_body or None}


def _uncommon(headers: Sequence[tuple[str, str]]) -> set[str]:
    return {k.lower() for k, _ in headers} - COMMON_HEADERS


def _long_words(title: str | None) -> set[str]:
    return {w for w in _WORD.findall((title or "").casefold()) if len(w) >= TITLE_WORD}


def compare(h: HTTPObservation, c: ControlHTTP) -> Comparison:
    same = h.body_sha256 is not None and h.body_sha256 == c.body_sha256
    body: bool | None = None
    if h.body_length and c.body_length and not (h.body_truncated or c.body_truncated):
        body = min(h.body_length, c.body_length) / max(h.body_length, c.body_length) \
            > BODY_PROPORTION
    mine, theirs = _uncommon(h.headers), _uncommon(c.headers)
    headers = None if not (mine or theirs) else bool(mine & theirs)
    a, b = _long_words(h.title), _long_words(c.title)
    title = None if not (a or b) else a == b
    return Comparison(same, h.status == c.status, body, headers, title)


def _control_page(case: Case) -> str:
    h = case.control.http
    if h is None:
        return "the control did not fetch it"
    if not h.ok:
        return f"the control's fetch failed ({h.failure})"
    title = f" '{h.title}'" if h.title else ""
    size = f", {h.body_length} bytes" if h.body_length is not None else ""
    return f"the control got HTTP {h.status}{title}{size}"


def _same_page(case: Case, h: HTTPObservation) -> bool:
    """The control got this very page: the site's own content, not something injected."""
    c = case.control.http
    if c is None or not c.ok:
        return False
    if h.body_sha256 is not None and h.body_sha256 == c.body_sha256:
        return True
    return bool(h.title) and h.title == c.title and h.status == c.status


def _response(h: HTTPObservation) -> str:
    title = f" '{h.title}'" if h.title else ""
    return f"HTTP {h.status}{title} for {h.url} from {endpoint(h.ip, h.port)}"


def _common(h: HTTPObservation, **extra: Any) -> dict[str, Any]:
    return dict(step="http", tx_id=h.tx_id, url=h.url, ip=h.ip, port=h.port, status=h.status,
                title=h.title, body_length=h.body_length, body_sha256=h.body_sha256,
                redirect_index=h.redirect_index or None, **extra)


# --- rules on responses ---------------------------------------------------------------------


def server_side(case: Case) -> Verdict | None:
    """The final response is a known server-side refusal (a CDN challenge, a region block).

    WHY: Cloudflare challenges and geo-restriction pages come from the site's side and are
    reported as censorship (or missed) by OONI (ooni/probe#1734, #2661, #2333). They are
    checked before block pages. The site refuses this client; the network does not.
    """
    h = case.final
    if h is None or h.status is None:
        return None
    match = case.ctx.fingerprints.false_positive(h.status, h.headers, h.body, h.title)
    if match is None:
        return None
    if _same_page(case, h):
        return ok(case, CONTROL_FETCHED,
                  f"{_response(h)} is a server-side page ({match.name}) that the control gets "
                  "too: the site serves it to everyone",
                  note="server_side_everywhere", **_common(h), **match.details())
    return inconclusive(
        case, "server_side",
        f"{_response(h)} is a server-side refusal ({match.name}: {match.what}); "
        f"{_control_page(case)} — the site refuses this client, the network does not",
        0.8, **_common(h), **match.details())


def blockpage(case: Case) -> Verdict | None:
    """A response matches a block-page fingerprint (or a redirect points at one).

    WHY: a fingerprint is strong evidence on its own (DESIGN.md). The method names where the
    page came from: after a redirect to another host → ``http.redirect``; from a bogon or a
    known block-page address, or from an address the control does not vouch for →
    ``dns.bogon``/``dns.blockpage`` (the resolver sent the probe there; OONI's "dns" wins
    too); otherwise injected on the path to the real address → ``http.blockpage``. A page the
    control gets as well is the site's own content (a news story quoting a block page, or
    the block-page server itself as the target), so it is not even matched.

    A field fingerprint its source has not confirmed (``Match.confirmed`` False: OONI's
    unassessed rows, vague blocking words; data/field/README.md) is weaker: ``blocked`` only
    when the control fetched the URL and got a different page, at lower confidence; without
    the control's page it is ``inconclusive`` (``blockpage_unconfirmed``).

    A page that matches but arrived over TLS whose chain validates for its host is the
    site's (or its CDN's) own, unless the chain is from a known interception CA (1.7.1) —
    CloudFront's and Akamai's 403 "Access Denied" match the
    generic "Access Denied" fingerprints (cdn.signal.org in the real corpus): ``inconclusive``
    ``server_side``, never ``blocked`` (the module docstring's WHY; OONI: an HTTPS success is
    accessible, ts-017).
    """
    fp = case.ctx.fingerprints
    for h in sorted(case.m.http, key=lambda x: x.redirect_index):
        if h.status is None or _same_page(case, h):
            continue
        match = fp.blockpage(h.status, h.headers, h.body, h.title, h.location)
        if match is None:
            continue
        if _verified(case, h):
            return inconclusive(
                case, "server_side",
                f"{_response(h)} matches a block page ({match.label}: {match.what}) but "
                f"arrived over TLS that validates for {host(split_url(h.url).hostname or '')}: "
                f"it is the site's own page, which a network censor cannot serve without "
                f"interception; {_control_page(case)} — the site refuses this client",
                0.7, **_common(h, location=h.location, **match.details()))
        v = _blockpage_verdict(case, h, match)
        if v is None:
            continue
        if match.confirmed:
            return v
        c = case.control.http
        if c is not None and c.ok:
            return blocked(case, v.method or "http.blockpage", CONTROL_FETCHED,
                           f"{v.evidence}; the fingerprint is not confirmed by its source, but "
                           "the control got a different page", **v.details)
        return inconclusive(
            case, "blockpage_unconfirmed",
            f"{v.evidence}; the fingerprint is not confirmed by its source and there is no "
            "control page to compare with, so it is not enough to call this blocked",
            CONTENT_DIFF, symptom=v.method, **v.details)
    return None


def _verified(case: Case, h: HTTPObservation) -> bool:
    """``h`` came over TLS whose chain validated for its own host and is not from a known
    interception CA (a volunteer who installed Kazakhstan's root validates its chains:
    reference/kazakhstan.md; the interception rule judges those). The issuer is not compared
    with the control's: a CDN's edges present certificates of different intermediates, and
    a false ``blocked`` costs more than missing an unknown root the volunteer installed."""
    if split_url(h.url).scheme != "https":
        return False
    t = tls_of(case.m, h)
    if t is None or t.verified is not True or \
            host(t.server_name) != host(split_url(h.url).hostname or ""):
        return False
    return not t.certificates or case.ctx.fingerprints.interception(t.certificates) is None


def _blockpage_verdict(case: Case, h: HTTPObservation, match: Match) -> Verdict | None:
    """The blocked verdict for a response matching ``match`` (None: not a block page)."""
    fp = case.ctx.fingerprints
    hop_host = host(split_url(h.url).hostname or "")
    to = host(split_url(h.location).hostname or "") if h.location else ""
    if match.by_location and case.control.visited(to):
        return None
    common = _common(h, location=h.location, **match.details())
    tail = f"; {_control_page(case)}" if case.control.queried else ""
    page = f"{match.label}: {match.what}"
    if match.by_location:
        return blocked(case, "http.redirect", FINGERPRINT,
                       f"{_response(h)} is a redirect to {h.location}, a known block page "
                       f"({page}){tail}", **common)
    if hop_host != case.target_host:
        return blocked(case, "http.redirect", FINGERPRINT,
                       f"{_response(h)}, reached by a redirect from {case.m.target.url}, "
                       f"is a block page ({page}){tail}", **common)
    if h.ip is not None and is_bogon(h.ip) and not fp.blockpage_ip(h.ip):
        return blocked(case, "dns.bogon", FINGERPRINT,
                       f"{_response(h)} is a block page ({page}) "
                       f"served from the bogon address the resolver gave{tail}", **common)
    if h.ip is not None and (fp.blockpage_ip(h.ip) or (
            case.control_about(hop_host) and case.control.dns_done
            and supported(case, h.ip, hop_host) is None)):
        return blocked(case, "dns.blockpage", FINGERPRINT,
                       f"{_response(h)} is a block page ({page}) "
                       f"served from {h.ip}, an address the control's resolver does not "
                       f"give{tail}", **common)
    return blocked(case, "http.blockpage", FINGERPRINT,
                   f"{_response(h)} is a block page ({page}){tail}", **common)


def legal_status(case: Case) -> Verdict | None:
    """HTTP 451 Unavailable For Legal Reasons (RFC 7725) that the control does not get.

    WHY: over plain HTTP a 451 is the censor's notice (``http.status``); over HTTPS whose
    chain validates it is the site itself withholding the page in this region (some sites
    answer 451 to whole continents) — server-side, not network interference.
    """
    h = case.final
    if not case.responded or h is None or h.status != 451:
        return None
    c = case.control.http
    if c is not None and c.ok and c.status == 451:
        return None  # the same everywhere: consistent with the control
    common = _common(h)
    if case.https_verified:
        return inconclusive(
            case, "server_side",
            f"{_response(h)} arrived over TLS that validates: the site itself withholds the "
            f"page for legal reasons; {_control_page(case)}", 0.7, **common)
    return blocked(case, "http.status", 0.8 if c is not None and c.ok else 0.6,
                   f"{_response(h)}: Unavailable For Legal Reasons; {_control_page(case)}",
                   **common)


def server_error(case: Case) -> Verdict | None:
    """A 5xx final response.

    WHY: 5xx everywhere is the site failing (``down.http``); 5xx only for the probe over
    verified HTTPS is the site treating this client differently; over plain HTTP it is a
    status difference OONI would call "http-diff" — unless it carries the site's own
    uncommon headers (the rule :func:`http_diff` applies to a 4xx): then the server itself
    answered with an error, shedding load or rate-limiting this client (a 503 from a busy
    site; OONI's own test helper sheds load with 503), not a page a censor injected.
    """
    h = case.final
    if not case.responded or h is None or h.status is None or h.status < 500:
        return None
    common = _common(h)
    c = case.control.http
    if c is None:
        return without_control(case, "down.http", _response(h), **common)
    if c.status is not None and c.status >= 500:
        return down(case, "down.http", SAME_ADDRESS,
                    f"{_response(h)}; the control got HTTP {c.status} too", **common)
    if not c.ok:
        return by_failed_fetch(case, "http", "http.diff", _response(h), **common)
    if case.https_verified:
        return inconclusive(
            case, "server_side",
            f"{_response(h)} over TLS that validates; {_control_page(case)} — the site "
            "answers this client with an error", 0.5, **common)
    if compare(h, c).headers:
        return inconclusive(
            case, "server_side",
            f"{_response(h)}; {_control_page(case)}; the error carries the site's own "
            "headers, so the server itself answered this client with it", 0.5, **common)
    return blocked(case, "http.diff", CONTENT_DIFF - 0.05,
                   f"{_response(h)}; {_control_page(case)}", **common)


def http_diff(case: Case) -> Verdict | None:
    """The final response differs from the control's by OONI's tests.

    WHY: without a fingerprint a difference is weak evidence (CDNs, A/B tests, personalised
    pages). Over verified HTTPS it is the site's own doing: a refusal (4xx where the control
    got the page) is ``server_side``, other differences are region-dependent content (``ok``
    with a note). Over plain HTTP a difference is ``http.diff`` — unless the response
    carries the site's own uncommon headers and refuses with a 4xx (the server refusing, not
    an injected page) — and a response that left the site's hosts through a plain-HTTP
    redirect the control never saw is ``http.redirect``. Without a fingerprint, a page
    *longer* than the control's is not called a block: injected notices replace the page with
    a short one (OONI's QA: "small HTTP/1.0 200 + FIN"), while parking servers and dynamic
    sites answer each visitor differently (a 2020 parked-domain measurement in the OONI
    corpus, explorer fixture 0120200303c6…, got the platform's longer error page) —
    ``inconclusive`` (``content_diff``), the milder error.
    """
    h = case.final
    c = case.control.http
    if not case.responded or h is None or c is None or not c.ok:
        return None
    cmp = compare(h, c)
    if not cmp.differs:
        return None
    common = _common(h, **cmp.details())
    what = f"{_response(h)} differs from the control's page ({_control_page(case)})"
    refused = h.status is not None and 400 <= h.status < 500 and c.status is not None \
        and c.status < 400
    if case.https_verified:
        if refused:
            return inconclusive(case, "server_side",
                                f"{what}; over TLS that validates, so the site itself refuses "
                                "this client", 0.6, **common)
        return ok(case, 0.7, f"{what}; over TLS that validates, so this is the site's own "
                  "content for this region", note="region_content", **common)
    if refused and cmp.headers:
        return inconclusive(case, "server_side",
                            f"{what}; it carries the site's own headers, so the server itself "
                            "refuses this client", 0.5, **common)
    if c.status is not None and c.status >= 400 and h.status is not None and h.status < 400:
        return ok(case, 0.5, f"{what}; the control was refused but the probe got the page",
                  note="control_refused", **common)
    hosts = {host(split_url(x.url).hostname or "") for x in case.m.http}
    foreign = hosts - {case.target_host} - {
        host(split_url(u).hostname or "") for u in c.redirect_chain}
    if foreign and h.redirect_index:
        return blocked(case, "http.redirect", CONTENT_DIFF,
                       f"{what}; the probe was redirected to {', '.join(sorted(foreign))}, "
                       "which the control never visited", **common)
    if (h.body_length is not None and c.body_length is not None and not h.body_truncated
            and not c.body_truncated and h.body_length > c.body_length):
        return inconclusive(
            case, "content_diff",
            f"{what}; no fingerprint, and the probe got a longer page than the control: more "
            "likely the site's own varying content than an injected notice, which replaces "
            "the page with a short one", 0.4, **common)
    return blocked(case, "http.diff", CONTENT_DIFF, what, **common)


# --- the failing HTTP step -----------------------------------------------------------------


def http_failure(case: Case) -> Verdict | None:
    """The HTTP exchange for the last URL failed (or ended without a status).

    WHY: a reset, timeout or EOF where the control fetched the page is interference (OONI's
    QA: RST on the Host header, a redirect then reset/EOF/timeout → "http-failure"); the
    same failure at the control is the site. Too many redirects or a broken Location is the
    site's fault when the control sees it too (OONI: "failure, not censorship").
    """
    a = case.attempt
    if not a.http or any(succeeded(h) for h in a.http):
        return None
    h = a.http[-1]
    failure = h.failure or f.unknown("no response status")
    status = f" (status {h.status} received)" if h.status is not None else ""
    what = (f"HTTP {h.method} {h.url} via {endpoint(h.ip, h.port)} {failed_how(failure)} "
            f"after {secs(took(h))}{status}")
    common = dict(step="http", tx_id=h.tx_id, failure=failure, url=h.url, ip=h.ip,
                  port=h.port, status=h.status, redirect_index=h.redirect_index or None)
    cv = case.control
    c = cv.http
    if failure in (f.HTTP_TOO_MANY_REDIRECTS, f.HTTP_INVALID_REDIRECT_LOCATION_HOST):
        return redirect_failure(case, h, failure, what, common)
    if failure.startswith("dns_"):
        method, down_method = DNS_METHODS.get(failure, "dns.servfail"), "down.dns"
    elif failure in (f.CONNECTION_REFUSED, f.HOST_UNREACHABLE, f.NETWORK_UNREACHABLE):
        method, down_method = TCP_METHODS[failure], "down.tcp"
    elif failure.startswith("ssl_"):
        method, down_method = "tls.cert_invalid", "down.tls"
    else:
        method, down_method = HTTP_METHODS.get(failure, "http.error"), "down.http"
    if cv.available and cv.disagree:
        return flaky(case, method, what, **common)
    if c is None:
        return without_control(case, method, what, **common)
    if c.ok:
        if method in ("http.error", "tls.cert_invalid"):
            return inconclusive(case, "unexplained",
                                f"{what}; {_control_page(case)}", 0.4, symptom=method,
                                **common)
        return blocked(case, method, CONTROL_FETCHED + 0.1,
                       f"{what}; {_control_page(case)}", **common)
    if c.status is not None:
        return down(case, down_method, 0.6, f"{what}; {_control_page(case)}", **common)
    return by_failed_fetch(case, down_method.split(".")[1], method, what, **common)


def redirect_failure(case: Case, h: HTTPObservation, failure: str, what: str,
                      common: dict[str, Any]) -> Verdict:
    c = case.control.http
    if c is None:
        return without_control(case, "http.redirect", what, **common)
    if not c.ok:
        return by_failed_fetch(case, "http", "http.redirect", what, **common)
    hosts = {host(split_url(x.url).hostname or "") for x in case.m.http}
    hosts |= {host(split_url(x.location).hostname or "") for x in case.m.http if x.location}
    foreign = hosts - {case.target_host, ""} - {
        host(split_url(u).hostname or "") for u in c.redirect_chain}
    if foreign:
        return blocked(case, "http.redirect", CONTENT_DIFF,
                       f"{what}; the redirects went to {', '.join(sorted(foreign))}, which the "
                       f"control never visited; {_control_page(case)}", **common)
    if failure == f.HTTP_INVALID_REDIRECT_LOCATION_HOST and split_url(h.url).scheme == "http":
        return blocked(case, "http.redirect", CONTENT_DIFF,
                       f"{what}; a broken redirect over plain HTTP that the control does not "
                       f"get ({_control_page(case)})", **common)
    return inconclusive(case, "server_side",
                        f"{what}; the redirects stay on the site's own hosts while "
                        f"{_control_page(case)} — the site redirects this client differently",
                        0.5, **common)
