"""Build a :class:`~probe.report.records.Report` from probe databases (the report's one entry
point for the CLI and the benchmark).

Steps: open the databases read-only into a workspace, select the period's runs (and the
previous period's, for "what changed"), lay out the timeline, copy the verdicts, aggregate in
SQL, then fetch evidence and page details for the few rows shown and scrub them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from probe.report import aggregate
from probe.report.compare import diff, statuses, target_categories
from probe.report.layout import (
    CellPlan,
    RunPoint,
    health_segments,
    plan_cells,
    typical_interval,
)
from probe.report.records import (
    CategoryRow,
    ChangeRow,
    HealthSegment,
    Meta,
    MethodRow,
    NetworkBucket,
    NetworkRow,
    Report,
    Status,
    Summary,
    TargetRow,
    TimelineSegment,
)
from probe.report.scrub import clean_text
from probe.report.times import UTC, fmt_local, tz_name
from probe.report.vocab import CUT_STATES, INTERFERENCE, NOT_CONCLUSIVE, SEVERITY, VERDICTS
from probe.report.workspace import Run, Window, Workspace


@dataclass(frozen=True)
class ReportOptions:
    """What to report on. ``since``/``until`` are UTC instants (None = open);
    ``now`` fixes "now" (generation time, open ``until``) for reproducible output."""

    databases: tuple[Path, ...]
    tz: dt.tzinfo
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    categories: tuple[str, ...] = ()
    now: dt.datetime | None = None


def build_report(opts: ReportOptions) -> Report:
    """Aggregate the databases into a Report. Raises StorageError for unusable databases."""
    now = opts.now or dt.datetime.now(UTC)
    current = Window(opts.since, opts.until)
    windows = [current]
    if opts.since is not None:
        span = (opts.until or now) - opts.since
        windows.append(Window(opts.since - span, opts.since))
    with Workspace.open(opts.databases) as ws:
        ws.load_runs(windows)
        period_runs = [r for r in ws.runs if r.period == 0]
        plan = plan_cells(
            [RunPoint(r.run_idx, r.net_idx, r.started_at) for r in period_runs], opts.tz
        )
        ws.set_buckets(plan.bucket_of.items())
        ws.load_verdicts(opts.categories or None)
        return _Builder(ws, opts, now, plan, period_runs).build()


@dataclass
class _Builder:
    """Turns the aggregations of one loaded workspace into the report's records."""

    ws: Workspace
    opts: ReportOptions
    now: dt.datetime
    plan: CellPlan
    runs: Sequence[Run]

    def __post_init__(self) -> None:
        conn = self.ws.conn
        self.labels = {n.net_idx: n.label for n in self.ws.networks}
        self.start_of = {r.run_idx: r.started_at for r in self.ws.runs}
        self.targets = {
            t: (url, host, cat)
            for t, url, host, cat in conn.execute(
                "SELECT target_idx, url, hostname, category FROM targets"
            )
        }
        self.bounds = {
            (net, b): (start, _clip(end, self.opts.until))
            for net, cells in self.plan.cells.items()
            for b, start, end in cells
        }
        aggregate.build_rollup(conn, 0)
        self.now_status = aggregate.status(conn, 0)

    def build(self) -> Report:
        conn = self.ws.conn
        verdicts = aggregate.verdict_counts(conn)
        stats = aggregate.target_stats(conn)
        health = self.health()
        cut_by_net: dict[str, float] = {}
        for h in health:
            if h.state in CUT_STATES:
                cut_by_net[h.network] = cut_by_net.get(h.network, 0.0) + h.seconds
        target_rows = self.target_rows(stats)
        network_rows = self.network_rows(cut_by_net)
        changes, baseline, after = self.changes()
        sources = {h.source for h in health}
        first_run, last_run = self.ws.run_times(0)
        summary = Summary(
            targets=len(stats),
            runs=len(self.runs),
            runs_by_status=_status_counts(self.runs),
            measurements=sum(verdicts.values()),
            networks=len(network_rows),
            verdicts=verdicts,
            targets_interfered=sum(1 for s in stats.values() if s.interfered),
            targets_interfered_now=sum(1 for r in target_rows if r.verdict in INTERFERENCE),
            cut_seconds=sum(cut_by_net.values()),
        )
        meta = Meta(
            generated_at=self.now,
            tz=tz_name(self.opts.tz),
            since=self.opts.since,
            until=self.opts.until,
            first_run=first_run,
            last_run=last_run,
            databases=tuple(p.name for p in self.ws.paths),
            categories=tuple(sorted({c.upper() for c in self.opts.categories})),
            baseline=baseline,
            timeline_unit=self.plan.unit,
            health_source=(
                "none"
                if not sources
                else sources.pop()
                if len(sources) == 1
                else "canaries+verdicts"
            ),
        )
        return Report(
            meta=meta,
            summary=summary,
            targets=target_rows,
            networks=network_rows,
            timeline=self.timeline(),
            cells={
                self.labels[net]: [self.bounds[(net, b)] for b, _, _ in self.plan.cells[net]]
                for net in sorted(self.plan.cells)
            },
            network_timeline=self.network_timeline(),
            health=health,
            categories=[
                CategoryRow(c.category, c.targets, c.measurements, c.verdicts, c.targets_interfered)
                for c in aggregate.category_stats(conn)
            ],
            methods=[
                MethodRow(
                    m.verdict,
                    m.method,
                    m.measurements,
                    m.targets,
                    m.networks,
                    self.start_of[m.first_run],
                    self.start_of[m.last_run],
                )
                for m in aggregate.method_stats(conn)
            ],
            comparison=after,
            changes=changes,
            target_urls=[r.url for r in target_rows],
        )

    def health(self) -> list[HealthSegment]:
        """Per network, health rounds merged into segments (clipped to the period)."""
        run_starts: dict[int, list[dt.datetime]] = {}
        for r in self.runs:
            run_starts.setdefault(r.net_idx, []).append(r.started_at)
        rounds_by_net: dict[int, list[tuple[float, str, str]]] = {}
        for net, at, state, source in aggregate.health_rounds(self.ws.conn, 0):
            rounds_by_net.setdefault(net, []).append((at, state, source))
        out: list[HealthSegment] = []
        for net in sorted(rounds_by_net):
            interval = typical_interval(run_starts.get(net, []))
            for seg in health_segments(rounds_by_net[net], interval):
                end = _clip(seg.end, self.opts.until)
                out.append(
                    HealthSegment(
                        self.labels[net], seg.start, end, seg.state, seg.rounds, seg.source
                    )
                )
        return out

    def target_rows(self, stats: dict[int, aggregate.TargetStats]) -> list[TargetRow]:
        """Each target's status: its latest conclusive verdict per network, the most severe
        across networks (a site blocked on one network and reachable on another shows as
        blocked), with the evidence and page of that measurement."""

        def rank(p: aggregate.Pick) -> tuple[bool, int, int]:
            return (p.verdict not in NOT_CONCLUSIVE, SEVERITY[p.verdict], p.run_idx)

        latest: dict[int, aggregate.Pick] = {}
        nets_of: dict[int, list[aggregate.Pick]] = {}
        for (_, t), p in self.now_status.items():
            nets_of.setdefault(t, []).append(p)
            if t not in latest or rank(p) > rank(latest[t]):
                latest[t] = p
        details = self.ws.details((p.run_idx, p.target_idx) for p in latest.values())
        rows: list[TargetRow] = []
        for t, p in latest.items():
            url, host, cat = self.targets[t]
            s = stats[t]
            d = details.get((p.run_idx, p.target_idx))
            allowed = d.addresses if d else frozenset()
            rows.append(
                TargetRow(
                    url=url,
                    hostname=host,
                    category=cat,
                    network=self.labels[p.net_idx],
                    verdict=p.verdict,
                    method=p.method,
                    confidence=round(d.confidence, 3) if d else 0.0,
                    evidence=clean_text(d.evidence if d else "", allowed)
                    + (f" [{d.censor}]" if d and d.censor else ""),
                    measured_at=d.measured_at if d else self.start_of[p.run_idx],
                    first_blocked=self._start(s.first_blocked_run),
                    last_blocked=self._start(s.last_blocked_run),
                    measurements=s.measurements,
                    interfered=s.interfered,
                    networks=len(nets_of[t]),
                    networks_interfered=sum(1 for q in nets_of[t] if q.verdict in INTERFERENCE),
                    title=(clean_text(d.title, allowed) or None) if d else None,
                    server=(clean_text(d.server, allowed) or None) if d else None,
                )
            )
        rows.sort(key=lambda r: (_TABLE_ORDER.get(r.verdict, 9), -r.interfered, r.url))
        return rows

    def _start(self, run_idx: int | None) -> dt.datetime | None:
        return None if run_idx is None else self.start_of[run_idx]

    def network_rows(self, cut_by_net: dict[str, float]) -> list[NetworkRow]:
        per_net = aggregate.network_verdict_counts(self.ws.conn)
        rows = []
        for n in self.ws.networks:
            starts = [r.started_at for r in self.runs if r.net_idx == n.net_idx]
            if not starts:
                continue
            counts = per_net.get(n.net_idx, dict.fromkeys(VERDICTS, 0))
            rows.append(
                NetworkRow(
                    label=n.label,
                    asn=n.asn,
                    cc=n.cc,
                    runs=len(starts),
                    measurements=sum(counts.values()),
                    first_run=min(starts),
                    last_run=max(starts),
                    verdicts=counts,
                    cut_seconds=cut_by_net.get(n.label, 0.0),
                )
            )
        return rows

    def timeline(self) -> list[TimelineSegment]:
        """Timeline cells of each (network, target), runs of equal cells merged."""
        out: list[TimelineSegment] = []
        for c in aggregate.timeline_cells(self.ws.conn, 0):
            start, end = self.bounds[(c.net_idx, c.bucket)]
            network, url = self.labels[c.net_idx], self.targets[c.target_idx][0]
            prev = out[-1] if out else None
            if (
                prev is not None
                and (prev.network, prev.url, prev.verdict, prev.method)
                == (network, url, c.verdict, c.method)
                and prev.end == start
            ):
                out[-1] = TimelineSegment(
                    network,
                    url,
                    prev.start,
                    end,
                    c.verdict,
                    c.method,
                    prev.cells + 1,
                    prev.measurements + c.measurements,
                )
            else:
                out.append(
                    TimelineSegment(
                        network, url, start, end, c.verdict, c.method, 1, c.measurements
                    )
                )
        return out

    def network_timeline(self) -> list[NetworkBucket]:
        buckets = aggregate.network_buckets(self.ws.conn, 0)
        return [
            NetworkBucket(self.labels[net], *self.bounds[(net, b)], counts)
            for (net, b), counts in sorted(
                buckets.items(), key=lambda kv: (kv[0][0], self.bounds[kv[0]])
            )
        ]

    def changes(self) -> tuple[list[ChangeRow], str, dict[tuple[str, str], Status]]:
        """What changed since the previous period (or before each network's last cell): the
        change rows, how the baseline was chosen, and every (network, url) status now."""
        conn, opts = self.ws.conn, self.opts
        after = statuses(self.ws, self.now_status)
        if opts.since is not None:
            before = statuses(self.ws, aggregate.status(conn, 1))
            start = opts.since - ((opts.until or self.now) - opts.since)
            baseline = (
                "each target's latest conclusive verdict in this period vs. in the previous "
                f"one ({fmt_local(start, opts.tz)} → {fmt_local(opts.since, opts.tz)}, "
                f"{sum(1 for r in self.ws.runs if r.period == 1)} runs)"
            )
        else:
            last_cell = {net: cells[-1][0] for net, cells in self.plan.cells.items() if cells}
            before = statuses(self.ws, aggregate.status(conn, 0, before_bucket=last_cell))
            unit = "run" if self.plan.unit == "run" else f"{self.plan.unit} timeline cell"
            baseline = (
                f"each target's latest conclusive verdict vs. before each network's last {unit}"
                " (give --since to compare with the previous period)"
            )
        return diff(before, after, target_categories(self.ws)), baseline, after


#: Order of the per-target table: interference first, then what hides the site, then ok.
_TABLE_ORDER = {
    v: i
    for i, v in enumerate(
        ("blocked", "intercepted", "throttled", "shutdown", "down", "inconclusive", "ok")
    )
}


def _clip(end: dt.datetime, until: dt.datetime | None) -> dt.datetime:
    """Cells and health segments stop at the end of the period."""
    return end if until is None else min(end, until)


def _status_counts(runs: Sequence[Run]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    return dict(sorted(counts.items()))
