"""The app verdict: per-endpoint evidence of an app (or a service list) → one verdict per app.

Responsibility: judge a ``whatsapp``/``telegram``/``signal``/``facebook_messenger``/``endpoint``
measurement (:mod:`probe.measure.apps` wrote one sub-measurement per endpoint into it). Each
endpoint is cut back out (:func:`endpoint_measurements`: its observations by ``tx`` range,
its own control answers) and judged by the rules of what it is — the ``tcp_connect`` rules for
TCP, the web test's rules for HTTPS, their DNS/TCP/TLS part plus "the handshake completed" for
a TLS endpoint — and by :func:`probe.classify.verdict.network_cut`, so the same evidence gives
the same verdict as for a website: ``blocked`` only where the control reached that endpoint,
``down`` where the control failed the same way, ``shutdown``/``inconclusive local_outage``
where the canaries show the network cut. A list with ``asns`` (Facebook) adds one rule: DNS
answers outside the operator's AS while the control's are inside it are ``dns.inconsistent``.

Then :func:`aggregate` (docs/classification.md "Apps"): the app's verdict is the most serious
one among its endpoints, in the order ``blocked`` > ``intercepted`` > ``shutdown`` > ``down`` >
``inconclusive`` > ``throttled`` > ``ok``, with these exceptions so an app works when it works:
an endpoint that is only ``down``/``inconclusive`` while another endpoint of the same role
works does not make the app fail (WhatsApp's chat uses any of e1…e16). The method is the most
frequent method among the endpoints with that verdict. ``details``: ``scope`` (``all`` = no
endpoint works, ``partial`` = some endpoints work: the evidence and ``failing`` name which
fail), ``roles`` (role → its verdict), ``failing`` (labels of the endpoints behind the
verdict), ``endpoints`` (one line each: label, verdict, method, confidence). The method stays
in the contract's closed vocabulary; *which* endpoints fail is in ``scope``/``failing``.
Pure, like the package.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from probe import failures as f
from probe.classify import dns, endpoint, tcp_connect
from probe.classify.base import Case, blocked, inconclusive, make_case, ok, verdict
from probe.classify.observations import endpoint as fmt_endpoint
from probe.model import TCP_CONNECT, WEB_CONNECTIVITY, Measurement, Target, Verdict, VerdictKind

Rule = Callable[[Case], Verdict | None]

#: How serious a verdict is for the app, most serious first.
SEVERITY: tuple[VerdictKind, ...] = (
    VerdictKind.BLOCKED, VerdictKind.INTERCEPTED, VerdictKind.SHUTDOWN, VerdictKind.DOWN,
    VerdictKind.INCONCLUSIVE, VerdictKind.THROTTLED, VerdictKind.OK)
#: Verdicts that say the endpoint works for the user.
WORKING = (VerdictKind.OK, VerdictKind.THROTTLED)
#: Verdicts excused when another endpoint of the same role works.
EXCUSABLE = (VerdictKind.DOWN, VerdictKind.INCONCLUSIVE)


@dataclass(frozen=True, slots=True)
class EndpointVerdict:
    """One endpoint's label, role and verdict."""

    label: str
    role: str
    protocol: str
    verdict: Verdict


def _target_of(e: dict[str, Any]) -> Target:
    """The input an endpoint was measured as (:func:`probe.measure.apps.endpoint_target`)."""
    host, port, protocol = str(e["host"]), int(e["port"]), e.get("protocol")
    shown = f"[{host}]" if ":" in host else host
    if protocol == "tcp":
        return Target(f"tcp://{shown}:{port}", host, "tcp", port, "", test_name=TCP_CONNECT)
    if protocol in ("https", "http_post"):
        url = str(e["url"])
        scheme = url.partition("://")[0]
        path = "/" + url.partition("://")[2].partition("/")[2]
        return Target(url, host, scheme, port, path, test_name=WEB_CONNECTIVITY)
    return Target(f"https://{shown}:{port}/", host, "https", port, "/",
                  test_name=WEB_CONNECTIVITY)


def endpoint_measurements(m: Measurement) -> list[tuple[dict[str, Any], Measurement]]:
    """Each endpoint's own measurement, cut out of an app measurement: its observations (by
    ``tx`` range, times back on its own clock), its control answers (by the URL asked)
    and its own ``extra``. Entries that do not parse are skipped."""
    out: list[tuple[dict[str, Any], Measurement]] = []
    for e in m.extra.get("endpoints", []):
        try:
            lo, hi = (int(x) for x in e["tx"])
            dt = float(e.get("dt", 0.0))
            target = _target_of(e)
        except (KeyError, TypeError, ValueError):
            continue

        def mine(obs: Sequence[Any], lo: int = lo, hi: int = hi, dt: float = dt) -> tuple[Any, ...]:
            if not dt:  # on the app's own clock already (imported OONI endpoints)
                return tuple(o for o in obs if lo <= o.tx_id <= hi)
            return tuple(replace(o, t0=round(o.t0 - dt, 6), t=round(o.t - dt, 6))
                         for o in obs if lo <= o.tx_id <= hi)

        url = e.get("control_url")
        control = tuple(a for a in m.control
                        if url and (a.get("request_url") or a.get("url")) == url)
        extra = dict(e.get("extra") or {})
        extra["addresses"] = list(e.get("addresses") or [])
        out.append((e, Measurement(target=target, started_at=m.started_at,
                                   finished_at=m.finished_at, dns=mine(m.dns), tcp=mine(m.tcp),
                                   tls=mine(m.tls), http=mine(m.http), control=control,
                                   extra=extra)))
    return out


# --- rules of the endpoint protocols the other kinds do not have --------------------------------


def handshake_done(case: Case) -> Verdict | None:
    """A TLS endpoint: a handshake with the host's SNI completed — reachable from here (a VPN
    gateway's own CA need not validate; interception was ruled out before)."""
    good = [t for t in case.attempt.tls if t.failure is None
            and t.server_name.strip("[]").lower() == case.target_host]
    if not good:
        return None
    t = good[0]
    valid = " (chain validates)" if t.verified else f" (chain: {t.verify_error or 'unchecked'})"
    return ok(case, 0.85, f"TLS handshake with {fmt_endpoint(t.ip, t.port)} SNI "
              f"{t.server_name} completed{valid}", step="tls", tx_id=t.tx_id, ip=t.ip,
              port=t.port, verified=t.verified)


def post_answered(case: Case) -> Verdict | None:
    """An HTTP POST endpoint (Telegram's data centres): a response came back."""
    h = next((h for h in case.m.http if h.status is not None), None)
    if h is None:
        return None
    return ok(case, 0.85, f"POST {h.url} from {fmt_endpoint(h.ip, h.port)}: HTTP {h.status}",
              step="http", tx_id=h.tx_id, ip=h.ip, port=h.port, status=h.status)


def post_failed(case: Case) -> Verdict | None:
    """The POST failed after the connect succeeded. The control helper only connects to such
    an endpoint (it does not POST), so nothing vouches for the data centre's answer."""
    h = next((h for h in case.m.http if h.failure is not None), None)
    if h is None or not any(c.failure is None for c in case.m.tcp):
        return None
    return inconclusive(case, "no_control", f"POST {h.url} failed ({h.failure}) after the "
                        "connect succeeded; the control does not POST, so a filter cannot be "
                        "told from the server's refusal", symptom=f"http.{_how(h.failure)}",
                        step="http", tx_id=h.tx_id, ip=h.ip, port=h.port, failure=h.failure)


def _how(failure: str | None) -> str:
    return {f.CONNECTION_RESET: "reset", f.GENERIC_TIMEOUT: "timeout",
            f.EOF_ERROR: "eof"}.get(failure or "", "error")


def udp_answer(case: Case) -> Verdict | None:
    """A UDP endpoint: an answer came back — reachable. No answer: the control helper cannot
    send UDP, so silence is never called blocking."""
    exchanges = case.m.extra.get("udp") or []
    good = [x for x in exchanges if isinstance(x, dict) and x.get("failure") is None]
    if good:
        x = good[0]
        return ok(case, 0.8, f"UDP {fmt_endpoint(x['ip'], x['port'])} answered "
                  f"{x.get('received_bytes')} bytes", step="udp", ip=x["ip"], port=x["port"])
    if exchanges:
        x = exchanges[0]
        return inconclusive(case, "no_control", f"UDP {fmt_endpoint(x['ip'], x['port'])}: no "
                            f"answer ({x.get('failure')}); no control vantage sends UDP",
                            symptom="udp.timeout", step="udp", ip=x.get("ip"),
                            port=x.get("port"), failure=x.get("failure"))
    return None


def outside_operator(asns: Sequence[int]) -> Rule:
    """DNS consistency against the operator's AS (Facebook): the probe's answers all lie
    outside ``asns`` while the control's lie inside — ``blocked`` ``dns.inconsistent``.
    Without ASN data or a control answer the rule says nothing (the other DNS rules judge)."""
    wanted = set(asns)

    def rule(case: Case) -> Verdict | None:
        answers = [d for d in case.m.dns if d.response_index == 0 and d.addresses]
        if not answers or case.ctx.asn_of is None:
            return None
        probe_as = {a: case.asn(a) for d in answers for a in d.addresses}
        if any(n in wanted for n in probe_as.values()) or None in probe_as.values():
            return None
        ctl_as = {a: case.asn(a) for a in case.control.dns_addrs}
        if not any(n in wanted for n in ctl_as.values()):
            return None
        d = answers[0]
        return blocked(case, "dns.inconsistent", 0.85,
                       f"DNS answer for {d.hostname} is {', '.join(d.addresses)} "
                       f"(AS {', '.join(sorted({str(n) for n in probe_as.values()}))}), "
                       f"outside the operator's AS {', '.join(map(str, sorted(wanted)))}; the "
                       "control's answers are inside it", step="dns", tx_id=d.tx_id,
                       hostname=d.hostname, addresses=list(d.addresses),
                       asns={a: n for a, n in probe_as.items()})
    return rule


_DNS: tuple[Rule, ...] = (dns.dns_injected, dns.dns_blockpage_ip, dns.dns_bogon,
                          dns.dns_nonexistent_name, dns.dns_inconsistent, dns.dns_failure)
TLS_RULES: tuple[Rule, ...] = (dns.dns_injected, endpoint.interception, *_DNS[1:],
                               handshake_done, tcp_connect.interrupted, endpoint.tcp_failure,
                               endpoint.tls_failure, tcp_connect.nothing_dialled)
POST_RULES: tuple[Rule, ...] = (*_DNS, post_answered, tcp_connect.interrupted, post_failed,
                                endpoint.tcp_failure, tcp_connect.nothing_dialled)
UDP_RULES: tuple[Rule, ...] = (*_DNS, udp_answer, tcp_connect.nothing_dialled)


# --- aggregation --------------------------------------------------------------------------------


def _most(verdicts: Sequence[EndpointVerdict]) -> tuple[str | None, float]:
    methods = Counter(v.verdict.method for v in verdicts)
    method = methods.most_common(1)[0][0]
    return method, max(v.verdict.confidence for v in verdicts if v.verdict.method == method)


def _summary(v: EndpointVerdict) -> dict[str, Any]:
    return {"label": v.label, "role": v.role, "verdict": v.verdict.verdict.value,
            "method": v.verdict.method, "confidence": v.verdict.confidence,
            "evidence": v.verdict.evidence.split("; ")[0][:160]}


def aggregate(case: Case, results: Sequence[EndpointVerdict], app: str) -> Verdict:
    """One verdict for the app from its endpoints' (see the module docstring)."""
    if not results:
        return inconclusive(case, "incomplete", f"{app}: no endpoint was measured")
    working_roles = {r.role for r in results if r.verdict.verdict in WORKING}
    counted = [r for r in results if not (r.verdict.verdict in EXCUSABLE
                                          and r.role in working_roles)]
    kind = next(k for k in SEVERITY if any(r.verdict.verdict is k for r in counted or results))
    behind = [r for r in (counted or results) if r.verdict.verdict is kind]
    roles: dict[str, str] = {}
    for r in results:
        here = roles.get(r.role)
        if here is None or SEVERITY.index(r.verdict.verdict) < SEVERITY.index(
                VerdictKind(here)):
            roles[r.role] = r.verdict.verdict.value
    for role in working_roles:
        if roles[role] in (VerdictKind.DOWN.value, VerdictKind.INCONCLUSIVE.value):
            roles[role] = VerdictKind.OK.value
    working = [r for r in results if r.verdict.verdict in WORKING]
    n = len(results)
    details: dict[str, Any] = {
        "app": app, "roles": roles, "endpoints": [_summary(r) for r in results]}
    if kind in WORKING:
        method, confidence = (None, min(r.verdict.confidence for r in behind)) \
            if kind is VerdictKind.OK else _most(behind)
        excused = [r.label for r in results if r.verdict.verdict not in WORKING]
        note = (f"; {len(excused)} endpoint(s) failed where another of the same role works: "
                f"{', '.join(excused[:4])}{'…' if len(excused) > 4 else ''}") if excused else ""
        per_role = ", ".join(f"{role} {sum(1 for r in results if r.role == role and r.verdict.verdict in WORKING)}"  # noqa: E501
                             f"/{sum(1 for r in results if r.role == role)}"
                             for role in roles)
        return verdict(case, kind, method, confidence,
                       f"{app}: {len(working)}/{n} endpoints work ({per_role}){note}",
                       scope="all", failing=excused or None, **details)
    method, confidence = _most(behind)
    scope = "partial" if working else "all"
    failing_roles = sorted({r.role for r in behind})
    first = behind[0]
    what = (f"{kind.value} {method}" if method else kind.value)
    ok_roles = sorted(role for role, v in roles.items() if v in ("ok", "throttled"))
    evidence = (f"{app}: {what} at {len(behind)}/{n} endpoints "
                f"({', '.join(failing_roles)}), e.g. {first.label}: "
                f"{first.verdict.evidence.split('; ')[0]}")
    if scope == "partial":
        evidence = f"{app}: partly {what} — {', '.join(failing_roles)} fail, " \
                   f"{', '.join(ok_roles)} work; e.g. {first.label}: " \
                   f"{first.verdict.evidence.split('; ')[0]}"
    else:
        if kind is VerdictKind.BLOCKED:
            confidence = min(confidence, max(r.verdict.confidence for r in behind))
    keep = {k: v for k, v in first.verdict.details.items()
            if k in ("symptom", "symptom_verdict", "health_round", "health_up", "health_down")}
    return verdict(case, kind, method, confidence * (0.95 if scope == "partial" else 1.0),
                   evidence, scope=scope, failing=[r.label for r in behind],
                   failing_roles=failing_roles, **keep, **details)


def app_rule(web_rules: tuple[Rule, ...],
             network_cut: Callable[[Case, Verdict], Verdict],
             check: Callable[[Case, Verdict], Verdict]) -> Rule:
    """The one rule of an app kind, built from the web test's rules, the network-state
    override and the method check of :mod:`probe.classify.verdict` (passed in: that module
    imports this one)."""

    def rules_for(protocol: str, asns: Sequence[int]) -> tuple[Rule, ...]:
        base: tuple[Rule, ...] = {
            "tcp": tcp_connect.RULES, "https": web_rules, "tls": TLS_RULES,
            "http_post": POST_RULES, "udp": UDP_RULES}.get(protocol, tcp_connect.RULES)
        return (outside_operator(asns), *base) if asns else base

    def judge_app(case: Case) -> Verdict:
        m = case.m
        app = m.test_name
        if "list_error" in m.extra:
            return inconclusive(case, "incomplete", f"{app}: the endpoint list could not be "
                                f"used ({m.extra['list_error']})", list_error=m.extra["list_error"])
        if "endpoints" not in m.extra:
            return inconclusive(case, "unsupported_test", f"{app}: no per-endpoint "
                                "observations to judge (imported or older data)",
                                test_name=app)
        asns = [int(a) for a in m.extra.get("asns", []) if isinstance(a, int)]
        results: list[EndpointVerdict] = []
        for e, sub in endpoint_measurements(m):
            sub_case = make_case(sub, case.ctx)
            v = None
            for rule in rules_for(str(e.get("protocol")), asns):
                v = rule(sub_case)
                if v is not None:
                    break
            if v is None:
                v = tcp_connect.nothing_dialled(sub_case)
            v = network_cut(sub_case, check(sub_case, v))
            results.append(EndpointVerdict(str(e.get("label")), str(e.get("role")),
                                           str(e.get("protocol")), v))
        return aggregate(case, results, app)

    return judge_app
