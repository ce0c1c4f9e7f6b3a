"""Classification: pure verdicts from stored observations, control answers, health and data.

Public API:

* :func:`classify` ``(m, context=None) -> Verdict`` and :func:`classify_run`
  ``(measurements, context=None) -> list[Verdict]`` (computes per-run aggregates once);
* :class:`Context` (health rounds, ``asn_of``, fingerprints, throttling baseline) and
  :func:`throttle_baseline`;
* :data:`ANALYSIS_VERSION`, :data:`METHODS`, :data:`TEST_NAMES` (the kinds of test judged;
  rules are looked up by ``Measurement.test_name``, see docs/kinds.md);
* :func:`load_fingerprints` / :func:`default_fingerprints` and :class:`Fingerprints`.

Imports only :mod:`probe.model`, :mod:`probe.failures` and this package's own data. The rules
and their order are in :mod:`probe.classify.verdict` and docs/classification.md.
"""

from probe.classify.context import BaselineSample, Context, ThrottleBaseline
from probe.classify.fingerprints import (
    FingerprintError,
    Fingerprints,
    default_fingerprints,
)
from probe.classify.fingerprints import load as load_fingerprints
from probe.classify.throttling import throttle_baseline
from probe.classify.verdict import ANALYSIS_VERSION, METHODS, TEST_NAMES, classify, classify_run

__all__ = [
    "ANALYSIS_VERSION",
    "METHODS",
    "TEST_NAMES",
    "BaselineSample",
    "Context",
    "FingerprintError",
    "Fingerprints",
    "ThrottleBaseline",
    "classify",
    "classify_run",
    "default_fingerprints",
    "load_fingerprints",
    "throttle_baseline",
]
