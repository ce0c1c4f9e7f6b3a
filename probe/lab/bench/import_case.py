"""Benchmark case: `probe import ooni` at archive scale, on input synthesised from real data.

Responsibility: write an OONI-archive-shaped tree of ``.jsonl.gz`` files
(``raw/YYYYMMDD/HH/CC/TESTNAME/*.jsonl.gz``, https://docs.ooni.org/data/) from the real
measurements committed in ``tests/data/ooni/`` (each a template), then time the importer on
it: measurements per second, per CPU-second ("per core"), cores used, peak RSS. The harness
(``make bench``) calls :func:`bench_import`; ``python -m probe.lab.bench.import_case`` runs it
alone and prints JSON.

Synthesis: measurement ``i`` is template ``pick(i)`` with a new ``measurement_uid`` (when the
template has one: older documents have none and dedup by report id, input and time), a new
``report_id`` (one report per :data:`REPORT_SIZE` consecutive measurements of a template) and a
new ``measurement_start_time`` (:data:`PER_HOUR` measurements per hour), so nothing
deduplicates and every hour of the archive holds every template's network. The input URL is
kept: a real report measures the same test list in every session. Web Connectivity templates
make :data:`WEB_SHARE` of the input (most of OONI's archive is Web Connectivity, and it is the
expensive test to map and judge; the others are stored unjudged) — a conservative mix.

Each import runs as its own process (``python -m probe import ooni``), so its peak RSS and CPU
time are the kernel's accounting of that process and its worker processes (``os.wait4``,
``RUSAGE_CHILDREN`` of that process's children are included in ``ru_maxrss`` only as the largest
one: the peak RSS printed is the importer's, the largest worker's is printed beside it).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Bump when the synthesis changes, so cached inputs are rebuilt.
SYNTH_VERSION = 1
#: The real measurements the input is synthesised from.
CORPUS = Path(__file__).resolve().parents[3] / "tests" / "data" / "ooni"
#: Measurements per synthesised hour (the archive's ``HH`` directories).
PER_HOUR = 10_000
#: Consecutive measurements of one template that share a report (one OONI session).
REPORT_SIZE = 100
#: Share of Web Connectivity measurements in the synthesised input.
WEB_SHARE = 0.8
#: The first synthesised hour.
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
#: Sizes the benchmark imports (the memory goal compares the first and the last).
SIZES = (100_000, 1_000_000)
#: Measurements the stage-by-stage timing reads (held in memory at once: ~15 kB each).
STAGE_SAMPLE = 10_000

_UID, _RID, _TIME = "@@synth-uid@@", "@@synth-report@@", "@@synth-time@@"


@dataclass(frozen=True)
class Template:
    """One corpus document ready to stamp: its JSON text with placeholders."""

    name: str
    test_name: str
    cc: str
    asn: str
    text: str
    has_uid: bool


def templates(corpus: Path = CORPUS) -> list[Template]:
    """The corpus's measurement documents (sorted by file name) as templates."""
    out = []
    for path in sorted(corpus.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not doc.get("test_name"):
            continue
        has_uid = bool(doc.get("measurement_uid"))
        if has_uid:
            doc["measurement_uid"] = _UID
        doc["report_id"] = _RID
        doc["measurement_start_time"] = _TIME
        cc = str(doc.get("probe_cc") or "ZZ")
        asn = str(doc.get("probe_asn") or "AS0")
        out.append(Template(path.stem, str(doc["test_name"]), cc, asn,
                            json.dumps(doc, separators=(",", ":")), has_uid))
    if not out:
        raise FileNotFoundError(f"no OONI measurements in {corpus}")
    return out


def schedule(tpls: Sequence[Template], share: float = WEB_SHARE) -> list[int]:
    """One cycle of template indexes in which Web Connectivity templates fill ``share`` of
    the slots (when the corpus has both kinds), interleaved evenly, each kind in corpus order,
    long enough that every template appears."""
    web = [i for i, t in enumerate(tpls) if t.test_name == "web_connectivity"]
    other = [i for i, t in enumerate(tpls) if t.test_name != "web_connectivity"]
    if not web or not other:
        return list(range(len(tpls)))
    slots = 20 * max(len(web), len(other))
    cycle, w, o = [], 0, 0
    for s in range(slots):
        if int((s + 1) * share) > int(s * share):
            cycle.append(web[w % len(web)])
            w += 1
        else:
            cycle.append(other[o % len(other)])
            o += 1
    return cycle


def stamp(t: Template, i: int, report: str, when: dt.datetime) -> str:
    """Measurement ``i``: the template with its uid, report id and start time."""
    text = t.text.replace(_RID, report).replace(_TIME, when.strftime("%Y-%m-%d %H:%M:%S"))
    if t.has_uid:
        text = text.replace(_UID, f"synth{i:012d}")
    return text


def report_id(t: Template, k: int, number: int, start: dt.datetime) -> str:
    """An OONI-shaped report id (``START_TEST_CC_ASN_n1_RANDOM``) for report ``number`` of
    template ``k``."""
    return (f"{start:%Y%m%dT%H%M%SZ}_{t.test_name.replace('_', '')}_{t.cc}_"
            f"{t.asn.removeprefix('AS')}_n1_synth{k:03d}x{number:07d}")


def synthesise(root: Path, n: int, tpls: Sequence[Template] | None = None) -> list[Path]:
    """Write ``n`` measurements under ``root`` in the archive's layout; returns the hour
    directories, oldest first (the first ``k`` of them hold the first ``k * PER_HOUR``)."""
    tpls = templates() if tpls is None else list(tpls)
    order = schedule(tpls)
    hours: list[Path] = []
    open_files: dict[tuple[str, str], Any] = {}
    current_hour = -1
    seen = [0] * len(tpls)
    reports = [""] * len(tpls)
    step = 3600 / PER_HOUR
    try:
        for i in range(n):
            hour = i // PER_HOUR
            when = START + dt.timedelta(seconds=i * step)
            if hour != current_hour:
                for fh in open_files.values():
                    fh.close()
                open_files.clear()
                current_hour = hour
                hours.append(root / "raw" / f"{when:%Y%m%d}" / f"{when:%H}")
            k = order[i % len(order)]
            t = tpls[k]
            if seen[k] % REPORT_SIZE == 0:
                reports[k] = report_id(t, k, seen[k] // REPORT_SIZE, when)
            seen[k] += 1
            key = (t.cc, t.test_name)
            fh = open_files.get(key)
            if fh is None:
                folder = hours[-1] / t.cc / t.test_name
                folder.mkdir(parents=True, exist_ok=True)
                fh = gzip.open(folder / f"{when:%Y%m%d%H}_{t.cc}_{t.test_name}.n0.0.jsonl.gz",
                               "wt", encoding="utf-8", compresslevel=1)
                open_files[key] = fh
            fh.write(stamp(t, i, reports[k], when))
            fh.write("\n")
    finally:
        for fh in open_files.values():
            fh.close()
    return hours


def corpus_digest(corpus: Path = CORPUS) -> str:
    h = hashlib.sha256()
    for path in sorted(corpus.glob("*.json")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def cached_input(workdir: Path, n: int) -> tuple[list[Path], float | None]:
    """The synthesised archive of ``n`` measurements (made once, cached under ``workdir`` by
    corpus digest and :data:`SYNTH_VERSION`) and the seconds synthesis took (None = cached)."""
    root = workdir / f"import-input-v{SYNTH_VERSION}-{corpus_digest()}-{n}"
    done = root / "COMPLETE"
    if done.exists():
        return [Path(p) for p in json.loads(done.read_text())], None
    tmp = workdir / f".{root.name}.{os.getpid()}.tmp"
    started = time.perf_counter()
    hours = synthesise(tmp, n)
    rel = [str(root / h.relative_to(tmp)) for h in hours]
    (tmp / "COMPLETE").write_text(json.dumps(rel))
    tmp.rename(root)
    return [Path(p) for p in rel], time.perf_counter() - started


@dataclass
class ImportRun:
    """One ``probe import ooni`` process and what it did."""

    measurements: int
    workers: int
    wall: float  # seconds, process start to exit
    cpu: float  # user + system seconds of the process and its worker processes
    maxrss_kb: int  # peak RSS of the importing process (kB)
    child_maxrss_kb: int  # peak RSS of its largest worker process (kB)
    stored: int
    summary: str


def run_import(paths: Sequence[Path], db: Path, workers: int | None,
               n: int) -> ImportRun:
    """Run ``python -m probe import ooni PATHS --db DB [--workers W]`` and account for it.

    The importer is run through a tiny wrapper that reports its children's rusage (the
    worker processes), since ``os.wait4`` on the importer counts only what it waited for.
    """
    argv = [sys.executable, "-m", "probe.lab.bench.import_case", "--child", str(db)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    argv += ["--", *map(str, paths)]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"import exited {proc.returncode}: {err.decode()[-400:]}")
    report = json.loads(out.decode().strip().splitlines()[-1])
    return ImportRun(measurements=n, workers=report["workers"], wall=wall, cpu=report["cpu"],
                     maxrss_kb=report["maxrss_kb"], child_maxrss_kb=report["child_maxrss_kb"],
                     stored=report["stored"], summary=report["summary"])


def _child(argv: list[str]) -> int:
    """Inside the measured process: import, then print this process's accounting as JSON."""
    import resource

    from probe.ingest import import_ooni
    from probe.store import Store

    db = argv[0]
    workers = None
    rest = argv[1:]
    if rest[:1] == ["--workers"]:
        workers = int(rest[1])
        rest = rest[2:]
    paths = rest[1:] if rest[:1] == ["--"] else rest
    with Store.open(db) as store:
        result = import_ooni(store, paths, workers=workers)
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "workers": result.workers, "stored": result.stored, "summary": result.summary(),
        "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        "maxrss_kb": me.ru_maxrss, "child_maxrss_kb": kids.ru_maxrss}))
    return 0


def bench_import(workdir: str | os.PathLike[str], repeat: int = 3,
                 sizes: Sequence[int] = SIZES, workers: int | None = None,
                 say: Any = None, stages: int = STAGE_SAMPLE) -> dict[str, Any]:
    """Import the synthesised input at each size (``repeat`` times the smallest, once the
    others) into a fresh database each time, then time the stages over the first ``stages``
    measurements (0 = not); returns the figures as a dict (see
    :func:`probe.lab.bench.stats.import_figures` and
    :func:`probe.lab.bench.import_stages.stage_costs`)."""
    from probe.lab.bench import stats as B
    from probe.lab.bench.import_stages import stage_costs

    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    biggest = max(sizes)
    hours, made = cached_input(folder, biggest)
    if say is not None:
        say(f"  import input: {biggest:,} measurements in {len(hours)} hours "
            + (f"(synthesised in {made:.0f}s)" if made is not None else "(cached)"))
    runs: dict[int, list[ImportRun]] = {}
    for n in sizes:
        k = -(-n // PER_HOUR)
        for r in range(repeat if n == min(sizes) else 1):
            db = folder / f"import-bench-{n}-{r}.db"
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                p.unlink(missing_ok=True)
            run = run_import(hours[:k], db, workers, n)
            runs.setdefault(n, []).append(run)
            if say is not None:
                say(f"  import {n:,}: {run.wall:.1f}s wall, {run.cpu:.1f}s CPU, "
                    f"{run.workers} workers, peak RSS {run.maxrss_kb / 1024:.0f} MB "
                    f"(largest worker {run.child_maxrss_kb / 1024:.0f} MB)")
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                p.unlink(missing_ok=True)
    figures = B.import_figures({n: [(r.measurements, r.wall, r.cpu, r.maxrss_kb,
                                     r.child_maxrss_kb) for r in rs] for n, rs in runs.items()})
    figures["runs"] = {str(n): [asdict(r) for r in rs] for n, rs in runs.items()}
    figures["synthesised_s"] = None if made is None else round(made, 1)
    figures["templates"] = len(templates())
    figures["cpus"] = os.cpu_count()
    if stages:
        if say is not None:
            say(f"  import stages: the first {stages:,} measurements, one stage at a time…")
        figures["stages"] = stage_costs(hours, stages, folder)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        return _child(args[1:])
    workdir = Path(args[0]) if args else Path("reports") / "bench"
    print(json.dumps(bench_import(workdir, say=lambda s: print(s, file=sys.stderr)),
                     indent=1, default=str))
    return 0


def _iter_docs(paths: Sequence[Path]) -> Iterator[str]:  # for tests: every line written
    for p in paths:
        for f in sorted(p.rglob("*.jsonl.gz")):
            with gzip.open(f, "rt", encoding="utf-8") as fh:
                yield from fh


if __name__ == "__main__":
    sys.exit(main())
