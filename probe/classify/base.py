"""The shared frame of every rule: the case being judged and how a verdict is built.

Responsibility: :class:`Case` (one measurement with everything read once — the last URL
tried, the control view, the network state around it, the final response) and the verdict
constructors that stamp :data:`ANALYSIS_VERSION`, the control summary and the network state
onto every verdict, so each rule only states its conclusion, confidence and evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probe import failures as f
from probe.classify import control as ctl
from probe.classify.context import Context
from probe.classify.health import HealthRound, NetworkState, state_during
from probe.classify.observations import Attempt, final_hop, last_attempt, succeeded, tls_of
from probe.model import HTTPObservation, Measurement, Verdict, VerdictKind, split_url

#: Version of the rules; stored with every verdict so re-analysis can tell old from new.
#: Change it whenever a rule changes an outcome.
ANALYSIS_VERSION = "1.8.1"

# --- confidence scale ---------------------------------------------------------------------------
# A fingerprint (block page, block-page IP, interception CA) is strong evidence on its own;
# a failure the control does not see *at the same address* is next; "the control fetched the
# page" without per-address data is weaker; a content difference without a fingerprint is
# weakest (DESIGN.md: "differs from control" is weaker evidence).

FINGERPRINT = 0.95
SAME_ADDRESS = 0.85
CONTROL_FETCHED = 0.7
CONTENT_DIFF = 0.5
#: An inconclusive verdict: how sure we are that nothing more can be said.
NO_EVIDENCE = 0.3


@dataclass(frozen=True, slots=True)
class Case:
    """One measurement and everything the rules read about it, computed once.

    ``network`` is the worst state the health rounds around the measurement show
    (:func:`~probe.classify.health.state_during`), ``health_round`` the round that showed it.
    ``final`` is the deepest redirect hop's HTTP observation (None = no HTTP exchange).
    """

    m: Measurement
    ctx: Context
    attempt: Attempt
    control: ctl.ControlView
    network: NetworkState
    health_round: HealthRound | None
    final: HTTPObservation | None

    @property
    def target_host(self) -> str:
        return self.m.target.hostname.rstrip(".").lower()

    @property
    def responded(self) -> bool:
        """The final hop got a response without failure and was not a redirect left
        unfollowed (its content may still be a block page)."""
        h = self.final
        return h is not None and succeeded(h) and h.location is None

    @property
    def https_verified(self) -> bool:
        """The final response came over TLS whose chain validated for the host: it is the
        site's own answer (or that of someone holding its key, such as its CDN)."""
        h = self.final
        if h is None or split_url(h.url).scheme != "https":
            return False
        t = tls_of(self.m, h)
        return t is not None and t.verified is True

    def asn(self, ip: str) -> int | None:
        f = self.ctx.asn_of
        if f is None:
            return None
        try:
            return f(ip) or None
        except (ValueError, KeyError):
            return None

    def control_about(self, hostname: str) -> bool:
        """The control's DNS and endpoint data are about ``hostname``."""
        return self.control.available and self.control.about(hostname)


def make_case(m: Measurement, ctx: Context) -> Case:
    network, hround = state_during(ctx.health, m.started_at, m.finished_at)
    return Case(m, ctx, last_attempt(m), ctl.read(m.control), network, hround, final_hop(m))


def verdict(case: Case, kind: VerdictKind, method: str | None, confidence: float,
            evidence: str, **details: Any) -> Verdict:
    """A verdict with the control's view and the network state added to ``details``."""
    out = {k: v for k, v in details.items() if v is not None}
    if case.control.queried:
        out.setdefault("control", case.control.summary())
    if case.network is not NetworkState.UNKNOWN:
        out.setdefault("network", case.network.value)
    return Verdict(kind, method, round(min(1.0, max(0.0, confidence)), 2), evidence,
                   ANALYSIS_VERSION, out)


def blocked(case: Case, method: str, confidence: float, evidence: str,
            **details: Any) -> Verdict:
    return verdict(case, VerdictKind.BLOCKED, method, confidence, evidence, **details)


def down(case: Case, method: str, confidence: float, evidence: str, **details: Any) -> Verdict:
    return verdict(case, VerdictKind.DOWN, method, confidence, evidence, **details)


def inconclusive(case: Case, reason: str, evidence: str, confidence: float = NO_EVIDENCE,
                 **details: Any) -> Verdict:
    return verdict(case, VerdictKind.INCONCLUSIVE, reason, confidence, evidence, **details)


def ok(case: Case, confidence: float, evidence: str, **details: Any) -> Verdict:
    return verdict(case, VerdictKind.OK, None, confidence, evidence, **details)


def without_control(case: Case, symptom: str, what: str, **details: Any) -> Verdict:
    """``inconclusive`` because the control is missing or failed: ``what`` the probe saw
    (``symptom`` in the method vocabulary) could be blocking or the site being down."""
    if case.control.failed and not case.control.available:
        helper, why = case.control.failed[0]
        return inconclusive(
            case, "control_failed",
            f"{what}; the control helper {helper} did not answer ({why}), so blocking cannot "
            "be told from the site being down",
            symptom=symptom, **details)
    return inconclusive(
        case, "no_control",
        f"{what}; no control measurement to tell blocking from the site being down",
        symptom=symptom, **details)


def flaky(case: Case, symptom: str, what: str, **details: Any) -> Verdict:
    """``inconclusive`` because the controls contradict each other about the same URL."""
    good = [h.helper for h in case.control.https if h.ok]
    bad = [h.helper for h in case.control.https if not h.ok]
    return inconclusive(case, "flaky",
                        f"{what}; the controls disagree: {', '.join(good)} fetched the page, "
                        f"{', '.join(bad)} did not", 0.4, symptom=symptom, **details)


#: The steps of one fetch, in order.
STEPS = ("dns", "tcp", "tls", "http")


def failure_step(failure: str | None) -> str | None:
    """The step a failure string belongs to; None when it could be any (timeouts, resets,
    EOF and unknown failures happen at every step)."""
    if not failure:
        return None
    if failure.startswith("dns_"):
        return "dns"
    if failure.startswith("ssl_"):
        return "tls"
    if failure in (f.CONNECTION_REFUSED, f.HOST_UNREACHABLE, f.NETWORK_UNREACHABLE):
        return "tcp"
    if failure in (f.HTTP_TOO_MANY_REDIRECTS, f.HTTP_INVALID_REDIRECT_LOCATION_HOST,
                   f.HTTP_PROTOCOL_ERROR):
        return "http"
    return None


def by_failed_fetch(case: Case, step: str, method: str, what: str, /,
                    **details: Any) -> Verdict:
    """Judge the probe's failure at ``step`` by a control whose fetch also failed.

    WHY: "down" needs the control to fail *at the same step* (OONI: a failure the control
    also sees). A control that failed later got past the probe's failing step — evidence of
    blocking, if weaker than a success. A control that failed earlier (its own resolver or
    trust store, a busy helper) cannot vouch either way.
    """
    c = case.control.http
    assert c is not None and not c.ok
    cstep = failure_step(c.failure)
    if cstep is None or cstep == step:
        same = c.failure == details.get("failure")
        return down(case, f"down.{step}", 0.8 if same else 0.6,
                    f"{what}; the control's fetch failed {'the same way' if same else 'too'} "
                    f"({c.failure})", **details)
    if STEPS.index(cstep) > STEPS.index(step):
        return blocked(case, method, 0.6,
                       f"{what}; the control got past that step and failed later, at "
                       f"{cstep} ({c.failure})", **details)
    return inconclusive(case, "control_failed",
                        f"{what}; the control's fetch failed earlier, at {cstep} "
                        f"({c.failure}), so it cannot vouch either way",
                        symptom=method, **details)
