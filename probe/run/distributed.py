"""Archive-scale analysis on Dask's distributed scheduler: the same pure classifier, many workers.

Responsibility: cutting re-analysis and archive export into tasks for ``dask.distributed`` and
putting their results together; no scheduling of our own (issue 16). A local cluster
(``LocalCluster``: worker processes on this machine) by default, ``scheduler`` =
``tcp://HOST:PORT`` for a real one (docs/collector.md, "Analysis at archive scale").

* :func:`reanalyze` (``probe reanalyze --dask``): the driver makes what needs the whole
  database in one pass, with the functions of the single-process path
  (:mod:`probe.run.reanalyze`) — the population states of every run, each run's throttling
  baseline and its own view of IPv6 (:class:`probe.classify.families.IPv6Population`) — then
  each task judges a slice of one run's measurements with
  :func:`probe.run.reanalyze.judge_run`, opening the database read-only, and returns the
  changed verdicts; the driver, the one writer, stores them. So both paths give the same
  verdicts by construction (tested). Workers must see the database file at the same path (a
  shared file system on a real cluster).
* :func:`reanalyze_parquet` (``--parquet DIR``): the same on a lossless Parquet dataset
  (:mod:`probe.export.parquet_read`), in two phases — one task per run for the whole-run facts,
  one task per ``records`` file to judge and write — into a new dataset.
* :func:`analyze_archive` (``--archive``): OONI ``.jsonl``/``.jsonl.gz`` files, in two phases:
  one task per file returns its population counts (the import pipeline's worker function,
  :func:`probe.ingest.pipeline.process_chunk`, gives the facts), the driver infers the cut
  hours, then one task per file judges it with them, as ``probe import`` does, and writes its
  rows into our partitioned Parquet dataset (:mod:`probe.export.parquet`, files named after
  the task so tasks never collide). Nothing is written to a database.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from probe.classify import ANALYSIS_VERSION, Context, classify, throttle_baseline
from probe.classify import families as fam
from probe.classify import population as pop
from probe.classify.context import ThrottleBaseline
from probe.classify.health import HealthRound, NetworkState, rounds
from probe.classify.throttling import BaselineBuilder
from probe.errors import StorageError, UsageError
from probe.export import parquet_read
from probe.export.parquet import DatasetWriter, _page_rows
from probe.export.source import Page
from probe.ingest.pipeline import CHUNK, Chunk, ChunkResult, population_network, process_chunk
from probe.ingest.reader import BadInput, raw_file, walk
from probe.model import Verdict, utcnow_iso
from probe.run import asn
from probe.run.reanalyze import (
    States,
    _counted,
    _facts,
    country_lookup,
    judge_run,
    rejudge_traces,
)
from probe.store import Store, bulk, rows

#: Measurements judged per task.
SLICE = 2000


@contextlib.contextmanager
def client(scheduler: str | None = None, workers: int = 2,
           memory_limit: str = "2GiB") -> Iterator[Any]:
    """A ``dask.distributed`` client: of ``scheduler`` (``tcp://HOST:PORT``), or of a local
    cluster of ``workers`` single-threaded worker processes (closed on exit)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:  # the optional extra
        raise UsageError("--dask needs dask[distributed]: pip install 'probe[dask]'") from e
    if scheduler is not None:
        if not scheduler.startswith(("tcp://", "tls://")):
            raise UsageError(f"--scheduler {scheduler!r}: expected tcp://HOST:PORT")
        with Client(scheduler, timeout="30s") as c:
            yield c
        return
    with LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit=memory_limit,
                      silence_logs=40) as cluster, Client(cluster) as c:
        yield c


def _share(c: Any, value: Any) -> Any:
    """``value`` shipped once to every worker (a future). Wrapped in a list: dask scatters a
    dict's values one by one (and an empty dict not at all)."""
    return c.scatter([value], broadcast=True)[0]


# --- re-analysis of a database ----------------------------------------------------------------


def _judge_slice(db_path: str, run_id: str, ids: list[str], context: Context,
                 states: States, ipv6: fam.IPv6Population | None = None
                 ) -> list[tuple[str, str | None, Verdict]]:
    """One task: the changed verdicts of ``ids`` (measurements of ``run_id``); ``ipv6``: the
    run's own view of IPv6, counted by the driver over the whole run."""
    with Store.open_readonly(db_path) as store:
        return [(mid, None if old is None else old.verdict.value, new)
                for mid, old, new in judge_run(store, run_id, context, states, ids,
                                               ipv6=ipv6)]


def reanalyze(db_path: str, run_id: str | None = None, asn_db: str | None = None, *,
              scheduler: str | None = None, workers: int = 2, slice_size: int = SLICE,
              on_done: Callable[[Any], None] | None = None) -> str:
    """:func:`probe.run.reanalyze.reanalyze` on Dask; the same one-line summary.
    ``on_done(client)``: called once every task is done, before a local cluster closes (the
    benchmark reads the workers' peak memory there)."""
    table = asn.load(asn_db) if asn_db else None
    asn_of = table.asn if table else None
    country_of = country_lookup(table)
    counts: Counter[str] = Counter()
    db = str(Path(db_path).expanduser().resolve())
    if not Path(db).is_file():  # never a new empty database
        raise StorageError(f"cannot open database {db}: no such file")
    with Store.open(db) as store:
        runs = [store.get_run(run_id)["run_id"]] if run_id else store.run_ids()
        # one streaming pass over every run: the population's facts (every run) and, for the
        # runs to judge, their throttling baseline and their own view of IPv6 (the run-level
        # "IPv6 broken here" inference, probe.classify.families) — what the single-process
        # path reads in two passes
        population = pop.Population()
        facts_context = Context(asn_of=asn_of, country_of=country_of)
        contexts: dict[str, Context] = {}
        ipv6s: dict[str, fam.IPv6Population] = {}
        for run in store.run_ids():
            measurements = _facts(store, run, facts_context, population)
            if run not in runs:
                for _ in measurements:
                    pass
                continue
            context = Context(health=tuple(rounds(store.health_samples(run))), asn_of=asn_of,
                              country_of=country_of)
            ipv6s[run] = fam.IPv6Population()
            contexts[run] = replace(context, throttle_baseline=throttle_baseline(
                _counted(measurements, ipv6s[run], context), context.health))
        states = population.states()
        tasks: list[tuple[str, list[str], Context]] = []
        for run in runs:
            ids = [r[0] for r in store.db.execute(
                "SELECT measurement_id FROM measurements WHERE run_id = ? ORDER BY rowid",
                [run]).fetchall()]
            counts["measurements"] += len(ids)
            for i in range(0, len(ids), slice_size):
                tasks.append((run, ids[i:i + slice_size], contexts[run]))
        store.checkpoint()  # workers read the file: everything out of the WAL first
    with client(scheduler, workers) as c:
        # shipped once to every worker, not with each task: a Context carries the fingerprint
        # database (~0.6 MB pickled, its regexes compiled on first use per object)
        states_f = _share(c, states)
        contexts_f = {run: c.scatter(ctx, broadcast=True) for run, ctx in contexts.items()}
        futures = [c.submit(_judge_slice, db, run, ids, contexts_f[run], states_f, ipv6s[run],
                            pure=False)
                   for run, ids, _ in tasks]
        results = c.gather(futures)
        if on_done is not None:
            on_done(c)
    with Store.open(db) as store:
        changed = [(mid, new) for part in results for mid, _, new in part]
        store.save_verdicts(changed)
        counts["changed"] = len(changed)
        for run in runs:
            counts["traces"] += rejudge_traces(store, run)
    traces = f", {counts['traces']} traces re-judged" if counts["traces"] else ""
    return (f"reanalyzed {counts['measurements']} measurements in {len(runs)} runs with "
            f"classifier {ANALYSIS_VERSION} on Dask ({len(tasks)} tasks): "
            f"{counts['changed']} verdicts changed{traces}")


# --- a lossless Parquet dataset, judged again -------------------------------------------------


@dataclass(slots=True)
class ParquetResult:
    """What :func:`reanalyze_parquet` did: measurements judged, runs, tasks, verdicts that
    changed, the new verdicts by kind and the rows written per table."""

    measurements: int = 0
    runs: int = 0
    tasks: int = 0
    changed: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    out: str = ""

    def summary(self) -> str:
        return (f"reanalyzed {self.measurements} measurements in {self.runs} runs with "
                f"classifier {ANALYSIS_VERSION} on Dask ({self.tasks} tasks): {self.changed} "
                f"verdicts changed; wrote {self.rows['verdicts']} verdict rows to {self.out}")


def _stored_network(r: parquet_read.StoredRecord, run: Mapping[str, Any],
                    context: Context) -> tuple[str, str | None]:
    """:func:`probe.run.reanalyze.network_of` for a record read back."""
    if r.provenance is not None:
        return population_network(r.provenance)
    return f"run {r.run_id}", context.probe_cc or run.get("probe_cc")


@dataclass(slots=True)
class _RunFacts:
    """What the first phase learns of one run (from one file, then merged over the run's
    files in their order): its IPv6 counts and its throttling baseline's accumulator."""

    ipv6: fam.IPv6Population
    baseline: BaselineBuilder

    def merge(self, later: _RunFacts) -> _RunFacts:
        self.ipv6.ok6 += later.ipv6.ok6
        self.ipv6.fail6 += later.ipv6.fail6
        self.baseline.merge(later.baseline)
        return self


#: Row groups of a ``records`` file per task (500 records each,
#: :data:`probe.export.parquet.RECORDS_ROW_GROUP_ROWS`): a day of one network is one file,
#: often one run, and is still cut into several tasks.
GROUPS_PER_TASK = 2


@dataclass(frozen=True, slots=True)
class _Slice:
    """Row groups ``[first, stop)`` of one ``records`` file: one task's input."""

    path: str
    first: int
    stop: int

    @property
    def name(self) -> str:
        """The task's file prefix in the output dataset."""
        key = f"{self.path}:{self.first}"
        return "part-" + hashlib.sha256(key.encode()).hexdigest()[:16]

    def records(self) -> Iterator[parquet_read.StoredRecord]:
        return parquet_read.records(self.path, groups=range(self.first, self.stop))


def _slices(paths: Sequence[str], per_task: int = GROUPS_PER_TASK) -> list[_Slice]:
    """The tasks' inputs, in dataset order (files in path order, row groups in file order)."""
    out: list[_Slice] = []
    for path in paths:
        n = parquet_read.row_groups(path)
        out.extend(_Slice(path, i, min(n, i + per_task)) for i in range(0, n, per_task))
    return out


def _file_pass(part: _Slice, runs: dict[str, parquet_read.StoredRun], base: Context
               ) -> tuple[pop.Population, dict[str, _RunFacts]]:
    """Phase 1, one task per slice of a ``records`` file: one streaming pass gathering the
    population counts of its records and, per run, what the single-process path's whole-run
    pass (:func:`probe.run.reanalyze.reclassify_run`) gathers — small results whatever the
    slice's size (counts, and a few numbers per clean transfer)."""
    path = part.path
    population = pop.Population()
    facts: dict[str, _RunFacts] = {}
    contexts: dict[str, Context] = {}
    for r in part.records():
        if r.run_id not in runs:
            raise UsageError(f"{path}: a record of run {r.run_id} but no such run in the "
                             "dataset's runs table")
        context = contexts.get(r.run_id)
        if context is None:
            context = contexts[r.run_id] = replace(
                base, health=tuple(rounds(runs[r.run_id].health)))
            facts[r.run_id] = _RunFacts(fam.IPv6Population(), BaselineBuilder(context.health))
        network, cc = _stored_network(r, runs[r.run_id].run, context)
        population.add(pop.fact(r.measurement, network, cc, context.country_of))
        found = facts[r.run_id]
        found.ipv6.add(r.measurement, context)
        found.baseline.add(r.measurement)
    for found in facts.values():
        found.baseline.rounds = ()  # the driver has them: not shipped back
    return population, facts


#: Records per page handed to the Parquet writer in a judging task.
_PAGE = 500


def _judge_records(part: _Slice, out: str, base: Context, states: States,
                   per_run: dict[str, tuple[tuple[HealthRound, ...], ThrottleBaseline | None,
                                            fam.IPv6Population]],
                   runs: dict[str, dict[str, Any]], stamp: str
                   ) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """Phase 2, one task per slice of a ``records`` file: judge each record as
    :func:`probe.run.reanalyze.judge_run` does and write it, with its new current verdict, to
    the dataset ``out`` (lossless too). Returns (records, verdicts changed, new verdicts by
    kind, rows per table)."""
    writer = DatasetWriter(Path(out), name=part.name)
    contexts = {run: replace(base, health=health, throttle_baseline=baseline)
                for run, (health, baseline, _) in per_run.items()}
    n = changed = 0
    verdicts: Counter[str] = Counter()
    page = Page([])
    provenances: dict[str, dict[str, Any]] = {}

    def flush() -> None:
        nonlocal page, provenances
        _page_rows(_Runs(runs), page, writer, provenances)  # type: ignore[arg-type]
        page, provenances = Page([]), {}

    try:
        for r in part.records():
            n += 1
            context = contexts[r.run_id]
            m, p = r.measurement, r.provenance
            judged = classify(m, replace(context, missing=frozenset(p.missing)) if p else context)
            network, cc = _stored_network(r, runs[r.run_id], context)
            x = pop.fact(m, network, cc, context.country_of)
            new = pop.apply(judged, x, states.get((x.network, x.hour)),
                            pop.canaries_state(m, context))
            new = per_run[r.run_id][2].apply(new, m, context)
            old = r.verdict
            vrow = r.verdict_row
            if old is None or (old.verdict, old.method, old.analysis_version) != (
                    new.verdict, new.method, new.analysis_version):
                changed += 1
                vrow = rows.verdict_row(r.measurement_id, new, stamp)
            verdicts[new.verdict.value] += 1
            mid = r.measurement_id
            page.measurements.append(r.rows["measurements"][0])
            for table, found in r.rows.items():
                if table != "measurements":
                    page.children.setdefault(table, {})[mid] = found
            page.verdicts[mid] = [vrow] if vrow is not None else []
            if r.provenance_row is not None:
                provenances[mid] = r.provenance_row
            if len(page.measurements) >= _PAGE:
                flush()
        flush()
    finally:
        writer.close()
    return n, changed, dict(verdicts), dict(writer.counts)


def reanalyze_parquet(root: str, out: str, asn_db: str | None = None, *,
                      scheduler: str | None = None, workers: int = 2,
                      groups_per_task: int = GROUPS_PER_TASK,
                      on_done: Callable[[Any], None] | None = None) -> ParquetResult:
    """Judge every measurement of the lossless Parquet dataset ``root`` again, on Dask, and
    write the dataset ``out`` with the new current verdicts (lossless as well, so it can be
    judged again). Two phases, as the single-process path's two passes
    (:func:`probe.run.reanalyze.reanalyze`): one task per ``records`` file gathers its
    population counts and, per run, its IPv6 counts and its throttling baseline's numbers
    (small results); the driver merges them (the population into the per-(network, hour)
    states, each run's pieces in dataset order); then one task per slice judges its records
    with those. A task is a slice of :data:`GROUPS_PER_TASK` row groups of one ``records``
    file, so a big partition is still cut into several tasks. Every file is read twice, never
    once per run (a partition of imported OONI data holds thousands of reports, each a run).
    Memory stays flat: every task reads one row group at a time."""
    src = Path(root).expanduser().resolve()
    dest = Path(out).expanduser().resolve()
    if dest == src or src in dest.parents:
        raise UsageError(f"--out {out}: must not be inside the input dataset {root}")
    record_files = [str(f) for f in parquet_read.files(src, "records")]
    stored_runs = parquet_read.runs(src)
    table = asn.load(asn_db) if asn_db else None
    base = Context(asn_of=table.asn if table else None, country_of=country_lookup(table))
    file_runs = {f: sorted(parquet_read.run_ids(f)) for f in record_files}  # one column each
    for f, found in file_runs.items():
        unknown = [run for run in found if run not in stored_runs]
        if unknown:
            raise UsageError(f"{f}: records of run {unknown[0]} but no such run in the "
                             "dataset's runs table")
    result = ParquetResult(out=str(dest))
    dest.mkdir(parents=True, exist_ok=True)
    stamp = utcnow_iso()
    parts = _slices(record_files, max(1, groups_per_task))
    with client(scheduler, workers) as c:
        base_f = c.scatter(base, broadcast=True)
        facts: dict[str, _RunFacts] = {}
        in_part: list[list[str]] = []
        population = pop.Population()
        # dataset order = each run's order (the dataset is written in start-time order), so
        # each run's baseline accumulates its measurements in order
        for found_pop, found in c.gather([
                c.submit(_file_pass, part, {run: stored_runs[run] for run in file_runs[part.path]},
                         base_f, pure=False) for part in parts]):
            population.merge(found_pop)
            in_part.append(list(found))
            for run, x in found.items():
                facts[run] = facts[run].merge(x) if run in facts else x
        states_f = _share(c, population.states())
        result.runs = len(facts)
        baselines = {run: x.baseline.result() for run, x in facts.items()}
        futures = []
        for part, runs_in in zip(parts, in_part, strict=True):
            per_run = {run: (tuple(rounds(stored_runs[run].health)), baselines[run],
                             facts[run].ipv6) for run in runs_in}
            futures.append(c.submit(_judge_records, part, str(dest), base_f, states_f, per_run,
                                    {run: stored_runs[run].run for run in per_run}, stamp,
                                    pure=False))
        result.tasks = 2 * len(parts)
        for n, changed, verdicts, table_rows in c.gather(futures):
            result.measurements += n
            result.changed += changed
            result.verdicts.update(verdicts)
            result.rows.update(table_rows)
        if on_done is not None:
            on_done(c)
    # what judging does not change, as read: the runs (so the output is lossless too) and
    # the health samples
    for kept in ("runs", "health_samples"):
        if (dest / kept).exists():
            shutil.rmtree(dest / kept)
        if (src / kept).is_dir():
            shutil.copytree(src / kept, dest / kept)
    result.rows["runs"] = len(stored_runs)
    return result


# --- an archive to a Parquet dataset ----------------------------------------------------------


@dataclass(slots=True)
class ArchiveResult:
    files: int = 0
    read: int = 0
    skipped: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)
    cut_hours: int = 0

    def summary(self) -> str:
        shown = ", ".join(f"{n} {v}" for v, n in self.verdicts.most_common())
        cut = (f"; {self.cut_hours} (network, hour) cut by the population"
               if self.cut_hours else "")
        return (f"analyzed {self.read} measurements from {self.files} files "
                f"({self.skipped} skipped) into {self.rows['verdicts']} verdict rows"
                + (f": {shown}" if shown else "") + cut)


class _Runs:
    """What :func:`probe.export.parquet._page_rows` asks a source: a run's row."""

    def __init__(self, runs: dict[str, dict[str, Any]]) -> None:
        self.runs = runs

    def run(self, run_id: str) -> dict[str, Any]:
        return self.runs[run_id]


def _chunks(path: str, problems: list[tuple[str, str]]) -> Iterator[Chunk]:
    """The raw documents of one input file in chunks of :data:`CHUNK`; unreadable lines go to
    ``problems``."""
    items: list[tuple[int, str]] = []
    for x in raw_file(Path(path)):
        if isinstance(x, BadInput):
            problems.append((x.origin, x.problem))
            continue
        items.append(x)
        if len(items) >= CHUNK:
            yield Chunk(path, items)
            items = []
    if items:
        yield Chunk(path, items)


def _archive_facts(path: str, base: Context, stamp: str) -> pop.Population:
    """Phase 1, one task per input file: the population counts of its measurements (the
    facts :func:`probe.ingest.pipeline.process_chunk` gives, counted per (network, hour): a
    small result whatever the file's size)."""
    population = pop.Population()
    for chunk in _chunks(path, []):
        for it in process_chunk(chunk, base, stamp).items:
            population.add(it.fact)
    return population


def _with_population(result: ChunkResult, cut: States) -> None:
    """Apply the cut hours' states to the chunk's verdict rows, as ``probe import`` does
    (:func:`probe.ingest.importer.apply_population`: imported data has no canaries)."""
    if not cut:
        return
    at = bulk.TABLES.index("verdicts")
    names = bulk.COLUMNS["verdicts"]
    for i, it in enumerate(result.items):
        state = cut.get((it.fact.network, it.fact.hour))
        if state is None:
            continue
        (row,) = it.tables[at]
        vrow = dict(zip(names, row, strict=True))
        old = rows.verdict_from_row(vrow)
        new = pop.apply(old, it.fact, state, NetworkState.UNKNOWN)
        if (new.verdict, new.method, new.analysis_version) == (
                old.verdict, old.method, old.analysis_version):
            continue
        fresh = rows.verdict_row(vrow["measurement_id"], new, vrow["created_at"])
        it.tables[at][0] = tuple(fresh[c] for c in names)
        result.items[i] = it._replace(verdict=new.verdict.value)  # items are named tuples


def _archive_file(path: str, out: str, base: Context, stamp: str, cut: States | None = None
                  ) -> tuple[int, dict[str, int], dict[str, int], list[tuple[str, str]]]:
    """Phase 2, one task per input file: judge it (with the population's ``cut`` hours) and
    write its Parquet files; returns (documents read, verdict counts, rows per table,
    problems)."""
    name = "part-" + hashlib.sha256(path.encode()).hexdigest()[:16]
    writer = DatasetWriter(Path(out), name=name)
    problems: list[tuple[str, str]] = []
    read = 0
    verdicts: Counter[str] = Counter()
    try:
        for chunk in _chunks(path, problems):
            result = process_chunk(chunk, base, stamp)
            _with_population(result, cut or {})
            read += result.read
            problems.extend(result.problems)
            page = Page([])
            for it in result.items:
                verdicts[it.verdict] += 1
                tables = {t: [dict(zip(bulk.COLUMNS[t], r, strict=True)) for r in found]
                          for t, found in zip(bulk.TABLES, it.tables, strict=True)}
                (m,) = tables["measurements"]
                page.measurements.append(m)
                mid = m["measurement_id"]
                for table, found in tables.items():
                    if table == "verdicts":
                        page.verdicts[mid] = found
                    elif table != "measurements":
                        page.children.setdefault(table, {})[mid] = found
            page.measurements.sort(key=lambda r: r["started_at"])
            runs = {rid: dict(zip(bulk.COLUMNS["runs"], row, strict=True))
                    for rid, row in result.runs.items()}
            _page_rows(_Runs(runs), page, writer)  # type: ignore[arg-type]
    finally:
        writer.close()
    return read, dict(verdicts), dict(writer.counts), problems


def archive_files(paths: Sequence[str]) -> list[str]:
    """The input files: files as given, directories walked (OONI's archive layout)."""
    out: list[str] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            out.extend(str(f) for f in walk(path))
        elif path.is_file():
            out.append(str(path))
        else:
            raise UsageError(f"{p}: no such file or directory")
    return out


def analyze_archive(paths: Sequence[str], out: str, *, scheduler: str | None = None,
                    workers: int = 2, context: Context | None = None) -> ArchiveResult:
    """Judge every measurement of ``paths`` on Dask and write the Parquet dataset ``out``."""
    files = archive_files(paths)
    root = Path(out).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    base = context or Context()
    stamp = utcnow_iso()
    result = ArchiveResult(files=len(files))
    with client(scheduler, workers) as c:
        base_f = c.scatter(base, broadcast=True)  # once per worker (see reanalyze)
        # phase 1: the population counts of every file, merged into the states of every
        # (network, hour) — a shutdown hour may be spread over many files
        population = pop.Population()
        for part in c.gather([c.submit(_archive_facts, f, base_f, stamp, pure=False)
                              for f in files]):
            population.merge(part)
        cut = {k: s for k, s in population.states().items() if s.is_cut}
        result.cut_hours = len(cut)
        cut_f = _share(c, cut)
        # phase 2: judge and write, with the cut hours
        futures = [c.submit(_archive_file, f, str(root), base_f, stamp, cut_f, pure=False)
                   for f in files]
        for read, verdicts, table_rows, problems in c.gather(futures):
            result.read += read
            result.verdicts.update(verdicts)
            result.rows.update(table_rows)
            result.problems.extend(problems)
    result.skipped = len(result.problems)
    return result

