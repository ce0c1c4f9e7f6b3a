"""Privacy: no measurement is stored before the scrubber knows the probe's public address
(issue 13). A real control helper and an echoing site on loopback; the probe's "public"
address is 127.0.0.1 (what the helper sees).

Before: the address was learnt only from each measurement's own control answer, so a helper
that refused (or failed) a request left that measurement stored with the echoed address.
Now it is learnt at start-up from the helper's health answer; when it cannot be learnt, no
body is stored, the run says so and records why.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from probe.control.server import ControlServer
from probe.lab.world.loopback import LoopbackWorld, simple_world
from probe.run import public_address
from probe.run.session import RunRequest, execute
from tests.factories import every_stored_value
from tests.helperthread import world_helper

ME = "127.0.0.1"
SITE_IP = "127.0.0.2"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    config = simple_world(tmp_path_factory.mktemp("pki"), {"echo.test": {"behaviour": "echo"}},
                          ip=SITE_IP)
    with LoopbackWorld(config) as w:
        yield w


def _request(world: LoopbackWorld, db: Path, controls: tuple[str, ...]) -> RunRequest:
    host, port = world.dns_address
    return RunRequest(
        sources=(f"http://echo.test:{world.http_port}/", f"https://echo.test:{world.https_port}/"),
        db=db, resolvers=(f"{host}:{port}",), use_system_resolver=False,
        ca_bundle=Path(world.ca_pem), timeout=2.0, controls=controls, concurrency=2)


def _bodies_and_settings(db: Path) -> tuple[list[bytes | None], dict]:
    con = sqlite3.connect(db)
    try:
        bodies = [r[0] for r in con.execute("select body from http_requests")]
        settings = json.loads(con.execute("select settings from runs").fetchone()[0])
    finally:
        con.close()
    return bodies, settings


def test_the_address_is_learnt_before_the_first_write(world, tmp_path):
    """The helper refuses every measurement (a port it may not measure), so no control
    answer carries the address; its health answer does, and nothing stored holds it."""
    db = tmp_path / "p.db"
    events: list[tuple[str, str]] = []
    with world_helper(world, frozenset({1}), dns_linger=None) as helper:
        outcome = execute(_request(world, db, (helper.url,)),
                          on_event=lambda t, x: events.append((t, x)))
    assert outcome.progress is not None and outcome.progress.done == 2
    assert not [e for e in events if e[0] == "notice"], events
    bodies, settings = _bodies_and_settings(db)
    assert any(b and b"[scrubbed]" in b for b in bodies)  # the echo was there, and scrubbed
    assert settings["store_bodies"] is True and "privacy" not in settings
    for table, col, value in every_stored_value(db):
        raw = value if isinstance(value, bytes) else str(value).encode()
        assert ME.encode() not in raw, f"{table}.{col} holds {ME}: {value!r:.200}"


@pytest.mark.parametrize("controls", [(), ("http://127.0.0.1:1",)])
def test_no_address_no_bodies_and_the_reason_is_recorded(world, tmp_path, controls):
    db = tmp_path / "p.db"
    events: list[tuple[str, str]] = []
    outcome = execute(_request(world, db, controls), on_event=lambda t, x: events.append((t, x)))
    assert outcome.progress is not None and outcome.progress.done == 2
    notices = [x for t, x in events if t == "notice"]
    assert len(notices) == 1 and "bodies are not stored" in notices[0]
    if controls:
        assert "127.0.0.1:1" in notices[0] and "connection_refused" in notices[0]
    bodies, settings = _bodies_and_settings(db)
    assert bodies and all(b is None for b in bodies)
    assert settings["store_bodies"] is False and settings["privacy"] == notices[0]


def test_an_address_given_is_enough(world, tmp_path):
    db = tmp_path / "p.db"
    events: list[tuple[str, str]] = []
    request = _request(world, db, ())
    from dataclasses import replace
    execute(replace(request, own_addresses=(ME,)), on_event=lambda t, x: events.append((t, x)))
    bodies, _ = _bodies_and_settings(db)
    assert not [e for e in events if e[0] == "notice"]
    assert any(b and b"[scrubbed]" in b for b in bodies)


def test_learn_asks_every_helper_and_bounds_the_answers(world):
    with world_helper(world, frozenset({1}), dns_linger=None) as helper:
        learnt = asyncio.run(public_address.learn((helper.url, "http://127.0.0.1:1"),
                                                  deadline=5))
    assert learnt.addresses == (ME,)
    assert learnt.problems == ("http://127.0.0.1:1: connection_refused",)


class _OldHelper(ControlServer):
    """A helper from before issue 13: its health answer does not say who is asking."""

    async def _route(self, request, body, peer=None):  # type: ignore[no-untyped-def]
        status, answer = await super()._route(request, body, peer)
        if request.target.startswith(b"/v1/health"):
            answer = {k: v for k, v in answer.items() if k != "client_address"}
        return status, answer


def test_an_older_helper_is_asked_through_a_measurement(world):
    with world_helper(world, frozenset({world.http_port}), _OldHelper,
                      dns_linger=None) as helper:
        url = f"http://echo.test:{world.http_port}/"
        learnt = asyncio.run(public_address.learn((helper.url,), deadline=10, probe_url=url))
        assert learnt.addresses == (ME,)
        silent = asyncio.run(public_address.learn((helper.url,), deadline=10))
    assert silent.addresses == () and "names no client address" in silent.problems[0]


@pytest.mark.parametrize(("answer", "why"), [
    (b'{"x": "' + b"y" * 200_000 + b'"}', "longer than"),
    (b"[" * 30_000 + b"]" * 30_000, "not JSON"),  # nested past the parser's recursion limit
    (b"not json", "not JSON"),
    (b'{"version": 1, "client_address": "not an address"}', "names no client address"),
    (b'{"version": 1, "client_address": ["127.0.0.1"]}', "names no client address"),
])
def test_a_hostile_health_answer_is_a_reason_never_a_crash(answer, why):
    async def go() -> public_address.Learnt:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, ME, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await public_address.learn((f"http://{ME}:{port}",), deadline=5)
        finally:
            server.close()
            await server.wait_closed()

    learnt = asyncio.run(go())
    assert learnt.addresses == () and why in learnt.problems[0], learnt.problems
