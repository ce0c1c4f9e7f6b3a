"""Import OONI measurements into a probe database: read, map, judge, store, one at a time.

Responsibility: the IO composition behind ``probe import ooni``: stream documents from
:mod:`probe.ingest.reader`, map each with :mod:`probe.ingest.mapper` (pure), judge it with our
own classifier told which evidence the source lacks (``Context.missing``), and store it with
its provenance (``Store.save_import``, idempotent by ``dedup_key``). One run per OONI
``report_id`` with a deterministic id, so a re-import lands in the same run. A document that
cannot be read or mapped is reported (``FILE:LINE: problem``) and skipped; nothing already
stored is lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO

from probe.classify import Context, classify
from probe.ingest.mapper import SOURCE, Mapped, MappingError, map_document
from probe.ingest.reader import BadInput, read_paths
from probe.store import Store

_REPORT_START = re.compile(r"^(\d{8}T\d{6}Z)_")


@dataclass
class ImportResult:
    """What one import did: documents read, stored, already there, skipped (unreadable or
    not a measurement), and the stored verdicts by ``verdict`` / ``verdict method``."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    runs: set[str] = field(default_factory=set)
    verdicts: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        judged = ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items()))
        return (f"imported {self.stored} of {self.read} OONI measurements into "
                f"{len(self.runs)} runs ({self.duplicates} already stored, {self.skipped} "
                f"skipped)" + (f": {judged}" if judged else ""))


def run_id_of(mapped: Mapped) -> str:
    """The deterministic run id of a measurement's OONI report: the report's start second
    (from its id, else the measurement's) and a hash of the report id."""
    p = mapped.provenance
    report = p.report_id or f"no-report|{p.probe_asn}|{p.probe_cc}|{p.test_name}"
    match = _REPORT_START.match(p.report_id or "")
    start = match.group(1) if match else (
        mapped.measurement.started_at[:19].replace("-", "").replace(":", "") + "Z")
    return f"{start}-ooni-{hashlib.sha256(report.encode()).hexdigest()[:12]}"


def settings_of(mapped: Mapped) -> dict[str, object]:
    p = mapped.provenance
    return {"source": SOURCE, "report_id": p.report_id, "test_name": p.test_name,
            "test_version": p.test_version, "software_name": p.software_name,
            "software_version": p.software_version, "resolver_ip": p.resolver_ip,
            "resolver_asn": p.resolver_asn}


def context_for(base: Context, missing: Iterable[str]) -> Context:
    """The classifier's context for a measurement lacking ``missing`` evidence (reanalyze
    builds the same from the stored provenance)."""
    return dataclasses.replace(base, missing=frozenset(missing))


def import_ooni(store: Store, paths: Iterable[str], *, stdin: IO[str] | None = None,
                on_problem: Callable[[str, str], None] | None = None,
                context: Context | None = None) -> ImportResult:
    """Import every OONI measurement of ``paths`` into ``store``; returns the counts.

    ``on_problem(origin, problem)`` is called once per skipped document (``origin`` is
    ``FILE:LINE``). Each measurement is written atomically, so an import stopped half-way
    keeps everything written so far, and running it again stores only what is missing.
    """
    base = context if context is not None else Context()
    result = ImportResult()
    for item in read_paths(paths, stdin=stdin):
        if isinstance(item, BadInput):
            result.skipped += 1
            if on_problem is not None:
                on_problem(item.origin, item.problem)
            continue
        result.read += 1
        try:
            mapped = map_document(item.doc, item.origin)
        except MappingError as exc:
            result.skipped += 1
            if on_problem is not None:
                on_problem(item.origin, str(exc))
            continue
        run_id = run_id_of(mapped)
        if run_id not in result.runs:
            p = mapped.provenance
            store.ensure_run(run_id, mapped.measurement.started_at, settings_of(mapped),
                             probe_asn=p.probe_asn, probe_cc=p.probe_cc,
                             network_name=p.probe_network_name)
            result.runs.add(run_id)
        verdict = classify(mapped.measurement, context_for(base, mapped.provenance.missing))
        if store.save_import(run_id, mapped.measurement, verdict, mapped.provenance) is None:
            result.duplicates += 1
            continue
        result.stored += 1
        result.verdicts[f"{verdict.verdict.value}"] += 1
    for run_id in result.runs:
        store.count_run(run_id)
    return result


__all__ = ["ImportResult", "context_for", "import_ooni", "run_id_of"]
