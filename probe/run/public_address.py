"""Learn the probe's public address before anything is stored: ask the control helpers who is
calling, so the store's scrubber knows the address from the first write (issue 13).

The scrubber (:mod:`probe.store.privacy`) also learns the address from every control answer
(``client_address``), but only as that answer arrives: a measurement whose helper failed, the
health samples and the run's own record could be stored before it. So a run first asks every
helper: ``GET /v1/health`` (whose answer carries ``client_address`` since issue 13), else, for
a helper that predates it, ``POST /v1/measure`` of the run's first input (every v1 answer
carries it). Answers are bounded (:data:`MAX_ANSWER` bytes) and a hostile or broken answer is
a reason, never an exception. When no address can be learnt, the caller stores no bodies and
records why (:func:`probe.run.session.execute`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import httpx

from probe import failures
from probe.control import client as control_client
from probe.control.protocol import PROTOCOL_VERSION, MeasureRequest

__all__ = ["Learnt", "learn"]

#: Most bytes read from a helper's answer here (a health answer is a few dozen).
MAX_ANSWER = 64 * 1024
#: The key of a helper's answer that holds the address it saw the request come from.
CLIENT_ADDRESS_KEY = "client_address"


@dataclass(frozen=True, slots=True)
class Learnt:
    """What the helpers said: ``addresses`` the probe's public addresses (empty = none
    learnt); ``problems`` one line per helper that did not say, naming it."""

    addresses: tuple[str, ...]
    problems: tuple[str, ...]


def _address(answer: Any) -> str | None:
    if not isinstance(answer, dict) or answer.get("version") != PROTOCOL_VERSION:
        return None
    value = answer.get(CLIENT_ADDRESS_KEY)
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


async def _get_json(client: httpx.AsyncClient, method: str, url: str,
                    **kw: Any) -> tuple[Any, str | None]:
    """A helper's JSON answer (at most :data:`MAX_ANSWER` bytes), or None and why not."""
    async with client.stream(method, url, **kw) as resp:
        raw = bytearray()
        async for chunk in resp.aiter_bytes():
            raw += chunk
            if len(raw) > MAX_ANSWER:
                return None, f"answer longer than {MAX_ANSWER} bytes"
        if resp.status_code != 200:
            return None, f"http status {resp.status_code}"
    try:
        return json.loads(bytes(raw)), None
    except (ValueError, RecursionError):
        return None, "answer is not JSON"


async def _ask(client: httpx.AsyncClient, helper: str, probe_url: str | None,
               token: str | None) -> tuple[str | None, str]:
    base = helper.rstrip("/")
    answer, why = await _get_json(client, "GET", base + "/v1/health")
    found = _address(answer)
    if found is not None or probe_url is None:
        return found, why or "its health answer names no client address"
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer, why = await _get_json(client, "POST", base + "/v1/measure", headers=headers,
                                  json=MeasureRequest(probe_url).to_json())
    found = _address(answer)
    return found, why or "its answer names no client address"


async def learn(helpers: tuple[str, ...], *, token: str | None = None,
                ca_bundle: str | None = None, control_ca: str | None = None,
                deadline: float = 10.0,
                probe_url: str | None = None) -> Learnt:
    """Ask every helper (in parallel, each within ``deadline`` seconds) for the address it
    sees the probe's requests come from. ``probe_url``: an input to ask a helper that does
    not say it in its health answer (None = do not). Never raises for network trouble."""
    if not helpers:
        return Learnt((), ())
    context = control_client.tls_context(ca_bundle, control_ca)  # checked by the session

    async def one(client: httpx.AsyncClient, helper: str) -> tuple[str | None, str]:
        try:
            async with asyncio.timeout(deadline):
                return await _ask(client, helper, probe_url, token)
        except Exception as e:  # noqa: BLE001 - every failure of a helper is a reason here
            return None, failures.classify_exception(e)

    async with httpx.AsyncClient(verify=context, trust_env=False, timeout=None) as client:
        results = await asyncio.gather(*(one(client, h) for h in helpers))
    addresses = tuple(dict.fromkeys(a for a, _ in results if a is not None))
    problems = tuple(f"{h}: {why}" for h, (a, why) in zip(helpers, results, strict=True)
                     if a is None)
    return Learnt(addresses, problems)
