"""Benchmark case: where one imported measurement's CPU time goes, stage by stage.

Responsibility: run the importer's stages one after the other over the same documents in this
process (reading and inflating, JSON decoding, mapping, judging, building rows and the
population fact, the hand-over between processes, the store's write) and report each stage's
CPU microseconds per measurement, next to the budget that issue 12's goal (5,000 measurements
per CPU-second) leaves: 200 µs for everything. The stages are the pipeline's own public
functions (:mod:`probe.ingest.pipeline`, :mod:`probe.ingest.reader`, :mod:`probe.store.bulk`)
called stage-wise — all documents through one stage, then the next — so each stage is timed
alone; the parallel import runs the same work interleaved.

The figure that matters for the goal is ``floor``: reading + decoding + writing, the work no
change to mapping or judging can remove (the store's schema, its privacy scrub and SQLite fix
the write). Its inverse is the ``ceiling``: the most measurements per CPU-second the importer
could reach with mapping, judging and the hand-over free.
"""

from __future__ import annotations

import itertools
import pickle
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: CPU microseconds a measurement may cost at issue 12's goal (5,000 per CPU-second).
BUDGET_US = 1e6 / 5_000
#: Stages in pipeline order (``rows`` includes the population fact and the runs' rows).
STAGES = ("read", "decode", "map", "judge", "rows", "handover", "write")


def stage_costs(paths: Sequence[Path], n: int = 10_000,
                workdir: Path | None = None) -> dict[str, Any]:
    """CPU µs per measurement of each stage over the first ``n`` documents of ``paths`` (an
    archive tree as :func:`probe.ingest.reader.raw_paths` reads it), written into a fresh
    database under ``workdir`` (a temporary directory; removed afterwards)."""
    from probe.classify import Context, classify
    from probe.classify import population as pop
    from probe.ingest import pipeline
    from probe.ingest.mapper import MappingError, map_document
    from probe.ingest.reader import BadInput, parse, raw_paths
    from probe.store import Store, bulk
    from probe.store.db import import_measurement_id

    clock = time.process_time
    t0 = clock()
    raw = list(itertools.islice(
        (x for x in raw_paths([str(p) for p in paths]) if not isinstance(x, BadInput)), n))
    read = clock() - t0
    count = len(raw)
    if not count:
        raise ValueError("no documents to measure")

    t0 = clock()
    docs = [parse(text, f"{name}:{line}") for name, line, text in raw]
    decode = clock() - t0

    t0 = clock()
    mapped = []
    for d in docs:
        if isinstance(d, BadInput):
            continue
        try:
            mapped.append(map_document(d.doc, d.origin))
        except MappingError:
            continue
    mapping = clock() - t0

    # Judging, and the population fact right after it as the worker does (the fact reads
    # the control answers the classifier just read: a one-entry memo, so it is timed per
    # measurement beside judging, not in a pass of its own).
    contexts = pipeline.ContextCache(Context())
    base = Context()
    verdicts = []
    judge = fact = 0.0
    for m in mapped:
        t0 = clock()
        verdicts.append(classify(m.measurement, contexts.get(m.provenance.missing)))
        t1 = clock()
        pop.fact(m.measurement, *pipeline.population_network(m.provenance), base.country_of)
        judge += t1 - t0
        fact += clock() - t1

    # The rest of a worker's work (as process_chunk): the run id and the rows.
    t0 = clock()
    for m, v in zip(mapped, verdicts, strict=True):
        p = m.provenance
        bulk.measurement_rows(import_measurement_id(m.measurement.started_at, p.dedup_key),
                              pipeline.run_id_of(m), m.measurement, v, p, "bench")
    rows = clock() - t0 + fact

    # The chunks' results as workers hand them over (not timed: their stages are above).
    results = [pipeline.process_chunk(c, base, "bench")
               for c in pipeline.chunks(raw) if isinstance(c, pipeline.Chunk)]
    t0 = clock()
    for r in results:
        pickle.loads(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL))
    handover = clock() - t0

    with tempfile.TemporaryDirectory(prefix="probe-bench-stages-", dir=workdir) as tmp:
        with Store.open(Path(tmp) / "stages.db") as store, bulk.import_settings(store):
            t0 = clock()
            for r in results:
                bulk.save_imports(store, list(r.runs.values()),
                                  [(it.dedup_key, it.run_id, it.tables) for it in r.items])
            write = clock() - t0

    us = {name: round(seconds / count * 1e6, 1) for name, seconds in zip(
        STAGES, (read, decode, mapping, judge, rows, handover, write), strict=True)}
    floor = us["read"] + us["decode"] + us["write"]
    total = sum(us.values())
    return {"measurements": count, "us": us, "total_us": round(total, 1),
            "floor_us": round(floor, 1), "budget_us": BUDGET_US,
            "ceiling_per_core": round(1e6 / floor) if floor else None,
            "per_core_in_process": round(1e6 / total) if total else None}


def render_stages(figures: dict[str, Any]) -> str:
    """The stage table: µs per measurement and share of the goal's budget."""
    us = figures["us"]
    budget = figures["budget_us"]
    lines = [f"where an imported measurement's CPU goes (one process, stage by stage, "
             f"{figures['measurements']:,} measurements; the goal's budget: {budget:.0f} µs)"]
    width = max(len(s) for s in STAGES)
    for name in STAGES:
        lines.append(f"  {name:<{width}}  {us[name]:7.1f} µs  {us[name] / budget:5.0%} of budget")
    lines.append(f"  {'total':<{width}}  {figures['total_us']:7.1f} µs  "
                 f"→ {figures['per_core_in_process']:,} measurements per CPU-second")
    lines.append(f"  read + decode + write alone: {figures['floor_us']:.1f} µs → at most "
                 f"{figures['ceiling_per_core']:,} per CPU-second with mapping and judging free")
    return "\n".join(lines)


__all__ = ["BUDGET_US", "STAGES", "render_stages", "stage_costs"]
