"""Archive-scale analysis on Dask's distributed scheduler: the same pure classifier, many workers.

Responsibility: cutting re-analysis and archive export into tasks for ``dask.distributed`` and
putting their results together; no scheduling of our own (issue 16). A local cluster
(``LocalCluster``: worker processes on this machine) by default, ``scheduler`` =
``tcp://HOST:PORT`` for a real one (docs/collector.md, "Analysis at archive scale").

* :func:`reanalyze` (``probe reanalyze --dask``): the driver makes what needs the whole
  database in one pass, with the functions of the single-process path
  (:mod:`probe.run.reanalyze`) — the population states of every run and each run's throttling
  baseline — then each task
  judges a slice of one run's measurements with :func:`probe.run.reanalyze.judge_run`, opening
  the database read-only, and returns the changed verdicts; the driver, the one writer, stores
  them. So both paths give the same verdicts by construction (tested). Workers must see the
  database file at the same path (a shared file system on a real cluster).
* :func:`analyze_archive`: one task per input file (``.jsonl``/``.jsonl.gz`` in OONI's archive
  layout): read, map and judge it with the import pipeline's worker function
  (:func:`probe.ingest.pipeline.process_chunk`), and write its rows into our partitioned
  Parquet dataset (:mod:`probe.export.parquet`, files named after the task so tasks never
  collide). Nothing is written to a database. The population shutdown inference of
  ``probe import`` (which needs every file first) is not applied here.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from probe.classify import ANALYSIS_VERSION, Context, throttle_baseline
from probe.classify import population as pop
from probe.classify.health import rounds
from probe.errors import StorageError, UsageError
from probe.export.parquet import DatasetWriter, _page_rows
from probe.export.source import Page
from probe.ingest.pipeline import CHUNK, Chunk, process_chunk
from probe.ingest.reader import BadInput, raw_file, walk
from probe.model import Verdict, utcnow_iso
from probe.run import asn
from probe.run.reanalyze import States, _facts, country_lookup, judge_run, rejudge_traces
from probe.store import Store, bulk

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


# --- re-analysis of a database ----------------------------------------------------------------


def _judge_slice(db_path: str, run_id: str, ids: list[str], context: Context,
                 states: States) -> list[tuple[str, str | None, Verdict]]:
    """One task: the changed verdicts of ``ids`` (measurements of ``run_id``)."""
    with Store.open_readonly(db_path) as store:
        return [(mid, None if old is None else old.verdict.value, new)
                for mid, old, new in judge_run(store, run_id, context, states, ids)]


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
        # one pass over every run: the population's facts (every run) and, for the runs to
        # judge, their measurements for the throttling baseline — what the single-process
        # path reads in two passes
        population = pop.Population()
        facts_context = Context(asn_of=asn_of, country_of=country_of)
        contexts: dict[str, Context] = {}
        for run in store.run_ids():
            measurements = _facts(store, run, facts_context, population)
            if run not in runs:
                for _ in measurements:
                    pass
                continue
            context = Context(health=tuple(rounds(store.health_samples(run))), asn_of=asn_of,
                              country_of=country_of)
            contexts[run] = replace(context, throttle_baseline=throttle_baseline(
                list(measurements), context.health))
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
        states_f = c.scatter(states, broadcast=True)
        contexts_f = {run: c.scatter(ctx, broadcast=True) for run, ctx in contexts.items()}
        futures = [c.submit(_judge_slice, db, run, ids, contexts_f[run], states_f, pure=False)
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


# --- an archive to a Parquet dataset ----------------------------------------------------------


@dataclass(slots=True)
class ArchiveResult:
    files: int = 0
    read: int = 0
    skipped: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        shown = ", ".join(f"{n} {v}" for v, n in self.verdicts.most_common())
        return (f"analyzed {self.read} measurements from {self.files} files "
                f"({self.skipped} skipped) into {self.rows['verdicts']} verdict rows"
                + (f": {shown}" if shown else ""))


class _Runs:
    """What :func:`probe.export.parquet._page_rows` asks a source: a run's row."""

    def __init__(self, runs: dict[str, dict[str, Any]]) -> None:
        self.runs = runs

    def run(self, run_id: str) -> dict[str, Any]:
        return self.runs[run_id]


def _archive_file(path: str, out: str, base: Context, stamp: str
                  ) -> tuple[int, dict[str, int], dict[str, int], list[tuple[str, str]]]:
    """One task: judge one input file and write its Parquet files; returns (documents read,
    verdict counts, rows per table, problems)."""
    name = "part-" + hashlib.sha256(path.encode()).hexdigest()[:16]
    writer = DatasetWriter(Path(out), name=name)
    problems: list[tuple[str, str]] = []
    read = 0
    verdicts: Counter[str] = Counter()
    items: list[tuple[int, str]] = []

    def flush() -> None:
        nonlocal read
        result = process_chunk(Chunk(path, items), base, stamp)
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
                elif table == "http_requests":
                    page.children.setdefault(table, {})[mid] = [
                        {**r, "body_stored": r["body"] is not None} for r in found]
                elif table != "measurements":
                    page.children.setdefault(table, {})[mid] = found
        page.measurements.sort(key=lambda r: r["started_at"])
        runs = {rid: dict(zip(bulk.COLUMNS["runs"], row, strict=True))
                for rid, row in result.runs.items()}
        _page_rows(_Runs(runs), page, writer)  # type: ignore[arg-type]

    try:
        for x in raw_file(Path(path)):
            if isinstance(x, BadInput):
                problems.append((x.origin, x.problem))
                continue
            items.append(x)
            if len(items) >= CHUNK:
                flush()
                items = []
        if items:
            flush()
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
        futures = [c.submit(_archive_file, f, str(root), base_f, stamp, pure=False)
                   for f in files]
        for read, verdicts, table_rows, problems in c.gather(futures):
            result.read += read
            result.verdicts.update(verdicts)
            result.rows.update(table_rows)
            result.problems.extend(problems)
    result.skipped = len(result.problems)
    return result

