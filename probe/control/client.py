"""Client side of the control helper: ask one or more helpers about a URL, never fail the run.

Each helper's answer is returned as the v1 response dict with two fields added: ``control``
(which helper answered) and ``control_failure`` (None = the helper answered; otherwise a failure
string saying why there is no answer). A failing helper is recorded, never raised.

Helpers are reached over HTTPS like any site (:func:`tls_context`): the system's trust
anchors plus the run's ``--ca-bundle``, or, with ``--control-ca``, only the given PEM (the
helper's private CA or its own self-signed certificate: a pin).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import httpx

from probe import failures
from probe.control.protocol import PROTOCOL_VERSION, MeasureRequest


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
    """POST ``request`` to ``helper``'s ``/v1/measure``; returns the answer or a failure record."""
    url = helper.rstrip("/") + "/v1/measure"
    headers = {"authorization": f"Bearer {token}"} if token else {}
    base: dict[str, Any] = {"control": helper, "version": PROTOCOL_VERSION}
    try:
        async with asyncio.timeout(deadline):
            resp = await client.post(url, json=request.to_json(), headers=headers)
            raw = await resp.aread()
    except Exception as e:  # noqa: BLE001 - every network failure is a result here
        return {**base, "control_failure": failures.classify_exception(e)}
    if resp.status_code != 200:
        return {**base, "control_failure": f"{failures.UNKNOWN_PREFIX}http status "
                f"{resp.status_code}"}
    try:
        data = json.loads(raw)
    except ValueError:
        return {**base, "control_failure": f"{failures.UNKNOWN_PREFIX}answer is not JSON"}
    if not isinstance(data, dict) or data.get("version") != PROTOCOL_VERSION:
        return {**base, "control_failure": f"{failures.UNKNOWN_PREFIX}unsupported version"}
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
