"""The parallel import pipeline: chunks of raw documents out to worker processes, stored rows back.

Responsibility: the pieces of ``probe import`` at archive scale that are not IO policy —
cutting the reader's raw documents into chunks (:func:`chunks`), the work one worker does on a
chunk (:func:`process_chunk`: parse, map, judge, the population fact, the store's rows; pure
but for the JSON decoding), and the bounded, ordered hand-over between a pool of workers and
the one writer (:func:`bounded_ordered`). :mod:`probe.ingest.importer` composes them with the
store.

Why this shape (measured, docs/import.md "Performance"): per Web Connectivity measurement,
decoding its JSON is a small part of the work; mapping it and judging it cost several times
more, and writing it one transaction at a time through sqlite-utils cost more than everything
else together. So workers do everything but the write, and build the rows the store inserts
(:mod:`probe.store.bulk` tuples); the writer stores whole chunks with one ``executemany`` per
table in one transaction (:func:`probe.store.bulk.save_imports`).

Memory stays flat: at most ``window`` chunks are in flight (submitted and not yet written),
whatever the speeds of the reader, the workers and the writer. Results are written in input
order, whatever the number of workers, so an import is deterministic: measurement ids are a
hash of the measurement's identity (:func:`probe.store.db.import_measurement_id`), not random.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from probe import __version__
from probe.classify import Context, classify
from probe.classify import population as pop
from probe.ingest.mapper import SOURCE, Mapped, MappingError, map_document
from probe.ingest.reader import BadInput, parse
from probe.model import Provenance
from probe.store import bulk
from probe.store.db import import_measurement_id

T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: Documents per chunk: one task for a worker and one write transaction for the store.
CHUNK = 1000

_REPORT_START = re.compile(r"^(\d{8}T\d{6}Z)_")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Raw documents of one input file (or stdin): ``(line number, JSON text)`` each."""

    name: str
    items: list[tuple[int, str]]


class Item(NamedTuple):
    """One mapped and judged measurement, ready to store: its ``dedup_key``, run id, rows by
    table (tuples, in :data:`probe.store.bulk.TABLES` order), verdict kind and population
    fact (its fields in ``fact_fields``; :attr:`fact` makes it). A named tuple, not a
    dataclass, and the fact as a plain tuple: a chunk's items are pickled from a worker to
    the writer, and a slotted dataclass is pickled through Python-level state methods (~25 µs
    a measurement more for the item, ~8 µs against ~2.5 for the fact, both ways)."""

    dedup_key: str
    run_id: str
    tables: tuple[list[bulk.Row], ...]
    verdict: str
    fact_fields: tuple[Any, ...]
    network: tuple[int, str | None] | None  # (probe_asn, probe_cc); None = unknown AS

    @property
    def fact(self) -> pop.Fact:
        """The measurement's population fact."""
        return pop.Fact(*self.fact_fields)


@dataclass(slots=True)
class ChunkResult:
    """What a worker made of a chunk: items in input order, the runs first seen in it
    (``runs`` rows) and the documents skipped (``origin``, why)."""

    items: list[Item] = field(default_factory=list)
    runs: dict[str, bulk.Row] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    read: int = 0


def chunks(raw: Iterable[tuple[str, int, str] | BadInput], size: int = CHUNK
           ) -> Iterator[Chunk | BadInput]:
    """Group the reader's raw documents into chunks of at most ``size``, one file per chunk;
    unreadable input passes through, in order."""
    name = ""
    items: list[tuple[int, str]] = []
    for x in raw:
        if isinstance(x, BadInput):
            if items:
                yield Chunk(name, items)
                items = []
            yield x
            continue
        if x[0] != name or len(items) >= size:
            if items:
                yield Chunk(name, items)
            name, items = x[0], []
        items.append((x[1], x[2]))
    if items:
        yield Chunk(name, items)


# --- what a worker does --------------------------------------------------------------------


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


def population_network(p: Provenance) -> tuple[str, str | None]:
    """The population network of an imported measurement (``AS<asn> <cc>``; "" when the AS
    is unknown: an unknown network is no population) and its vantage country."""
    if not p.probe_asn:
        return "", p.probe_cc
    return f"AS{p.probe_asn} {p.probe_cc or 'ZZ'}", p.probe_cc


def context_for(base: Context, missing: Iterable[str]) -> Context:
    """The classifier's context for a measurement lacking ``missing`` evidence (reanalyze
    builds the same from the stored provenance)."""
    return dataclasses.replace(base, missing=frozenset(missing))


_BASE = Context()


def init_worker(base: Context) -> None:
    """Pool initializer: the classifier context every measurement starts from."""
    global _BASE
    _BASE = base


def process_chunk(chunk: Chunk, base: Context | None = None,
                  imported_at: str = "") -> ChunkResult:
    """Parse, map and judge every document of ``chunk``; build its rows (pure but for the
    JSON decoding; runs in a worker process). ``imported_at`` stamps the rows (the verdicts'
    ``created_at``, the provenance's ``imported_at``)."""
    context = _BASE if base is None else base
    out = ContextCache(context)
    result = ChunkResult()
    for lineno, text in chunk.items:
        origin = f"{chunk.name}:{lineno}"
        doc = parse(text, origin)
        if isinstance(doc, BadInput):
            result.problems.append((doc.origin, doc.problem))
            continue
        result.read += 1
        try:
            mapped = map_document(doc.doc, origin)
        except MappingError as exc:
            result.problems.append((origin, str(exc)))
            continue
        m, p = mapped.measurement, mapped.provenance
        run_id = run_id_of(mapped)
        if run_id not in result.runs:
            result.runs[run_id] = bulk.run_row(
                run_id, m.started_at, __version__, settings_of(mapped), 0,
                status="completed", finished_at=m.started_at, probe_asn=p.probe_asn,
                probe_cc=p.probe_cc, network_name=p.probe_network_name)
        verdict = classify(m, out.get(p.missing))
        mid = import_measurement_id(m.started_at, p.dedup_key)
        tables = bulk.measurement_rows(mid, run_id, m, verdict, p, imported_at)
        network, cc = population_network(p)
        fact = pop.fact(m, network, cc, context.country_of)
        result.items.append(Item(
            p.dedup_key, run_id, tables, verdict.verdict.value, _fields(fact),
            (p.probe_asn, p.probe_cc) if p.probe_asn else None))
    return result


_FACT_FIELDS = tuple(f.name for f in dataclasses.fields(pop.Fact))


def _fields(fact: pop.Fact) -> tuple[Any, ...]:
    """``fact``'s fields in order (``pop.Fact(*fields)`` is ``fact`` again)."""
    return tuple(getattr(fact, name) for name in _FACT_FIELDS)


class ContextCache:
    """Contexts by missing evidence (a handful of combinations), made once each."""

    def __init__(self, base: Context) -> None:
        self.base = base
        self._made: dict[tuple[str, ...], Context] = {}

    def get(self, missing: Iterable[str]) -> Context:
        key = tuple(missing)
        found = self._made.get(key)
        if found is None:
            found = self._made[key] = context_for(self.base, key)
        return found


# --- the hand-over ---------------------------------------------------------------------------


class Pending(Protocol[R_co]):
    """What an executor returns for a submitted task (``multiprocessing``'s AsyncResult)."""

    def get(self) -> R_co: ...


class Done(Generic[R]):
    """A result computed in this process (``workers=0``), with a pool result's ``get``."""

    def __init__(self, value: R) -> None:
        self.value = value

    def get(self) -> R:
        return self.value


def bounded_ordered(submit: Callable[[T], Pending[R]], tasks: Iterable[T], window: int,
                    on_flight: Callable[[int], None] | None = None,
                    weight: Callable[[T], int] | None = None) -> Iterator[R]:
    """Results of ``submit(task)`` for every task, in task order, with tasks of at most
    ``window`` total ``weight`` (default 1 a task) submitted and not yet handed back (so the
    reader never runs ahead of the writer by more than ``window``: memory stays flat). A task
    heavier than the whole window still goes, alone. ``on_flight(w)`` is told the weight in
    flight after each submission (tests check the bound).

    Weighing chunks by their documents, not counting them, is what keeps every core busy on
    an archive: one OONI hour is a few Web Connectivity files of hundreds of measurements and
    dozens of files of a few each, and with a count of chunks a window could fill with small
    ones behind one big chunk while a worker had nothing to do."""
    if window < 1:
        raise ValueError("window must be at least 1")
    flight: deque[tuple[Pending[R], int]] = deque()
    load = 0
    for task in tasks:
        w = 1 if weight is None else max(1, weight(task))
        while flight and load + w > window:
            pending, done = flight.popleft()
            load -= done
            yield pending.get()
        flight.append((submit(task), w))
        load += w
        if on_flight is not None:
            on_flight(load)
    while flight:
        yield flight.popleft()[0].get()


def documents(task: Chunk | BadInput) -> int:
    """The weight of an import task in the hand-over: its raw documents."""
    return len(task.items) if isinstance(task, Chunk) else 1


__all__ = ["CHUNK", "Chunk", "ChunkResult", "ContextCache", "Done", "Item",
           "bounded_ordered", "chunks", "context_for", "documents", "init_worker",
           "population_network", "process_chunk", "run_id_of", "settings_of"]
