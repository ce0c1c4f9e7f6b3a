"""Tests for the jsonl export: lossless round trip, verdict and run metadata, selection."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from probe.errors import StorageError, UsageError
from probe.export import Selection, export, parse_bound
from probe.export.jsonl import SCHEMA, measurement_from_json, to_jsonable
from probe.store import Store
from tests.factories import CERT_LEAF, Built, build_db, full_measurement

IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


@pytest.fixture
def built(tmp_path: Path) -> Built:
    return build_db(tmp_path / "probe.db")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_measurement_round_trips_exactly(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    summary = export(built.path, "jsonl", out)
    objects = read_jsonl(out)
    assert summary.measurements == len(objects) == len(built.ids)
    with Store.open(built.path) as store:
        stored = dict(store.iter_measurements())
    assert {o["measurement_id"]: measurement_from_json(o) for o in objects} == stored


def test_bytes_are_base64(built: Built, tmp_path: Path) -> None:
    export(built.path, "jsonl", tmp_path / "x.jsonl")
    [ok] = [o for o in read_jsonl(tmp_path / "x.jsonl") if o["measurement_id"] == built.ids["ok"]]
    assert base64.b64decode(ok["tls"][0]["certificates"][0]["der"]) == CERT_LEAF.der
    assert base64.b64decode(ok["http"][1]["body"]) == full_measurement().http[1].body
    assert ok["http"][0]["body"] == ""  # b"" stays distinct from null
    assert ok["http"][0]["headers"][0] == ["Set-Cookie", "a=1"]


def test_current_verdict_and_run_metadata(built: Built, tmp_path: Path) -> None:
    export(built.path, "jsonl", tmp_path / "x.jsonl")
    objects = {o["measurement_id"]: o for o in read_jsonl(tmp_path / "x.jsonl")}
    ok = objects[built.ids["ok"]]
    assert ok["schema"] == SCHEMA
    assert ok["verdict"]["verdict"] == "ok" and ok["verdict"]["analysis_version"] == "0.2.0"
    assert ok["verdict"]["details"] == {"control": "agrees"}
    assert re.match(r"\d{4}-\d\d-\d\dT", ok["verdict"]["created_at"])
    assert ok["run"]["run_id"] == built.runs["A"]
    assert (ok["run"]["probe_asn"], ok["run"]["probe_cc"]) == (9198, "KZ")
    assert ok["run"]["status"] == "completed" and ok["run"]["settings"]["timeout"] == 10.0
    assert objects[built.ids["unjudged"]]["verdict"] is None
    assert objects[built.ids["down"]]["run"]["probe_asn"] is None
    assert len(ok["control"]) == 2 and ok["control"][1]["dns"]["addrs"] == ["93.184.216.34"]


def test_no_probe_address_is_added(built: Built, tmp_path: Path) -> None:
    export(built.path, "jsonl", tmp_path / "x.jsonl")
    for o in read_jsonl(tmp_path / "x.jsonl"):
        assert not {"probe_ip", "ip", "client_ip"} & set(o) and not {"probe_ip"} & set(o["run"])


def test_output_is_in_start_time_order(built: Built, tmp_path: Path) -> None:
    export(built.path, "jsonl", tmp_path / "x.jsonl")
    starts = [o["started_at"] for o in read_jsonl(tmp_path / "x.jsonl")]
    assert starts == sorted(starts)


@pytest.mark.parametrize(
    ("selection", "names"),
    [
        (lambda b: Selection(run=b.runs["B"]), {"down", "shutdown"}),
        (lambda b: Selection(run=b.runs["A"][:-2]), {"ok", "nxdomain", "tcp", "blockpage",
                                                       "unjudged"}),
        (lambda b: Selection(since=parse_bound("2026-11-22"),
                             until=parse_bound("2026-11-22", end=True)),
         {"tcp", "blockpage", "unjudged"}),
        (lambda b: Selection(since=parse_bound("2026-11-22T23:59Z")), {"blockpage", "down",
                                                                      "shutdown"}),
        (lambda b: Selection(until=parse_bound("2026-11-21T10:16:00")), {"ok"}),
    ],
)
def test_selection(built: Built, tmp_path: Path, selection: Any, names: set[str]) -> None:
    export(built.path, "jsonl", tmp_path / "x.jsonl", selection(built))
    got = {built.name_of(o["measurement_id"]) for o in read_jsonl(tmp_path / "x.jsonl")}
    assert got == names


def test_paging_keeps_every_measurement_once(built: Built, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from probe.export import source

    monkeypatch.setattr(source, "PAGE_SIZE", 2)
    export(built.path, "jsonl", tmp_path / "x.jsonl")
    ids = [o["measurement_id"] for o in read_jsonl(tmp_path / "x.jsonl")]
    assert sorted(ids) == sorted(built.ids.values()) and len(set(ids)) == len(ids)


def test_unknown_run_and_bad_times(built: Built, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no run 'nope'"):
        export(built.path, "jsonl", tmp_path / "x.jsonl", Selection(run="nope"))
    assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(UsageError, match="bad time"):
        parse_bound("yesterday")


def test_parse_bound_forms() -> None:
    import datetime as dt

    now = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
    assert parse_bound("2026-11-20") == "2026-11-20T00:00:00.000000Z"
    assert parse_bound("2026-11-20", end=True) == "2026-11-21T00:00:00.000000Z"
    assert parse_bound("2026-11-20T05:00+05:00") == "2026-11-20T00:00:00.000000Z"
    assert parse_bound("24h", now=now) == "2026-11-20T12:00:00.000000Z"
    assert parse_bound("2w", now=now) == "2026-11-07T12:00:00.000000Z"


def test_source_database_is_not_modified(built: Built, tmp_path: Path) -> None:
    before = built.path.read_bytes()
    built.path.chmod(0o444)
    try:
        export(built.path, "jsonl", tmp_path / "x.jsonl")
    finally:
        built.path.chmod(0o644)
    assert built.path.read_bytes() == before


def test_to_jsonable_handles_nested_records() -> None:
    assert to_jsonable({"a": (b"\x00", [CERT_LEAF.san])}) == {"a": ["AA==", [list(CERT_LEAF.san)]]}


def test_every_record_field_is_exported(built: Built, tmp_path: Path) -> None:
    """A field added to a record shows up in the export under its own name."""
    import dataclasses

    from probe import model

    export(built.path, "jsonl", tmp_path / "x.jsonl")
    [ok] = [o for o in read_jsonl(tmp_path / "x.jsonl") if o["measurement_id"] == built.ids["ok"]]

    def names(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    assert set(ok["target"]) == names(model.Target)
    assert set(ok["dns"][1]) == names(model.DNSObservation)
    assert set(ok["dns"][1]["answers"][0]) == names(model.DNSAnswer)
    assert set(ok["tcp"][0]) == names(model.TCPObservation)
    assert set(ok["tls"][0]) == names(model.TLSObservation)
    assert set(ok["tls"][0]["certificates"][0]) == names(model.Certificate)
    assert set(ok["http"][0]) == names(model.HTTPObservation)
    assert names(model.Measurement) - {"target"} <= set(ok)
    assert set(ok["verdict"]) == names(model.Verdict) - {"details"} | {"details", "created_at"}


def test_non_finite_numbers_become_null() -> None:
    from probe.export.jsonl import dumps

    assert json.loads(dumps({"a": [1.5, float("nan")], "b": {"c": float("inf")}})) == {
        "a": [1.5, None], "b": {"c": None}}
