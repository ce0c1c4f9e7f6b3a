"""The parallel importer: the same database whatever the worker count, idempotent in parallel,
bounded hand-over (flat memory), and the population applied to imported measurements."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.ingest import import_ooni
from probe.ingest.pipeline import Chunk, Done, bounded_ordered, chunks, documents
from probe.ingest.reader import BadInput
from probe.lab.bench import import_case as I
from probe.run.reanalyze import reanalyze
from probe.store import Store
from tests.ingest.test_mapper import CONTROL, doc

N = 1_200  # synthesised measurements: several chunks of 100, across two archive hours


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("archive")
    old = I.PER_HOUR
    I.PER_HOUR = 600
    try:
        return I.synthesise(root, N)
    finally:
        I.PER_HOUR = old


def _content(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Everything an import stored but the wall-clock stamps."""
    with Store.open_readonly(db) as store:
        q = store.db.execute
        return {
            "runs": q("SELECT run_id, started_at, settings, targets_total, probe_asn, probe_cc "
                      "FROM runs ORDER BY run_id").fetchall(),
            "measurements": q("SELECT measurement_id, run_id, url, started_at, finished_at, "
                              "extra FROM measurements ORDER BY rowid").fetchall(),
            "verdicts": q("SELECT measurement_id, verdict, method, confidence, evidence, "
                          "details, is_current FROM verdicts ORDER BY verdict_id").fetchall(),
            "imports": q("SELECT measurement_id, origin, dedup_key, missing FROM imports "
                         "ORDER BY rowid").fetchall(),
            "observations": [q(f"SELECT count(*) FROM {t}").fetchone() for t in (
                "dns_queries", "tcp_connects", "tls_handshakes", "http_requests",
                "controls")],
        }


@pytest.mark.parametrize(("workers", "chunk"), [(1, 100), (2, 100), (2, 37)])
def test_the_database_is_the_same_whatever_the_workers_and_chunks(
        archive: list[Path], tmp_path: Path, workers: int, chunk: int) -> None:
    paths = [str(p) for p in archive]
    with Store.open(tmp_path / "serial.db") as store:
        serial = import_ooni(store, paths, workers=0, chunk_size=100)
    with Store.open(tmp_path / "parallel.db") as store:
        parallel = import_ooni(store, paths, workers=workers, chunk_size=chunk)
    assert serial.workers == 0 and parallel.workers == workers
    assert (serial.read, serial.stored, serial.skipped) == (N, N, 0)
    assert (parallel.read, parallel.stored, parallel.verdicts, parallel.runs) == (
        serial.read, serial.stored, serial.verdicts, serial.runs)
    assert _content(tmp_path / "parallel.db") == _content(tmp_path / "serial.db")


def test_a_parallel_reimport_stores_nothing(archive: list[Path], tmp_path: Path) -> None:
    paths = [str(p) for p in archive]
    db = tmp_path / "p.db"
    with Store.open(db) as store:
        first = import_ooni(store, paths, workers=2, chunk_size=100)
    before = _content(db)
    with Store.open(db) as store:
        again = import_ooni(store, paths, workers=2, chunk_size=70)
    assert (first.stored, again.stored, again.duplicates) == (N, 0, N)
    assert _content(db) == before
    # duplicates inside one input (one chunk or two) are stored once too
    with Store.open(tmp_path / "twice.db") as store:
        twice = import_ooni(store, [paths[0], paths[0]], workers=2, chunk_size=1000)
    assert twice.read == N and (twice.stored, twice.duplicates) == (N // 2, N // 2)
    # every run counts exactly the measurements it holds
    with Store.open_readonly(db) as store:
        wrong = store.db.execute(
            "SELECT count(*) FROM runs r WHERE targets_total != (SELECT count(*) FROM "
            "measurements m WHERE m.run_id = r.run_id)").fetchone()[0]
    assert wrong == 0


class _Recorder:
    """A fake executor: runs each task when submitted, records how many are in flight."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, task: int) -> Done[int]:
        self.submitted += 1
        return Done(task * 10)


@pytest.mark.parametrize("window", [1, 2, 5])
def test_the_hand_over_is_ordered_and_never_runs_ahead_of_the_writer(window: int) -> None:
    pulled = 0

    def tasks() -> Iterator[int]:
        nonlocal pulled
        for i in range(50):
            pulled += 1
            yield i

    rec = _Recorder()
    flights: list[int] = []
    out = []
    for got, result in enumerate(bounded_ordered(rec.submit, tasks(), window, flights.append)):
        # when the writer has taken `got` results, at most `window` more tasks were read
        assert pulled <= got + window + 1
        out.append(result)
    assert out == [i * 10 for i in range(50)]
    assert max(flights) == window
    with pytest.raises(ValueError):
        list(bounded_ordered(rec.submit, iter([1]), 0))


@pytest.mark.parametrize(("weights", "window", "most"), [
    ([1] * 20, 4, 4),                     # unweighted: a count of tasks
    ([10, 1, 1, 1, 1, 1, 10, 1], 12, 12),  # small tasks fill the room a big one leaves
    ([3, 30, 3, 3], 10, 30),              # a task heavier than the window goes alone
    ([5, 5, 5, 5, 5], 10, 10),
])
def test_a_weighted_hand_over_bounds_the_weight_in_flight(weights: list[int], window: int,
                                                          most: int) -> None:
    flights: list[int] = []
    rec = _Recorder()
    out = list(bounded_ordered(rec.submit, iter(range(len(weights))), window, flights.append,
                               weight=lambda i: weights[i]))
    assert out == [i * 10 for i in range(len(weights))]
    assert max(flights) == most
    heavy = [w for w in weights if w > window]
    assert all(f <= window for f in flights) or heavy  # only a lone heavy task exceeds it
    assert documents(Chunk("a", [(1, "x"), (2, "y")])) == 2
    assert documents(BadInput("a:1", "bad")) == 1


def test_chunks_keep_one_file_per_chunk_and_pass_bad_input_in_order() -> None:
    bad = BadInput("b:0", "cannot read")
    raw = [("a", 1, "x"), ("a", 2, "y"), ("a", 3, "z"), bad, ("b", 1, "w")]
    got = list(chunks(raw, 2))
    assert got == [Chunk("a", [(1, "x"), (2, "y")]), Chunk("a", [(3, "z")]), bad,
                   Chunk("b", [(1, "w")])]


# --- the population -------------------------------------------------------------------------


def _measurement(i: int, host: str, reached: bool) -> dict[str, Any]:
    ip = f"10.1.{i}.1"
    query = {"engine": "system", "resolver_address": "", "hostname": host, "query_type": "A",
             "failure": None, "t": 0.05, "answers": [{"answer_type": "A", "ipv4": ip}]}
    tcp = {"ip": ip, "port": 443, "t": 0.1, "status": {
        "success": reached, "failure": None if reached else "generic_timeout_error"}}
    control = dict(CONTROL, dns={"addrs": [ip], "failure": None},
                   tcp_connect={f"{ip}:443": {"status": True, "failure": None}})
    d = doc("0.4.3", queries=[query], tcp_connect=[tcp], control=control,
            requests=[] if not reached else [{
                "failure": None, "t0": 0.2, "t": 0.5,
                "request": {"url": f"https://{host}/", "method": "GET", "headers": {}},
                "response": {"code": 200, "headers_list": [], "body": "<title>x</title>"}}])
    d.update(input=f"https://{host}/", measurement_uid=f"uid-pop-{i}",
             measurement_start_time=f"2022-01-05 11:{i:02d}:00")
    return d


def test_imported_measurements_in_a_cut_hour_become_shutdown(tmp_path: Path) -> None:
    """January 2022 in miniature: every international site drops, domestic ones work."""
    abroad = ["a.de", "b.fr", "c.nl", "d.se", "e.it", "f.pl"]
    home = ["g.kz", "h.kz", "i.kz", "j.kz"]
    docs = ([_measurement(i, h, False) for i, h in enumerate(abroad)]
            + [_measurement(10 + i, h, True) for i, h in enumerate(home)])
    first = tmp_path / "first.jsonl.gz"
    first.write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in docs[:5]).encode()))
    rest = tmp_path / "rest.jsonl"
    rest.write_text("".join(json.dumps(d) + "\n" for d in docs[5:]))
    db = tmp_path / "p.db"
    with Store.open(db) as store:
        # five measurements are too few for a call: each stays judged alone
        alone = import_ooni(store, [str(first)], workers=0)
        # the rest complete the hour: the earlier five are judged again with it
        together = import_ooni(store, [str(rest)], workers=0)
        again = import_ooni(store, [str(first), str(rest)], workers=2, chunk_size=3)
        (run,) = store.run_ids()
        results = {r["hostname"]: r for r in store.results(run)}
    assert alone.shutdowns == 0 and together.shutdowns == len(abroad)
    assert again.stored == 0 and again.shutdowns == 0  # idempotent, population included
    for h in abroad:
        assert (results[h]["verdict"], results[h]["method"]) == (
            "shutdown", "shutdown.international"), h
        assert results[h]["details"]["population"]["international_silent"] == len(abroad)
    for h in home:
        assert results[h]["verdict"] != "shutdown", h  # the cut does not explain them
    # reanalyze, which judges the whole database, agrees
    reanalyze(str(db))
    with Store.open(db) as store:
        after = {r["hostname"]: (r["verdict"], r["method"]) for r in store.results(run)}
    assert after == {h: (r["verdict"], r["method"]) for h, r in results.items()}
