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
    HealthSegment,
    Meta,
    MethodRow,
    NetworkBucket,
    NetworkRow,
    Report,
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
        return _assemble(ws, opts, now, plan, period_runs)


def _assemble(
    ws: Workspace, opts: ReportOptions, now: dt.datetime, plan: CellPlan, runs: Sequence[Run]
) -> Report:
    conn = ws.conn
    labels = {n.net_idx: n.label for n in ws.networks}
    start_of = {r.run_idx: r.started_at for r in ws.runs}
    targets = {
        t: (url, host, cat)
        for t, url, host, cat in conn.execute(
            "SELECT target_idx, url, hostname, category FROM targets"
        )
    }

    aggregate.build_rollup(conn, 0)
    verdicts = aggregate.verdict_counts(conn)
    per_net_verdicts = aggregate.network_verdict_counts(conn)
    stats = aggregate.target_stats(conn)
    # Each target's status: its latest conclusive verdict per network, the most severe across
    # networks (a site blocked on one network and reachable on another shows as blocked).
    now_status = aggregate.status(conn, 0)
    latest: dict[int, aggregate.Pick] = {}
    nets_of: dict[int, list[aggregate.Pick]] = {}
    for (_, t), p in now_status.items():
        nets_of.setdefault(t, []).append(p)
        rank = (p.verdict not in NOT_CONCLUSIVE, SEVERITY[p.verdict], p.run_idx)
        best = latest.get(t)
        if best is None or rank > (
            best.verdict not in NOT_CONCLUSIVE,
            SEVERITY[best.verdict],
            best.run_idx,
        ):
            latest[t] = p

    # Health: per network, rounds → segments.
    run_starts: dict[int, list[dt.datetime]] = {}
    for r in runs:
        run_starts.setdefault(r.net_idx, []).append(r.started_at)
    rounds_by_net: dict[int, list[tuple[float, str, str]]] = {}
    for net, at, state, source in aggregate.health_rounds(conn, 0):
        rounds_by_net.setdefault(net, []).append((at, state, source))
    health: list[HealthSegment] = []
    for net in sorted(rounds_by_net):
        interval = typical_interval(run_starts.get(net, []))
        for seg in health_segments(rounds_by_net[net], interval):
            health.append(
                HealthSegment(
                    labels[net],
                    seg.start,
                    _clip(seg.end, opts.until),
                    seg.state,
                    seg.rounds,
                    seg.source,
                )
            )
    cut_by_net: dict[str, float] = {}
    for h in health:
        if h.state in CUT_STATES:
            cut_by_net[h.network] = cut_by_net.get(h.network, 0.0) + h.seconds
    sources = {h.source for h in health}
    health_source = (
        "none" if not sources else sources.pop() if len(sources) == 1 else "canaries+verdicts"
    )

    # Per-target table, with evidence and page details for the latest measurement.
    details = ws.details((p.run_idx, p.target_idx) for p in latest.values())
    target_rows: list[TargetRow] = []
    for t, p in latest.items():
        url, host, cat = targets[t]
        s = stats[t]
        d = details.get((p.run_idx, p.target_idx))
        allowed = d.addresses if d else frozenset()
        target_rows.append(
            TargetRow(
                url=url,
                hostname=host,
                category=cat,
                network=labels[p.net_idx],
                verdict=p.verdict,
                method=p.method,
                confidence=round(d.confidence, 3) if d else 0.0,
                evidence=clean_text(d.evidence if d else "", allowed),
                measured_at=d.measured_at if d else start_of[p.run_idx],
                first_blocked=start_of.get(s.first_blocked_run)
                if s.first_blocked_run is not None
                else None,
                last_blocked=start_of.get(s.last_blocked_run)
                if s.last_blocked_run is not None
                else None,
                measurements=s.measurements,
                interfered=s.interfered,
                networks=len(nets_of[t]),
                networks_interfered=sum(1 for q in nets_of[t] if q.verdict in INTERFERENCE),
                title=clean_text(d.title, allowed) or None if d else None,
                server=clean_text(d.server, allowed) or None if d else None,
            )
        )
    order = {
        v: i
        for i, v in enumerate(
            ("blocked", "intercepted", "throttled", "shutdown", "down", "inconclusive", "ok")
        )
    }
    target_rows.sort(key=lambda r: (order.get(r.verdict, 9), -r.interfered, r.url))

    # Networks.
    network_rows = []
    for n in ws.networks:
        nruns = [r for r in runs if r.net_idx == n.net_idx]
        if not nruns:
            continue
        counts = per_net_verdicts.get(n.net_idx, dict.fromkeys(VERDICTS, 0))
        network_rows.append(
            NetworkRow(
                label=n.label,
                asn=n.asn,
                cc=n.cc,
                runs=len(nruns),
                measurements=sum(counts.values()),
                first_run=min(r.started_at for r in nruns),
                last_run=max(r.started_at for r in nruns),
                verdicts=counts,
                cut_seconds=cut_by_net.get(n.label, 0.0),
            )
        )

    # Timelines.
    bounds = {
        (net, b): (start, _clip(end, opts.until))
        for net, cells in plan.cells.items()
        for b, start, end in cells
    }
    timeline: list[TimelineSegment] = []
    for c in aggregate.timeline_cells(conn, 0):
        start, end = bounds[(c.net_idx, c.bucket)]
        url = targets[c.target_idx][0]
        prev = timeline[-1] if timeline else None
        if (
            prev is not None
            and prev.network == labels[c.net_idx]
            and prev.url == url
            and (prev.verdict, prev.method) == (c.verdict, c.method)
            and prev.end == start
        ):
            timeline[-1] = TimelineSegment(
                prev.network,
                url,
                prev.start,
                end,
                c.verdict,
                c.method,
                prev.cells + 1,
                prev.measurements + c.measurements,
            )
        else:
            timeline.append(
                TimelineSegment(
                    labels[c.net_idx], url, start, end, c.verdict, c.method, 1, c.measurements
                )
            )
    network_timeline = [
        NetworkBucket(labels[net], *bounds[(net, b)], counts)
        for (net, b), counts in sorted(
            aggregate.network_buckets(conn, 0).items(), key=lambda kv: (kv[0][0], bounds[kv[0]])
        )
    ]
    cells = {
        labels[net]: [bounds[(net, b)] for b, _, _ in plan.cells[net]] for net in sorted(plan.cells)
    }

    # Breakdowns.
    categories = [
        CategoryRow(c.category, c.targets, c.measurements, c.verdicts, c.targets_interfered)
        for c in aggregate.category_stats(conn)
    ]
    methods = [
        MethodRow(
            m.verdict,
            m.method,
            m.measurements,
            m.targets,
            m.networks,
            start_of[m.first_run],
            start_of[m.last_run],
        )
        for m in aggregate.method_stats(conn)
    ]

    # What changed since the previous period.
    after = statuses(ws, now_status)
    if opts.since is not None:
        before = statuses(ws, aggregate.status(conn, 1))
        prev_window = Window(opts.since - ((opts.until or now) - opts.since), opts.since)
        baseline = (
            f"each target's latest conclusive verdict in this period vs. in the previous one "
            f"({fmt_local(prev_window.start, opts.tz)} → {fmt_local(prev_window.end, opts.tz)}, "
            f"{sum(1 for r in ws.runs if r.period == 1)} runs)"
        )
    else:
        last_cell = {net: cells[-1][0] for net, cells in plan.cells.items() if cells}
        before = statuses(ws, aggregate.status(conn, 0, before_bucket=last_cell))
        unit = "run" if plan.unit == "run" else f"{plan.unit} timeline cell"
        baseline = (
            f"each target's latest conclusive verdict vs. before each network's last {unit} "
            "(give --since to compare with the previous period)"
        )
    changes = diff(before, after, target_categories(ws))

    first_run, last_run_at = ws.run_times(0)
    summary = Summary(
        targets=len(stats),
        runs=len(runs),
        runs_by_status=_status_counts(runs),
        measurements=sum(verdicts.values()),
        networks=len(network_rows),
        verdicts=verdicts,
        targets_interfered=sum(1 for s in stats.values() if s.interfered),
        targets_interfered_now=sum(1 for r in target_rows if r.verdict in INTERFERENCE),
        cut_seconds=sum(cut_by_net.values()),
    )
    meta = Meta(
        generated_at=now,
        tz=tz_name(opts.tz),
        since=opts.since,
        until=opts.until,
        first_run=first_run,
        last_run=last_run_at,
        databases=tuple(p.name for p in ws.paths),
        categories=tuple(sorted({c.upper() for c in opts.categories})),
        baseline=baseline,
        timeline_unit=plan.unit,
        health_source=health_source,
    )
    return Report(
        meta=meta,
        summary=summary,
        targets=target_rows,
        networks=network_rows,
        timeline=timeline,
        cells=cells,
        network_timeline=network_timeline,
        health=health,
        categories=categories,
        methods=methods,
        comparison=after,
        changes=changes,
        target_urls=[r.url for r in target_rows],
    )


def _clip(end: dt.datetime, until: dt.datetime | None) -> dt.datetime:
    """Cells and health segments stop at the end of the period."""
    return end if until is None else min(end, until)


def _status_counts(runs: Sequence[Run]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    return dict(sorted(counts.items()))
