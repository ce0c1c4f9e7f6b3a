"""What changed between two runs or two periods: newly blocked, unblocked, method changed,
still blocked (and "unclear" when one side says nothing about the site).

:func:`classify_change` is the whole decision, a pure function of two statuses. A target's
status in a period is its latest conclusive verdict there (:func:`aggregate.status`); in a
run, its verdict in that run. "Blocked" means any interference: blocked, intercepted or
throttled; a change of verdict or method between two kinds of interference is "method changed".
:func:`compare` serves ``probe compare``; :mod:`probe.report.build` uses the same pieces for
the report's "what changed" section.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from probe.errors import StorageError
from probe.report import aggregate
from probe.report.records import ChangeRow, Comparison, Status
from probe.report.scrub import clean_text
from probe.report.times import fmt_local, tz_name
from probe.report.vocab import CHANGES, INTERFERENCE
from probe.report.workspace import Window, Workspace


def classify_change(before: Status | None, after: Status | None) -> str | None:
    """The kind of change from ``before`` to ``after`` (None = nothing worth listing).

    ``before`` None means the target was not measured before; ``after`` None, not measured
    after. Sites that were reachable (or down) and stay so are not listed.
    """
    was = before is not None and before.verdict in INTERFERENCE
    now = after is not None and after.verdict in INTERFERENCE
    if now and was:
        assert before is not None and after is not None
        same = (before.verdict, before.method) == (after.verdict, after.method)
        return "still_blocked" if same else "method_changed"
    if now:
        if before is None or before.verdict in ("ok", "down"):
            return "newly_blocked"
        return "unclear"
    if was:
        if after is not None and after.verdict == "ok":
            return "unblocked"
        return "unclear"
    return None


def diff(
    before: Mapping[tuple[str, str], Status],
    after: Mapping[tuple[str, str], Status],
    categories: Mapping[str, str | None],
) -> list[ChangeRow]:
    """Change rows for every ``(network, url)`` key of either side, in display order."""
    rows = []
    for key in set(before) | set(after):
        b, a = before.get(key), after.get(key)
        change = classify_change(b, a)
        if change is not None:
            network, url = key
            rows.append(ChangeRow(change, network, url, categories.get(url), b, a))
    order = {c: i for i, c in enumerate(CHANGES)}
    rows.sort(key=lambda r: (order[r.change], r.network, r.url))
    return rows


def count_changes(rows: Sequence[ChangeRow]) -> dict[str, int]:
    counts = dict.fromkeys(CHANGES, 0)
    for r in rows:
        counts[r.change] += 1
    return counts


def statuses(
    ws: Workspace, picked: Mapping[tuple[int, int], aggregate.Pick], *, by_network: bool = True
) -> dict[tuple[str, str], Status]:
    """``(net_idx, target_idx) → Pick`` as ``(network label, url) → Status`` with evidence
    (network label '' when ``by_network`` is false)."""
    labels = {n.net_idx: n.label for n in ws.networks}
    urls = dict(ws.conn.execute("SELECT target_idx, url FROM targets").fetchall())
    starts = {r.run_idx: r.started_at for r in ws.runs}
    details = ws.details((p.run_idx, p.target_idx) for p in picked.values())
    out = {}
    for (net, t), p in picked.items():
        d = details.get((p.run_idx, p.target_idx))
        evidence = clean_text(d.evidence, d.addresses) if d else ""
        at = d.measured_at if d else starts[p.run_idx]
        out[(labels[net] if by_network else "", urls[t])] = Status(
            p.verdict, p.method, at, evidence
        )
    return out


def target_categories(ws: Workspace) -> dict[str, str | None]:
    return dict(ws.conn.execute("SELECT url, category FROM targets").fetchall())


def compare(
    databases: Sequence[str | Path],
    tz: dt.tzinfo,
    *,
    runs: tuple[str, str] | None = None,
    periods: tuple[Window, Window] | None = None,
    categories: Sequence[str] = (),
) -> Comparison:
    """Compare two runs (ids, unique prefixes, ``latest``/``previous``) or two periods.

    Raises StorageError (unreadable database, unknown or ambiguous run) and ValueError (both
    or neither of ``runs``/``periods``).
    """
    if (runs is None) == (periods is None):
        raise ValueError("compare needs two runs or two periods")
    with Workspace.open(databases) as ws:
        if runs is not None:
            ws.load_runs([], run_ids=list(runs))
        else:
            assert periods is not None
            ws.load_runs(list(periods))
        ws.load_verdicts(categories or None)
        if runs is not None:
            by_period = {r.period: r for r in ws.runs}
            labels = {n.net_idx: n.label for n in ws.networks}
            before_label, after_label = (
                f"run {r.run_id} ({fmt_local(r.started_at, tz)}, {labels[r.net_idx]})"
                for r in (by_period[0], by_period[1])
            )
            # One run per side: its verdicts. Runs on two networks are still compared target
            # by target.
            before = statuses(ws, aggregate.status(ws.conn, 0), by_network=False)
            after = statuses(ws, aggregate.status(ws.conn, 1), by_network=False)
        else:
            assert periods is not None
            if _overlap(periods[0], periods[1]):
                raise StorageError("the two periods overlap")
            before = statuses(ws, aggregate.status(ws.conn, 0))
            after = statuses(ws, aggregate.status(ws.conn, 1))
            before_label, after_label = (_period_label(w, ws, i, tz) for i, w in enumerate(periods))
        rows = diff(before, after, target_categories(ws))
        return Comparison(
            before_label=before_label,
            after_label=after_label,
            tz=tz_name(tz),
            rows=rows,
            before_targets=len(before),
            after_targets=len(after),
            counts=count_changes(rows),
        )


def _overlap(a: Window, b: Window) -> bool:
    a_start = a.start or dt.datetime.min.replace(tzinfo=dt.UTC)
    b_start = b.start or dt.datetime.min.replace(tzinfo=dt.UTC)
    a_end = a.end or dt.datetime.max.replace(tzinfo=dt.UTC)
    b_end = b.end or dt.datetime.max.replace(tzinfo=dt.UTC)
    return a_start < b_end and b_start < a_end


def _period_label(w: Window, ws: Workspace, period: int, tz: dt.tzinfo) -> str:
    n = sum(1 for r in ws.runs if r.period == period)
    start = fmt_local(w.start, tz) if w.start else "the beginning"
    end = fmt_local(w.end, tz) if w.end else "now"
    return f"{start} → {end} ({n} runs)"
