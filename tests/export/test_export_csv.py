"""Tests for the csv export: the results contract columns, one row per measurement."""

from __future__ import annotations

import csv
from pathlib import Path

from probe.export import Selection, export
from probe.export.csv_format import COLUMNS
from probe.report.run_results import CONTRACT_FIELDS
from probe.store import Store
from tests.factories import build_db


def test_csv_rows_match_the_results_contract(tmp_path: Path) -> None:
    built = build_db(tmp_path / "probe.db")
    out = tmp_path / "x.csv"
    summary = export(built.path, "csv", out)
    with out.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS == (*CONTRACT_FIELDS, "measurement_id")
        rows = list(reader)
    assert summary.measurements == len(rows) == len(built.ids)
    with Store.open(built.path) as store:
        expected = [r for run in built.runs.values() for r in store.results(run)]
    by_id = {r["measurement_id"]: r for r in rows}
    for want in expected:
        got = by_id[want["measurement_id"]]
        for column in COLUMNS:
            value = want[column]
            assert got[column] == ("" if value is None else str(value)), column


def test_csv_of_one_run_and_an_unjudged_measurement(tmp_path: Path) -> None:
    built = build_db(tmp_path / "probe.db")
    export(built.path, "csv", tmp_path / "x.csv", Selection(run=built.runs["A"]))
    with (tmp_path / "x.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["run_id"] for r in rows} == {built.runs["A"]} and len(rows) == 5
    [quiet] = [r for r in rows if r["measurement_id"] == built.ids["unjudged"]]
    assert quiet["verdict"] == quiet["method"] == quiet["analysis_version"] == ""
    [ok] = [r for r in rows if r["measurement_id"] == built.ids["ok"]]
    assert (ok["verdict"], ok["method"], ok["analysis_version"]) == ("ok", "", "0.2.0")
