"""Tests for probe.report.run_results: the results table, the JSON contract and CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from probe.report.run_results import CONTRACT_FIELDS, render_results

LONG_EVIDENCE = (
    "TLS handshake with 203.0.113.10:443 (SNI www.a-rather-long-hostname.example) failed: "
    "generic_timeout_error after 10.0 s"
)


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_id": "20261121T101500Z-0a1b2c3d",
        "measurement_id": "20261121T101501Z-0011223344556677",
        "url": "https://example.test/",
        "hostname": "example.test",
        "category": "NEWS",
        "started_at": "2026-11-21T10:15:01.000000Z",
        "finished_at": "2026-11-21T10:15:02.000000Z",
        "verdict": "ok",
        "method": None,
        "confidence": 0.9,
        "evidence": "HTTP 200 for https://example.test/ from 93.184.216.34:443",
        "analysis_version": "0.1.0",
        "details": {"step": "http", "status": 200},
    }
    base.update(changes)
    return base


ROWS = [
    row(),
    row(url="https://www.a-rather-long-hostname.example/with/a/long/path?and=query",
        hostname="www.a-rather-long-hostname.example", category=None, verdict="inconclusive",
        method="tls.timeout", confidence=0.3, evidence=LONG_EVIDENCE,
        details={"step": "tls", "ip": "203.0.113.10", "failures": [{"ip": "x"}]}),
    row(url="https://nxdomain.example/", verdict="inconclusive", method="dns.nxdomain",
        confidence=0.3, evidence="DNS A lookup of nxdomain.example failed:\n dns_nxdomain_error"),
    row(url="https://unjudged.example/", verdict=None, method=None, confidence=None,
        evidence=None, analysis_version=None, details={}),
]


def test_json_is_an_array_of_contract_objects() -> None:
    out = render_results(ROWS, "json")
    data = json.loads(out)
    assert isinstance(data, list) and len(data) == len(ROWS)
    for obj, src in zip(data, ROWS, strict=True):
        assert list(obj)[: len(CONTRACT_FIELDS)] == list(CONTRACT_FIELDS)
        assert obj == src  # nothing lost, nothing added
    assert data[1]["details"]["failures"] == [{"ip": "x"}]
    assert data[3]["verdict"] is None and data[3]["confidence"] is None


def test_json_fills_missing_contract_fields_with_null() -> None:
    [obj] = json.loads(render_results([{"url": "https://a.test/"}], "json"))
    assert set(obj) == set(CONTRACT_FIELDS) and obj["verdict"] is None


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_empty_results(fmt: str) -> None:
    out = render_results([], fmt)
    assert out.endswith("\n")
    if fmt == "json":
        assert json.loads(out) == []
    elif fmt == "csv":
        assert out.splitlines() == [",".join(CONTRACT_FIELDS)]
    else:
        assert out.split() == ["URL", "TEST", "VERDICT", "METHOD", "CONF", "EVIDENCE"]


def test_csv_round_trips_through_a_csv_reader() -> None:
    out = render_results(ROWS, "csv")
    records = list(csv.DictReader(io.StringIO(out)))
    assert list(records[0])[: len(CONTRACT_FIELDS)] == list(CONTRACT_FIELDS)
    assert [r["url"] for r in records] == [r["url"] for r in ROWS]
    assert records[1]["evidence"] == LONG_EVIDENCE  # never truncated
    assert records[2]["evidence"] == ROWS[2]["evidence"]  # newline quoted, kept
    assert json.loads(records[1]["details"]) == ROWS[1]["details"]
    assert records[0]["method"] == "" and records[1]["category"] == ""
    assert float(records[1]["confidence"]) == 0.3


@pytest.mark.parametrize("width", [100, 80, 120])
def test_table_fits_the_terminal(width: int) -> None:
    out = render_results(ROWS, "table", width=width)
    lines = out.splitlines()
    assert len(lines) == 1 + len(ROWS)
    assert all(len(line) <= width for line in lines), [len(line) for line in lines]
    header = lines[0]
    assert header.split() == ["URL", "TEST", "VERDICT", "METHOD", "CONF", "EVIDENCE"]
    # columns are aligned: every row has its verdict where the header says
    col = header.index("VERDICT")
    assert [line[col:].split()[0] for line in lines[1:]] == ["ok", "inconclusive",
                                                             "inconclusive", "-"]
    assert "..." in lines[2]  # the long url and evidence were cut
    assert "0.30" in lines[2] and "tls.timeout" in lines[2]
    assert "DNS A lookup of nxdom" in lines[3]  # its newline folded: one line


def test_table_keeps_short_rows_intact() -> None:
    out = render_results([row()], "table", width=120)
    assert "HTTP 200 for https://example.test/ from 93.184.216.34:443" in out
    assert "https://example.test/" in out.splitlines()[1][:30]


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render_results(ROWS, "xml")
