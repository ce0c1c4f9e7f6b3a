"""Import OONI measurements into a probe database: read, map, judge, store — in parallel, streamed.

Responsibility: the IO composition behind ``probe import ooni``: stream raw documents from
:mod:`probe.ingest.reader`, have a bounded pool of worker processes parse, map
(:mod:`probe.ingest.mapper`, pure) and judge them with our own classifier told which evidence
the source lacks (``Context.missing``) — :mod:`probe.ingest.pipeline` — and store them from this
process, the one writer, a chunk per transaction with their provenance
(:func:`probe.store.bulk.save_imports`, idempotent by ``dedup_key``). One run per OONI
``report_id`` with a deterministic id, so a re-import lands in the same run. A document that
cannot be read or mapped is reported (``FILE:LINE: problem``) and skipped; nothing already
stored is lost.

Then the population (:mod:`probe.classify.population`): imported measurements have no
canaries, so a network's state per hour is inferred from all of its measurements — the facts
of the measurements just stored (made by the workers) plus one streaming pass over the ones
stored before in the same networks — and the failures in a cut hour become ``shutdown``
(:func:`apply_population`), as ``probe reanalyze`` would judge them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import IO

from probe.classify import Context
from probe.classify import population as pop
from probe.classify.health import NetworkState
from probe.ingest.pipeline import (
    CHUNK,
    Chunk,
    ChunkResult,
    Done,
    Pending,
    bounded_ordered,
    chunks,
    context_for,
    documents,
    init_worker,
    process_chunk,
    run_id_of,
    settings_of,
)
from probe.ingest.reader import BadInput, raw_paths
from probe.model import Measurement, Verdict, utcnow_iso
from probe.store import Store, bulk

#: Imported measurements judged again per batch in :func:`apply_population`.
_BATCH = 1000


@dataclass
class ImportResult:
    """What one import did: documents read, stored, already there, skipped (unreadable or
    not a measurement), the stored verdicts by ``verdict``, the worker processes used (0 =
    none: judged in this process) and how many verdicts the population turned into
    ``shutdown``."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    runs: set[str] = field(default_factory=set)
    verdicts: Counter[str] = field(default_factory=Counter)
    workers: int = 0
    shutdowns: int = 0

    def summary(self) -> str:
        judged = ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items()))
        cut = (f"; {self.shutdowns} re-judged shutdown from their network's population"
               if self.shutdowns else "")
        return (f"imported {self.stored} of {self.read} OONI measurements into "
                f"{len(self.runs)} runs ({self.duplicates} already stored, {self.skipped} "
                f"skipped)" + (f": {judged}" if judged else "") + cut)


def default_workers() -> int:
    """Worker processes by default: one per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _bad(item: BadInput) -> ChunkResult:
    return ChunkResult(problems=[(item.origin, item.problem)])


def _small(tasks: Iterator[Chunk | BadInput]) -> tuple[bool, Iterator[Chunk | BadInput]]:
    """Whether the input is at most one chunk (then a pool costs more than it gives), and
    the tasks with what was looked at put back."""
    seen: list[Chunk | BadInput] = []
    n = 0
    for t in tasks:
        seen.append(t)
        n += isinstance(t, Chunk)
        if n > 1:
            return False, chain(seen, tasks)
    return True, iter(seen)


def import_ooni(store: Store, paths: Iterable[str], *, stdin: IO[str] | None = None,
                on_problem: Callable[[str, str], None] | None = None,
                context: Context | None = None, workers: int | None = None,
                chunk_size: int = CHUNK, window: int | None = None) -> ImportResult:
    """Import every OONI measurement of ``paths`` into ``store``; returns the counts.

    ``on_problem(origin, problem)`` is called once per skipped document (``origin`` is
    ``FILE:LINE``). ``workers``: worker processes (None = one per CPU; 0 = judge in this
    process); an input of one chunk (``chunk_size`` documents) is judged in this process
    anyway. At most ``window`` documents (default: 2 chunks' worth per worker + 2) are in
    flight, so memory does not grow with the input. Every chunk is written atomically, so
    an import stopped half-way keeps everything written so far, and running it again stores
    only what is missing. The stored result does not depend on ``workers`` or ``chunk_size``.
    """
    base = context if context is not None else Context()
    n = default_workers() if workers is None else max(0, workers)
    result = ImportResult()
    tasks: Iterator[Chunk | BadInput] = chunks(raw_paths(paths, stdin), chunk_size)
    small, tasks = _small(tasks)
    imported_at = utcnow_iso()
    before = store.max_measurement_rowid()
    population = pop.Population()
    networks: set[tuple[int, str | None]] = set()

    def write(results: Iterator[ChunkResult]) -> None:
        for res in results:
            for origin, why in res.problems:
                result.skipped += 1
                if on_problem is not None:
                    on_problem(origin, why)
            result.read += res.read
            new_runs = [row for rid, row in res.runs.items() if rid not in result.runs]
            result.runs.update(res.runs)
            if not res.items and not new_runs:
                continue
            stored = bulk.save_imports(
                store, new_runs, [(it.dedup_key, it.run_id, it.tables) for it in res.items])
            for it, ok in zip(res.items, stored, strict=True):
                if not ok:
                    result.duplicates += 1
                    continue
                result.stored += 1
                result.verdicts[it.verdict] += 1
                population.add(it.fact)
                if it.network is not None:
                    networks.add(it.network)

    with bulk.import_settings(store):
        _run(write, tasks, small, n, base, imported_at, result,
             window or (2 * n + 2) * chunk_size)
    result.shutdowns = apply_population(store, population, networks, before, base)
    return result


def _run(write: Callable[[Iterator[ChunkResult]], None], tasks: Iterator[Chunk | BadInput],
         small: bool, n: int, base: Context, imported_at: str, result: ImportResult,
         window: int) -> None:
    """Judge the chunks (in this process, or in ``n`` workers) and hand them to ``write``."""
    if small or n == 0:
        write(process_chunk(t, base, imported_at) if isinstance(t, Chunk) else _bad(t)
              for t in tasks)
    else:
        result.workers = n
        # fork: workers start in milliseconds with everything imported, and a library
        # caller's main module is not run again (spawn and forkserver re-import it).
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(n, initializer=init_worker, initargs=(base,)) as pool:

            def submit(t: Chunk | BadInput) -> Pending[ChunkResult]:
                if isinstance(t, BadInput):
                    return Done(_bad(t))
                return pool.apply_async(process_chunk, (t, None, imported_at))

            write(bounded_ordered(submit, tasks, window, weight=documents))


def _network(asn: int, cc: str | None) -> str:
    return f"AS{asn} {cc or 'ZZ'}"


def apply_population(store: Store, population: pop.Population,
                     networks: Iterable[tuple[int, str | None]], before_rowid: int,
                     context: Context) -> int:
    """Apply the population inference to the imported measurements of ``networks``.

    ``population`` holds the facts of the measurements just imported; the measurements of
    those networks stored before (measurement rowid ≤ ``before_rowid``) are added in one
    streaming pass (one query per page, no per-measurement provenance query). Every imported
    measurement of those networks that ran in a cut hour is then judged again with the
    hour's state (:func:`probe.classify.population.apply`; a verdict is stored only when it
    changes). Returns the number of verdicts changed.
    """
    wanted = set(networks)
    if not wanted:
        return 0
    if before_rowid > 0:
        keys = store.imported_keys(wanted, upto_rowid=before_rowid)
        for mid_net, m in _measurements(store, keys):
            population.add(pop.fact(m, _network(*mid_net), mid_net[1], context.country_of))
    states = population.states()
    cut = {k: s for k, s in states.items() if s.is_cut}
    if not cut:
        return 0
    in_cut = ((mid, asn, cc, started) for mid, asn, cc, started in store.imported_keys(wanted)
              if (_network(asn, cc), started[:13]) in cut)
    changed = 0
    while True:
        batch = list(islice(in_cut, _BATCH))
        if not batch:
            return changed
        current = store.current_verdicts([b[0] for b in batch])
        updates: list[tuple[str, Verdict]] = []
        for (asn, cc), (mid, m) in zip(
                [(b[1], b[2]) for b in batch],
                store.measurements_by_id(b[0] for b in batch), strict=True):
            old = current.get(mid)
            if old is None:
                continue
            x = pop.fact(m, _network(asn, cc), cc, context.country_of)
            new = pop.apply(old, x, cut.get((x.network, x.hour)), NetworkState.UNKNOWN)
            if (new.verdict, new.method, new.analysis_version) != (
                    old.verdict, old.method, old.analysis_version):
                updates.append((mid, new))
        store.save_verdicts(updates)
        changed += len(updates)


def _measurements(store: Store, keys: Iterator[tuple[str, int, str | None, str]]
                  ) -> Iterator[tuple[tuple[int, str | None], Measurement]]:
    """``((asn, cc), Measurement)`` for every key, loaded a page at a time."""
    while True:
        batch = list(islice(keys, _BATCH))
        if not batch:
            return
        for b, (_, m) in zip(batch, store.measurements_by_id(b[0] for b in batch),
                             strict=True):
            yield (b[1], b[2]), m


__all__ = ["ImportResult", "apply_population", "context_for", "default_workers",
           "import_ooni", "run_id_of", "settings_of"]
