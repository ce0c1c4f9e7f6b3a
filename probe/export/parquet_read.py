"""Read a lossless Parquet dataset back into the model's records, one row group at a time.

Responsibility: the inverse of the ``--lossless`` tables of :mod:`probe.export.parquet`
(``records`` and ``runs``, docs/data.md): each ``records`` row back into the stored rows and,
through the store's own row → record mapping (:func:`probe.store.rows.measurement_from_rows`),
into a :class:`~probe.model.Measurement` equal to the one the probe stored, with its
provenance and current verdict; each ``runs`` row into the run's row and health samples. So
a measurement read back is judged exactly as the database's copy (``probe reanalyze
--parquet``, :mod:`probe.run.distributed`).

Memory stays flat: a file is read one row group
(:data:`~probe.export.parquet.RECORDS_ROW_GROUP_ROWS` rows) at a time; one task of the Dask
path reads one partition file. Bad input (not a dataset, a file that is not Parquet, a row
that does not decode) is a one-line :class:`~probe.errors.UsageError` naming the file and
row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from probe.errors import UsageError
from probe.export.parquet import LOSSLESS_SCHEMAS, RECORD_TABLES, loads_rows
from probe.model import HealthSample, HealthScope, Measurement, Provenance, Verdict
from probe.store import rows

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One measurement read back: its id, run, rebuilt record, the rows it was rebuilt from
    (``rows[table]``, ``measurements`` a one-row list), its provenance (None = ours) and
    current verdict (None = stored without one) with that verdict's row."""

    measurement_id: str
    run_id: str
    measurement: Measurement
    rows: dict[str, list[Row]]
    provenance: Provenance | None
    provenance_row: Row | None
    verdict: Verdict | None
    verdict_row: Row | None


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One run read back: its ``runs`` row (``settings`` parsed) and health samples."""

    run: Row
    health: tuple[HealthSample, ...]


def files(root: str | Path, table: str = "records") -> list[Path]:
    """The Parquet files of ``table`` under the dataset ``root``, in path order; UsageError
    when there are none (not a lossless dataset)."""
    base = Path(root).expanduser() / table
    found = sorted(base.rglob("*.parquet")) if base.is_dir() else []
    if not found:
        raise UsageError(f"{root}: no {table} table — not a lossless Parquet dataset "
                         "(export it with 'probe export --format parquet --lossless')")
    return found


def _open(path: Path, table: str) -> pq.ParquetFile:
    try:
        f = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise UsageError(f"{path}: not a Parquet file ({e})") from None
    missing = set(LOSSLESS_SCHEMAS[table].names) - set(f.schema_arrow.names)
    if missing:
        raise UsageError(f"{path}: not a {table} file of a lossless dataset "
                         f"(no column {', '.join(sorted(missing))})")
    return f


def record_of(row: Row, where: str) -> StoredRecord:
    """One ``records`` row as a :class:`StoredRecord`; ``where`` names it in errors."""
    try:
        stored = loads_rows(row["rows"])
        m = stored["measurements"]
        measurement = rows.measurement_from_rows(
            m, stored["dns_queries"], stored["tcp_connects"], stored["tls_handshakes"],
            stored["certificates"], stored["http_requests"], stored["controls"],
            stored["quic_handshakes"])
        vrow = None if row["verdict"] is None else loads_rows(row["verdict"])
        prow = None if row["provenance"] is None else loads_rows(row["provenance"])
        return StoredRecord(
            measurement_id=row["measurement_id"], run_id=row["run_id"],
            measurement=measurement,
            rows={"measurements": [m], **{t: stored[t] for t in RECORD_TABLES}},
            provenance=None if prow is None else rows.import_from_row(prow),
            provenance_row=prow,
            verdict=None if vrow is None else rows.verdict_from_row(vrow), verdict_row=vrow)
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{where}: bad record ({type(e).__name__}: {e})") from None


def records(path: str | Path, run_ids: set[str] | None = None,
            groups: range | None = None) -> Iterator[StoredRecord]:
    """The records of one ``records`` file (or of its row ``groups``), in file order, one row
    group in memory at a time; ``run_ids``: only those runs' (the other rows are not
    decoded)."""
    p = Path(path)
    f = _open(p, "records")
    wanted = range(f.num_row_groups) if groups is None else groups
    n = sum(f.metadata.row_group(g).num_rows for g in range(wanted.start)) if wanted else 0
    for group in wanted:
        table = f.read_row_group(group, columns=LOSSLESS_SCHEMAS["records"].names)
        for row in table.to_pylist():
            n += 1
            if run_ids is not None and row["run_id"] not in run_ids:
                continue
            yield record_of(row, f"{p}: row {n}")


def row_groups(path: str | Path) -> int:
    """How many row groups one ``records`` file has."""
    return int(_open(Path(path), "records").num_row_groups)


def run_ids(path: str | Path) -> set[str]:
    """The runs that have measurements in one ``records`` file (one column read)."""
    f = _open(Path(path), "records")
    return set(f.read(columns=["run_id"]).column("run_id").unique().to_pylist())


def runs(root: str | Path) -> dict[str, StoredRun]:
    """Every run of the dataset's ``runs`` table."""
    out: dict[str, StoredRun] = {}
    for p in files(root, "runs"):
        f = _open(p, "runs")
        for n, row in enumerate(f.read().to_pylist(), 1):
            try:
                run = loads_rows(row["run"])
                health = tuple(
                    HealthSample(at=h["at"], phase=h["phase"], scope=HealthScope(h["scope"]),
                                 target=h["target"], elapsed=h["elapsed"], failure=h["failure"],
                                 unexpected=h.get("unexpected"))
                    for h in loads_rows(row["health"]))
            except (ValueError, KeyError, TypeError) as e:
                raise UsageError(f"{p}: row {n}: bad run ({type(e).__name__}: {e})") from None
            out[row["run_id"]] = StoredRun(run, health)
    return out
