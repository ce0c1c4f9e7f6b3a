"""Export a probe database for other tools: ``jsonl``, ``ooni``, ``csv`` and ``parquet``.

Responsibility: one entry point, :func:`export`, that reads a database read-only
(:mod:`probe.export.source`) and writes one format. Each format has its own module:

* :mod:`probe.export.jsonl` — lossless, one object per measurement (observations, bytes as
  base64, control answers, current verdict, run metadata);
* :mod:`probe.export.ooni` — OONI's ``web_connectivity`` data format, one object per
  measurement, so OONI's tools and pipelines read our data;
* :mod:`probe.export.csv_format` — the results contract, one row per measurement;
* :mod:`probe.export.parquet` — a date/network-partitioned dataset of verdicts and
  observations for DuckDB, Spark, Trino or ClickHouse.

The layouts are documented in docs/data.md. Nothing here touches the network, and nothing is
exported that the store does not hold (the store never holds the probe's own address).
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from probe.errors import UsageError
from probe.export import csv_format, jsonl, ooni
from probe.export.sink import (
    STDOUT,
    ExportError,
    default_path,
    directory_output,
    text_output,
)
from probe.export.source import Record, Selection, Source, parse_bound

FORMATS: tuple[str, ...] = ("jsonl", "ooni", "csv", "parquet")

__all__ = ["FORMATS", "ExportError", "ExportSummary", "Selection", "export", "parse_bound"]


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote: ``rows`` per table (parquet) or ``{"measurements": n}``."""

    fmt: str
    out: str
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def measurements(self) -> int:
        return self.rows.get("measurements", 0)


_OBJECTS: dict[str, Callable[[Record], dict[str, Any]]] = {
    "jsonl": jsonl.record_to_json,
    "ooni": ooni.record_to_ooni,
}


def _parquet() -> ModuleType:
    """The Parquet writer, imported on demand: pyarrow is only needed for this format (it has
    no wheels for some volunteer hardware, e.g. 32-bit Raspberry Pi OS)."""
    try:
        return importlib.import_module("probe.export.parquet")
    except ImportError as e:
        raise ExportError(f"--format parquet needs pyarrow ({e}); install it with "
                          "'pip install pyarrow'") from e


def export(db_path: str | Path, fmt: str, out: str | Path | None = None,
           selection: Selection | None = None, lossless: bool = False) -> ExportSummary:
    """Export the selected measurements of ``db_path`` as ``fmt`` to ``out``.

    ``out`` None = :func:`~probe.export.sink.default_path`; ``-`` = stdout (not parquet).
    Raises UsageError (bad format / selection), StorageError (unreadable or foreign
    database), ExportError (destination). The source is never written to. ``lossless``
    (parquet only): the lossless tables too (:data:`probe.export.parquet.LOSSLESS_SCHEMAS`).
    """
    if lossless and fmt != "parquet":
        raise UsageError("--lossless is for --format parquet (jsonl is lossless already)")
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    sel = selection or Selection()
    dest = str(out) if out is not None else str(default_path(fmt))
    with Source(db_path) as source, source.snapshot():
        if sel.run is not None:
            sel = Selection(source.resolve_run(sel.run), sel.since, sel.until)
        if fmt == "parquet":
            parquet = _parquet()
            with directory_output(dest) as root:
                for table in (*parquet.TABLES, *(parquet.LOSSLESS_SCHEMAS if lossless else ())):
                    (root / table).mkdir()
                rows = parquet.write_dataset(source, sel, root, lossless=lossless)
            return ExportSummary(fmt, dest, rows)
        count = 0
        with text_output(dest) as stream:
            if fmt == "csv":
                writer = csv.writer(stream, lineterminator="\n")
                writer.writerow(csv_format.COLUMNS)
                for page in source.pages(sel, observations=False):
                    for m in page.measurements:
                        found = page.verdicts.get(m["measurement_id"])
                        writer.writerow(csv_format.row_cells(m, found[-1] if found else None))
                        count += 1
            else:
                to_object = _OBJECTS[fmt]
                for record in source.records(sel):
                    stream.write(jsonl.dumps(to_object(record)))
                    stream.write("\n")
                    count += 1
    return ExportSummary(fmt, dest if dest != STDOUT else "<stdout>", {"measurements": count})

