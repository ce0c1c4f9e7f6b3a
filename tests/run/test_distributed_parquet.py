"""Parquet partitions as Dask input, and the whole-run inferences of the Dask paths (issue 16).

A database exported with ``--lossless`` reads back into records equal to the stored ones, and
``probe reanalyze --parquet`` on a 2-worker cluster gives exactly the verdicts of the
single-process path; the run-level IPv6 inference is the same on both paths for a dual-stack
run; ``--archive`` applies the population's shutdown hours as ``probe import`` does.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("dask.distributed")
pq = pytest.importorskip("pyarrow.parquet")

from dask.distributed import LocalCluster  # noqa: E402

from probe.cli.root import app  # noqa: E402
from probe.errors import UsageError  # noqa: E402
from probe.export import export, parquet, parquet_read  # noqa: E402
from probe.export.source import Selection, Source  # noqa: E402
from probe.lab.bench.collector_case import fill_probe_db  # noqa: E402
from probe.run import distributed  # noqa: E402
from probe.run.reanalyze import reanalyze as single  # noqa: E402
from probe.store import Store  # noqa: E402
from tests.classify.test_families import dual_stack_db  # noqa: E402
from tests.clirunner import CliRunner  # noqa: E402
from tests.factories import build_db  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "data" / "ooni"
Key = tuple[str, str | None, str, float, str]


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as c:
        yield c


def _db_verdicts(db: Path) -> dict[str, Key]:
    conn = sqlite3.connect(db)
    try:
        return {r[0]: tuple(r[1:]) for r in conn.execute(
            "SELECT measurement_id, verdict, method, analysis_version, confidence, details "
            "FROM verdicts WHERE is_current = 1")}
    finally:
        conn.close()


def _parquet_verdicts(root: Path) -> dict[str, Key]:
    t = pq.read_table(root / "verdicts", columns=[
        "measurement_id", "verdict", "method", "analysis_version", "confidence", "details",
        "is_current"])
    rows = [r for r in t.to_pylist() if r["is_current"]]
    assert len({r["measurement_id"] for r in rows}) == len(rows)  # one current each
    return {r["measurement_id"]: (r["verdict"], r["method"], r["analysis_version"],
                                  r["confidence"], r["details"]) for r in rows}


def _import_corpus(db: Path) -> None:
    out = CliRunner().invoke(app, ["import", "ooni", str(CORPUS), "--db", str(db)])
    assert out.exit_code == 0, out.output


def _stale(db: Path) -> None:
    """Old verdicts everywhere, so re-analysis has work to do."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE verdicts SET analysis_version = 'old'")
    conn.close()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Our runs (factories: two networks, every observation kind, health samples, verdict
    history; 40 more measurements) and the real OONI corpus imported, in one database."""
    db = tmp_path_factory.mktemp("mixed") / "mixed.db"
    build_db(db)
    fill_probe_db(db, 40, seed=5)
    _import_corpus(db)
    _stale(db)
    return db


def test_a_lossless_export_reads_back_equal_to_the_database(mixed, tmp_path):
    out = tmp_path / "ds"
    summary = export(mixed, "parquet", out, lossless=True)
    assert summary.rows["records"] == summary.rows["measurements"] > 120
    with Store.open_readonly(mixed) as store:
        stored = dict(store.iter_measurements())
        runs = {r: (store.health_samples(r), store.get_run(r)) for r in store.run_ids()}
        got = {}
        for f in parquet_read.files(out):
            for r in parquet_read.records(f):
                got[r.measurement_id] = r
                assert r.provenance == store.provenance(r.measurement_id)
                assert r.verdict == store.current_verdict(r.measurement_id)
    assert {mid: r.measurement for mid, r in got.items()} == stored
    # bodies and DER came through (hashes alone would not re-judge a block page)
    assert any(h.body for r in got.values() for h in r.measurement.http)
    assert any(c.der for r in got.values() for t in r.measurement.tls for c in t.certificates)
    back = parquet_read.runs(out)
    assert set(back) == set(runs)
    for run, (health, row) in runs.items():
        assert list(back[run].health) == health
        assert back[run].run["probe_cc"] == row["probe_cc"]
    # a dataset without the lossless tables is refused with a clear error
    plain = tmp_path / "plain"
    export(mixed, "parquet", plain)
    with pytest.raises(UsageError, match="not a lossless Parquet dataset"):
        parquet_read.files(plain)


def test_parquet_on_dask_gives_the_verdicts_of_the_single_process_path(mixed, tmp_path,
                                                                       cluster):
    ds, out, db = tmp_path / "ds", tmp_path / "out", tmp_path / "one.db"
    export(mixed, "parquet", ds, lossless=True)
    shutil.copy(mixed, db)
    said = single(str(db))
    r = distributed.reanalyze_parquet(str(ds), str(out), scheduler=cluster.scheduler_address)
    want, got = _db_verdicts(db), _parquet_verdicts(out)
    assert len(got) == r.measurements == len(want) > 120
    assert got == want
    assert said.split(":")[1].strip().startswith(f"{r.changed} verdicts changed")
    assert r.changed > 0 and sum(r.verdicts.values()) == r.measurements
    # cut into many small tasks (row groups of 9 records, 2 per task), the same verdicts
    small = tmp_path / "small"
    with Source(mixed) as src, src.snapshot():
        for table in (*parquet.TABLES, *parquet.LOSSLESS_SCHEMAS):
            (small / table).mkdir(parents=True)
        parquet.write_dataset(src, Selection(), small, row_group_rows=9, lossless=True)
    cut = distributed.reanalyze_parquet(str(small), str(tmp_path / "small-out"),
                                        scheduler=cluster.scheduler_address, groups_per_task=2)
    assert cut.tasks > 2 * len(parquet_read.files(small))
    assert _parquet_verdicts(tmp_path / "small-out") == want
    # the health samples come through unchanged
    assert pq.read_table(out / "health_samples").num_rows == pq.read_table(
        ds / "health_samples").num_rows > 0
    # the output is lossless too: judged again, nothing changes
    again = distributed.reanalyze_parquet(str(out), str(tmp_path / "again"),
                                          scheduler=cluster.scheduler_address)
    assert again.changed == 0 and _parquet_verdicts(tmp_path / "again") == want


def test_the_run_level_ipv6_inference_is_the_same_on_every_path(tmp_path, cluster):
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    dual_stack_db(a)
    shutil.copy(a, b)
    shutil.copy(a, c)
    export(c, "parquet", tmp_path / "ds", lossless=True)
    single(str(a))
    distributed.reanalyze(str(b), scheduler=cluster.scheduler_address)
    distributed.reanalyze_parquet(str(tmp_path / "ds"), str(tmp_path / "out"),
                                  scheduler=cluster.scheduler_address)
    va, vb, vp = _db_verdicts(a), _db_verdicts(b), _parquet_verdicts(tmp_path / "out")
    assert sorted((v[0], v[1]) for v in va.values()) == [
        ("inconclusive", "local_ipv6")] + [("ok", None)] * 3
    assert all(json.loads(v[4])["ipv6_by"] == "population" for v in va.values())
    assert va == vb == vp


def _archive(root: Path, docs: list[dict]) -> None:
    for i in range(2):
        p = root / "20221109" / "00" / "RU" / "webconnectivity" / f"p{i}.jsonl.gz"
        p.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(p, "wt") as f:
            f.writelines(json.dumps(d) + "\n" for d in docs[i::2])


def _cut_hour() -> list[dict]:
    """A synthetic shutdown hour built from two real corpus documents (a silent TCP timeout
    and a site that worked): one network, one hour, six international sites that all drop and
    four domestic ones reached — the January 2022 pattern, spread over both archive files."""
    dropped = json.loads((CORPUS / "backend-web_connectivity_null.json").read_text())
    worked = json.loads((CORPUS / "backend-web_connectivity_no_body.json").read_text())
    out = []
    for i, (doc, url) in enumerate([(dropped, f"https://site{i}.de/") for i in range(6)]
                                   + [(worked, f"http://site{i}.tm/") for i in range(4)]):
        d = json.loads(json.dumps(doc))
        d.update(input=url, probe_cc="TM", probe_asn="AS20661",
                 measurement_start_time=f"2022-11-09 10:{10 + i:02d}:00",
                 report_id=f"20221109T101000Z_webconnectivity_TM_{i:04d}",
                 id=f"synthetic-{i}", measurement_uid=f"synthetic-{i}")
        out.append(d)
    return out


def test_archive_applies_the_population_as_probe_import_does(tmp_path, cluster):
    docs = [json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))] + _cut_hour()
    _archive(tmp_path / "raw", docs)
    r = distributed.analyze_archive([str(tmp_path / "raw")], str(tmp_path / "out"),
                                    scheduler=cluster.scheduler_address)
    db = tmp_path / "imported.db"
    out = CliRunner().invoke(app, ["import", "ooni", str(tmp_path / "raw"), "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert CliRunner().invoke(app, ["reanalyze", "--db", str(db)]).exit_code == 0
    want = {k: v[:4] for k, v in _db_verdicts(db).items()}
    got = {k: v[:4] for k, v in _parquet_verdicts(tmp_path / "out").items()}
    assert got == want and r.read == len(docs)
    assert r.cut_hours == 1 and r.verdicts["shutdown"] == 6  # the cut came through
    assert sum(v[0] == "shutdown" for v in got.values()) == 6


def test_the_command_line(tmp_path, cluster):
    db, ds, out = tmp_path / "p.db", tmp_path / "ds", tmp_path / "out"
    fill_probe_db(db, 12)
    runner = CliRunner()
    exp = runner.invoke(app, ["export", "--db", str(db), "-f", "parquet", "--lossless",
                              "-o", str(ds)])
    assert exp.exit_code == 0 and "12 records" in exp.output, exp.output
    got = runner.invoke(app, ["reanalyze", "--parquet", str(ds), "--out", str(out),
                              "--scheduler", cluster.scheduler_address])
    assert got.exit_code == 0 and "reanalyzed 12 measurements in 1 runs" in got.output
    for args, said in [
        (["reanalyze", "--parquet", str(ds)], "--out"),
        (["reanalyze", "--parquet", str(ds), "--out", str(ds / "x")], "inside the input"),
        (["reanalyze", "--parquet", str(db), "--out", str(out)], "not a lossless"),
        (["export", "--db", str(db), "-f", "jsonl", "--lossless", "-o", "-"], "--lossless"),
    ]:
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and said in bad.output, (args, bad.output)
    # a damaged partition file: one line naming it
    victim = next((ds / "records").rglob("*.parquet"))
    victim.write_bytes(b"not parquet")
    bad = runner.invoke(app, ["reanalyze", "--parquet", str(ds), "--out", str(out),
                              "--scheduler", cluster.scheduler_address])
    assert bad.exit_code == 2 and f"{victim}: not a Parquet file" in bad.output, bad.output
