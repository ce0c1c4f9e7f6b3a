"""Timeline geometry: which cell each run falls in, and where cells and health segments start
and end. Pure functions over run start times (a year of hourly runs is ~9k values).

Rules:

* Up to :data:`MAX_RUN_CELLS` runs per network, the timeline has one cell per run; a cell lasts
  until the network's next run (at most :data:`GAP_FACTOR` × its typical interval, so a probe
  that was off shows a gap, not a stretched cell).
* Beyond that, runs are bucketed by time so a year stays a few hundred cells wide: the
  smallest width from :data:`WIDTHS` giving at most :data:`MAX_BUCKETS` buckets. Day-based
  widths start at midnight in the display zone.
* Health rounds are merged into segments of one state; a round's state holds until the next
  round unless the gap is too long (then it holds for one typical interval).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from probe.report.times import UTC, local_midnight

MAX_RUN_CELLS = 200
MAX_BUCKETS = 400
GAP_FACTOR = 2.5
#: Bucket widths: (label, seconds) for sub-day widths, (label, -days) for day-based ones.
WIDTHS: tuple[tuple[str, int], ...] = (
    ("1 h", 3600),
    ("3 h", 3 * 3600),
    ("6 h", 6 * 3600),
    ("12 h", 12 * 3600),
    ("1 d", -1),
    ("1 w", -7),
    ("4 w", -28),
    ("16 w", -112),
)
DEFAULT_INTERVAL = 600.0


@dataclass(frozen=True, slots=True)
class RunPoint:
    run_idx: int
    net_idx: int
    started_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CellPlan:
    """``unit``: ``run`` or a bucket width label. ``bucket_of``: run_idx → bucket. ``cells``:
    per network, its cells in time order as ``(bucket, start, end)``."""

    unit: str
    bucket_of: dict[int, int]
    cells: dict[int, list[tuple[int, dt.datetime, dt.datetime]]]


def typical_interval(starts: Sequence[dt.datetime]) -> float:
    """Median seconds between consecutive starts (DEFAULT_INTERVAL with fewer than two)."""
    ordered = sorted(starts)
    gaps = [(b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False)]
    gaps = [g for g in gaps if g > 0]
    return statistics.median(gaps) if gaps else DEFAULT_INTERVAL


def plan_cells(runs: Sequence[RunPoint], tz: dt.tzinfo) -> CellPlan:
    """Cells for the timeline of ``runs`` (one period), shown in ``tz``."""
    by_net: dict[int, list[RunPoint]] = {}
    for r in sorted(runs, key=lambda r: (r.started_at, r.run_idx)):
        by_net.setdefault(r.net_idx, []).append(r)
    if not runs or max(len(v) for v in by_net.values()) <= MAX_RUN_CELLS:
        return _run_cells(by_net)
    return _bucket_cells(by_net, tz)


def _run_cells(by_net: dict[int, list[RunPoint]]) -> CellPlan:
    bucket_of: dict[int, int] = {}
    cells: dict[int, list[tuple[int, dt.datetime, dt.datetime]]] = {}
    for net, rs in by_net.items():
        step = typical_interval([r.started_at for r in rs])
        out = cells.setdefault(net, [])
        for i, r in enumerate(rs):
            bucket_of[r.run_idx] = r.run_idx
            end = r.started_at + dt.timedelta(seconds=step)
            if i + 1 < len(rs):
                nxt = rs[i + 1].started_at
                if (nxt - r.started_at).total_seconds() <= GAP_FACTOR * step:
                    end = nxt
            out.append((r.run_idx, r.started_at, max(end, r.started_at)))
    return CellPlan("run", bucket_of, cells)


def _bucket_cells(by_net: dict[int, list[RunPoint]], tz: dt.tzinfo) -> CellPlan:
    first = min(rs[0].started_at for rs in by_net.values())
    last = max(rs[-1].started_at for rs in by_net.values())
    origin_day = first.astimezone(tz).date()
    origin = local_midnight(origin_day, tz)
    span = (last - origin).total_seconds()
    label, width = next(
        ((lbl, w) for lbl, w in WIDTHS if span / (w if w > 0 else -w * 86400) < MAX_BUCKETS),
        WIDTHS[-1],
    )

    def bucket(when: dt.datetime) -> int:
        if width > 0:
            return int((when - origin).total_seconds() // width)
        return (when.astimezone(tz).date() - origin_day).days // -width

    def bounds(b: int) -> tuple[dt.datetime, dt.datetime]:
        if width > 0:
            start = origin + dt.timedelta(seconds=b * width)
            return start, start + dt.timedelta(seconds=width)
        days = -width
        return (
            local_midnight(origin_day + dt.timedelta(days=b * days), tz),
            local_midnight(origin_day + dt.timedelta(days=(b + 1) * days), tz),
        )

    bucket_of: dict[int, int] = {}
    cells: dict[int, list[tuple[int, dt.datetime, dt.datetime]]] = {}
    for net, rs in by_net.items():
        seen: list[int] = []
        for r in rs:
            b = bucket(r.started_at)
            bucket_of[r.run_idx] = b
            if not seen or seen[-1] != b:
                seen.append(b)
        cells[net] = [(b, *bounds(b)) for b in seen]
    return CellPlan(label, bucket_of, cells)


@dataclass(frozen=True, slots=True)
class Segment:
    start: dt.datetime
    end: dt.datetime
    state: str
    rounds: int
    source: str


def health_segments(rounds: Sequence[tuple[float, str, str]], run_interval: float) -> list[Segment]:
    """Merge ``(t, state, source)`` rounds (one network, oldest first) into segments."""
    cap = max(GAP_FACTOR * run_interval, 900.0)
    out: list[Segment] = []
    for i, (t, state, source) in enumerate(rounds):
        end = t + run_interval
        if i + 1 < len(rounds) and rounds[i + 1][0] - t <= cap:
            end = rounds[i + 1][0]
        start_dt = dt.datetime.fromtimestamp(t, UTC)
        end_dt = dt.datetime.fromtimestamp(max(end, t), UTC)
        prev = out[-1] if out else None
        if prev and prev.state == state and prev.source == source and prev.end >= start_dt:
            out[-1] = Segment(prev.start, end_dt, state, prev.rounds + 1, source)
        else:
            out.append(Segment(start_dt, end_dt, state, 1, source))
    return out
