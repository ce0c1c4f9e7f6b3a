"""The ``csv`` export: one row per measurement with the results contract fields.

Responsibility: the column list and the spelling of one row. Columns are DESIGN.md's
``probe results`` contract, in contract order (:data:`probe.render.CONTRACT_FIELDS`), then
``measurement_id``. ``None`` is an empty cell; the verdict is the measurement's current one
(empty cells for a measurement stored without a verdict). Values are written as stored:
spreadsheet users should import the file as text (evidence may quote a censor's page title).
"""

from __future__ import annotations

from typing import Any

from probe.export.source import Record
from probe.render import CONTRACT_FIELDS

COLUMNS: tuple[str, ...] = (*CONTRACT_FIELDS, "measurement_id")


def record_to_row(record: Record) -> list[Any]:
    """The CSV cells of one measurement, in :data:`COLUMNS` order."""
    m, v = record.measurement, record.verdict
    values: dict[str, Any] = {
        "run_id": record.run["run_id"],
        "url": m.target.url,
        "hostname": m.target.hostname,
        "category": m.target.category,
        "started_at": m.started_at,
        "verdict": v.verdict.value if v else None,
        "method": v.method if v else None,
        "confidence": v.confidence if v else None,
        "evidence": v.evidence if v else None,
        "analysis_version": v.analysis_version if v else None,
        "measurement_id": record.measurement_id,
    }
    return ["" if values[c] is None else values[c] for c in COLUMNS]
