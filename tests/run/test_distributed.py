"""Archive-scale analysis on Dask (probe/run/distributed.py): a 2-worker local cluster gives the
verdicts of the single-process path, and the archive's Parquet dataset reads in DuckDB."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("dask.distributed")

from dask.distributed import LocalCluster  # noqa: E402

from probe.cli.root import app  # noqa: E402
from probe.lab.bench.collector_case import fill_probe_db  # noqa: E402
from probe.run import distributed  # noqa: E402
from probe.run.reanalyze import reanalyze as single  # noqa: E402
from tests.clirunner import CliRunner  # noqa: E402
from tests.factories import build_db  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "data" / "ooni"


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as c:
        yield c


def _verdicts(db: Path) -> dict[str, tuple[str, str | None, str, float]]:
    conn = sqlite3.connect(db)
    try:
        return {r[0]: tuple(r[1:]) for r in conn.execute(
            "SELECT measurement_id, verdict, method, analysis_version, confidence "
            "FROM verdicts WHERE is_current = 1")}
    finally:
        conn.close()


def test_two_workers_give_the_verdicts_of_the_single_process_path(tmp_path, cluster):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    build_db(a)  # two networks, every observation kind, health samples, verdict history
    fill_probe_db(a, 60, seed=3)
    conn = sqlite3.connect(a)  # old verdicts, so re-analysis has work to do
    with conn:
        conn.execute("UPDATE verdicts SET analysis_version = 'old'")
    conn.close()  # the last connection: the WAL is checkpointed into the file copied
    shutil.copy(a, b)
    said = single(str(a))
    on_dask = distributed.reanalyze(str(b), scheduler=cluster.scheduler_address,
                                    slice_size=7)
    assert "on Dask" in on_dask and "tasks" in on_dask
    assert said.split(":")[1] == on_dask.split(":")[1]  # "N verdicts changed…"
    va, vb = _verdicts(a), _verdicts(b)
    assert len(va) == 67 and va == vb


def _archive(root: Path) -> int:
    docs = [json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))]
    for i in range(2):
        p = root / "raw" / "20221109" / "00" / "RU" / "webconnectivity" / f"p{i}.jsonl.gz"
        p.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(p, "wt") as f:
            f.writelines(json.dumps(d) + "\n" for d in docs[i::2])
    return len(docs)


def test_an_archive_is_judged_on_dask_into_a_parquet_dataset_duckdb_reads(tmp_path, cluster):
    duckdb = pytest.importorskip("duckdb")
    n = _archive(tmp_path)
    r = distributed.analyze_archive([str(tmp_path / "raw")], str(tmp_path / "out"),
                                    scheduler=cluster.scheduler_address)
    assert (r.files, r.read, r.skipped) == (2, n, 0)
    # the same verdicts as `probe import ooni` (one process) gives the same documents
    db = tmp_path / "imported.db"
    imp = CliRunner().invoke(app, ["import", "ooni", str(tmp_path / "raw"), "--db", str(db)])
    assert imp.exit_code == 0, imp.output
    got = duckdb.sql(
        f"SELECT verdict, count(*) FROM read_parquet('{tmp_path}/out/verdicts/**/*.parquet', "
        "hive_partitioning = true) GROUP BY 1").fetchall()
    conn = sqlite3.connect(db)
    want = conn.execute("SELECT verdict, count(*) FROM verdicts GROUP BY 1").fetchall()
    conn.close()
    assert sorted(got) == sorted(want)
    assert sum(c for _, c in got) == n
    nets = duckdb.sql(f"SELECT DISTINCT network FROM read_parquet("
                      f"'{tmp_path}/out/measurements/**/*.parquet', hive_partitioning = true)"
                      ).fetchall()
    assert nets and all(x[0].startswith("AS") or x[0] == "unknown" for x in nets)


def test_the_command_line(tmp_path, cluster):
    db = tmp_path / "p.db"
    fill_probe_db(db, 10)
    runner = CliRunner()
    out = runner.invoke(app, ["reanalyze", "--db", str(db), "--scheduler",
                              cluster.scheduler_address])
    assert out.exit_code == 0 and "on Dask" in out.output, out.output
    bad = runner.invoke(app, ["reanalyze", "--db", str(db), "--scheduler", "localhost:1"])
    assert bad.exit_code == 2 and "tcp://HOST:PORT" in bad.output
    no_out = runner.invoke(app, ["reanalyze", "--archive", str(tmp_path)])
    assert no_out.exit_code == 2 and "--out" in no_out.output
