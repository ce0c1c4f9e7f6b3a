"""Plain-text output for terminals: ``probe compare``'s default table.

Cells are stripped of control characters (a hostile title must not send escape sequences to
the analyst's terminal) and long cells are shortened; times are in the comparison's zone.
"""

from __future__ import annotations

import re

from probe.report.records import Comparison, Status
from probe.report.safe_text import visible
from probe.report.tables import change_label
from probe.report.times import fmt_local, resolve_tz

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def plain(text: object, limit: int = 60) -> str:
    s = visible(" ".join(_CONTROL.sub(" ", "" if text is None else str(text)).split()))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _status(st: Status | None) -> str:
    if st is None:
        return "not measured"
    return f"{st.verdict} {st.method}" if st.method else st.verdict


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def render_comparison_text(c: Comparison) -> str:
    tz = resolve_tz(c.tz)
    with_net = any(r.network for r in c.rows)
    headers = (
        ["change"]
        + (["network"] if with_net else [])
        + ["target", "before", "after", "after measured"]
    )
    rows = [
        [change_label(r.change).split(" (")[0]]
        + ([plain(r.network, 30)] if with_net else [])
        + [
            plain(r.url, 50),
            plain(_status(r.before), 30),
            plain(_status(r.after), 30),
            fmt_local(r.after.at, tz) if r.after else "",
        ]
        for r in c.rows
    ]
    counts = ", ".join(f"{n} {change_label(k).split(' (')[0]}" for k, n in c.counts.items() if n)
    head = (
        f"before: {plain(c.before_label, 120)}\nafter:  {plain(c.after_label, 120)}\n"
        f"times in {c.tz}; {counts or 'no changes'}\n"
    )
    return head + ("\n" + text_table(headers, rows) if rows else "")
