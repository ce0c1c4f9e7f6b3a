"""``probe upload``: send the probe's outbox to a collector, in compressed batches.

Rules (issue 16, docs/collector.md):

* What is sent is what the probe's database holds, read back through the store: the scrubbed
  records, in the lossless ``probe.jsonl/1`` layout (:mod:`probe.export.jsonl`), with the run's
  row and the current verdict. Nothing else about the volunteer.
* Batches are claimed in the outbox before they are sent and marked sent only on the
  collector's acknowledgement (:mod:`probe.store.outbox`); the collector de-duplicates by
  measurement id. So a kill -9 anywhere loses nothing and stores nothing twice: the next
  ``probe upload`` resends the unacknowledged batch under the same id.
* Temporary failures (network errors, 429, 5xx) are retried with exponential back-off and
  full jitter (``Retry-After`` honoured), ``attempts`` times per batch, then the upload stops
  with the queue intact. A token refused (401/403) stops at once. 413 halves the batch.
* HTTPS to anything but loopback: a token never crosses a network in clear text.
"""

from __future__ import annotations

import json
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from probe.collector import codec
from probe.collector.receiver import is_loopback
from probe.collector.validation import UPLOAD_SCHEMA
from probe.errors import ProbeError, UsageError
from probe.export import jsonl
from probe.store import Store
from probe.store.outbox import Batch, Outbox, OutboxStatus

DEFAULT_BATCH = 200


class UploadError(ProbeError):
    """The upload stopped; what was acknowledged stays marked, the rest stays queued."""


@dataclass(slots=True)
class UploadResult:
    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    retries: int = 0
    pending: int = 0
    latencies: list[float] = field(default_factory=list)  # s per acknowledged POST
    encoding: str = ""  # the batches' content encoding


@dataclass(frozen=True, slots=True)
class UploadOptions:
    batch_size: int = DEFAULT_BATCH
    attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    timeout: float = 60.0
    ca_bundle: str | None = None
    compress: bool = True
    #: ``auto``: zstd when the collector advertises it and this side has it, else gzip;
    #: ``zstd``, ``gzip``; ``compress`` False = ``identity``
    encoding: str = "auto"


def check_url(url: str) -> str:
    """The collector's base URL; UsageError unless https (or http to loopback)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--collector {url!r}: expected https://HOST[:PORT]")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(f"--collector {url!r}: plain http only to loopback; use https")
    return url.rstrip("/")


def status(db_path: str) -> OutboxStatus:
    with Store.open(db_path) as store:
        return Outbox(store).status()


def batch_body(store: Store, outbox: Outbox, batch: Batch) -> tuple[bytes, list[str]]:
    """The JSON of one batch, and the ids of the batch no longer stored (deleted since)."""
    context = outbox.upload_context(batch.measurement_ids)
    verdicts = store.current_verdicts(list(batch.measurement_ids))
    records = []
    for mid, m in store.measurements_by_id(batch.measurement_ids):
        run, created_at = context[mid]
        v = verdicts.get(mid)
        records.append({
            "schema": jsonl.SCHEMA,
            "measurement_id": mid,
            "run": {k: run.get(k) for k in jsonl.RUN_FIELDS},
            "target": jsonl.to_jsonable(m.target),
            "started_at": m.started_at,
            "finished_at": m.finished_at,
            "dns": jsonl.to_jsonable(m.dns),
            "tcp": jsonl.to_jsonable(m.tcp),
            "tls": jsonl.to_jsonable(m.tls),
            "http": jsonl.to_jsonable(m.http),
            "control": list(m.control),
            "extra": m.extra,
            "verdict": None if v is None else {
                "verdict": v.verdict.value, "method": v.method, "confidence": v.confidence,
                "evidence": v.evidence, "analysis_version": v.analysis_version,
                "details": v.details, "created_at": created_at,
            },
        })
    gone = sorted(set(batch.measurement_ids) - {r["measurement_id"] for r in records})
    body = jsonl.dumps({"schema": UPLOAD_SCHEMA, "batch_id": batch.batch_id,
                        "records": records}).encode()
    return body, gone


def upload(db_path: str, url: str, token: str, options: UploadOptions | None = None, *,
           on_event: Callable[[str], None] = lambda _: None,
           sleep: Callable[[float], None] = time.sleep,
           rng: random.Random | None = None,
           transport: httpx.BaseTransport | None = None) -> UploadResult:
    """Send everything pending; see the module docstring. UploadError when it had to stop."""
    options = options or UploadOptions()
    base = check_url(url)
    rng = rng or random.Random()
    result = UploadResult()
    size = max(1, options.batch_size)
    verify: Any = True
    if options.ca_bundle:
        try:
            verify = ssl.create_default_context(cafile=options.ca_bundle)
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"--ca-bundle {options.ca_bundle}: {e}") from e
    with Store.open(db_path) as store, httpx.Client(
            timeout=options.timeout, verify=verify, transport=transport,
            headers={"authorization": f"Bearer {token}"}) as client:
        outbox = Outbox(store)
        encoding = choose_encoding(client, base, options)
        result.encoding = encoding
        while True:
            batch = outbox.claim(size)
            if batch is None:
                break
            body, gone = batch_body(store, outbox, batch)
            if gone:  # deleted from the database since it was queued: nothing to send
                outbox.mark_sent(batch, (), {g: "deleted before upload" for g in gone})
            if len(batch.measurement_ids) == len(gone):
                continue
            payload = codec.compress(body, encoding)
            answer = _send(client, base, payload, encoding, options, batch, outbox, result,
                           size, on_event, sleep, rng)
            if answer is None:  # 413: smaller batches
                outbox.mark_sent(batch, ())  # unclaim
                if size == 1:
                    outbox.mark_sent(batch, (), {m: "too large for the collector"
                                                 for m in batch.measurement_ids})
                    result.refused += len(batch.measurement_ids)
                size = max(1, size // 2)
                continue
            acked = [*answer.get("accepted", []), *answer.get("duplicates", [])]
            refused = {str(k): str(v) for k, v in (answer.get("refused") or {}).items()}
            outbox.mark_sent(batch, acked, refused)
            result.batches += 1
            result.accepted += len(answer.get("accepted", []))
            result.duplicates += len(answer.get("duplicates", []))
            result.refused += len(refused)
            on_event(f"batch {batch.batch_id}: {len(answer.get('accepted', []))} accepted, "
                     f"{len(answer.get('duplicates', []))} duplicates, {len(refused)} refused")
        result.pending = outbox.status().pending
    return result


def choose_encoding(client: httpx.Client, base: str, options: UploadOptions) -> str:
    """The batches' content encoding (:class:`UploadOptions`); ``auto`` asks the collector
    (``GET /v1/health``: its ``encodings``), and an answer that does not say means gzip."""
    if not options.compress:
        return codec.IDENTITY
    mine = codec.encodings()
    if options.encoding != "auto":
        if options.encoding not in mine:
            raise UsageError(f"--encoding {options.encoding}: not available here (have "
                             f"{', '.join(mine)}; zstd needs the zstandard package)")
        return options.encoding
    if codec.ZSTD not in mine:
        return codec.GZIP
    try:
        r = client.get(f"{base}/v1/health")
        offered = r.json().get("encodings", []) if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        offered = []
    return codec.ZSTD if isinstance(offered, list) and codec.ZSTD in offered else codec.GZIP


def _send(client: httpx.Client, base: str, payload: bytes, encoding: str,
          options: UploadOptions, batch: Batch, outbox: Outbox, result: UploadResult, size: int,
          on_event: Callable[[str], None], sleep: Callable[[float], None],
          rng: random.Random) -> dict[str, Any] | None:
    """POST one batch until acknowledged; its JSON answer, None for 413."""
    headers = {"content-type": "application/json"}
    if encoding != codec.IDENTITY:
        headers["content-encoding"] = encoding
    for attempt in range(options.attempts):
        retry_after: float | None = None
        began = time.monotonic()
        try:
            r = client.post(f"{base}/v1/batches", content=payload, headers=headers)
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        else:
            if r.status_code == 200:
                try:
                    answer = r.json()
                except ValueError:
                    answer = None
                if isinstance(answer, dict) and answer.get("batch_id") == batch.batch_id:
                    result.latencies.append(time.monotonic() - began)
                    return answer
                error = "the collector's answer is not an acknowledgement of this batch"
            elif r.status_code == 413 and size > 1:
                return None
            elif r.status_code in (401, 403):
                message = f"collector refused the token: {_error(r)}"
                outbox.note_failure(batch, message)
                raise UploadError(message + " (enrol again: probe collector enroll)")
            elif r.status_code in (400, 413):
                message = f"collector refused batch {batch.batch_id}: {_error(r)}"
                outbox.note_failure(batch, message, release=True)
                raise UploadError(message)
            else:
                error = f"HTTP {r.status_code}: {_error(r)}"
                if r.status_code == 429:
                    try:
                        retry_after = float(r.headers.get("retry-after", ""))
                    except ValueError:
                        retry_after = None
        outbox.note_failure(batch, error)
        if attempt + 1 >= options.attempts:
            raise UploadError(f"upload to {base} failed {options.attempts} times, last: "
                              f"{error}; {len(batch.measurement_ids)} measurements stay queued")
        cap = min(options.max_delay, options.base_delay * 2 ** attempt)
        delay = rng.uniform(0, cap) if retry_after is None else retry_after + rng.uniform(0, 1)
        result.retries += 1
        on_event(f"{error}; retrying in {delay:.1f}s")
        sleep(delay)
    raise AssertionError("unreachable")


def _error(r: httpx.Response) -> str:
    try:
        return str(json.loads(r.content).get("error", r.reason_phrase))[:200]
    except (ValueError, AttributeError):
        return r.reason_phrase
