"""The rules of the ``dnscheck`` test: can this DoH/DoT resolver be used from here, and if not,
how is it kept out of reach?

Responsibility: the ordered rules (:data:`RULES`) that judge a ``dnscheck`` measurement (the
provider's name resolved with the plain resolvers, then per address TCP, TLS and one DNS
query through the resolver; :mod:`probe.measure.dnscheck`). Blocking an encrypted resolver
is done the three ways OONI's dnscheck and the field report (Iran, China, Russia block DoH
providers by address, by SNI and by poisoning their names): the technique is the method:

1. the provider's name lied about or failed — the web test's DNS rules, judged against the
   control's resolver (``dns.*``);
2. ``resolver_answers`` — a DNS message came back through a validated TLS session: ``ok``
   (whatever its rcode: the resolver works);
3. ``interrupted`` — the run was stopped while the input was in flight;
4. every connect failed — ``tcp.*`` where the control connects to the same address (blocked
   by IP), ``down.tcp`` where it fails too, ``no_control`` without one (the shared TCP rule);
5. a chain from an interception CA, or every handshake failed — ``tls.mitm`` / ``tls.*``
   (blocked by SNI), the shared TLS rules with the control's handshakes;
6. ``answer_refused`` — TLS validated but the resolver gave no DNS answer: an HTTP error
   status is the provider's own doing (``down`` ``down.http``: nobody on the path can forge
   it through validated TLS); a reset or silence after the handshake is ``inconclusive``
   (``incomplete``, the control does not send DNS queries to compare);
7. ``nothing_dialled`` — no address and no failure that says why.

A shutdown or a local outage around the measurement replaces a failure verdict afterwards
(:func:`probe.classify.verdict.network_cut`), as for every kind. Pure, like the package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from probe.classify import dns, endpoint, tcp_connect
from probe.classify.base import CONTROL_FETCHED, Case, down, inconclusive, ok
from probe.classify.observations import endpoint as fmt_endpoint
from probe.classify.observations import secs, took
from probe.model import DNSObservation, Verdict


def _queries(case: Case) -> list[DNSObservation]:
    """The DNS observations of the queries sent through the resolver under test."""
    return [d for d in case.m.dns if d.engine in dns.ENCRYPTED]


def resolver_answers(case: Case) -> Verdict | None:
    """A DNS message came back through a validated TLS session: the resolver is usable."""
    answered = [d for d in _queries(case) if d.rcode is not None]
    if not answered:
        return None
    d = answered[0]
    ip = _address(case, d.tx_id)
    base = (f"{d.resolver} ({d.engine}) answered {d.query_type} {d.hostname} "
            f"({', '.join(d.addresses) or d.rcode}) via {ip or 'its address'} in {secs(took(d))}")
    details = dict(step="dns", tx_id=d.tx_id, resolver=d.resolver, engine=d.engine, ip=ip,
                   rcode=d.rcode, addresses=list(d.addresses),
                   answered=len(answered), queries=len(_queries(case)))
    if case.control.available:
        return ok(case, 0.95, f"{base}; the control answered too", **details)
    return ok(case, 0.85, base, **details)


def _address(case: Case, tx_id: int) -> str | None:
    return next((c.ip for c in case.m.tcp if c.tx_id == tx_id), None)


def answer_refused(case: Case) -> Verdict | None:
    """TLS with the provider validated, yet no DNS answer came back."""
    validated = {t.tx_id for t in case.m.tls if t.failure is None and t.verified is True}
    failed = [d for d in _queries(case) if d.tx_id in validated and d.rcode is None]
    if not failed:
        return None
    d = failed[0]
    status = next((h.status for h in case.m.http if h.tx_id == d.tx_id), None)
    ip = _address(case, d.tx_id)
    what = (f"TLS with {d.resolver} at {fmt_endpoint(ip or '?', case.m.target.port)} "
            f"validated, but the {d.query_type} query for {d.hostname} got no answer: "
            f"{d.failure}")
    details: dict[str, Any] = dict(step="dns", tx_id=d.tx_id, resolver=d.resolver,
                                   engine=d.engine, ip=ip, failure=d.failure,
                                   http_status=status)
    if status is not None and status != 200:
        return down(case, "down.http", CONTROL_FETCHED,
                    f"{what} (HTTP {status}: the provider's own answer, which nobody on the "
                    "path can forge through validated TLS)", **details)
    return inconclusive(case, "incomplete", f"{what}; the control sends no DNS query to "
                        "compare", symptom="dns.timeout", **details)


#: The rules in order; the first verdict wins (the last always gives one).
RULES: tuple[Callable[[Case], Verdict | None], ...] = (
    dns.dns_injected,
    dns.dns_blockpage_ip,
    dns.dns_bogon,
    dns.dns_inconsistent,
    dns.dns_failure,
    resolver_answers,
    tcp_connect.interrupted,
    endpoint.tcp_failure,
    endpoint.interception,
    endpoint.tls_failure,
    answer_refused,
    tcp_connect.nothing_dialled,
)
