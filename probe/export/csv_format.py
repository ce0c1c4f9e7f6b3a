"""The ``csv`` export: one row per measurement with the results contract fields.

Responsibility: the column list and the spelling of one row. Columns are DESIGN.md's
``probe results`` contract, in contract order
(:data:`probe.report.run_results.CONTRACT_FIELDS`), then
``measurement_id``. ``None`` is an empty cell; the verdict is the measurement's current one
(empty cells for a measurement stored without a verdict). Values are written as stored:
spreadsheet users should import the file as text (evidence may quote a censor's page title),
except that a cell a spreadsheet would run as a formula gets a leading ``'``
(:func:`probe.report.safe_text.csv_cell`).
"""

from __future__ import annotations

from typing import Any

from probe.export.source import Row
from probe.report.run_results import CONTRACT_FIELDS
from probe.report.safe_text import csv_cell

COLUMNS: tuple[str, ...] = (*CONTRACT_FIELDS, "measurement_id")


_FROM_MEASUREMENT = ("run_id", "url", "hostname", "category", "started_at", "measurement_id")


def row_cells(measurement: Row, verdict: Row | None) -> list[Any]:
    """The CSV cells of one measurement (its ``measurements`` row and current ``verdicts``
    row, None = no verdict), in :data:`COLUMNS` order."""
    values = [measurement[c] if c in _FROM_MEASUREMENT else (verdict or {}).get(c)
              for c in COLUMNS]
    return ["" if v is None else csv_cell(v) for v in values]
