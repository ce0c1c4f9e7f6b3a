"""What the collector refuses in an upload (probe/collector/validation.py), record by record."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from probe.collector.validation import Invalid, check_batch, check_record
from tests.collector.helpers import valid_batch


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict[str, Any]:
    # the first record of a real batch: an https fetch with every observation kind
    return valid_batch(tmp_path_factory.mktemp("v"), 1)["records"][0]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(r: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = r
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is KeyError:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return change


FUTURE = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

#: (what is wrong, the change, a word of the one-line reason)
BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("wrong schema", _set("schema", "probe.jsonl/9"), "record.schema"),
    ("unknown top-level field", _set("evil", 1), "unknown field 'evil'"),
    ("namespaced id (another probe's)", _set("measurement_id",
                                             "20261121T101500Z-0123456789abcdef@p1"),
     "measurement_id"),
    ("id not in the store's format", _set("measurement_id", "../../etc"), "measurement_id"),
    ("run id not in the format", _set("run.run_id", "x"), "run_id"),
    ("run status outside the vocabulary", _set("run.status", "pwned"), "status"),
    ("country not two letters", _set("run.probe_cc", "<b>"), "probe_cc"),
    ("failure outside the vocabulary", _set("dns.0.failure", "dns_hijacked_lol"),
     "failure vocabulary"),
    ("verdict outside the closed set", _set("verdict.verdict", "censored"), "verdict"),
    ("confidence above 1", _set("verdict.confidence", 1.5), "confidence"),
    ("confidence not a number", _set("verdict.confidence", "high"), "confidence"),
    ("start in the future", _set("started_at", FUTURE), "outside"),
    ("start before any probe", _set("started_at", "1999-01-01T00:00:00Z"), "outside"),
    ("finish before start", _set("finished_at", "2020-06-01T00:00:00Z"), "finished_at"),
    ("not a time", _set("started_at", "yesterday"), "bad time"),
    ("a port as text", _set("tcp.0.port", "443"), "integer"),
    ("a boolean as an integer", _set("tcp.0.port", True), "integer"),
    ("a missing required field", _set("tcp.0.ip", KeyError), "missing"),
    ("an unknown observation field", _set("tcp.0.evil", 1), "unknown field"),
    ("a list where an object goes", _set("target", []), "expected an object"),
    ("a test this probe does not run", _set("target.test_name", "psiphon"), "test_name"),
    ("bad base64 body", _set("http.0.body", "***"), "base64"),
    ("huge text", _set("http.0.title", "x" * 100_000), "longer than"),
    ("too many observations", lambda r: r.update(dns=r["dns"] * 600), "more than"),
    ("deep nesting", _set("extra", {"a": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]}), "nested too deep"),
    ("NaN-free numbers only", _set("tcp.0.t", float("inf")), "number"),
    ("scheme against the test", _set("target.scheme", "ftp"), "scheme"),
]


@pytest.mark.parametrize(("what", "change", "reason"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_record_is_refused_with_a_one_line_reason(record, what, change, reason):
    bad = copy.deepcopy(record)
    change(bad)
    with pytest.raises(Invalid) as e:
        check_record(bad)
    assert reason in str(e.value) and "\n" not in str(e.value)


def test_a_good_record_passes_and_rebuilds_the_measurement(record):
    checked = check_record(copy.deepcopy(record))
    assert checked.measurement_id == record["measurement_id"]
    assert checked.measurement.target.url == record["target"]["url"]
    assert checked.verdict is not None and checked.verdict.verdict.value == \
        record["verdict"]["verdict"]


BAD_BATCHES = [
    ("not an object", [], "JSON object"),
    ("wrong schema", {"schema": "x", "batch_id": "b" + "0" * 24, "records": []}, "schema"),
    ("bad batch id", {"schema": "probe.upload/1", "batch_id": "1", "records": []}, "batch_id"),
    ("records not a list", {"schema": "probe.upload/1", "batch_id": "b" + "0" * 24,
                            "records": {}}, "records"),
    ("too many records", {"schema": "probe.upload/1", "batch_id": "b" + "0" * 24,
                          "records": [{}] * 1001}, "more than"),
]


@pytest.mark.parametrize(("what", "batch", "reason"), BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES])
def test_a_bad_batch_is_rejected_whole(what, batch, reason):
    with pytest.raises(Invalid, match=reason):
        check_batch(batch)
