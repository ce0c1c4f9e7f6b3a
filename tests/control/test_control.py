"""The control helper on loopback: real server, real measurements of the loopback world."""

from __future__ import annotations

import asyncio
import ipaddress
from functools import partial

import httpx
import pytest

from probe.control import client
from probe.control.measure import measure_request
from probe.control.protocol import MeasureRequest
from probe.control.server import ControlServer, Policy
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.measure.settings import MeasureSettings, Resolver

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def _settings(world) -> MeasureSettings:
    host, port = world.dns_address
    return MeasureSettings.with_timeout(
        1.0, use_system_resolver=False, resolvers=(Resolver(host, port),), ca_bundle=world.ca_pem
    )


def _policy(world, **kw) -> Policy:
    ports = frozenset({80, 443, world.http_port, world.https_port})
    return Policy(**{"allow": LOOPBACK, "ports": ports, **kw})


async def _serve_and(world, policy, fn, measurer=None):
    server = ControlServer(policy, measurer or partial(measure_request, settings=_settings(world)))
    host, port = await server.start("127.0.0.1", 0)
    try:
        return await fn(f"http://{host}:{port}")
    finally:
        await server.close()


def test_helper_measures_from_its_side(world):
    urls = demo_urls(world)

    async def go(helper):
        return await client.query_all(
            [helper], MeasureRequest(urls["ok"], ("127.0.0.1",), throughput=True), 10
        )

    (answer,) = asyncio.run(_serve_and(world, _policy(world), go))
    assert answer["control_failure"] is None
    assert answer["dns"]["addrs"] == ["127.0.0.1"]
    (endpoint,) = answer["endpoints"].values()
    assert endpoint["origin"] == "both" and endpoint["verified"] is True
    assert endpoint["chain_sha256"] and endpoint["issuers"]
    assert answer["http"]["status"] == 200 and answer["http"]["title"]
    assert answer["http"]["throughput_bps"] > 0


@pytest.mark.parametrize(
    ("name", "dns_failure", "http_failure"),
    [("nxdomain", "dns_nxdomain_error", None), ("refused", None, "connection_refused")],
)
def test_helper_sees_failures_too(world, name, dns_failure, http_failure):
    async def go(helper):
        return await client.query_all([helper], MeasureRequest(demo_urls(world)[name]), 10)

    (answer,) = asyncio.run(_serve_and(world, _policy(world), go))
    assert answer["control_failure"] is None
    assert answer["dns"]["failure"] == dns_failure
    assert answer["http"]["failure"] == http_failure


def test_private_targets_are_refused_without_an_allow_list(world):
    async def go(helper):
        async with httpx.AsyncClient() as c:
            r = await c.post(
                helper + "/v1/measure",
                json={"url": demo_urls(world)["ok"], "addresses": ["127.0.0.1"]},
            )
            return r.status_code, r.json()

    status, body = asyncio.run(_serve_and(world, Policy(ports=_policy(world).ports), go))
    # the name resolves to loopback: refused (protocol: 403), nothing dialled, and the answer
    # does not say which address the name has (no DNS oracle for internal names)
    assert status == 403 and body["refused"] is True
    assert set(body) == {"version", "url", "failure", "refused", "client_address"}
    assert body["failure"] == "address not allowed"


@pytest.mark.parametrize(
    ("request_kw", "policy_kw", "status"),
    [
        ({"json": {"url": "https://x.example:22/"}}, {}, 403),
        ({"content": b"{not json"}, {}, 400),
        ({"json": {"url": 5}}, {}, 400),
        ({"json": {"url": "https://x.example/", "addresses": ["nope"]}}, {}, 400),
        ({"json": {"url": "https://x.example/"}}, {"token": "s3cret"}, 401),
    ],
    ids=["port", "json", "url", "addresses", "token"],
)
def test_bad_requests_are_answered_with_a_status(world, request_kw, policy_kw, status):
    async def go(helper):
        async with httpx.AsyncClient() as c:
            return (await c.post(helper + "/v1/measure", **request_kw)).status_code

    assert asyncio.run(_serve_and(world, Policy(**policy_kw), go)) == status


def test_busy_helper_answers_503_and_the_client_records_it(world):
    gate = asyncio.Event()

    async def slow(req, policy):
        await gate.wait()
        return {"version": 1, "url": req.url, "failure": None}

    async def go(helper):
        first = asyncio.create_task(
            client.query_all([helper], MeasureRequest("https://a.example/"), 5)
        )
        await asyncio.sleep(0.2)
        second = await client.query_all([helper], MeasureRequest("https://b.example/"), 5)
        gate.set()
        return (await first)[0], second[0]

    first, second = asyncio.run(_serve_and(world, Policy(max_concurrent=1), go, slow))
    assert first["control_failure"] is None
    assert second["control_failure"] == "unknown_failure: http status 503"


def test_unreachable_helper_is_recorded_not_raised():
    answers = asyncio.run(
        client.query_all(["http://127.0.0.1:9"], MeasureRequest("https://a.example/"), 2)
    )
    assert answers[0]["control_failure"] == "connection_refused"


def test_health_endpoint(world):
    async def go(helper):
        async with httpx.AsyncClient() as c:
            return (await c.get(helper + "/v1/health")).json()

    assert asyncio.run(_serve_and(world, Policy(), go)) == {  # who asks: issue 13
        "version": 1, "status": "ok", "client_address": "127.0.0.1"}


def test_a_slow_helper_answer_is_waited_for_until_the_query_deadline(world):
    """httpx's own 5 s default must not cut an answer that arrives within our deadline."""

    async def slow(req, policy):
        await asyncio.sleep(6)
        return {"version": 1, "url": req.url, "failure": None}

    async def go(helper):
        return await client.query_all([helper], MeasureRequest("https://a.example/"), 10)

    (answer,) = asyncio.run(_serve_and(world, Policy(), go, slow))
    assert answer["control_failure"] is None


# --- the optional QUIC check (issue 15): both directions of old and new --------------------


@pytest.mark.parametrize(("quic", "url_key", "h3", "expect"), [
    # a new probe asks a new helper: one handshake per address, its outcome
    (1, "ok", True, [None]),
    (1, "ok", False, ["generic_timeout_error"]),  # nothing speaks QUIC there
    (7, "ok", True, [None]),  # a future version asked: the helper runs the one it knows
    # an old probe (no field) gets the answer it always got: no "quic" key
    (0, "ok", True, None),
    # not an https web request: no QUIC check
    (1, "tcp", True, None),
])
def test_helper_quic_check(world, quic, url_key, h3, expect):
    from probe.lab.world.h3_server import serving

    urls = demo_urls(world)
    url = urls["ok"] if url_key == "ok" else f"tcp://127.0.0.1:{world.https_port}"
    chain, key = world.pki.issue(["quic.test"], "valid")

    async def go(helper):
        request = MeasureRequest(url, ("127.0.0.1",), quic=quic)
        if not h3:
            return await client.query_all([helper], request, 10)
        async with serving("127.0.0.1", world.https_port, chain, key):
            return await client.query_all([helper], request, 10)

    (answer,) = asyncio.run(_serve_and(world, _policy(world), go))
    assert answer["control_failure"] is None
    if expect is None:
        assert "quic" not in answer and "quic_check" not in answer
        return
    assert answer["quic_check"] == 1
    assert [(e["ip"], e["port"]) for e in answer["quic"]] == [("127.0.0.1", world.https_port)]
    assert [e["failure"] for e in answer["quic"]] == expect
    if expect == [None]:
        assert answer["quic"][0]["alpn"] == "h3" and answer["quic"][0]["handshake_time"] > 0


@pytest.mark.parametrize(("body", "quic"), [
    ({"url": "https://a.test/"}, 0),  # an old probe's request
    ({"url": "https://a.test/", "quic": 1}, 1),
    ({"url": "https://a.test/", "quic": 0}, 0),
    # a field this helper does not know is skipped, as a helper that predates "quic" skips it
    ({"url": "https://a.test/", "quic": 1, "some_future_field": [1]}, 1),
])
def test_quic_field_parses_and_old_requests_stay_valid(body, quic):
    assert MeasureRequest.from_json(body).quic == quic


@pytest.mark.parametrize("bad", [True, -1, "1", 1.0, 10_000])
def test_quic_field_must_be_a_version_number(bad):
    from probe.control.protocol import BadRequest

    with pytest.raises(BadRequest, match="quic"):
        MeasureRequest.from_json({"url": "https://a.test/", "quic": bad})


def test_a_request_without_quic_is_the_old_bytes():
    """A probe not asking for QUIC sends exactly what it sent before issue 15."""
    assert MeasureRequest("https://a.test/", ("192.0.2.1",)).to_json() == {
        "url": "https://a.test/", "addresses": ["192.0.2.1"], "throughput": False}
    assert MeasureRequest("https://a.test/", quic=1).to_json()["quic"] == 1
