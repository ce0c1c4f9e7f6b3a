"""Everything the collector checks in what a probe uploads, before anything is stored.

An upload is a batch (``probe.upload/1``) of measurement objects in the lossless ``probe.jsonl/1``
layout of :mod:`probe.export.jsonl`. Rules (issue 16, docs/collector.md):

* The batch itself: a JSON object with ``schema``, a ``batch_id`` (``b`` + 24 hex) and at most
  :data:`MAX_RECORDS` records; anything else rejects the whole batch (HTTP 400).
* Each record is checked on its own and refused alone (its reason sent back) when it does not
  fit: every field's JSON type against the record classes of :mod:`probe.model` (read from
  their type hints, so the check follows the model), text and list sizes, ids in the store's
  own formats (``probe/store/db.py``), test names this probe runs (``model.INPUT_SCHEMES``),
  failure strings of the vocabulary (:func:`probe.failures.is_known`), verdicts of the closed set
  (DESIGN.md), confidence in [0, 1], run statuses, and timestamps between :data:`EARLIEST` and
  now + :data:`CLOCK_SKEW`, finishing after they start.
* Nothing here touches the network or a database: pure functions over decoded JSON.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from probe import failures
from probe.export import jsonl
from probe.model import INPUT_SCHEMES, Measurement, Target, Verdict, VerdictKind
from probe.store.collector import Received as CheckedRecord

UPLOAD_SCHEMA = "probe.upload/1"
#: Records in one batch.
MAX_RECORDS = 1000
#: One text field (URLs, titles, evidence, header values...).
MAX_TEXT = 16 * 1024
#: One bytes field (an HTTP body or a certificate's DER), decoded.
MAX_BYTES = 2 * 1024 * 1024
#: Items of one list (observations, headers, answers...).
MAX_ITEMS = 512
#: Nesting of free-form JSON (controls, extra, details, settings).
MAX_DEPTH = 12
#: Oldest instant accepted: before this no probe of ours existed.
EARLIEST = "2020-01-01T00:00:00Z"
#: How far ahead of the collector's clock a probe's clock may be.
CLOCK_SKEW = dt.timedelta(days=1)
#: Longest measurement (start to finish).
MAX_DURATION = dt.timedelta(hours=6)

BATCH_ID = re.compile(r"^b[0-9a-f]{24}$")
MEASUREMENT_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{16}$")
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
RUN_STATUSES = ("running", "completed", "interrupted")
_CC = re.compile(r"^[A-Z]{2}$")


class Invalid(ValueError):
    """What does not fit, as one line naming the field."""


def parse_instant(text: Any, where: str, now: dt.datetime | None = None) -> dt.datetime:
    """An ISO 8601 instant within the sane bounds, else Invalid."""
    if not isinstance(text, str) or len(text) > 40:
        raise Invalid(f"{where}: expected an ISO 8601 time")
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{where}: bad time {text[:40]!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    if when < dt.datetime.fromisoformat(EARLIEST) or when > now + CLOCK_SKEW:
        raise Invalid(f"{where}: time {text!r} outside {EARLIEST[:10]} .. now + 1 day")
    return when


# --- JSON types against the model's type hints ----------------------------------------------


def _check(value: Any, hint: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise Invalid(f"{where}: nested too deep")
    origin = typing.get_origin(hint)
    if hint is Any:
        _check_json(value, where, depth)
        return
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                _check(value, option, where, depth)
                return
            except Invalid as e:
                errors.append(str(e))
        raise Invalid(errors[0] if errors else f"{where}: unexpected null")
    if hint is type(None):
        if value is not None:
            raise Invalid(f"{where}: expected null")
        return
    if hint is str:
        if not isinstance(value, str):
            raise Invalid(f"{where}: expected text")
        if len(value) > MAX_TEXT:
            raise Invalid(f"{where}: text longer than {MAX_TEXT} characters")
        return
    if hint is bytes:
        if not isinstance(value, str) or len(value) > MAX_BYTES * 4 // 3 + 4:
            raise Invalid(f"{where}: expected base64 of at most {MAX_BYTES} bytes")
        try:
            base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeError):
            raise Invalid(f"{where}: bad base64") from None
        return
    if hint is bool:
        if not isinstance(value, bool):
            raise Invalid(f"{where}: expected true/false")
        return
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 2**53:
            raise Invalid(f"{where}: expected an integer")
        return
    if hint is float:
        if (not isinstance(value, int | float) or isinstance(value, bool)
                or not math.isfinite(value)):
            raise Invalid(f"{where}: expected a number")
        return
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected a list")
        if len(value) > MAX_ITEMS:
            raise Invalid(f"{where}: more than {MAX_ITEMS} items")
        if len(args) == 2 and args[1] is Ellipsis:
            for i, item in enumerate(value):
                _check(item, args[0], f"{where}[{i}]", depth + 1)
            return
        if len(value) != len(args):
            raise Invalid(f"{where}: expected {len(args)} items")
        for i, (item, arg) in enumerate(zip(value, args, strict=True)):
            _check(item, arg, f"{where}[{i}]", depth + 1)
        return
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise Invalid(f"{where}: expected an object")
        _check_json(value, where, depth)
        return
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if value not in {m.value for m in hint}:
            raise Invalid(f"{where}: {str(value)[:40]!r} is not one of "
                          f"{', '.join(m.value for m in hint)}")
        return
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        _check_record(value, hint, where, depth)
        return
    raise Invalid(f"{where}: cannot check type {hint!r}")  # a model change this module missed


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _check_record(value: Any, cls: type, where: str, depth: int = 0) -> None:
    if not isinstance(value, dict):
        raise Invalid(f"{where}: expected an object")
    hints = _hints(cls)
    fields = _fields(cls)
    unknown = set(value) - set(fields)
    if unknown:
        raise Invalid(f"{where}: unknown field {sorted(unknown)[0]!r}")
    for name, f in fields.items():
        if name not in value:
            if (f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING):
                raise Invalid(f"{where}.{name}: missing")
            continue
        _check(value[name], hints[name], f"{where}.{name}", depth + 1)


def _check_json(value: Any, where: str, depth: int) -> None:
    """Free-form JSON (controls, extra, details, settings): bounded size and depth."""
    if depth > MAX_DEPTH:
        raise Invalid(f"{where}: nested too deep")
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise Invalid(f"{where}: text longer than {MAX_TEXT} characters")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(f"{where}: not a finite number")
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise Invalid(f"{where}: more than {MAX_ITEMS} items")
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        if len(value) > MAX_ITEMS:
            raise Invalid(f"{where}: more than {MAX_ITEMS} keys")
        for k, item in value.items():
            _check_json(item, f"{where}.{str(k)[:40]}", depth + 1)
    elif not (value is None or isinstance(value, bool | int)):
        raise Invalid(f"{where}: not JSON")


# --- a record and a batch -------------------------------------------------------------------

_RECORD_KEYS = frozenset({"schema", "measurement_id", "run", "target", "started_at",
                          "finished_at", "dns", "tcp", "tls", "http", "control", "extra",
                          "verdict"})
_OBSERVATIONS = {name: typing.get_args(_hints(Measurement)[name])[0]
                 for name in ("dns", "tcp", "tls", "http")}


def check_record(obj: Any, now: dt.datetime | None = None) -> CheckedRecord:
    """One uploaded record, checked and rebuilt; Invalid (one line) when anything is off."""
    if not isinstance(obj, dict):
        raise Invalid("record: expected an object")
    if obj.get("schema") != jsonl.SCHEMA:
        raise Invalid(f"record.schema: expected {jsonl.SCHEMA!r}")
    extra_keys = set(obj) - _RECORD_KEYS
    if extra_keys:
        raise Invalid(f"record: unknown field {sorted(extra_keys)[0]!r}")
    mid = obj.get("measurement_id")
    if not isinstance(mid, str) or not MEASUREMENT_ID.match(mid):
        raise Invalid("record.measurement_id: expected YYYYMMDDTHHMMSSZ-<16 hex>")
    where = f"record {mid}"
    run = _check_run(obj.get("run"), f"{where}.run", now)
    _check_record(obj.get("target"), Target, f"{where}.target")
    test_name = obj["target"].get("test_name", "web_connectivity")
    if test_name not in INPUT_SCHEMES:
        raise Invalid(f"{where}.target.test_name: {str(test_name)[:40]!r} is not a test this "
                      f"probe runs ({', '.join(sorted(INPUT_SCHEMES))})")
    started = parse_instant(obj.get("started_at"), f"{where}.started_at", now)
    finished = parse_instant(obj.get("finished_at"), f"{where}.finished_at", now)
    if not started <= finished <= started + MAX_DURATION:
        raise Invalid(f"{where}.finished_at: not within {MAX_DURATION} after started_at")
    for name, cls in _OBSERVATIONS.items():
        _check(obj.get(name), tuple[cls, ...], f"{where}.{name}")  # type: ignore[valid-type]
        for i, o in enumerate(obj[name]):
            if not failures.is_known(o.get("failure")):
                raise Invalid(f"{where}.{name}[{i}].failure: {str(o['failure'])[:60]!r} "
                              f"is not in the failure vocabulary")
    _check(obj.get("control"), tuple[dict[str, Any], ...], f"{where}.control")
    _check(obj.get("extra"), dict[str, Any], f"{where}.extra")
    verdict, created_at = _check_verdict(obj.get("verdict"), f"{where}.verdict", now)
    try:
        m = jsonl.measurement_from_json(obj)
    except (KeyError, TypeError, ValueError) as e:
        raise Invalid(f"{where}: {str(e)[:120]}") from None
    return CheckedRecord(mid, run, m, verdict, created_at)


def _check_run(run: Any, where: str, now: dt.datetime | None) -> dict[str, Any]:
    if not isinstance(run, dict):
        raise Invalid(f"{where}: expected an object")
    unknown = set(run) - set(jsonl.RUN_FIELDS)
    if unknown:
        raise Invalid(f"{where}: unknown field {sorted(unknown)[0]!r}")
    if not isinstance(run.get("run_id"), str) or not RUN_ID.match(run["run_id"]):
        raise Invalid(f"{where}.run_id: expected YYYYMMDDTHHMMSSZ-<8 hex>")
    parse_instant(run.get("started_at"), f"{where}.started_at", now)
    if run.get("finished_at") is not None:
        parse_instant(run["finished_at"], f"{where}.finished_at", now)
    if run.get("status") not in RUN_STATUSES:
        raise Invalid(f"{where}.status: expected one of {', '.join(RUN_STATUSES)}")
    _check(run.get("probe_version"), str, f"{where}.probe_version")
    _check(run.get("targets_total"), int, f"{where}.targets_total")
    _check(run.get("probe_asn"), int | None, f"{where}.probe_asn")
    cc = run.get("probe_cc")
    if cc is not None and (not isinstance(cc, str) or not _CC.match(cc)):
        raise Invalid(f"{where}.probe_cc: expected two capital letters")
    _check(run.get("network_name"), str | None, f"{where}.network_name")
    _check(run.get("settings", {}), dict[str, Any], f"{where}.settings")
    return dict(run)


def _check_verdict(v: Any, where: str, now: dt.datetime | None
                   ) -> tuple[Verdict | None, str | None]:
    if v is None:
        return None, None
    if not isinstance(v, dict):
        raise Invalid(f"{where}: expected an object or null")
    keys = {"verdict", "method", "confidence", "evidence", "analysis_version", "details",
            "created_at"}
    if set(v) != keys:
        raise Invalid(f"{where}: expected the fields {', '.join(sorted(keys))}")
    _check(v["verdict"], VerdictKind, f"{where}.verdict")
    _check(v["method"], str | None, f"{where}.method")
    _check(v["confidence"], float, f"{where}.confidence")
    if not 0.0 <= v["confidence"] <= 1.0:
        raise Invalid(f"{where}.confidence: outside [0, 1]")
    _check(v["evidence"], str, f"{where}.evidence")
    _check(v["analysis_version"], str, f"{where}.analysis_version")
    _check(v["details"], dict[str, Any], f"{where}.details")
    parse_instant(v["created_at"], f"{where}.created_at", now)
    return (Verdict(VerdictKind(v["verdict"]), v["method"], float(v["confidence"]),
                    v["evidence"], v["analysis_version"], dict(v["details"])),
            v["created_at"])


def check_batch(obj: Any) -> tuple[str, list[Any]]:
    """The batch envelope: (batch id, raw records); Invalid rejects the whole batch."""
    if not isinstance(obj, Mapping):
        raise Invalid("batch: expected a JSON object")
    if obj.get("schema") != UPLOAD_SCHEMA:
        raise Invalid(f"batch.schema: expected {UPLOAD_SCHEMA!r}")
    batch_id = obj.get("batch_id")
    if not isinstance(batch_id, str) or not BATCH_ID.match(batch_id):
        raise Invalid("batch.batch_id: expected b + 24 hex digits")
    records = obj.get("records")
    if not isinstance(records, list):
        raise Invalid("batch.records: expected a list")
    if len(records) > MAX_RECORDS:
        raise Invalid(f"batch.records: more than {MAX_RECORDS} records")
    if set(obj) - {"schema", "batch_id", "records"}:
        raise Invalid("batch: unknown field")
    return batch_id, records
