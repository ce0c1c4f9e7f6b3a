"""What the classifier knows besides one measurement: the run's health, ASN data, fingerprints.

Responsibility: the :class:`Context` record the runner (or ``reanalyze``) hands to
:func:`probe.classify.classify`, the shape of the per-run throttling baseline, and what a
verdict says when evidence our own probe collects is missing from an imported measurement
(:func:`with_missing`, docs/import.md). The
classifier stays pure: ASN data arrives as a function (``asn_of``), never as the
:mod:`probe.run.asn` table itself, and everything here is plain data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypedDict

from probe.classify.fingerprints import Fingerprints, default_fingerprints
from probe.classify.health import HealthRound
from probe.model import Verdict, VerdictKind

#: Evidence our own probe collects that another source's measurement may lack (the names a
#: :class:`probe.model.Provenance` carries in ``missing``), and what its absence hides.
MISSING_EVIDENCE: dict[str, str] = {
    "canaries": "no canaries were measured around it, so a shutdown or the volunteer's own "
                "outage cannot be told from blocking",
    "innocuous_sni_retry": "no handshake was retried with an innocuous SNI, so SNI filtering "
                           "cannot be told from IP filtering",
    "second_dns_answer": "nobody listened for a second DNS answer, so an on-path injector "
                         "cannot be seen",
    "tls_chain": "no presented certificate chain was recorded, so interception cannot be "
                 "recognised",
    "per_address_http": "the HTTP fetch is not tied to a measured address",
}


class BaselineSample(TypedDict):
    """One clean transfer of the run: the URL it belongs to and what it took.

    ``tls_handshake_s`` None = plain HTTP; ``throughput_bps`` None = the body was too small
    to measure a rate (see :data:`probe.classify.throttling.MIN_RATE_BYTES`).
    """

    url: str
    tls_handshake_s: float | None
    throughput_bps: float | None


class ThrottleBaseline(TypedDict):
    """The run's typical speed, from its clean measurements (canaries and healthy targets).

    ``samples`` are per measurement so a rule can leave out the measurement it is judging
    (one throttled target must not lower its own yardstick). ``tls_handshake_s`` and
    ``throughput_bps`` are the medians over all samples, for display. Built by
    :func:`probe.classify.throttling.throttle_baseline`; JSON-serialisable so a runner can
    store it with the run.
    """

    version: int
    samples: list[BaselineSample]
    tls_handshake_s: float | None
    throughput_bps: float | None


@dataclass(frozen=True, slots=True)
class Context:
    """Everything besides the measurement that a verdict may depend on.

    ``health``: the run's health rounds, oldest first (:func:`probe.classify.health.rounds`);
    empty = no canaries (a shutdown cannot be recognised; nothing is assumed).
    ``asn_of``: IP → AS number (None = unknown); None = no ASN data (DNS answers are then
    compared by address and TLS validity only).
    ``fingerprints``: block pages, block-page IPs, interception CAs, server-side refusals;
    default = the packaged ``data/fingerprints.toml``.
    ``throttle_baseline``: the run's typical handshake time and throughput; None = compare
    with the control only (lower confidence). :func:`probe.classify.classify_run` computes it
    when it is None.
    ``probe_cc``: the vantage's country (ISO 3166 alpha-2) for the population inference's
    domestic/international split (:mod:`probe.classify.population`); None = unknown (only a
    full cut can then be inferred). ``country_of``: IP → country code (None = unknown);
    None = no such data (sites are placed by their TLD and target list only).
    """

    health: tuple[HealthRound, ...] = ()
    asn_of: Callable[[str], int | None] | None = None
    fingerprints: Fingerprints = field(default_factory=default_fingerprints)
    throttle_baseline: ThrottleBaseline | None = None
    probe_cc: str | None = None
    country_of: Callable[[str], str | None] | None = None
    missing: frozenset[str] = frozenset()


#: Which missing evidence weakens which verdicts: (verdict, method prefix) → factor applied to
#: the confidence. A method prefix "" matches every method of that verdict.
_WEAKENS: dict[str, tuple[tuple[VerdictKind, str, float], ...]] = {
    # A TLS failure with no innocuous-SNI retry could be SNI or IP filtering (DESIGN.md);
    # the verdict stands (the handshake failed) but the technique is less certain.
    "innocuous_sni_retry": ((VerdictKind.BLOCKED, "tls.", 0.8),),
    # Without listening for a second answer, a lying answer cannot be told injected or
    # resolver-made, and an injector racing the real answer goes unseen.
    "second_dns_answer": ((VerdictKind.BLOCKED, "dns.", 0.9),),
    # No canaries: a failure might be a shutdown or the volunteer's own link (OONI does not
    # model shutdowns, ooni-methodology.md), so every failure verdict is less certain.
    "canaries": ((VerdictKind.BLOCKED, "", 0.85), (VerdictKind.DOWN, "", 0.85)),
    # No chain: an intercepting proxy that fails the handshake looks like a TLS failure.
    "tls_chain": ((VerdictKind.BLOCKED, "tls.", 0.9), (VerdictKind.DOWN, "down.tls", 0.9)),
}


def with_missing(v: Verdict, missing: frozenset[str]) -> Verdict:
    """``v`` as judged without the evidence named in ``missing``: never a stronger verdict,
    the same verdict and method, its confidence lowered where that evidence matters, and
    ``details["missing"]`` listing what was missing (``details["missing_effect"]`` saying
    what each absence hides, for the pieces that weakened this verdict)."""
    if not missing:
        return v
    factor, names, effects = _weakening(missing, v.verdict, v.method)
    details = dict(v.details, missing=list(names))
    if effects:
        details["missing_effect"] = dict(effects)
    return replace(v, confidence=round(v.confidence * factor, 2), details=details)


@functools.lru_cache(maxsize=1024)
def _weakening(missing: frozenset[str], kind: VerdictKind, method: str | None
               ) -> tuple[float, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The factor, the sorted names and the effects :func:`with_missing` applies: a pure
    function of a handful of combinations (an import has a few kinds of missing evidence and
    a few dozen methods), remembered instead of rederived for every measurement."""
    factor = 1.0
    effects: dict[str, str] = {}
    for name in sorted(missing):
        for weakened, prefix, weight in _WEAKENS.get(name, ()):
            if kind is weakened and (method or "").startswith(prefix):
                factor = min(factor, weight)
                effects[name] = MISSING_EVIDENCE.get(name, name)
                break
    return factor, tuple(sorted(missing)), tuple(effects.items())
