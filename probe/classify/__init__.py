"""Classification: pure verdicts from stored observations (imports only model and failures).

Public API: :func:`classify` (``Measurement -> Verdict``) and :data:`ANALYSIS_VERSION`.
The rules and their order are documented in :mod:`probe.classify.verdict`.
"""

from probe.classify.verdict import ANALYSIS_VERSION, METHODS, classify

__all__ = ["ANALYSIS_VERSION", "METHODS", "classify"]
