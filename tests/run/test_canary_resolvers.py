"""Canaries given by name are resolved with the run's resolvers (issue 12 §3).

With ``--resolver`` and ``--no-system-resolver`` a dead system resolver must not reach the
health rounds: canary names go to the run's resolver, and the resolver canary (``auto``) asks
it too. On loopback: the world's DNS is the run's resolver; the system resolver is dead (every
``getaddrinfo`` hangs, as a resolver that drops queries does).
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from probe.classify.health import NetworkState, infer_state
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.measure import health
from probe.measure.settings import MeasureSettings, Resolver
from probe.run.engine import RunOptions, run_targets
from probe.targets import parse_url


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


@pytest.fixture
def dead_system_resolver(monkeypatch):
    """Every system lookup hangs; counts how often it was asked."""
    asked: list[str] = []

    async def hang(self, host, *args, **kwargs):
        asked.append(str(host))
        await asyncio.sleep(3600)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", hang)
    return asked


def _canaries(world: LoopbackWorld) -> list[tuple[str, str]]:
    ok = demo_urls(world)["ok"]  # https://ok.world.test:PORT/ — a name only the world knows
    return [("gateway", "127.0.0.1"), ("resolver", "auto"), ("domestic", ok),
            ("international", ok), ("control", ok)]


@pytest.mark.parametrize(("use_system", "expected"), [
    (False, NetworkState.WHOLE),  # the run's resolver answers: the canaries are up
    # a run that uses the dead system resolver (and no other) cannot resolve the names
    (True, NetworkState.SHUTDOWN_FULL),
])
def test_canary_names_go_to_the_runs_resolvers(world, dead_system_resolver, use_system,
                                               expected):
    host, port = world.dns_address
    sampler = health.HealthSampler(_canaries(world), 0.5, "ok.world.test",
                                   resolvers=[] if use_system else [(host, port)],
                                   use_system_resolver=use_system)
    samples = asyncio.run(sampler.round("before"))
    assert infer_state(samples) is expected, samples
    if not use_system:
        assert dead_system_resolver == []
        resolver = next(s for s in samples if s.scope.value == "resolver")
        assert resolver.failure is None  # "auto" asked the run's resolver, not resolv.conf


def test_a_dead_system_resolver_is_no_shutdown_with_resolver_and_no_system_resolver(
        tmp_path, world, dead_system_resolver):
    host, port = world.dns_address
    settings = MeasureSettings.with_timeout(1.0, use_system_resolver=False,
                                            resolvers=(Resolver(host, port),),
                                            ca_bundle=world.ca_pem)
    urls = demo_urls(world)
    options = RunOptions(concurrency=2, canaries=tuple(_canaries(world)))
    targets = [parse_url(urls["ok"]), parse_url(urls["refused"])]
    db = tmp_path / "p.db"
    asyncio.run(run_targets(targets, 2, settings, str(db), 2, None, options))
    con = sqlite3.connect(db)
    verdicts = {r[0] for r in con.execute("select verdict from verdicts where is_current = 1")}
    failed = con.execute("select count(*) from health_samples where failure is not null "
                         "and scope != 'gateway'").fetchone()[0]
    assert "shutdown" not in verdicts, verdicts
    assert failed == 0
    assert dead_system_resolver == []
