"""Text renderings of ``probe results`` rows: an aligned table, a JSON array, or CSV.

Pure: rows in (the dicts of :meth:`probe.store.Store.results`), one string out, no IO.
The JSON and CSV renderings carry the DESIGN.md contract fields first, in contract order,
then any other fields of the rows (``measurement_id``, ``finished_at``, ``details``…); the
table is for people and shows only url, verdict, method, confidence and evidence, fitted to
the terminal width, every cell through :func:`probe.report.safe_text.for_terminal`. CSV cells
that a spreadsheet would run as a formula are defused (:func:`probe.report.safe_text.csv_cell`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from probe.report.safe_text import csv_cell, for_terminal

Format = Literal["table", "json", "csv"]
FORMATS: tuple[str, ...] = ("table", "json", "csv")

#: The ``probe results --format json`` contract (DESIGN.md), in order.
CONTRACT_FIELDS: tuple[str, ...] = (
    "run_id",
    "url",
    "hostname",
    "category",
    "started_at",
    "verdict",
    "method",
    "confidence",
    "evidence",
    "analysis_version",
)

TABLE_COLUMNS: tuple[str, ...] = ("url", "test_name", "verdict", "method", "confidence",
                                   "evidence")
DEFAULT_WIDTH = 100
_ELLIPSIS = "..."
_GAP = "  "


def fields_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Contract fields first, then every other key in first-seen order."""
    out = list(CONTRACT_FIELDS)
    for row in rows:
        for key in row:
            if key not in out:
                out.append(key)
    return out


def render_results(rows: Sequence[Mapping[str, Any]], fmt: str = "table",
                   width: int = DEFAULT_WIDTH) -> str:
    """``rows`` as ``table``, ``json`` or ``csv`` text (ends with a newline).

    ``width`` only affects the table. Raises ValueError for an unknown format.
    """
    if fmt == "json":
        return render_json(rows)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "table":
        return render_table(rows, width)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def render_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """A JSON array of objects: contract fields (null when missing), then the rest."""
    fields = fields_of(rows)
    objects = [{k: row.get(k) for k in fields if k in row or k in CONTRACT_FIELDS}
               for row in rows]
    return json.dumps(objects, indent=2, ensure_ascii=False, default=str) + "\n"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def render_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV with a header row; None is empty, nested values (``details``) are JSON text."""
    fields = fields_of(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([csv_cell(_csv_cell(row.get(k))) for k in fields])
    return buf.getvalue()


def _one_line(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return for_terminal(" ".join(str(value).split()))


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= len(_ELLIPSIS):
        return text[:width]
    return text[: width - len(_ELLIPSIS)] + _ELLIPSIS


def trace_note(traces: Any) -> str:
    """What a row's packet-level traces found, in a few words (``censor at hop 3: reset``);
    empty when there are none or they located nothing."""
    notes: list[str] = []
    for t in traces or ():
        if t.get("hop") is not None:
            who = "injector" if t.get("kind") == "dns" else "censor"
            notes.append(f"{who} at hop {t['hop']}: {t.get('signature')}")
        elif t.get("result") == "injected":
            notes.append("DNS injected")
    return "; ".join(dict.fromkeys(notes))


def render_table(rows: Sequence[Mapping[str, Any]], width: int = DEFAULT_WIDTH) -> str:
    """Aligned plain-text columns; long urls and evidence are cut with ``...`` to fit ``width``.

    The url column gets at most two fifths of the width; evidence takes what is left
    (at least 20 characters, so very narrow terminals wrap rather than lose everything).
    """
    cells = [[_one_line(row.get(c)) for c in TABLE_COLUMNS] for row in rows]
    for cell, row in zip(cells, rows, strict=True):
        if note := trace_note(row.get("traces")):
            # first: long evidence is cut at the end
            cell[-1] = f"[{for_terminal(note)}] {cell[-1]}"
    header = [{"confidence": "CONF", "test_name": "TEST"}.get(c, c.upper())
              for c in TABLE_COLUMNS]
    natural = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    url_w, test_w, verdict_w, method_w, conf_w, _ = natural
    room = width - (test_w + verdict_w + method_w + conf_w + len(_GAP) * 5) - 30
    url_w = max(len(header[0]), min(url_w, room, width * 2 // 5))
    fixed = url_w + test_w + verdict_w + method_w + conf_w + len(_GAP) * 5
    evidence_w = max(20, width - fixed)
    widths = [url_w, test_w, verdict_w, method_w, conf_w, evidence_w]

    def line(values: Sequence[str]) -> str:
        parts = [_fit(v, w).ljust(w) for v, w in zip(values[:-1], widths[:-1], strict=True)]
        parts[4] = parts[4].strip().rjust(widths[4])  # numbers align right
        return _GAP.join(parts + [_fit(values[-1], widths[-1])]).rstrip()

    out = [line(header)] + [line(r) for r in cells]
    return "\n".join(out) + "\n"
