"""probe: an Internet censorship measurement probe, usable as a library.

Run a list of targets (with control helpers and canaries) into a database::

    import probe
    outcome = probe.execute(probe.RunRequest(sources=("https://example.org/",), db=path))

Measure one input of any kind (no storage): ``await probe.measure_input(probe.parse_input(text))``
(``measure_target`` is the web test itself; judge a measurement with
``probe.classify.classify``). Re-judge stored measurements with the current classifier:
``probe.reanalyze(db_path)``. Read a database:
``with probe.Store.open(path) as store: store.results()``. Build a report:
``probe.build_report(probe.ReportOptions(...))``. Every tool error is a ``probe.ProbeError``.
See docs/api.md.

Names are imported on first use (``__getattr__``), so ``import probe`` stays light (the CLI
and the lab import only what they need); ``help(probe)`` and ``dir(probe)`` list them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name → module that defines it
_WHERE = {
    "execute": "probe.run.session",
    "RunRequest": "probe.run.session",
    "RunOutcome": "probe.run.session",
    "WatchPlan": "probe.run.watch",
    "RunProgress": "probe.run.engine",
    "measure_input": "probe.run.kinds",
    "measure_target": "probe.measure.web",
    "reanalyze": "probe.run.reanalyze",
    "Store": "probe.store",
    "build_report": "probe.report",
    "ReportOptions": "probe.report",
    "write_report": "probe.report",
    "MeasureSettings": "probe.measure.settings",
    "Target": "probe.model",
    "Measurement": "probe.model",
    "Verdict": "probe.model",
    "VerdictKind": "probe.model",
    "parse_url": "probe.targets",
    "parse_input": "probe.targets",
    "load_sources": "probe.targets",
    "ProbeError": "probe.errors",
    "UsageError": "probe.errors",
    "StorageError": "probe.errors",
    "TargetListError": "probe.errors",
}

__all__ = [
    "MeasureSettings",
    "Measurement",
    "ProbeError",
    "ReportOptions",
    "RunOutcome",
    "RunProgress",
    "RunRequest",
    "StorageError",
    "Store",
    "Target",
    "TargetListError",
    "UsageError",
    "Verdict",
    "VerdictKind",
    "WatchPlan",
    "build_report",
    "execute",
    "load_sources",
    "measure_input",
    "measure_target",
    "parse_input",
    "parse_url",
    "reanalyze",
    "write_report",
]

if TYPE_CHECKING:
    from probe.errors import ProbeError, StorageError, TargetListError, UsageError
    from probe.measure.settings import MeasureSettings
    from probe.measure.web import measure_target
    from probe.model import Measurement, Target, Verdict, VerdictKind
    from probe.report import ReportOptions, build_report, write_report
    from probe.run.engine import RunProgress
    from probe.run.kinds import measure_input
    from probe.run.reanalyze import reanalyze
    from probe.run.session import RunOutcome, RunRequest, execute
    from probe.run.watch import WatchPlan
    from probe.store import Store
    from probe.targets import load_sources, parse_input, parse_url


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'probe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
