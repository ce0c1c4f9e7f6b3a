"""The ``parquet`` export: a Hive-partitioned dataset of verdicts and observations.

Responsibility: the explicit Arrow schemas of the dataset's tables and the streaming writer
that lays them out on disk. Layout (one directory per table, partitioned Hive-style, so
DuckDB, Spark, Trino/Presto, ClickHouse, Polars and pyarrow read it as it is)::

    OUT/<table>/date=YYYY-MM-DD/network=<AS1234|unknown>/part-00000.parquet

``date`` is the UTC day the measurement started (health samples: the day of the sample);
``network`` the run's ``probe_asn`` as ``AS<n>``, or ``unknown``. The partition columns live in
the directory names only, not in the files. Tables: :data:`SCHEMAS` (documented column by
column in docs/data.md). HTTP bodies and certificate DER are not exported (hashes only): the
``jsonl`` and ``ooni`` exports carry them — or ``lossless`` (``--lossless``): two more tables,
:data:`LOSSLESS_SCHEMAS`, hold every stored row of each measurement (bodies and DER included)
and each run's row and health samples exactly as stored, so a measurement read back
(:mod:`probe.export.parquet_read`) equals the stored one and is judged again identically
(``probe reanalyze --parquet DIR``, :mod:`probe.run.distributed`).

Memory stays flat whatever the database's size: measurements are read a page at a time in
start-time order (:meth:`probe.export.source.Source.pages`), rows are buffered per partition
file and written as a row group every :data:`ROW_GROUP_ROWS` rows, and because the stream is
ordered by time every file of a day is closed as soon as the next day starts.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from probe.export.source import Page, Row, Selection, Source

#: Rows buffered per partition file before a row group is written.
ROW_GROUP_ROWS = 50_000
NETWORK_UNKNOWN = "unknown"

TS = pa.timestamp("us", tz="UTC")
HEADER = pa.struct([pa.field("name", pa.string()), pa.field("value", pa.string())])
ANSWER = pa.struct([
    pa.field("rtype", pa.string()), pa.field("value", pa.string()), pa.field("ttl", pa.int64()),
])
CERTIFICATE = pa.struct([
    pa.field("sha256", pa.string()),
    pa.field("spki_sha256", pa.string()),
    pa.field("subject", pa.string()),
    pa.field("issuer", pa.string()),
    pa.field("not_before", TS),
    pa.field("not_after", TS),
    pa.field("san", pa.list_(pa.string())),
])


def _f(name: str, kind: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, kind, nullable=nullable)


_OBS_KEY = [
    _f("measurement_id", pa.string(), False),
    _f("run_id", pa.string(), False),
    _f("idx", pa.int32(), False),
    _f("tx_id", pa.int64(), False),
]

#: Every table of the dataset and its explicit schema.
SCHEMAS: dict[str, pa.Schema] = {
    "verdicts": pa.schema([
        _f("measurement_id", pa.string(), False),
        _f("run_id", pa.string(), False),
        _f("url", pa.string(), False),
        _f("hostname", pa.string(), False),
        _f("category", pa.string()),
        _f("started_at", TS, False),
        _f("verdict", pa.string(), False),
        _f("method", pa.string()),
        _f("confidence", pa.float64(), False),
        _f("evidence", pa.string(), False),
        _f("details", pa.string(), False),
        _f("analysis_version", pa.string(), False),
        _f("created_at", TS, False),
        _f("is_current", pa.bool_(), False),
        _f("probe_asn", pa.int64()),
        _f("probe_cc", pa.string()),
        _f("network_name", pa.string()),
    ]),
    "measurements": pa.schema([
        _f("measurement_id", pa.string(), False),
        _f("run_id", pa.string(), False),
        _f("url", pa.string(), False),
        _f("hostname", pa.string(), False),
        _f("scheme", pa.string(), False),
        _f("port", pa.int32(), False),
        _f("path", pa.string(), False),
        _f("category", pa.string()),
        _f("source", pa.string()),
        _f("started_at", TS, False),
        _f("finished_at", TS, False),
        _f("runtime_s", pa.float64(), False),
        _f("probe_asn", pa.int64()),
        _f("probe_cc", pa.string()),
        _f("network_name", pa.string()),
        _f("probe_version", pa.string(), False),
        _f("run_status", pa.string(), False),
        _f("control", pa.string(), False),
        _f("extra", pa.string(), False),
    ]),
    "dns_queries": pa.schema([
        *_OBS_KEY,
        _f("hostname", pa.string(), False),
        _f("query_type", pa.string(), False),
        _f("engine", pa.string(), False),
        _f("resolver", pa.string(), False),
        _f("t0", pa.float64(), False),
        _f("t", pa.float64(), False),
        _f("failure", pa.string()),
        _f("rcode", pa.string()),
        _f("response_index", pa.int32(), False),
        _f("answers", pa.list_(ANSWER), False),
    ]),
    "tcp_connects": pa.schema([
        *_OBS_KEY,
        _f("ip", pa.string(), False),
        _f("port", pa.int32(), False),
        _f("t0", pa.float64(), False),
        _f("t", pa.float64(), False),
        _f("failure", pa.string()),
    ]),
    "tls_handshakes": pa.schema([
        *_OBS_KEY,
        _f("ip", pa.string(), False),
        _f("port", pa.int32(), False),
        _f("server_name", pa.string(), False),
        _f("t0", pa.float64(), False),
        _f("t", pa.float64(), False),
        _f("failure", pa.string()),
        _f("tls_version", pa.string()),
        _f("cipher_suite", pa.string()),
        _f("alpn", pa.string()),
        _f("verified", pa.bool_()),
        _f("verify_error", pa.string()),
        _f("certificates", pa.list_(CERTIFICATE), False),
    ]),
    "http_requests": pa.schema([
        *_OBS_KEY,
        _f("url", pa.string(), False),
        _f("method", pa.string(), False),
        _f("ip", pa.string()),
        _f("port", pa.int32(), False),
        _f("t0", pa.float64(), False),
        _f("t", pa.float64(), False),
        _f("failure", pa.string()),
        _f("redirect_index", pa.int32(), False),
        _f("request_headers", pa.list_(HEADER), False),
        _f("status", pa.int32()),
        _f("headers", pa.list_(HEADER), False),
        _f("body_stored", pa.bool_(), False),
        _f("body_length", pa.int64()),
        _f("body_sha256", pa.string()),
        _f("body_truncated", pa.bool_(), False),
        _f("title", pa.string()),
        _f("location", pa.string()),
        _f("received_bytes", pa.int64()),
        _f("last_byte_t", pa.float64()),
        _f("transport", pa.string(), False),  # tcp = HTTP/1.1, quic = HTTP/3
    ]),
    "health_samples": pa.schema([
        _f("run_id", pa.string(), False),
        _f("sampled_at", TS, False),
        _f("phase", pa.string(), False),
        _f("scope", pa.string(), False),
        _f("target", pa.string(), False),
        _f("elapsed", pa.float64(), False),
        _f("failure", pa.string()),
        _f("unexpected", pa.string()),  # a portal check's unexpected answer, in short
        _f("probe_asn", pa.int64()),
        _f("probe_cc", pa.string()),
        _f("network_name", pa.string()),
    ]),
}
#: The lossless tables (``--lossless``): rows as the probe database stores them, as JSON text
#: (bytes as ``{"$b64": ...}``, :func:`dumps_rows`). ``records``: one row per measurement —
#: ``rows`` the ``measurements`` row and its observation rows by table, ``verdict`` the current
#: verdict row, ``provenance`` the ``imports`` row (imported measurements). ``runs``: one row
#: per run exported — ``run`` the ``runs`` row, ``health`` its health samples, oldest first.
LOSSLESS_SCHEMAS: dict[str, pa.Schema] = {
    "records": pa.schema([
        _f("measurement_id", pa.string(), False),
        _f("run_id", pa.string(), False),
        _f("started_at", TS, False),
        _f("test_name", pa.string(), False),
        _f("rows", pa.string(), False),
        _f("verdict", pa.string()),
        _f("provenance", pa.string()),
    ]),
    "runs": pa.schema([
        _f("run_id", pa.string(), False),
        _f("started_at", TS, False),
        _f("probe_asn", pa.int64()),
        _f("probe_cc", pa.string()),
        _f("run", pa.string(), False),
        _f("health", pa.string(), False),
    ]),
}
#: Rows per row group of the ``records`` table (bodies make its rows large: a reader holds
#: one row group at a time).
RECORDS_ROW_GROUP_ROWS = 500
TABLES: tuple[str, ...] = tuple(SCHEMAS)
ALL_SCHEMAS: dict[str, pa.Schema] = {**SCHEMAS, **LOSSLESS_SCHEMAS}
#: The observation tables a ``records`` row carries (``rows`` keys besides ``measurements``).
RECORD_TABLES = ("dns_queries", "tcp_connects", "tls_handshakes", "certificates",
                 "http_requests", "controls", "quic_handshakes")


def timestamp(iso: str) -> dt.datetime:
    """A stored ISO 8601 instant as an aware UTC datetime (naive text is UTC)."""
    when = dt.datetime.fromisoformat(iso)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def network_label(asn: int | None) -> str:
    """The ``network=`` partition value of a run."""
    return NETWORK_UNKNOWN if asn is None else f"AS{int(asn)}"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$b64" in obj:
        return base64.b64decode(obj["$b64"])
    return obj


def dumps_rows(value: Any) -> str:
    """Stored rows as JSON text; bytes (bodies, DER) as ``{"$b64": ...}``. Stored rows hold
    only scalars (their JSON columns are text), so no other object has that one key."""
    return json.dumps(value, default=_encode, separators=(",", ":"))


def loads_rows(text: str) -> Any:
    """The inverse of :func:`dumps_rows`."""
    return json.loads(text, object_hook=_decode)


def _headers(text: str | None) -> list[dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in json.loads(text or "[]")]


class DatasetWriter:
    """Buffers rows per ``(table, date, network)`` and writes each partition's file."""

    def __init__(self, root: Path, row_group_rows: int | None = None,
                 name: str = "part") -> None:
        # ``name``: the files' prefix; writers working in parallel on one dataset (the Dask
        # path, probe/run/distributed.py) each take their own
        self.root = root
        self.name = name
        self.row_group_rows = row_group_rows or ROW_GROUP_ROWS
        self.counts: dict[str, int] = dict.fromkeys(ALL_SCHEMAS, 0)
        self._buffers: dict[tuple[str, str, str], list[Row]] = {}
        self._writers: dict[tuple[str, str, str], pq.ParquetWriter] = {}
        self._files: dict[tuple[str, str, str], int] = {}

    def add(self, table: str, date: str, network: str, row: Row) -> None:
        key = (table, date, network)
        buf = self._buffers.setdefault(key, [])
        buf.append(row)
        self.counts[table] += 1
        limit = (min(self.row_group_rows, RECORDS_ROW_GROUP_ROWS) if table == "records"
                 else self.row_group_rows)
        if len(buf) >= limit:
            self._flush(key)

    def _flush(self, key: tuple[str, str, str]) -> None:
        buf = self._buffers.get(key)
        if not buf:
            return
        table, date, network = key
        writer = self._writers.get(key)
        if writer is None:
            directory = self.root / table / f"date={date}" / f"network={network}"
            directory.mkdir(parents=True, exist_ok=True)
            n = self._files.get(key, 0)
            self._files[key] = n + 1
            writer = pq.ParquetWriter(directory / f"{self.name}-{n:05d}.parquet",
                                      ALL_SCHEMAS[table], compression="zstd")
            self._writers[key] = writer
        writer.write_table(pa.Table.from_pylist(buf, schema=ALL_SCHEMAS[table]))
        self._buffers[key] = []

    def close_before(self, tables: Iterable[str], date: str) -> None:
        """Write and close every file of ``tables`` for days before ``date``."""
        wanted = set(tables)
        for key in [k for k in {*self._buffers, *self._writers}
                    if k[0] in wanted and k[1] < date]:
            self._close(key)

    def _close(self, key: tuple[str, str, str]) -> None:
        self._flush(key)
        self._buffers.pop(key, None)
        writer = self._writers.pop(key, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        for key in list({*self._buffers, *self._writers}):
            self._close(key)


_MEASUREMENT_TABLES = ("verdicts", "measurements", "dns_queries", "tcp_connects",
                       "tls_handshakes", "http_requests", "records")


def record_row(m: Row, page: Page, current: Row | None, provenance: Row | None) -> Row:
    """The ``records`` row of one measurement: its rows as stored (``page`` loaded with
    bodies), its current verdict row and its ``imports`` row."""
    mid = m["measurement_id"]
    return {
        "measurement_id": mid, "run_id": m["run_id"], "started_at": timestamp(m["started_at"]),
        "test_name": m.get("test_name") or "web_connectivity",
        "rows": dumps_rows({"measurements": m,
                            **{t: page.rows_of(t, mid) for t in RECORD_TABLES}}),
        "verdict": None if current is None else dumps_rows(current),
        "provenance": None if provenance is None else dumps_rows(provenance),
    }


def _page_rows(source: Source, page: Page,
               writer: DatasetWriter, provenances: Mapping[str, Row] | None = None) -> None:
    """Add the rows of ``page`` to ``writer``; ``provenances`` given (the page's ``imports``
    rows) = lossless: the ``records`` table too."""
    for m in page.measurements:
        mid, run_id = m["measurement_id"], m["run_id"]
        run = source.run(run_id)
        started = timestamp(m["started_at"])
        date, network = started.strftime("%Y-%m-%d"), network_label(run.get("probe_asn"))
        writer.close_before(_MEASUREMENT_TABLES, date)
        net = {"probe_asn": run.get("probe_asn"), "probe_cc": run.get("probe_cc"),
               "network_name": run.get("network_name")}

        def add(table: str, row: Row, date: str = date, network: str = network) -> None:
            writer.add(table, date, network, row)

        if provenances is not None:
            current = next((v for v in page.verdicts.get(mid, []) if v["is_current"]), None)
            add("records", record_row(m, page, current, provenances.get(mid)))
        for v in page.verdicts.get(mid, []):
            add("verdicts", {
                "measurement_id": mid, "run_id": run_id, "url": m["url"],
                "hostname": m["hostname"], "category": m["category"], "started_at": started,
                "verdict": v["verdict"], "method": v["method"], "confidence": v["confidence"],
                "evidence": v["evidence"], "details": v["details"],
                "analysis_version": v["analysis_version"],
                "created_at": timestamp(v["created_at"]), "is_current": bool(v["is_current"]),
                **net,
            })
        finished = timestamp(m["finished_at"])
        controls = page.rows_of("controls", mid)
        add("measurements", {
            "measurement_id": mid, "run_id": run_id, "url": m["url"], "hostname": m["hostname"],
            "scheme": m["scheme"], "port": m["port"], "path": m["path"],
            "category": m["category"], "source": m["source"], "started_at": started,
            "finished_at": finished,
            "runtime_s": max(0.0, (finished - started).total_seconds()),
            **net, "probe_version": run["probe_version"], "run_status": run["status"],
            "control": "[" + ",".join(c["data"] for c in controls) + "]",
            "extra": m["extra"],
        })
        key = {"measurement_id": mid, "run_id": run_id}
        for r in page.rows_of("dns_queries", mid):
            add("dns_queries", {
                **key, **_pick(r, SCHEMAS["dns_queries"], skip={"answers"}),
                "answers": json.loads(r["answers"] or "[]"),
            })
        for r in page.rows_of("tcp_connects", mid):
            add("tcp_connects", {**key, **_pick(r, SCHEMAS["tcp_connects"])})
        chains: dict[int, list[Row]] = {}
        for c in page.rows_of("certificates", mid):
            chains.setdefault(c["tls_idx"], []).append({
                "sha256": c["sha256"], "spki_sha256": c["spki_sha256"],
                "subject": c["subject"], "issuer": c["issuer"],
                "not_before": timestamp(c["not_before"]), "not_after": timestamp(c["not_after"]),
                "san": json.loads(c["san"] or "[]"),
            })
        for r in page.rows_of("tls_handshakes", mid):
            add("tls_handshakes", {
                **key, **_pick(r, SCHEMAS["tls_handshakes"], skip={"certificates", "verified"}),
                "verified": None if r["verified"] is None else bool(r["verified"]),
                "certificates": chains.get(r["idx"], []),
            })
        for r in page.rows_of("http_requests", mid):
            add("http_requests", {
                **key,
                **_pick(r, SCHEMAS["http_requests"],
                        skip={"request_headers", "headers", "body_stored", "body_truncated"}),
                "request_headers": _headers(r["request_headers"]),
                "headers": _headers(r["headers"]),
                "body_stored": bool(r["body_stored"] if "body_stored" in r
                                    else r.get("body") is not None),
                "body_truncated": bool(r["body_truncated"]),
            })


def run_row(source: Source, run_id: str) -> Row:
    """The ``runs`` row of the lossless tables: the run's row and its health samples."""
    run = source.run(run_id)
    health = [{"at": h.at, "phase": h.phase, "scope": h.scope.value, "target": h.target,
               "elapsed": h.elapsed, "failure": h.failure, "unexpected": h.unexpected}
              for h in source.store.health_samples(run_id)]
    return {"run_id": run_id, "started_at": timestamp(run["started_at"]),
            "probe_asn": run.get("probe_asn"), "probe_cc": run.get("probe_cc"),
            "run": dumps_rows(run), "health": dumps_rows(health)}


def _pick(row: Mapping[str, Any], schema: pa.Schema, skip: Iterable[str] = ()) -> Row:
    """The columns of ``row`` that ``schema`` names (except ``skip`` and the key columns)."""
    leave = {"measurement_id", "run_id", *skip}
    return {name: row[name] for name in schema.names if name not in leave}


def write_dataset(source: Source, sel: Selection, root: Path,
                  row_group_rows: int | None = None, lossless: bool = False) -> dict[str, int]:
    """Write the selected data under ``root``; returns the number of rows per table.
    ``lossless``: the :data:`LOSSLESS_SCHEMAS` tables too."""
    writer = DatasetWriter(root, row_group_rows)
    runs: dict[str, str] = {}  # run id -> its first measurement's day (the runs partition)
    try:
        for page in source.pages(sel, bodies=lossless, all_verdicts=True):
            imports = (source.import_rows([m["measurement_id"] for m in page.measurements])
                       if lossless else None)
            _page_rows(source, page, writer, imports)
            for m in page.measurements:
                runs.setdefault(m["run_id"], timestamp(m["started_at"]).strftime("%Y-%m-%d"))
        writer.close()
        for run_id, date in sorted(runs.items(), key=lambda x: x[1]) if lossless else ():
            writer.close_before(("runs",), date)
            writer.add("runs", date, network_label(source.run(run_id).get("probe_asn")),
                       run_row(source, run_id))
        writer.close()
        for batch in source.health_rows(sel):
            for h in batch:
                run = source.run(h["run_id"])
                at = timestamp(h["at"])
                date = at.strftime("%Y-%m-%d")
                writer.close_before(("health_samples",), date)
                writer.add("health_samples", date, network_label(run.get("probe_asn")), {
                    "run_id": h["run_id"], "sampled_at": at, "phase": h["phase"],
                    "scope": h["scope"], "target": h["target"], "elapsed": h["elapsed"],
                    "failure": h["failure"], "unexpected": h.get("unexpected"),
                    "probe_asn": run.get("probe_asn"), "probe_cc": run.get("probe_cc"),
                    "network_name": run.get("network_name"),
                })
    finally:
        writer.close()
    return dict(writer.counts)
