"""The verdict for one measurement: the ordered rules, and the per-run entry point.

Rules for this module (and the whole package):

* Pure: imports only :mod:`probe.model`, :mod:`probe.failures`, the standard library and
  this package (whose only IO is reading its own fingerprint file). No network, no clock.
  The same observations and context always give the same verdict for one
  :data:`ANALYSIS_VERSION`; change the version whenever a rule changes an outcome.
* The decision is an ordered list of rules (:data:`RULES`); each looks at the :class:`Case`
  and returns a Verdict or None ("not mine"). The first verdict wins. Then the network state
  around the measurement (:func:`network_cut`) may replace a failure verdict: a target
  measured while the network was cut is never called blocked or down.
* Every verdict has a method, a confidence, a one-line evidence naming the observation and
  what the control saw, and structured details (``step``, ``tx_id``, ``failure``, ``ip``,
  ``fingerprint``, ``control`` …). ``inconclusive`` names the missing evidence as its method
  (``no_control``, ``control_failed``, ``flaky``, ``local_outage`` …) and keeps what the probe
  saw in ``details["symptom"]``.

The order and why (docs/classification.md has the full reasoning):

1. ``dns_injected`` — two answers to one query is proof of an on-path injector whatever
   happened next (the forged answer may even lead to a working page).
2. ``server_side`` — known server-side refusals (challenges, region blocks) before block
   pages: they must never be called censorship (OONI's weak spot).
3. ``blockpage`` — a block-page fingerprint is strong evidence on its own, and decides the
   method by where the page came from (redirect, lying DNS, injection).
4. ``interception`` — a chain from a known interception CA, or one the control does not see
   that fails validation at the site's own address.
5. ``dns_blockpage_ip``, ``dns_bogon``, ``dns_nonexistent_name`` (a name the control says
   does not exist is down, whatever the resolver answers), ``dns_inconsistent``,
   ``dns_failure`` — DNS lies that did not end at a fingerprinted page; before the success
   rules because a lying resolver often points at a server that answers 200.
6. ``legal_status`` (451), ``server_error`` (5xx), ``http_diff``, ``throttled``,
   ``final_ok`` — the final response arrived; compare it with the control.
7. ``interrupted``, ``stalled`` (the deadline hit mid-body: a freeze, ``http.stall``, or a
   slow path, never ``http.timeout``) then the failing step for the last URL tried: ``tcp_failure``,
   ``tls_failure``, ``http_failure``, judged against the control (down vs blocked).
8. ``unexplained`` — nothing failed and nothing arrived.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from probe import failures as f
from probe.classify import (
    apps,
    dns,
    dnscheck,
    endpoint,
    families,
    http,
    population,
    quic,
    tcp_connect,
    throttling,
    tor,
)
from probe.classify.base import (
    ANALYSIS_VERSION,
    Case,
    inconclusive,
    make_case,
    ok,
    verdict,
)
from probe.classify.context import Context, with_missing
from probe.classify.health import NetworkState, cut_began_after, residual_note
from probe.classify.observations import endpoint as fmt_endpoint
from probe.model import (
    DNSCHECK,
    ENDPOINT_LIST_TESTS,
    TCP_CONNECT,
    TOR,
    WEB_CONNECTIVITY,
    DNSObservation,
    HTTPObservation,
    Measurement,
    TCPObservation,
    TLSObservation,
    Verdict,
    VerdictKind,
    split_url,
)

#: ``blocked`` methods (DESIGN.md vocabulary, plus ``tls.handshake``: an injected TLS alert).
BLOCKED_METHODS: frozenset[str] = frozenset(
    "dns.nxdomain dns.refused dns.servfail dns.timeout dns.bogon dns.blockpage "
    "dns.inconsistent dns.injected tcp.timeout tcp.reset tcp.unreachable tls.reset "
    "tls.timeout tls.eof tls.handshake http.blockpage http.redirect http.reset http.timeout "
    "http.eof http.status http.diff http.stall".split())
#: ``inconclusive`` methods: the evidence that is missing or contradicts itself.
INCONCLUSIVE_METHODS: frozenset[str] = frozenset(
    "no_control control_failed flaky local_outage local_ipv6 resolver_down server_side "
    "captive_portal "
    "encrypted_dns_failed "
    "trust_store blockpage_unconfirmed "
    "unexplained interrupted incomplete unsupported_test slow_transfer content_diff".split())
#: Every method this version can produce, per verdict.
METHODS_BY_VERDICT: dict[VerdictKind, frozenset[str]] = {
    VerdictKind.OK: frozenset(),
    VerdictKind.BLOCKED: BLOCKED_METHODS,
    VerdictKind.INTERCEPTED: frozenset({"tls.mitm"}),
    VerdictKind.THROTTLED: frozenset({"throttle"}),
    VerdictKind.DOWN: frozenset({"down.dns", "down.tcp", "down.tls", "down.http"}),
    VerdictKind.SHUTDOWN: frozenset({"shutdown.full", "shutdown.international",
                                     "shutdown.allowlist"}),
    VerdictKind.INCONCLUSIVE: INCONCLUSIVE_METHODS,
}
METHODS: frozenset[str] = frozenset().union(*METHODS_BY_VERDICT.values())

#: Redirect hops the measure step follows by default (``MeasureSettings.max_redirects``).
DEFAULT_MAX_REDIRECTS = 10

#: Highest confidence of a failure verdict whose site answered while a cut began (the cut
#: may be the censor's residual blocking after this very request, or a shutdown starting).
CUT_AFTER_ANSWER_CONFIDENCE = 0.6
#: Confidence that a failure during a cut is the cut's doing, per network state.
CUT_CONFIDENCE = {
    NetworkState.SHUTDOWN_FULL: 0.9,
    NetworkState.SHUTDOWN_INTERNATIONAL: 0.9,
    NetworkState.SHUTDOWN_ALLOWLIST: 0.8,
    NetworkState.LOCAL_OUTAGE: 0.8,
}

#: Confidence that a failure during a captive-portal window is the portal's doing.
CAPTIVE_CONFIDENCE = 0.8

# --- the success rule -------------------------------------------------------------------------


def final_ok(case: Case) -> Verdict | None:
    """The final response arrived (over a validated chain, for https) and nothing above
    objected. OONI: "a successful HTTPS fetch means accessible, whatever else happened" —
    also when the control failed; a plain-HTTP success without a control cannot rule out a
    transparent proxy or an unknown block page, hence the lower confidence."""
    h = case.final
    if not case.responded or h is None:
        return None
    https = split_url(h.url).scheme == "https"
    if https and not case.https_verified:
        return None
    c = case.control.http
    redirects = h.redirect_index
    after = f" after {redirects} redirect{'s' if redirects != 1 else ''}" if redirects else ""
    over = " over TLS that validates" if https else ""
    base = f"HTTP {h.status} for {h.url} from {fmt_endpoint(h.ip, h.port)}{after}{over}"
    details = dict(step="http", tx_id=h.tx_id, url=h.url, status=h.status, ip=h.ip,
                   port=h.port, redirect_index=redirects or None, title=h.title,
                   body_length=h.body_length)
    if c is not None and c.ok:
        cmp = http.compare(h, c)
        note = "status_everywhere" if h.status and h.status >= 400 else None
        return ok(case, 0.95 if https else 0.9,
                  f"{base}; the control got HTTP {c.status}"
                  + (f" '{c.title}'" if c.title else "") + " too",
                  note=note, **details, **cmp.details())
    if c is not None:
        return ok(case, 0.75 if https else 0.5,
                  f"{base}; the control's fetch failed ({c.failure})",
                  note="control_fetch_failed", **details)
    if case.control.failed:
        helper, why = case.control.failed[0]
        return ok(case, 0.85 if https else 0.6,
                  f"{base}; the control helper {helper} did not answer ({why})", **details)
    return ok(case, 0.85 if https else 0.6, f"{base}; no control measurement", **details)


def interrupted(case: Case) -> Verdict | None:
    """The run was stopped while this measurement was in flight."""
    a = case.attempt
    observations: list[DNSObservation | TCPObservation | TLSObservation | HTTPObservation] = [
        *a.dns, *a.tcp, *a.tls, *a.http]
    for obs in observations:
        if obs.failure == f.INTERRUPTED:
            return inconclusive(case, "interrupted",
                                f"the measurement of {a.url} was interrupted", step=None,
                                url=a.url, tx_id=obs.tx_id)
    return None


def unexplained(case: Case) -> Verdict:
    """No step failed, yet no final response: the chain stopped at a redirect or the
    measurement ended early."""
    a = case.attempt
    if a.via is not None:
        hop = a.via
        if hop.redirect_index + 1 >= DEFAULT_MAX_REDIRECTS or a.url in a.visited:
            return http.redirect_failure(
                case, hop, f.HTTP_TOO_MANY_REDIRECTS,
                f"stopped after {hop.redirect_index + 1} redirects, the last to {a.url}",
                dict(step="http", tx_id=hop.tx_id, url=hop.url, location=a.url,
                     redirect_index=hop.redirect_index))
        return inconclusive(case, "incomplete",
                            f"redirect from {hop.url} to {a.url} was not followed",
                            step="http", tx_id=hop.tx_id, url=hop.url, location=a.url,
                            redirect_index=hop.redirect_index)
    return inconclusive(case, "incomplete",
                        f"no failure recorded for {a.url}, but no response either", url=a.url)


#: The rules in order; the first verdict wins (see the module docstring for why).
RULES: tuple[Callable[[Case], Verdict | None], ...] = (
    dns.dns_injected,
    http.server_side,
    http.blockpage,
    endpoint.interception,
    dns.dns_blockpage_ip,
    dns.dns_bogon,
    dns.dns_nonexistent_name,
    dns.dns_inconsistent,
    dns.dns_failure,
    http.legal_status,
    http.server_error,
    http.http_diff,
    throttling.throttled,
    final_ok,
    interrupted,
    throttling.stalled,
    endpoint.tcp_failure,
    endpoint.tls_failure,
    http.http_failure,
)


#: The rules of each kind of test, by test name (docs/kinds.md): :data:`RULES` for the web
#: test, :data:`probe.classify.tcp_connect.RULES` for ``tcp_connect``,
#: :data:`probe.classify.tor.RULES` for ``tor``, one aggregating rule per app kind (below). A
#: kind's rules may end without a verdict; :func:`unexplained` then has the last word.
RULES_BY_TEST: dict[str, tuple[Callable[[Case], Verdict | None], ...]] = {
    WEB_CONNECTIVITY: RULES,
    TCP_CONNECT: tcp_connect.RULES,
    DNSCHECK: dnscheck.RULES,
    TOR: tor.RULES,
}
#: Every test name this version can judge.
TEST_NAMES: frozenset[str] = frozenset(RULES_BY_TEST)


def network_cut(case: Case, v: Verdict) -> Verdict:
    """Replace a failure verdict when the health rounds around the measurement show a cut.

    WHY: during a shutdown (Kazakhstan, January 2022) every site fails, and calling them
    blocked or down would be wrong — the network was cut, not the site; OONI does not model
    shutdowns at all. The volunteer's own link being down is not a shutdown either: that is
    ``inconclusive``/``local_outage``. ``ok``, ``intercepted`` and ``throttled`` stand:
    traffic got through, and what happened to it is a fact about this site. A captive portal
    (:func:`_captive`) is handled first.
    """
    if case.network is NetworkState.CAPTIVE:
        return _captive(case, v)
    if not case.network.is_cut or v.verdict not in (
            VerdictKind.BLOCKED, VerdictKind.DOWN, VerdictKind.INCONCLUSIVE):
        return v
    if v.verdict is VerdictKind.INCONCLUSIVE and case.responded:
        return v  # a page arrived (a server-side refusal, say): the cut did not stop it
    if _site_answered(case):
        return _answered_through_cut(case, v)  # the path was up: the cut did not stop it
    r = case.health_round
    seen = f"the health round at {r.summary()}" if r is not None else "the health rounds"
    symptom = {"symptom": v.method, "symptom_verdict": v.verdict.value,
               "symptom_evidence": v.evidence}
    keep = {k: val for k, val in v.details.items()
            if k in ("step", "tx_id", "failure", "ip", "port", "url", "hostname")}
    health = {"health_round": r.at if r is not None else None,
              "health_up": r.up if r is not None else None,
              "health_down": r.down if r is not None else None}
    first = v.evidence.split("; ")[0]
    confidence = CUT_CONFIDENCE.get(case.network, 0.8)
    if case.network is NetworkState.LOCAL_OUTAGE:
        return inconclusive(case, "local_outage",
                            f"{first}; {seen}: the volunteer's own link was down, so nothing "
                            "is known about the site", confidence, **keep, **symptom, **health)
    return verdict(case, VerdictKind.SHUTDOWN, case.network.value, confidence,
                   f"{first}; {seen}: the network was cut, not this site",
                   **keep, **symptom, **health)


def _captive(case: Case, v: Verdict) -> Verdict:
    """A verdict during a captive-portal window that the portal may have made is
    ``inconclusive``/``captive_portal``.

    WHY: behind a hotel Wi-Fi portal, or on a mobile line whose prepaid balance ran out, every
    plain-HTTP request is answered by the portal (a redirect or its page) and the rest is
    refused or dropped, so every site looks blocked (``http.redirect``, ``http.blockpage``,
    ``tls.*``) — the network is intercepted, not this site (ooni/probe#1629,
    :mod:`probe.classify.health`). So ``blocked``, ``down`` and ``intercepted`` (portals answer
    HTTPS with their own certificate too; a chain from a known interception CA stands) become
    inconclusive, and so does an
    ``inconclusive`` whose missing evidence the portal explains (the control helper is cut off
    too: ``control_failed``). ``ok`` stands only when the site's own answer is proven — over
    TLS that validates, or the page the control saw too: a plain-HTTP page nobody confirmed
    is as likely the portal's login page at the end of its redirect. ``throttled`` stands.
    """
    if v.verdict is VerdictKind.OK:
        c = case.control.http
        if case.https_verified or (c is not None and c.ok):
            return v
    elif v.verdict is VerdictKind.INCONCLUSIVE:
        if v.method in ("interrupted", "unsupported_test"):
            return v
    elif v.verdict is VerdictKind.INTERCEPTED and v.details.get("fingerprint"):
        return v  # a known interception CA's chain: a portal presents its own, never that
    elif v.verdict not in (VerdictKind.BLOCKED, VerdictKind.DOWN, VerdictKind.INTERCEPTED):
        return v
    r = case.health_round
    portal = r.portal if r is not None else None
    seen = f"the health round at {r.summary()}" if r is not None else "the health rounds"
    keep = {k: val for k, val in v.details.items()
            if k in ("step", "tx_id", "failure", "ip", "port", "url", "hostname", "status",
                     "location")}
    return inconclusive(
        case, "captive_portal",
        f"{v.evidence.split('; ')[0]}; {seen}: a captive portal answered the portal checks "
        f"alike ({portal}), so this network intercepts traffic and nothing is known about "
        "the site", CAPTIVE_CONFIDENCE, **keep, symptom=v.method or "ok",
        symptom_verdict=v.verdict.value, symptom_evidence=v.evidence, portal=portal,
        health_round=r.at if r is not None else None)


def _answered_through_cut(case: Case, v: Verdict) -> Verdict:
    """The site's own host answered although a health round around it shows a cut.

    WHY (issue 12): a censor with residual blocking (the GFW's 90 s penalty, Geneva's censor
    models) drops everything of this client right after the request that triggered it — the
    health round taken next finds the canaries dead, yet the site's TCP connect had just
    succeeded. Such a site is never "the network was cut"; it is judged on its own
    (:func:`probe.classify.health.cut_began_after`). When the cut began only after the
    measurement started, a shutdown beginning mid-handshake cannot be told from the probe's
    own trigger, so a failure verdict keeps its method at a lowered confidence and says so.
    """
    r = case.health_round
    if v.verdict is VerdictKind.DOWN or r is None or not cut_began_after(
            case.ctx.health, r, case.m.started_at):
        return v
    note = (f"; the site's host answered, so the cut seen by the health round at {r.at} "
            f"({case.network.value}) did not stop it: it began after this request, possibly "
            "triggered by it (residual censorship)")
    return dataclasses.replace(
        v, confidence=min(v.confidence, CUT_AFTER_ANSWER_CONFIDENCE), evidence=v.evidence + note,
        details={**v.details, "cut_after_answer": r.at})


def _site_answered(case: Case) -> bool:
    """Did the site's host itself answer the probe (a connection or a refusal)?

    A shutdown drops traffic (that is what users saw in 2022, and what the simulated one
    does), so a refused or completed connection proves the path was up at that moment.
    """
    return any(t.failure is None or t.failure == f.CONNECTION_REFUSED for t in case.m.tcp) or (
        case.final is not None and case.final.status is not None)


def _checked(case: Case, v: Verdict) -> Verdict:
    """A verdict whose method is outside its vocabulary becomes ``unexplained`` (a blocked
    verdict must name a technique we know)."""
    allowed = METHODS_BY_VERDICT[v.verdict]
    if (v.method is None) == (v.verdict is VerdictKind.OK) and (
            v.method is None or v.method in allowed):
        return v
    return inconclusive(case, "unexplained", v.evidence, 0.4, symptom=v.method,
                        symptom_verdict=v.verdict.value,
                        **{k: val for k, val in v.details.items() if k != "symptom"})


#: The app kinds (whatsapp, telegram, signal, facebook_messenger, endpoint): one rule that
#: judges each endpoint with the rules above and aggregates (:mod:`probe.classify.apps`).
RULES_BY_TEST.update({name: (apps.app_rule(RULES, network_cut, _checked),)
                      for name in ENDPOINT_LIST_TESTS})
TEST_NAMES = frozenset(RULES_BY_TEST)


def judge(case: Case) -> Verdict:
    """The first verdict of the rules of the measurement's kind of test (before the network
    state is applied). A kind this version has no rules for is ``inconclusive``."""
    rules = RULES_BY_TEST.get(case.m.test_name)
    if rules is None:
        return inconclusive(case, "unsupported_test",
                            f"no rules for the test {case.m.test_name!r} in analysis "
                            f"{ANALYSIS_VERSION}", test_name=case.m.test_name)
    for rule in rules:
        v = rule(case)
        if v is not None:
            return _checked(case, dns.corroborate(case, v))
    return _checked(case, unexplained(case))


def classify(m: Measurement, context: Context | None = None) -> Verdict:
    """The verdict for one measurement (pure; see the module docstring for the rules).

    Without a context: no health rounds, no ASN data, the packaged fingerprints, no
    throttling baseline; the control answers stored in ``m.control`` are still used.
    """
    ctx = context if context is not None else Context()
    case = make_case(m, ctx)
    judged = families.apply(case, network_cut(case, judge(case)))
    v = with_missing(residual_note(m, judged), ctx.missing)
    return quic.annotate(m, v)  # beside the verdict, never changing it


def classify_run(measurements: Iterable[Measurement],
                 context: Context | None = None) -> list[Verdict]:
    """Verdicts for every measurement of one run, computing per-run aggregates once (the
    throttling baseline, when the context does not carry one), then the population inference
    over the run's own measurements where its canaries said nothing
    (:func:`probe.classify.population.apply_run`), and the same for IPv6
    (:func:`probe.classify.families.apply_run`)."""
    ms = list(measurements)
    ctx = context if context is not None else Context()
    if ctx.throttle_baseline is None:
        ctx = dataclasses.replace(
            ctx, throttle_baseline=throttling.throttle_baseline(ms, ctx.health))
    verdicts = population.apply_run(ms, [classify(m, ctx) for m in ms], ctx)
    return families.apply_run(ms, verdicts, ctx)


__all__ = ["ANALYSIS_VERSION", "METHODS", "RULES", "RULES_BY_TEST", "TEST_NAMES", "classify",
           "classify_run", "judge"]
