"""What the classifier knows besides one measurement: the run's health, ASN data, fingerprints.

Responsibility: the :class:`Context` record the runner (or ``reanalyze``) hands to
:func:`probe.classify.classify`, and the shape of the per-run throttling baseline. The
classifier stays pure: ASN data arrives as a function (``asn_of``), never as the
:mod:`probe.run.asn` table itself, and everything here is plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from probe.classify.fingerprints import Fingerprints, default_fingerprints
from probe.classify.health import HealthRound


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
