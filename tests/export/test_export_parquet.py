"""Tests for the Parquet export: layout, explicit schemas, DuckDB reads it (counts, values,
and every query of docs/data.md), streaming with bounded buffers and open files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from probe.errors import UsageError
from probe.export import ExportError, Selection, export, parquet, source
from probe.model import DNSAnswer, DNSObservation, Measurement, Verdict, VerdictKind
from probe.store import Store
from tests.factories import Built, build_db
from tests.factories import listed_target as target

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data.md"
UTC = dt.UTC


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, Path, dict[str, int]]:
    tmp = tmp_path_factory.mktemp("parquet")
    built = build_db(tmp / "probe.db")
    out = tmp / "export"
    summary = export(built.path, "parquet", out)
    return built, out, summary.rows


def q(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` run by DuckDB, through Arrow (so UTC timestamps need no pytz)."""
    con = duckdb.connect()
    try:
        rel = con.sql(sql, params=list(params) if params else None)
        return [tuple(row.values()) for row in rel.to_arrow_table().to_pylist()]
    finally:
        con.close()


def scan(root: Path, table: str) -> str:
    return f"read_parquet('{root}/{table}/**/*.parquet', hive_partitioning = true)"


def test_layout_is_partitioned_by_date_and_network(
    dataset: tuple[Built, Path, dict[str, int]],
) -> None:
    _, root, _ = dataset
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))
    assert "verdicts/date=2026-11-21/network=AS9198/part-00000.parquet" in files
    assert "verdicts/date=2026-11-23/network=unknown/part-00000.parquet" in files
    assert "health_samples/date=2026-11-23/network=unknown/part-00000.parquet" in files
    assert {f.split("/")[0] for f in files} == set(parquet.TABLES)
    for f in files:
        assert re.fullmatch(r"[a-z_]+/date=\d{4}-\d\d-\d\d/network=(AS\d+|unknown)/"
                            r"part-\d{5}\.parquet", f)
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".export.tmp")]


def test_files_have_the_documented_schemas(
    dataset: tuple[Built, Path, dict[str, int]],
) -> None:
    _, root, _ = dataset
    docs = DOCS.read_text(encoding="utf-8")
    for table, schema in parquet.SCHEMAS.items():
        assert f"**`{table}/`**" in docs, f"{table} not documented"
        for name in schema.names:
            assert f"`{name}`" in docs, f"{table}.{name} not documented"
        for path in (root / table).rglob("*.parquet"):
            assert pq.read_schema(path).remove_metadata() == schema, path
            assert "body" not in schema.names and "der" not in schema.names


def test_duckdb_counts_match_the_database(dataset: tuple[Built, Path, dict[str, int]]) -> None:
    built, root, rows = dataset
    with Store.open(built.path) as store:
        db = store.db
        for table, sql_table in (("measurements", "measurements"), ("verdicts", "verdicts"),
                                 ("dns_queries", "dns_queries"), ("tcp_connects", "tcp_connects"),
                                 ("tls_handshakes", "tls_handshakes"),
                                 ("http_requests", "http_requests"),
                                 ("health_samples", "health_samples")):
            stored = db.execute(f"SELECT count(*) FROM {sql_table}").fetchone()[0]
            assert q(f"SELECT count(*) FROM {scan(root, table)}") == [(stored,)], table
            assert rows[table] == stored
    per_partition = q(f"SELECT date::VARCHAR, network, count(*) FROM {scan(root, 'measurements')}"
                      " GROUP BY ALL ORDER BY ALL")
    assert per_partition == [("2026-11-21", "AS9198", 2), ("2026-11-22", "AS9198", 3),
                             ("2026-11-23", "unknown", 2)]


def test_duckdb_reads_the_values(dataset: tuple[Built, Path, dict[str, int]]) -> None:
    built, root, _ = dataset
    ok = built.ids["ok"]
    [(verdict, version, current, started, asn, cc, details)] = q(
        f"SELECT verdict, analysis_version, is_current, started_at, probe_asn, probe_cc, "
        f"details FROM {scan(root, 'verdicts')} WHERE measurement_id = ? AND is_current", ok)
    assert (verdict, version, current, asn, cc) == ("ok", "0.2.0", True, 9198, "KZ")
    assert started == dt.datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
    assert details == '{"control":"agrees"}'
    history = q(f"SELECT verdict, is_current FROM {scan(root, 'verdicts')} "
                "WHERE measurement_id = ? ORDER BY created_at", ok)
    assert history == [("inconclusive", False), ("ok", True)]

    m = built.measurements["ok"]
    answers = q(f"SELECT response_index, answers FROM {scan(root, 'dns_queries')} "
                "WHERE measurement_id = ? AND tx_id = 2 ORDER BY idx", ok)
    assert answers == [(0, [{"rtype": "CNAME", "value": "edge.news.test", "ttl": 30},
                            {"rtype": "A", "value": "10.10.34.35", "ttl": 0}]),
                       (1, [{"rtype": "A", "value": "93.184.216.34", "ttl": 300}])]
    certs = q(f"SELECT verified, verify_error, [c.sha256 for c in certificates], "
              f"certificates[1].not_after FROM {scan(root, 'tls_handshakes')} "
              "WHERE measurement_id = ? ORDER BY idx", ok)
    assert certs[0][:3] == (True, None, [c.sha256 for c in m.tls[0].certificates])
    assert certs[0][3] == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert certs[1][:2] == (False, "ssl_unknown_authority") and certs[2][2] == []
    http = q(f"SELECT redirect_index, status, headers, body_sha256, body_stored, body_length "
             f"FROM {scan(root, 'http_requests')} WHERE measurement_id = ? "
             "AND transport = 'tcp' ORDER BY idx", ok)
    h3 = q(f"SELECT status, body_sha256 FROM {scan(root, 'http_requests')} "
           "WHERE measurement_id = ? AND transport = 'quic'", ok)
    assert h3 == [(200, m.http3[0].body_sha256)]
    assert http[0][:2] == (0, 301)
    assert http[0][2][:2] == [{"name": "Set-Cookie", "value": "a=1"},
                              {"name": "Set-Cookie", "value": "b=2"}]
    assert [h[3] for h in http] == [h.body_sha256 for h in m.http]
    assert http[1][4:] == (True, 1100)
    [(control, extra, runtime)] = q(f"SELECT control::JSON->>'$[1].dns.addrs[0]', "
                                    f"extra::JSON->>'$.note', runtime_s FROM "
                                    f"{scan(root, 'measurements')} WHERE measurement_id = ?", ok)
    assert (control, extra, runtime) == ("93.184.216.34", "ünïcode", 2.0)
    assert q(f"SELECT count(*) FROM {scan(root, 'verdicts')} WHERE measurement_id = ?",
             built.ids["unjudged"]) == [(0,)]


def doc_queries() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    return {re.search(r"-- name: (\w+)", b).group(1): b for b in blocks}  # type: ignore[union-attr]


def test_every_documented_query_runs(dataset: tuple[Built, Path, dict[str, int]]) -> None:
    _, root, _ = dataset
    queries = doc_queries()
    assert {"blocked_per_network_day", "shutdown_windows", "shutdown_runs"} <= set(queries)
    results = {name: q(sql.replace("'export/", f"'{root}/")) for name, sql in queries.items()}
    day = dt.date
    assert results["blocked_per_network_day"] == [
        (day(2026, 11, 21), "AS9198", 1, ["blocked.test"]),
        (day(2026, 11, 22), "AS9198", 2, ["media.test", "vpn.test"]),
    ]
    assert [r[:2] + r[4:] for r in results["shutdown_runs"]] == [
        ("unknown", dataset[0].runs["B"], 1, 2, "shutdown.full")]
    assert results["shutdown_windows"] == [
        ("unknown", dt.datetime(2026, 11, 23, 7, 59, tzinfo=UTC),
         dt.datetime(2026, 11, 23, 8, 2, tzinfo=UTC), 2)]
    assert results["interception_issuers"] == [("AS9198", "CN=National CA", 1, 1)]
    assert [r[2] for r in results["site_history"]] == ["blocked"]


def test_selection_applies_to_every_table(tmp_path: Path) -> None:
    built = build_db(tmp_path / "probe.db")
    export(built.path, "parquet", tmp_path / "b", Selection(run=built.runs["B"]))
    assert q(f"SELECT DISTINCT network FROM {scan(tmp_path / 'b', 'verdicts')}") == [("unknown",)]
    assert q(f"SELECT count(*) FROM {scan(tmp_path / 'b', 'health_samples')}") == [(4,)]
    assert not list((tmp_path / "b" / "tls_handshakes").iterdir())  # empty table: empty dir
    export(built.path, "parquet", tmp_path / "d", Selection(since="2026-11-22T00:00:00.000000Z",
                                                            until="2026-11-23T00:00:00.000000Z"))
    assert q(f"SELECT DISTINCT date::VARCHAR FROM {scan(tmp_path / 'd', 'measurements')}") == [
        ("2026-11-22",)]
    assert q(f"SELECT count(*) FROM {scan(tmp_path / 'd', 'health_samples')}") == [(1,)]


def test_destination_rules(tmp_path: Path) -> None:
    built = build_db(tmp_path / "probe.db", ("B",))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("keep")
    with pytest.raises(ExportError, match="already exists"):
        export(built.path, "parquet", taken)
    assert (taken / "x").read_text() == "keep"
    with pytest.raises(UsageError):
        export(built.path, "parquet", "-")
    empty = tmp_path / "empty"
    empty.mkdir()
    export(built.path, "parquet", empty)
    assert (empty / "verdicts").is_dir()


def test_a_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_db(tmp_path / "probe.db", ("B",))

    def boom(*_: Any, **__: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parquet.DatasetWriter, "_flush", boom)
    with pytest.raises(ExportError, match="No space left"):
        export(built.path, "parquet", tmp_path / "out")
    assert not [p.name for p in tmp_path.iterdir() if "out" in p.name]


# --- streaming -------------------------------------------------------------------------------


def many(store: Store, run_id: str, days: int, per_day: int) -> int:
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    n = 0
    for d in range(days):
        for i in range(per_day):
            start = base + dt.timedelta(days=d, minutes=i)
            iso = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            m = Measurement(
                target=target(f"https://s{i}.test/"), started_at=iso,
                finished_at=(start + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                dns=(DNSObservation(1, f"s{i}.test", "A", "system", "system", 0.0, 0.01, None,
                                    answers=(DNSAnswer("A", "192.0.2.1"),)),),
            )
            store.save_measurement(run_id, m, Verdict(VerdictKind.OK, None, 0.9, "ok", "0.1.0"))
            n += 1
    return n


def test_streams_with_bounded_buffers_and_open_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Store.open(tmp_path / "big.db") as store:
        run_a = store.start_run({}, 0)
        run_b = store.start_run({}, 0)
        store.set_run_network(run_b, probe_asn=48716)
        total = many(store, run_a, 12, 15) + many(store, run_b, 12, 10)
    monkeypatch.setattr(source, "PAGE_SIZE", 7)
    row_group = 4
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", row_group)
    peak = {"writers": 0, "buffered": 0, "page": 0}
    flush = parquet.DatasetWriter._flush
    fill = source.Source._fill

    def watch_flush(self: parquet.DatasetWriter, key: tuple[str, str, str]) -> None:
        peak["writers"] = max(peak["writers"], len(self._writers))
        peak["buffered"] = max(peak["buffered"], max(map(len, self._buffers.values())))
        flush(self, key)

    def watch_fill(self: source.Source, page: list[dict[str, Any]], **kw: Any) -> Any:
        peak["page"] = max(peak["page"], len(page))
        return fill(self, page, **kw)

    monkeypatch.setattr(parquet.DatasetWriter, "_flush", watch_flush)
    monkeypatch.setattr(source.Source, "_fill", watch_fill)
    summary = export(tmp_path / "big.db", "parquet", tmp_path / "out")
    assert summary.rows["measurements"] == total == 300
    assert peak["page"] == 7
    assert peak["buffered"] <= row_group
    # one day at a time: at most (tables with rows) x (networks) files open
    assert peak["writers"] <= 4 * 2
    files = list((tmp_path / "out" / "measurements").rglob("*.parquet"))
    assert len(files) == 24  # 12 days x 2 networks, one file each
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.num_row_groups > 1 and all(
        meta.row_group(i).num_rows <= row_group for i in range(meta.num_row_groups))
    assert q(f"SELECT count(*), count(DISTINCT measurement_id) FROM "
             f"{scan(tmp_path / 'out', 'verdicts')}") == [(300, 300)]


def test_schema_dataclass_fields_are_all_exported() -> None:
    """A new record field must be added to the Parquet schema (or excluded on purpose)."""
    from probe import model

    excluded = {"HTTPObservation": {"body", "request_headers"}, "TLSObservation": set(),
                "DNSObservation": set(), "TCPObservation": set()}
    tables = {"DNSObservation": "dns_queries", "TCPObservation": "tcp_connects",
              "TLSObservation": "tls_handshakes", "HTTPObservation": "http_requests"}
    renamed = {"tx_id": "tx_id"}
    for cls_name, table in tables.items():
        names = {f.name for f in dataclasses.fields(getattr(model, cls_name))}
        missing = {renamed.get(n, n) for n in names} - set(parquet.SCHEMAS[table].names)
        assert missing <= excluded[cls_name], (cls_name, missing)
