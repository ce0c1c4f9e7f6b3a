"""Text timelines: one character per timeline cell, for Markdown and terminals.

The symbols are :data:`probe.report.vocab.VERDICT_LOOK` / ``STATE_LOOK`` symbols; a blank is
a cell without data. Cells are the report's ``cells`` of each network (one per run, or one per
time bucket), so a row of a target and the row of its network's health line up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from probe.report.records import HealthSegment, Report
from probe.report.vocab import SEVERITY, STATES, VERDICTS, state_look, verdict_look

#: Health states from most to least alarming (the worst state overlapping a cell wins).
_STATE_RANK = {
    s: i
    for i, s in enumerate(
        (
            "whole",
            "unknown",
            "captive_portal",
            "local_outage",
            "shutdown.allowlist",
            "shutdown.international",
            "shutdown.full",
        )
    )
}


def target_strip(report: Report, network: str, url: str) -> str:
    cells = report.cells.get(network, [])
    index = {start: i for i, (start, _) in enumerate(cells)}
    out = [" "] * len(cells)
    for seg in report.timeline:
        if seg.network != network or seg.url != url:
            continue
        i = index.get(seg.start)
        if i is None:
            continue
        for k in range(i, min(i + seg.cells, len(out))):
            out[k] = verdict_look(seg.verdict).symbol
    return "".join(out)


def dominant(counts: dict[str, int]) -> str | None:
    """The most frequent verdict (ties → the more severe); None when empty."""
    present = [(n, SEVERITY[v], v) for v, n in counts.items() if n]
    return max(present)[2] if present else None


def network_strip(report: Report, network: str) -> str:
    cells = report.cells.get(network, [])
    index = {start: i for i, (start, _) in enumerate(cells)}
    out = [" "] * len(cells)
    for b in report.network_timeline:
        if b.network == network and b.start in index:
            out[index[b.start]] = verdict_look(dominant(b.verdicts)).symbol
    return "".join(out)


def states_per_cell(
    segments: Sequence[HealthSegment], cells: Sequence[tuple[dt.datetime, dt.datetime]]
) -> list[str | None]:
    """The worst health state overlapping each cell (None = no health data there)."""
    out: list[str | None] = []
    segs = sorted(segments, key=lambda s: s.start)
    j = 0
    for start, end in cells:
        while j < len(segs) and segs[j].end <= start:
            j += 1
        worst: str | None = None
        k = j
        while k < len(segs) and segs[k].start < end:
            if segs[k].end > start and (
                worst is None or _STATE_RANK.get(segs[k].state, 0) > _STATE_RANK.get(worst, 0)
            ):
                worst = segs[k].state
            k += 1
        out.append(worst)
    return out


def health_strip(report: Report, network: str) -> str:
    cells = report.cells.get(network, [])
    segs = [h for h in report.health if h.network == network]
    return "".join(state_look(s).symbol if s else " " for s in states_per_cell(segs, cells))


def verdict_legend() -> str:
    return "  ".join(f"{verdict_look(v).symbol} {verdict_look(v).label}" for v in VERDICTS)


def state_legend() -> str:
    return "  ".join(f"{state_look(s).symbol} {state_look(s).label}" for s in STATES)
