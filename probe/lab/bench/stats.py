"""The benchmark's arithmetic: per-target costs, the lower bound, ratios, speed-up, the table.

Pure functions over numbers the benchmark measured (no IO), so each can be unit-tested.

Method (docs/bench.md says the same in prose):

* **Per-target cost at concurrency 1.** In a run at concurrency 1 targets follow each other,
  so the time one target occupies the probe is the gap from its start to the next target's
  start (its *cycle*: measurement, control answer, classification, storage and hand-over);
  the last target has no cycle.
* **Unavoidable time of a class.** For classes with a design cost (a blackholed or silent
  server costs the connect timeout; a throttled page its bytes at the shaped rate) that cost;
  for the others (healthy, reset, refused) the *minimum* cycle measured at concurrency 1 over
  the class: the fastest the probe has ever done such a target alone.
* **Lower bound of a run** = the largest of: the sum of the unavoidable times of its targets
  divided by the concurrency; the longest single unavoidable time; and the time any shared
  bottleneck needs alone (the throttled pages share one shaped class, so all their bytes must
  pass at that rate).
* **Ratio** = wall time / lower bound (1.0 = perfect; the goal is ≤ 1.3 at the default
  concurrency). **Speed-up** at concurrency c = (wall time per target at concurrency 1) /
  (wall time per target at c), i.e. normalised per target, since the runs measure different
  numbers of targets (the subsets keep the same mix of classes).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Timed:
    """One measured target: its class and when its measurement started and ended (seconds)."""

    klass: str
    start: float
    end: float


def median(values: Iterable[float]) -> float:
    data = list(values)
    if not data:
        raise ValueError("median of nothing")
    return float(statistics.median(data))


def cycles(targets: Sequence[Timed]) -> list[tuple[str, float]]:
    """(class, cycle seconds) of each target of a concurrency-1 run but the last, in start
    order. The cycle is the gap to the next target's start; the last target has none (its
    stored end comes before the control's answer and the storage, so it would undercount).
    """
    ordered = sorted(targets, key=lambda t: t.start)
    return [(here.klass, max(0.0, after.start - here.start))
            for here, after in zip(ordered, ordered[1:], strict=False)]


def class_minima(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The smallest value seen for each class."""
    out: dict[str, float] = {}
    for klass, value in pairs:
        out[klass] = min(value, out.get(klass, value))
    return out


def unavoidable(design: Mapping[str, float | None], measured: Mapping[str, float]
                ) -> dict[str, float]:
    """Per class: its design cost when it has one, else its measured minimum.

    Raises KeyError naming a class that has neither (a subset missed it).
    """
    out: dict[str, float] = {}
    for klass, cost in design.items():
        if cost is not None:
            out[klass] = cost
        elif klass in measured:
            out[klass] = measured[klass]
        else:
            raise KeyError(f"no measured cost for class {klass!r}")
    return out


def lower_bound(counts: Mapping[str, int], costs: Mapping[str, float], concurrency: int,
                shared: Iterable[float] = ()) -> float:
    """The shortest wall time any probe could reach for these targets (see module doc).

    ``counts``: targets per class; ``costs``: unavoidable seconds per class; ``shared``:
    seconds each shared bottleneck needs on its own.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    total = sum(n * costs[k] for k, n in counts.items() if n)
    longest = max((costs[k] for k, n in counts.items() if n), default=0.0)
    return max(total / concurrency, longest, *shared)


def ratio(wall: float, bound: float) -> float:
    """Wall time over the lower bound (inf when the bound is zero)."""
    return wall / bound if bound > 0 else float("inf")


def speedup(wall_1: float, targets_1: int, wall_c: float, targets_c: int) -> float:
    """Per-target speed-up of a run over a concurrency-1 run of (possibly) fewer targets."""
    if min(wall_1, wall_c) <= 0 or min(targets_1, targets_c) <= 0:
        raise ValueError("wall times and target counts must be positive")
    return (wall_1 / targets_1) / (wall_c / targets_c)


def rate(targets: int, wall: float) -> float:
    return targets / wall if wall > 0 else float("inf")


def within(value: float, limit: float) -> str:
    """``ok`` or ``MISSED`` for a goal of "value ≤ limit"."""
    return "ok" if value <= limit else "MISSED"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                 for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


#: Goals of issue 12 for ``probe import``.
GOAL_IMPORT_PER_CORE = 5000.0
GOAL_IMPORT_MEMORY = 1.2


def import_figures(runs: Mapping[int, Sequence[tuple[int, float, float, int, int]]]
                   ) -> dict[str, Any]:
    """The import section's figures from ``size → [(measurements, wall s, CPU s, peak RSS kB
    of the importer, peak RSS kB of its largest worker)]``.

    Per size (medians over its repeats): ``rate`` = measurements / wall second;
    ``per_core`` = measurements / CPU second of the importer and its workers (what one core
    does: the figure of the goal); ``cores`` = CPU seconds / wall seconds (cores used);
    ``rss_mb`` = the importer's peak RSS, ``worker_rss_mb`` = its largest worker's. Then
    ``rss_ratio`` = peak RSS (importer + one worker) at the largest size / at the smallest.
    """
    if not runs:
        raise ValueError("no import runs")
    sizes: dict[str, dict[str, float]] = {}
    for n, rs in sorted(runs.items()):
        if not rs:
            raise ValueError(f"no runs of size {n}")
        sizes[str(n)] = {
            "measurements": n,
            "repeats": len(rs),
            "wall_s": median(r[1] for r in rs),
            "cpu_s": median(r[2] for r in rs),
            "rate": median(rate(r[0], r[1]) for r in rs),
            "per_core": median(rate(r[0], r[2]) for r in rs),
            "cores": median(r[2] / r[1] if r[1] > 0 else 0.0 for r in rs),
            "rss_mb": median(r[3] for r in rs) / 1024,
            "worker_rss_mb": median(r[4] for r in rs) / 1024,
        }
    small, big = sizes[str(min(runs))], sizes[str(max(runs))]
    total_small = small["rss_mb"] + small["worker_rss_mb"]
    total_big = big["rss_mb"] + big["worker_rss_mb"]
    return {"sizes": sizes, "rss_ratio": ratio(total_big, total_small)}
