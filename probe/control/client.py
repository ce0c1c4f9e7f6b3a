"""Client side of the control helper: ask one or more helpers about a URL, never fail the run.

Each helper's answer is returned as the v1 response dict with two fields added: ``control``
(which helper answered) and ``control_failure`` (None = the helper answered; otherwise a failure
string saying why there is no answer). A failing helper is recorded, never raised.

Helpers are reached over HTTPS like any site (:func:`tls_context`): the system's trust
anchors plus the run's ``--ca-bundle``, or, with ``--control-ca``, only the given PEM (the
helper's private CA or its own self-signed certificate: a pin).

A helper is a remote party the probe does not control (issue 13: it may be hostile or broken),
so its answer is read within bounds before it is believed: at most :data:`MAX_ANSWER_BYTES`
bytes, streamed (never read whole, a longer answer is abandoned at the cap), not
content-encoded (the probe asks for ``identity``: no decompression bomb), within the query's
deadline (a slow drip times out), JSON nested at most :data:`MAX_DEPTH` deep with at most
:data:`MAX_ITEMS` containers and elements (checked *before* parsing, so a deeply nested answer
never reaches the recursive parser), and the top-level fields of the protocol
(:mod:`probe.control.protocol`) of the right JSON types. An answer outside these bounds is a
failed control (``control_failure`` = an ``unknown_failure: …`` string naming the bound), so
the verdict is ``inconclusive`` (``control_failed``), never ``blocked``, and the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from itertools import accumulate
from typing import Any

import httpx

from probe import failures
from probe.control.protocol import PROTOCOL_VERSION, MeasureRequest

#: Most bytes of one answer. A real answer is a few kilobytes to a few hundred (headers,
#: certificate hashes, redirect chains of one page); 2 MiB leaves room and bounds memory.
MAX_ANSWER_BYTES = 2 * 1024 * 1024
#: Deepest nesting of a real answer is 4 (``endpoints`` → ``ip:port`` → ``chain_sha256`` →
#: one hash); anything deeper than this is not a v1 answer.
MAX_DEPTH = 16
#: Most JSON containers plus separators (≈ elements) in one answer.
MAX_ITEMS = 100_000

#: The top-level fields of a v1 answer and the JSON types each may have (None = null).
_FIELD_TYPES: dict[str, tuple[type | None, ...]] = {
    "version": (int,),
    "url": (str, None),
    "failure": (str, None),
    "test_name": (str, None),
    "dns": (dict, None),
    "endpoints": (dict, None),
    "http": (dict, None),
    "elapsed": (int, float, None),
    "client_address": (str, None),
}

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"[]{},")
_OPEN = frozenset(b"[{")


class AnswerRejected(Exception):
    """Raised (and caught here) when an answer is outside the bounds; the text says which."""


def _failure(text: str) -> str:
    return failures.unknown(text)


def check_structure(raw: bytes) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` or with more than :data:`MAX_ITEMS`
    containers and elements, without parsing it (strings are blanked out first, so brackets
    inside them do not count). Raises AnswerRejected."""
    skeleton = _STRING.sub(b"", raw).translate(None, _NOT_STRUCTURE)
    if len(skeleton) > MAX_ITEMS:
        raise AnswerRejected(f"control answer has more than {MAX_ITEMS} elements")
    brackets = skeleton.replace(b",", b"")
    depth = max(accumulate(1 if b in _OPEN else -1 for b in brackets), default=0)
    if depth > MAX_DEPTH:
        raise AnswerRejected(f"control answer nested deeper than {MAX_DEPTH}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_answer(raw: bytes) -> dict[str, Any]:
    """The answer's JSON object, checked against the bounds and the v1 field types.

    Raises AnswerRejected saying what is wrong (the caller records it as the failure)."""
    check_structure(raw)
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise AnswerRejected("control answer is not JSON") from None
    if not isinstance(data, dict) or data.get("version") != PROTOCOL_VERSION:
        raise AnswerRejected("unsupported version")
    for name, types in _FIELD_TYPES.items():
        if name not in data:
            continue
        value = data[name]
        ok = any(value is None if t is None else
                 isinstance(value, t) and not isinstance(value, bool) for t in types)
        if not ok:
            raise AnswerRejected(f"control answer field {name!r} has the wrong type")
    return data


async def _read_bounded(resp: httpx.Response) -> bytes:
    """The body of ``resp``, streamed; AnswerRejected past :data:`MAX_ANSWER_BYTES`."""
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise AnswerRejected("control answer is content-encoded")
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise AnswerRejected(f"control answer larger than {MAX_ANSWER_BYTES} bytes")
    body = bytearray()
    async for chunk in resp.aiter_raw():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise AnswerRejected(f"control answer larger than {MAX_ANSWER_BYTES} bytes")
    return bytes(body)


def tls_context(ca_bundle: str | None = None, control_ca: str | None = None) -> ssl.SSLContext:
    """The TLS client context for helpers: ``control_ca`` alone when given (a pinned
    certificate or private CA; the system's anchors are then not trusted), else the system's
    anchors plus ``ca_bundle``. Raises OSError/ssl.SSLError for an unreadable file."""
    if control_ca:
        context = ssl.create_default_context(cafile=control_ca)
    else:
        context = ssl.create_default_context()
        if ca_bundle:
            context.load_verify_locations(ca_bundle)
    return context


async def query(
    client: httpx.AsyncClient,
    helper: str,
    request: MeasureRequest,
    deadline: float,
    token: str | None = None,
) -> dict[str, Any]:
    """POST ``request`` to ``helper``'s ``/v1/measure``; returns the answer or a failure record
    (never raises for anything the helper or the network does; see the module docstring)."""
    url = helper.rstrip("/") + "/v1/measure"
    headers = {"accept-encoding": "identity"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    base: dict[str, Any] = {"control": helper, "version": PROTOCOL_VERSION}
    try:
        async with asyncio.timeout(deadline):
            async with client.stream("POST", url, json=request.to_json(),
                                     headers=headers) as resp:
                if resp.status_code != 200:
                    return {**base, "control_failure": _failure(
                        f"http status {resp.status_code}")}
                raw = await _read_bounded(resp)
        data = parse_answer(raw)
    except AnswerRejected as e:
        return {**base, "control_failure": _failure(str(e))}
    except Exception as e:  # noqa: BLE001 - every network failure is a result here
        return {**base, "control_failure": failures.classify_exception(e)}
    return {**data, "control": helper, "control_failure": None}


async def query_all(
    helpers: list[str],
    request: MeasureRequest,
    deadline: float,
    token: str | None = None,
    verify: str | bool = True,
) -> tuple[dict[str, Any], ...]:
    """Query every helper in parallel; one answer (or failure record) per helper, in order."""
    if not helpers:
        return ()
    async with httpx.AsyncClient(verify=verify, trust_env=False, timeout=None) as client:
        answers = await asyncio.gather(
            *(query(client, h, request, deadline, token) for h in helpers)
        )
    return tuple(answers)


def with_quic(answer: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    """``answer`` (a helper's answer about a target) with the QUIC entries of ``again`` (the
    same helper's answer to the target's ``"quic"`` request, :mod:`probe.control.protocol`);
    ``answer`` unchanged when ``again`` has none (a failed request, a helper without QUIC)."""
    entries = again.get("quic")
    if not isinstance(entries, list):
        return answer
    return {**answer, "quic": entries, "quic_check": again.get("quic_check")}
