"""Inline SVG charts for the HTML report, generated here (no library, nothing fetched).

Every chart shares one time scale, so a target's row lines up with its network's health band.
Colours come from :mod:`probe.report.vocab` (Okabe–Ito) and are never the only cue: each
chart has its legend right above it, wide segments carry text labels, cut states add a
texture, every mark has a ``<title>`` tooltip in plain words, and each timeline row ends with
its latest state in text. All text goes through :mod:`probe.report.markup` (escaped).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from probe.report.markup import Markup, el, join
from probe.report.records import HealthSegment, NetworkBucket, Report, TimelineSegment
from probe.report.strips import dominant
from probe.report.times import fmt_duration, fmt_local, local_midnight
from probe.report.vocab import (
    CUT_STATES,
    STATES,
    VERDICTS,
    Look,
    state_look,
    verdict_look,
)

WIDTH = 1000.0
LABEL_W = 232.0
PLOT_X0 = 240.0
PLOT_X1 = 872.0
RIGHT_X = 880.0
ROW_H = 14.0
FONT = 11.0
CHAR_W = 6.2  # rough width of one character at FONT, for fitting labels
MIN_CUT_W = 2.5  # narrowest drawn cut (viewBox units)

#: Textures that tell cut states apart without colour.
PATTERNS = {
    "shutdown.allowlist": "p-hatch",
    "local_outage": "p-dots",
    "shutdown.international": "p-cross",
}


@dataclass(frozen=True, slots=True)
class Scale:
    start: dt.datetime
    end: dt.datetime
    x0: float = PLOT_X0
    x1: float = PLOT_X1

    def x(self, when: dt.datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        frac = (when - self.start).total_seconds() / span
        return self.x0 + max(0.0, min(1.0, frac)) * (self.x1 - self.x0)


def report_scale(report: Report) -> Scale | None:
    starts = [c[0] for cells in report.cells.values() for c in cells]
    ends = [c[1] for cells in report.cells.values() for c in cells]
    starts += [h.start for h in report.health]
    ends += [h.end for h in report.health]
    if not starts:
        return None
    return Scale(min(starts), max(ends))


_STEPS: tuple[tuple[float, str], ...] = (
    (3600, "h"),
    (3 * 3600, "h"),
    (6 * 3600, "h"),
    (12 * 3600, "h"),
    (86400, "d"),
    (2 * 86400, "d"),
    (7 * 86400, "d"),
    (14 * 86400, "d"),
    (30 * 86400, "m"),
    (91 * 86400, "m"),
)


def ticks(scale: Scale, tz: dt.tzinfo, most: int = 9) -> list[tuple[dt.datetime, str]]:
    """Tick instants and labels in ``tz``: hours, local midnights or month starts."""
    span = (scale.end - scale.start).total_seconds()
    step, kind = next(((st, k) for st, k in _STEPS if span / st <= most), _STEPS[-1])
    out: list[tuple[dt.datetime, str]] = []
    local = scale.start.astimezone(tz)
    if kind == "h":
        hours = int(step // 3600)
        t = local.replace(minute=0, second=0, microsecond=0)
        t = t.replace(hour=(t.hour // hours) * hours)
        while t.astimezone(dt.UTC) <= scale.end:
            u = t.astimezone(dt.UTC)
            if u >= scale.start:
                label = t.strftime("%b %d") if t.hour == 0 else t.strftime("%H:%M")
                out.append((u, label))
            t = (t + dt.timedelta(hours=hours)).astimezone(tz)
    elif kind == "d":
        days = int(step // 86400)
        day = local.date()
        while local_midnight(day, tz) <= scale.end:
            u = local_midnight(day, tz)
            if u >= scale.start:
                out.append((u, day.strftime("%b %d")))
            day += dt.timedelta(days=days)
    else:
        months = 1 if step < 60 * 86400 else 3
        year, month = local.year, local.month
        while True:
            u = local_midnight(dt.date(year, month, 1), tz)
            if u > scale.end:
                break
            if u >= scale.start:
                out.append((u, dt.date(year, month, 1).strftime("%b %Y")))
            month += months
            year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return out


def defs() -> Markup:
    """Patterns used by the charts (put once per SVG)."""
    return el(
        "defs",
        None,
        el(
            "pattern",
            {
                "id": "p-hatch",
                "width": 6,
                "height": 6,
                "patternUnits": "userSpaceOnUse",
                "patternTransform": "rotate(45)",
            },
            el("rect", {"width": 6, "height": 6, "fill": state_look("shutdown.allowlist").colour}),
            el("line", {"x1": 0, "y1": 0, "x2": 0, "y2": 6, "stroke": "#000", "stroke-width": 2}),
        ),
        el(
            "pattern",
            {"id": "p-dots", "width": 5, "height": 5, "patternUnits": "userSpaceOnUse"},
            el("rect", {"width": 5, "height": 5, "fill": state_look("local_outage").colour}),
            el("circle", {"cx": 2.5, "cy": 2.5, "r": 1.1, "fill": "#000"}),
        ),
        el(
            "pattern",
            {"id": "p-cross", "width": 6, "height": 6, "patternUnits": "userSpaceOnUse"},
            el(
                "rect",
                {"width": 6, "height": 6, "fill": state_look("shutdown.international").colour},
            ),
            el("path", {"d": "M0 0L6 6M6 0L0 6", "stroke": "#000", "stroke-width": 0.8}),
        ),
    )


def _fill_state(state: str) -> str:
    pattern = PATTERNS.get(state)
    return f"url(#{pattern})" if pattern else state_look(state).colour


def _axis(scale: Scale, tz: dt.tzinfo, y: float, height: float) -> Markup:
    marks = []
    for when, label in ticks(scale, tz):
        x = scale.x(when)
        marks.append(el("line", {"x1": x, "y1": y, "x2": x, "y2": y + height, "class": "grid"}))
        marks.append(
            el("text", {"x": x, "y": y - 3, "class": "tick", "text-anchor": "middle"}, label)
        )
    return join(marks)


def _svg(height: float, label: str, *children: object) -> Markup:
    return el(
        "svg",
        {
            "viewBox": f"0 0 {WIDTH:.0f} {height:.0f}",
            "width": "100%",
            "role": "img",
            "aria-label": label,
            "class": "chart",
            "preserveAspectRatio": "xMinYMin meet",
        },
        el("title", None, label),
        defs(),
        *children,
    )


def _seg_class(look: Look) -> str:
    """Label class inside a coloured mark: white text on dark colours (CSS sets the fill)."""
    return "seg inv" if look.fg.upper() == "#FFFFFF" else "seg"


def _clip(text: str, width: float) -> str:
    chars = max(1, int(width / CHAR_W))
    return text if len(text) <= chars else text[: chars - 1] + "…"


def legend(items: Sequence[tuple[Look, str | None]]) -> Markup:
    """A legend as HTML (swatch + word), placed right above a chart."""
    return el(
        "ul",
        {"class": "legend"},
        [
            el(
                "li",
                None,
                el(
                    "svg",
                    {"viewBox": "0 0 12 12", "width": 12, "height": 12, "aria-hidden": "true"},
                    defs() if fill and fill.startswith("url(") else None,
                    el(
                        "rect",
                        {
                            "width": 12,
                            "height": 12,
                            "fill": fill or look.colour,
                            "stroke": "#555",
                            "stroke-width": 0.5,
                        },
                    ),
                ),
                " ",
                look.label,
            )
            for look, fill in items
        ],
    )


def state_legend(states: Sequence[str]) -> Markup:
    return legend([(state_look(s), _fill_state(s)) for s in STATES if s in states])


def verdict_legend(verdicts: Sequence[str] = VERDICTS) -> Markup:
    return legend([(verdict_look(v), None) for v in VERDICTS if v in verdicts])


def _health_band(
    segments: Sequence[HealthSegment],
    scale: Scale,
    tz: dt.tzinfo,
    y: float,
    h: float,
    with_text: bool,
) -> list[Markup]:
    out = []
    for seg in segments:
        x0, x1 = scale.x(seg.start), scale.x(seg.end)
        # A cut of an hour in a year is a fraction of a unit wide: keep it visible.
        w = max(x1 - x0, MIN_CUT_W if seg.state in CUT_STATES else 0.6)
        look = state_look(seg.state)
        tip = (
            f"{seg.network}: {look.label}, {fmt_local(seg.start, tz)} → "
            f"{fmt_local(seg.end, tz)} ({fmt_duration(seg.seconds)}; from {seg.source})"
        )
        out.append(
            el(
                "rect",
                {"x": x0, "y": y, "width": w, "height": h, "fill": _fill_state(seg.state)},
                el("title", None, tip),
            )
        )
        if with_text and seg.state != "whole" and w > len(look.label) * CHAR_W + 6:
            out.append(
                el(
                    "text",
                    {
                        "x": x0 + w / 2,
                        "y": y + h / 2 + 4,
                        "class": _seg_class(look),
                        "text-anchor": "middle",
                    },
                    look.label,
                )
            )
    return out


def health_chart(report: Report, scale: Scale, tz: dt.tzinfo) -> Markup:
    """One band per network: connected, cut (full, international, allow-list) or the
    volunteer's own outage, over the whole period."""
    nets = list(dict.fromkeys(h.network for h in report.health))
    band, gap, top = 26.0, 10.0, 18.0
    height = top + len(nets) * (band + gap) + 4
    parts: list[object] = [_axis(scale, tz, top, height - top - 4)]
    for i, net in enumerate(nets):
        y = top + i * (band + gap)
        segs = [h for h in report.health if h.network == net]
        parts.append(
            el(
                "text",
                {"x": LABEL_W, "y": y + band / 2 + 4, "text-anchor": "end", "class": "lbl"},
                _clip(net, LABEL_W),
            )
        )
        parts.append(
            el(
                "rect",
                {
                    "x": scale.x0,
                    "y": y,
                    "width": scale.x1 - scale.x0,
                    "height": band,
                    "class": "nodata",
                },
            )
        )
        parts.extend(_health_band(segs, scale, tz, y, band, True))
        cut = sum(
            s.seconds for s in segs if s.state.startswith("shutdown.") or s.state == "local_outage"
        )
        parts.append(
            el(
                "text",
                {"x": RIGHT_X, "y": y + band / 2 + 4, "class": "lbl"},
                f"cut {fmt_duration(cut)}" if cut else "never cut",
            )
        )
    return _svg(height, "Network health timeline", *parts)


def timeline_chart(report: Report, network: str, scale: Scale, tz: dt.tzinfo) -> Markup:
    """Rows of targets (one cell per run or time bucket) under the network's health band."""
    segs_by_url: dict[str, list[TimelineSegment]] = {}
    for seg in report.timeline:
        if seg.network == network:
            segs_by_url.setdefault(seg.url, []).append(seg)
    urls = [u for u in report.target_urls if u in segs_by_url]
    top = 18.0
    rows = 2 + len(urls)
    height = top + rows * ROW_H + 6
    parts: list[object] = [_axis(scale, tz, top, rows * ROW_H)]
    health = [h for h in report.health if h.network == network]
    y = top
    parts.append(
        el(
            "text",
            {"x": LABEL_W, "y": y + ROW_H - 3, "text-anchor": "end", "class": "lbl b"},
            "network health",
        )
    )
    parts.extend(_health_band(health, scale, tz, y + 1, ROW_H - 2, False))
    y += ROW_H
    buckets = [b for b in report.network_timeline if b.network == network]
    parts.append(
        el(
            "text",
            {"x": LABEL_W, "y": y + ROW_H - 3, "text-anchor": "end", "class": "lbl b"},
            "all targets (most frequent)",
        )
    )
    for b in buckets:
        v = dominant(b.verdicts)
        if v is None:
            continue
        x0, x1 = scale.x(b.start), scale.x(b.end)
        parts.append(
            el(
                "rect",
                {
                    "x": x0,
                    "y": y + 1,
                    "width": max(x1 - x0, 0.6),
                    "height": ROW_H - 2,
                    "fill": verdict_look(v).colour,
                },
                el("title", None, _mix_tip(b, tz)),
            )
        )
    for url in urls:
        y += ROW_H
        segs = segs_by_url[url]
        parts.append(
            el(
                "text",
                {"x": LABEL_W, "y": y + ROW_H - 3, "text-anchor": "end", "class": "lbl"},
                el("title", None, url),
                _clip(_short(url), LABEL_W),
            )
        )
        for seg in segs:
            x0, x1 = scale.x(seg.start), scale.x(seg.end)
            look = verdict_look(seg.verdict)
            what = f"{look.label} ({seg.method})" if seg.method else look.label
            tip = (
                f"{url} on {network}: {what}, {fmt_local(seg.start, tz)} → "
                f"{fmt_local(seg.end, tz)} ({seg.cells} {_unit(report, seg.cells)}, "
                f"{seg.measurements} measurements)"
            )
            parts.append(
                el(
                    "rect",
                    {
                        "x": x0,
                        "y": y + 1,
                        "width": max(x1 - x0, 0.6),
                        "height": ROW_H - 2,
                        "fill": look.colour,
                    },
                    el("title", None, tip),
                )
            )
        last = segs[-1]
        lbl = verdict_look(last.verdict).label
        parts.append(
            el(
                "text",
                {"x": RIGHT_X, "y": y + ROW_H - 3, "class": "lbl"},
                _clip(f"{lbl} ({last.method})" if last.method else lbl, WIDTH - RIGHT_X),
            )
        )
    return _svg(height, f"Timeline per target on {network}", *parts)


def mix_chart(report: Report, network: str, scale: Scale, tz: dt.tzinfo) -> Markup:
    """Stacked columns: the verdict mix of all measurements in each cell (shares)."""
    buckets = [b for b in report.network_timeline if b.network == network]
    top, h = 18.0, 70.0
    height = top + h + 6
    parts: list[object] = [_axis(scale, tz, top, h)]
    parts.append(
        el("text", {"x": LABEL_W, "y": top + 12, "text-anchor": "end", "class": "lbl"}, "100%")
    )
    parts.append(
        el("text", {"x": LABEL_W, "y": top + h, "text-anchor": "end", "class": "lbl"}, "0%")
    )
    for b in buckets:
        total = sum(b.verdicts.values())
        if not total:
            continue
        x0, x1 = scale.x(b.start), scale.x(b.end)
        w = max(x1 - x0, 0.6)
        y = top + h
        rects: list[object] = [el("title", None, _mix_tip(b, tz))]
        for v in VERDICTS:
            n = b.verdicts.get(v, 0)
            if not n:
                continue
            bh = h * n / total
            y -= bh
            rects.append(
                el(
                    "rect",
                    {"x": x0, "y": y, "width": w, "height": bh, "fill": verdict_look(v).colour},
                )
            )
        parts.append(el("g", None, *rects))
    share = _interference_share(buckets)
    parts.append(
        el("text", {"x": RIGHT_X, "y": top + h / 2 + 4, "class": "lbl"}, f"{share:.0f}% interfered")
    )
    return _svg(height, f"Verdict mix over time on {network}", *parts)


def _interference_share(buckets: Sequence[NetworkBucket]) -> float:
    total = sum(sum(b.verdicts.values()) for b in buckets)
    bad = sum(
        b.verdicts.get(v, 0) for b in buckets for v in ("blocked", "intercepted", "throttled")
    )
    return 100.0 * bad / total if total else 0.0


def _mix_tip(b: NetworkBucket, tz: dt.tzinfo) -> str:
    counts = ", ".join(f"{verdict_look(v).label} {n}" for v, n in b.verdicts.items() if n)
    return f"{b.network}, {fmt_local(b.start, tz)} → {fmt_local(b.end, tz)}: {counts}"


def _unit(report: Report, n: int) -> str:
    unit = "run" if report.meta.timeline_unit == "run" else f"× {report.meta.timeline_unit}"
    return unit + ("s" if unit == "run" and n != 1 else "")


def _short(url: str) -> str:
    text = url.split("://", 1)[-1]
    return text[:-1] if text.endswith("/") and text.count("/") == 1 else text


def verdict_bar(counts: dict[str, int]) -> Markup:
    """One 100% bar of verdict shares with labels in the wide parts."""
    total = sum(counts.values())
    h = 30.0
    x = 0.0
    parts: list[object] = []
    for v in VERDICTS:
        n = counts.get(v, 0)
        if not n or not total:
            continue
        w = WIDTH * n / total
        look = verdict_look(v)
        pct = 100.0 * n / total
        parts.append(
            el(
                "rect",
                {"x": x, "y": 0, "width": w, "height": h, "fill": look.colour},
                el("title", None, f"{look.label}: {n} measurements ({pct:.1f}%)"),
            )
        )
        text = f"{look.label} {pct:.0f}%"
        if w > len(text) * CHAR_W + 8:
            parts.append(
                el(
                    "text",
                    {
                        "x": x + w / 2,
                        "y": h / 2 + 4,
                        "class": _seg_class(look),
                        "text-anchor": "middle",
                    },
                    text,
                )
            )
        x += w
    return el(
        "svg",
        {
            "viewBox": f"0 0 {WIDTH:.0f} {h:.0f}",
            "width": "100%",
            "role": "img",
            "aria-label": "Verdicts of all measurements",
            "class": "chart",
        },
        el("title", None, "Verdicts of all measurements"),
        *parts,
    )


def mini_bar(counts: dict[str, int]) -> Markup:
    """A small 100% bar of a verdict mix, for table cells (the numbers sit beside it)."""
    total = sum(counts.values())
    x = 0.0
    parts: list[object] = []
    for v in VERDICTS:
        n = counts.get(v, 0)
        if not n or not total:
            continue
        w = 120.0 * n / total
        parts.append(
            el(
                "rect",
                {"x": x, "y": 0, "width": w, "height": 10, "fill": verdict_look(v).colour},
                el("title", None, f"{verdict_look(v).label}: {n}"),
            )
        )
        x += w
    return el(
        "svg",
        {
            "viewBox": "0 0 120 10",
            "width": 120,
            "height": 10,
            "class": "mini",
            "aria-hidden": "true",
        },
        *parts,
    )
