"""Canary sampling on loopback: each scope's question, and the state the round shows."""

from __future__ import annotations

import asyncio
import socket

import pytest

from probe.classify.health import NetworkState, infer_state
from probe.lab.world.loopback import LoopbackWorld, demo_world
from probe.measure import health


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def test_a_round_samples_every_scope(world):
    dns_host, dns_port = world.dns_address
    canaries = [
        ("gateway", "127.0.0.1"),  # nothing on :53 -> refused, which proves the link is up
        ("resolver", f"{dns_host}:{dns_port}"),
        ("domestic", f"https://127.0.0.1:{world.https_port}/"),
        ("international", f"https://127.0.0.9:{world.https_port}/"),  # nothing listens
        ("control", f"http://127.0.0.1:{world.http_port}/"),
    ]
    samples = asyncio.run(health.HealthSampler(canaries, 1.0, "ok.world.test").round("before"))
    got = {s.scope.value: s.failure for s in samples}
    assert got == {"gateway": None, "resolver": None, "domestic": None,
                   "international": "connection_refused", "control": None}
    assert len({s.at for s in samples}) == 1 and all(s.phase == "before" for s in samples)
    assert infer_state(samples) is NetworkState.WHOLE


def test_silent_resolver_times_out_within_the_step_deadline():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        sampler = health.HealthSampler([("resolver", f"127.0.0.1:{port}")], 0.5)
        (sample,) = asyncio.run(sampler.round("during"))
    finally:
        silent.close()
    assert sample.failure == "generic_timeout_error"
    assert sample.elapsed < 1.5


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("Iface\tDestination\tGateway\tFlags\n"
         "eth0\t00000000\t0101A8C0\t0003\neth0\t0001A8C0\t00000000\t0001\n", "192.168.1.1"),
        ("Iface\tDestination\tGateway\tFlags\neth0\t0001A8C0\t00000000\t0001\n", None),
    ],
)
def test_default_gateway_from_the_routing_table(tmp_path, route, expected):
    p = tmp_path / "route"
    p.write_text(route)
    assert health.default_gateway(str(p)) == expected


def test_system_resolver_from_resolv_conf(tmp_path):
    p = tmp_path / "resolv.conf"
    p.write_text("# comment\nsearch lan\nnameserver 10.0.0.53\nnameserver 1.1.1.1\n")
    assert health.system_resolver(str(p)) == "10.0.0.53"
    assert health.system_resolver(str(tmp_path / "missing")) is None
