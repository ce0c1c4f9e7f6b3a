"""Benchmark case: a report over a year of hourly runs of ~115 targets (~1M verdicts).

:func:`bench_report` generates the synthetic database once (cached in ``workdir`` under a
name that changes with the generator and the store's schema version; generation takes about
half a minute), then times building the report (read-only load + SQL aggregation) and
rendering it as HTML, taking the median of a few runs. The benchmark harness (``make bench``)
calls it; ``python -m probe.lab.bench.report_case [WORKDIR]`` runs it alone and prints JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from probe.lab.synth import generate, year_spec
from probe.report.build import ReportOptions, build_report
from probe.report.render_html import render_html
from probe.report.render_json import render_json
from probe.report.times import resolve_tz
from probe.store import SCHEMA_VERSION

#: Bump when year_spec() or the generator changes, so cached databases are rebuilt.
SYNTH_VERSION = 1
DEFAULT_WORKDIR = Path("reports") / "bench"


def bench_database(workdir: Path) -> tuple[Path, float | None]:
    """The cached benchmark database (generated if missing) and the seconds generation took
    (None = it was cached)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"report-bench-v{SYNTH_VERSION}-schema{SCHEMA_VERSION}.db"
    if path.exists():
        return path, None
    tmp = workdir / f".{path.name}.{os.getpid()}.tmp"
    started = time.perf_counter()
    generate(year_spec(), tmp)
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    tmp.replace(path)
    return path, time.perf_counter() - started


def bench_report(workdir: str | os.PathLike[str], repeat: int = 3) -> dict[str, Any]:
    """Time the report at ~1M verdicts; returns the measurements as a flat dict.

    Keys: ``case``, ``verdicts``, ``runs``, ``targets``, ``networks``, ``db_mb``,
    ``generated_s`` (None when cached), ``build_s`` (median), ``render_html_s`` (median),
    ``render_json_s`` (median), ``total_s`` (median of build + HTML, wall clock),
    ``total_cpu_s`` (the same in CPU time of this process: steadier on a busy machine),
    ``html_kb``, ``repeat``.
    """
    folder = Path(workdir)
    db, generated = bench_database(folder)
    opts = ReportOptions(
        (db,), resolve_tz("Asia/Almaty"), now=dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    )
    builds, htmls, jsons, totals, cpus = [], [], [], [], []
    html = ""
    report = None
    for _ in range(max(1, repeat)):
        c0 = time.process_time()
        t0 = time.perf_counter()
        report = build_report(opts)
        t1 = time.perf_counter()
        html = render_html(report)
        t2 = time.perf_counter()
        cpus.append(time.process_time() - c0)
        render_json(report)
        t3 = time.perf_counter()
        builds.append(t1 - t0)
        htmls.append(t2 - t1)
        jsons.append(t3 - t2)
        totals.append(t2 - t0)
    assert report is not None
    (folder / "report-bench.html").write_text(html, encoding="utf-8")
    return {
        "case": "report_year_hourly_1m_verdicts",
        "verdicts": report.summary.measurements,
        "runs": report.summary.runs,
        "targets": report.summary.targets,
        "networks": report.summary.networks,
        "db_mb": round(db.stat().st_size / 1e6, 1),
        "generated_s": None if generated is None else round(generated, 2),
        "build_s": round(statistics.median(builds), 3),
        "render_html_s": round(statistics.median(htmls), 3),
        "render_json_s": round(statistics.median(jsons), 3),
        "total_s": round(statistics.median(totals), 3),
        "total_cpu_s": round(statistics.median(cpus), 3),
        "html_kb": round(len(html.encode()) / 1024),
        "repeat": len(totals),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    workdir = Path(args[0]) if args else DEFAULT_WORKDIR
    print(json.dumps(bench_report(workdir), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
