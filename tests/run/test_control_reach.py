"""Reaching the control helper has the targets' own connect + TLS budget (probe/run/engine.py,
``_control_client``): when the helper cannot be reached — a cut network, a blackholed helper —
the query fails after that budget instead of waiting out the whole measuring deadline (~19 s a
target). Real sockets on loopback: a listener that accepts TCP and never speaks TLS, and one
that never accepts (its backlog is full). Helpers that answer: every end-to-end run test."""

from __future__ import annotations

import asyncio
import time

import pytest

from probe.control import client as control_client
from probe.control.protocol import MeasureRequest
from probe.measure.settings import MeasureSettings
from probe.run.engine import _control_client
from tests.helperthread import full_backlog

DEADLINE = 30.0  # what a query may take in all (the helper measures a dead site meanwhile)


async def _silent_tls_helper() -> tuple[asyncio.Server, int]:
    """Accepts TCP, then says nothing: the TLS handshake never completes."""
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the probe gives up
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("which", ["tls_never_answers", "syn_dropped"])
def test_an_unreachable_helper_fails_within_the_connect_budget(which):
    settings = MeasureSettings.with_timeout(0.5)  # connect 0.5 s + TLS 0.5 s

    async def ask(port: int) -> tuple[dict, float]:
        async with _control_client(settings) as client:
            start = time.monotonic()
            answer = await control_client.query(
                client, f"https://127.0.0.1:{port}", MeasureRequest("https://a.example/"),
                DEADLINE)
            return answer, time.monotonic() - start

    async def silent() -> tuple[dict, float]:
        server, port = await _silent_tls_helper()
        try:
            return await ask(port)
        finally:
            server.close()

    if which == "tls_never_answers":
        answer, took = asyncio.run(silent())
    else:
        with full_backlog() as port:
            answer, took = asyncio.run(ask(port))
    assert answer["control_failure"], answer
    assert took < 5.0, f"waited {took:.1f} s for an unreachable helper (deadline {DEADLINE} s)"
