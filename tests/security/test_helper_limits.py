"""The helper under hostile connections and requests (issue 13): caps, deadlines, sizes, JSON.

Before: no cap on connections (thousands of idle sockets exhausted descriptors), one 40 s
deadline for a whole request, oversized headers dropped without an answer, and a deeply
nested body raised RecursionError: a traceback in the log and no answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import socket
import threading
import time
from typing import Any

import pytest

from probe.control.policy import Policy
from probe.control.server import Limits, _client_key
from tests.security.helper_servers import HEALTH, exchange, helper_in_thread, post, read_answer

FAST = Limits(header_timeout=0.5, body_timeout=0.5, max_connections=40, per_client=8)


def _sockets(port: int, n: int, source: str) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        out.append(s)
    return out


def test_one_client_cannot_hold_more_than_its_share_and_health_still_answers():
    with helper_in_thread(limits=Limits(per_client=8)) as (server, port):
        idle = _sockets(port, 30, "127.0.0.9")
        try:
            time.sleep(0.3)
            assert server.open_connections <= 8
            assert server.stats["refused_per_client"] >= 22
            assert exchange(port, HEALTH, source="127.0.0.10")[0] == 200
        finally:
            for s in idle:
                s.close()


def test_many_clients_cannot_exhaust_the_total_and_health_still_answers():
    limits = Limits(max_connections=40, per_client=4)
    with helper_in_thread(limits=limits) as (server, port):
        idle = []
        try:
            for i in range(30):
                idle += _sockets(port, 4, f"127.0.1.{i + 1}")
            time.sleep(0.3)
            assert server.open_connections <= 40
            assert server.stats["evicted"] > 0
            for i in range(5):
                assert exchange(port, HEALTH, source=f"127.0.2.{i + 1}")[0] == 200
        finally:
            for s in idle:
                s.close()


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"GET /v1/health HTTP/1.1\r\nhost: h\r\n", 408),               # headers never end
        (b"POST /v1/measure HTTP/1.1\r\nhost: h\r\ncontent-length: 100\r\n\r\n{", 408),
        (b"", 408),                                                      # silent client
    ],
    ids=["slow-headers", "slow-body", "silent"],
)
def test_slow_clients_are_cut_at_the_deadline(payload, status):
    with helper_in_thread(limits=FAST) as (_, port):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            got, _ = read_answer(s)
        assert got == status
        assert time.monotonic() - started < 2.5


def test_a_slowloris_dripping_bytes_is_cut_at_the_header_deadline():
    with helper_in_thread(limits=FAST) as (_, port):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            try:
                for b in b"GET /v1/health HTTP/1.1\r\nx-a: " + b"a" * 100:
                    s.sendall(bytes([b]))
                    time.sleep(0.02)
            except OSError:
                pass
        assert time.monotonic() - started < 1.5


BIG = b"x" * 70_000


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"GET /v1/health HTTP/1.1\r\nhost: h\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n", 431,
         "headers too large"),
        (b"GET /v1/health HTTP/1.1\r\nhost: h\r\n" + b"x-h: 1\r\n" * 3000 + b"\r\n", 431,
         "headers too large"),
        (post("/v1/measure", BIG), 413, "request body too large"),
        (b"POST /v1/measure HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
         + b"10000\r\n" + b"x" * 0x10000 + b"\r\n10000\r\n" + b"x" * 0x10000 + b"\r\n0\r\n\r\n",
         413, "request body too large"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nhost: h\r\n\r\n", 414, "URI too long"),
        (b"GARBAGE\r\n\r\n", 400, "malformed HTTP request"),
        (b"GET /v1/health HTTP/1.1\r\nhost: h\r\nbad header\r\n\r\n", 400,
         "malformed HTTP request"),
        (b"GET /v1/health HTTP/1.1\r\nhost: h\r\ncontent-length: -1\r\n\r\n", 400,
         "malformed HTTP request"),
        (b"GET /v1/health HTTP/1.1\r\nhost: h\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
         400, "malformed HTTP request"),
    ],
    ids=["big-header", "many-headers", "big-body", "big-chunked", "long-uri", "garbage",
         "header-syntax", "negative-length", "two-lengths"],
)
def test_oversized_or_malformed_requests_get_their_status(raw, status, reason):
    with helper_in_thread() as (_, port):
        got, body = exchange(port, raw)
    assert got == status
    assert json.loads(body)["error"] == reason


HOSTILE_JSON = [
    (b"[" * 30_000 + b"]" * 30_000, "JSON nested deeper than 3"),
    (b'{"url": ' + b"[" * 50 + b"]" * 50 + b"}", "JSON nested deeper than 3"),
    (b'{"url": "https://a.example/", "x": {"y": {"z": {"w": 1}}}}', "JSON nested deeper than 3"),
    (b'{"url": ' + b"9" * 5000 + b"}", "number too long"),
    (b'{"url": 1e999999}', "number out of range"),
    (b'{"url": NaN}', "NaN is not a JSON number"),
    (b'{"url": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"url": "https://a.example/", "url": "http://127.0.0.1/"}', "duplicate key 'url'"),
    (b'{"url": 5}', "'url' must be a non-empty string of at most 2048"),
    (b'{"url": ""}', "'url' must be a non-empty string of at most 2048"),
    (b'{"url": "https://a.example/\\u0000"}', "'url' holds spaces or control characters"),
    (b'{"url": "https://a.example/ x"}', "'url' holds spaces or control characters"),
    (b'{"url": "https://a.example/", "addresses": {"a": 1}}',
     "'addresses' must be a list of at most 8 IPs"),
    (b'{"url": "https://a.example/", "addresses": [2130706433]}',
     "'addresses': '2130706433' is not an IP address"),
    (b'{"url": "https://a.example/", "addresses": ["1.1.1.1"]' + b', "throughput": "yes"}',
     "'throughput' must be true or false"),
    (b'{"url": "https://a.example/", "addresses": ' + json.dumps(["1.1.1.1"] * 9).encode()
     + b"}", "'addresses' must be a list of at most 8 IPs"),
    (b"\xff\xfe{}", "body is not UTF-8"),
    (b'{"url": "https://a.example/"', "body is not JSON"),
    (b"", "body must be a JSON object"),
    (b"[]", "body must be a JSON object"),
    (b'"\\ud800"', "body must be a JSON object"),
]


@pytest.mark.parametrize(("body", "reason"), HOSTILE_JSON,
                         ids=[f"json{i}" for i in range(len(HOSTILE_JSON))])
def test_hostile_json_is_a_400_with_one_line_and_no_traceback(body, reason, caplog):
    caplog.set_level(logging.DEBUG)
    with helper_in_thread() as (server, port):
        got, answer = exchange(port, post("/v1/measure", body))
    assert got == 400
    error = json.loads(answer)["error"]
    assert error == reason and "\n" not in error
    assert "Traceback" not in caplog.text and server.stats["errors"] == 0


def test_the_busy_limit_and_the_token_come_before_measuring(caplog):
    with helper_in_thread(Policy(token="s3cret", own=None)) as (_, port):
        got, _ = exchange(port, post("/v1/measure", b'{"url": "https://a.example/"}'))
        assert got == 401
        got, _ = exchange(port, post("/v1/measure", b'{"url": "https://a.example/"}',
                                     "authorization: Bearer s3cret\r\n"))
        assert got == 200


def _slow_measurer(release: threading.Event) -> Any:
    async def measure(req: Any, policy: Policy) -> dict[str, Any]:
        await asyncio.to_thread(release.wait, 10)  # the test's thread sets it
        return {"version": 1, "url": req.url, "failure": None}

    return measure


@pytest.mark.parametrize("policy", [Policy(own=None), Policy(own=None, max_concurrent=64)],
                         ids=["defaults", "a larger total"])
def test_one_client_cannot_take_every_measurement_slot(policy):
    """Before: with the defaults one client's 8 slow measurements (a probe's whole share)
    made every other probe's control a 503; now a client has 8 at once (429 beyond) and others
    still get theirs."""
    release = threading.Event()
    body = post("/v1/measure", b'{"url": "https://a.example/"}')
    with helper_in_thread(policy, _slow_measurer(release)) as (server, port), \
            concurrent.futures.ThreadPoolExecutor(12) as pool:
        held = [pool.submit(exchange, port, body, "127.0.0.9", 10.0) for _ in range(8)]
        deadline = time.monotonic() + 5
        while server._busy < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server._busy == 8
        ninth = exchange(port, body, "127.0.0.9")
        others = [pool.submit(exchange, port, body, f"127.0.0.{i}", 10.0) for i in (10, 11)]
        time.sleep(0.3)
        release.set()
        assert ninth[0] == 429 and b"too many measurements from this client" in ninth[1]
        assert [f.result()[0] for f in held] == [200] * 8
        assert [f.result()[0] for f in others] == [200, 200]


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("?", "?"),
])
def test_a_clients_share_is_counted_per_address_or_ipv6_slash_64(address, key):
    assert _client_key(address) == key
