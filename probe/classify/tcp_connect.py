"""The rules of the ``tcp_connect`` test: is ``host:port`` reachable over TCP, and if not, why?

Responsibility: the ordered rules (:data:`RULES`) that judge a ``tcp_connect`` measurement
(DNS observations, then one TCP connect per address). They reuse the web test's DNS and TCP
rules, so the same evidence gives the same verdict whichever kind measured it:

1. DNS lies and failures (``dns_injected``, ``dns_blockpage_ip``, ``dns_bogon``,
   ``dns_inconsistent``, ``dns_failure``), judged against the control's resolver;
2. ``connected`` — a connect succeeded: ``ok``;
3. ``interrupted`` — the run was stopped while the input was in flight;
4. ``tcp_failure`` — every connect failed: ``blocked`` (``tcp.*``) where the control connects
   to the same address, ``down`` (``down.tcp``) where the control's connect fails too,
   ``inconclusive`` (``no_control``/``control_failed``) without a control — never blocked;
5. ``nothing_dialled`` — no address to connect to and no failure that says why.

A shutdown or a local outage around the measurement replaces a failure verdict afterwards
(:func:`probe.classify.verdict.network_cut`), as for every kind. Pure, like the package.
"""

from __future__ import annotations

from collections.abc import Callable

from probe import failures as f
from probe.classify import dns, endpoint
from probe.classify.base import Case, inconclusive, ok
from probe.classify.observations import endpoint as fmt_endpoint
from probe.classify.observations import secs, took
from probe.model import DNSObservation, TCPObservation, Verdict


def connected(case: Case) -> Verdict | None:
    """A TCP connect to the input's host succeeded: it is reachable from here."""
    a = case.attempt
    good = [c for c in a.tcp if c.failure is None]
    if not good:
        return None
    c = good[0]
    base = f"TCP connect to {fmt_endpoint(c.ip, c.port)} for {a.url} succeeded in {secs(took(c))}"
    details = dict(step="tcp", tx_id=c.tx_id, ip=c.ip, port=c.port, hostname=a.hostname,
                   url=a.url, connected=[x.ip for x in good],
                   failures=[{"ip": x.ip, "port": x.port, "failure": x.failure}
                             for x in a.tcp if x.failure is not None] or None)
    cv = case.control
    if case.control_about(a.hostname):
        reached = [e for e in cv.endpoints if e.connected]
        if reached:
            return ok(case, 0.95, f"{base}; the control connected to "
                      f"{fmt_endpoint(reached[0].ip, reached[0].port)} too", **details)
        failed = [e for e in cv.endpoints if e.tcp_done and e.tcp_failure]
        why = failed[0].tcp_failure if failed else cv.dns_failure
        if why:
            return ok(case, 0.8, f"{base}; the control could not connect ({why})", **details)
        return ok(case, 0.85, f"{base}; the control answered with no connect to compare",
                  **details)
    if cv.failed and not cv.available:
        helper, why = cv.failed[0]
        return ok(case, 0.85, f"{base}; the control helper {helper} did not answer ({why})",
                  **details)
    return ok(case, 0.85, f"{base}; no control measurement", **details)


def interrupted(case: Case) -> Verdict | None:
    """The run was stopped while this input was being measured."""
    a = case.attempt
    observations: list[DNSObservation | TCPObservation] = [*a.dns, *a.tcp]
    for obs in observations:
        if obs.failure == f.INTERRUPTED:
            return inconclusive(case, "interrupted", f"the measurement of {a.url} was "
                                "interrupted", url=a.url, tx_id=obs.tx_id)
    return None


def nothing_dialled(case: Case) -> Verdict:
    """No connect was made and no DNS failure explains it (no address, or the deadline)."""
    a = case.attempt
    if case.m.extra.get("deadline_exceeded"):
        return inconclusive(case, "incomplete", f"the measurement of {a.url} ran out of time "
                            "before any connect finished", url=a.url)
    return inconclusive(case, "incomplete", f"no address of {a.hostname} was dialled for "
                        f"{a.url} and no failure says why", url=a.url)


#: The rules in order; the first verdict wins (the last always gives one).
RULES: tuple[Callable[[Case], Verdict | None], ...] = (
    dns.dns_injected,
    dns.dns_blockpage_ip,
    dns.dns_bogon,
    dns.dns_inconsistent,
    dns.dns_failure,
    connected,
    interrupted,
    endpoint.tcp_failure,
    nothing_dialled,
)
