"""The hostile world end to end: a whole run against every hostile peer is harmless.

The hostile world (:func:`probe.lab.world.hostile.hostile_world`) runs on loopback in this process;
the probe runs in a child process (this file, run as a script) so that its peak memory is its
own: ``ru_maxrss`` after the imports is the baseline, ``ru_maxrss`` after the run the peak.
The child runs :func:`probe.run.engine.run_targets` over every hostile URL into a temporary
database with 2-second step deadlines, then reads everything back from the store and reports
JSON on stdout. The test asserts that the run finished within its deadline bound, that every
observation respected its step's deadline, that every target got a verdict, that every
failure is a known string, that nothing raised or logged a traceback, that the peak
memory stayed within :data:`MEMORY_BOUND_MB` of the baseline, and that a second identical run
raised it by less than :data:`LEAK_BOUND_MB`. It prints the behaviour →
verdict table and the peak memory (``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

STEP = 2.0  # seconds: every per-step deadline of the hostile run
DNS_LINGER = 0.3
CONCURRENCY = 16
MEMORY_BOUND_MB = 100  # peak RSS growth of the probe process over its post-import baseline
LEAK_BOUND_MB = 20  # further peak growth allowed over a second identical run
SLACK = 1.0  # seconds of scheduling slack on a busy 2-core machine

# A step's observation may take its deadline plus: DNS the linger and the UDP safety second,
# HTTP the one second allowed for closing the exchange.
STEP_LIMITS = {"dns": STEP + DNS_LINGER + 1.0, "tcp": STEP, "tls": STEP, "http": STEP + 1.0}

pytestmark = pytest.mark.timeout(180)


def _settings(resolver: tuple[str, int], ca_pem: str) -> Any:
    from probe.measure.settings import MeasureSettings, Resolver

    return MeasureSettings(
        use_system_resolver=False, resolvers=(Resolver(*resolver),), ca_bundle=ca_pem,
        dns_timeout=STEP, dns_linger=DNS_LINGER, connect_timeout=STEP, tls_timeout=STEP,
        http_timeout=STEP)


def _target_bound(settings: Any) -> float:
    """The longest one single-hop target may take: DNS, then per address (in parallel) the
    connect (and its retries after a timeout) and TLS, the innocuous-SNI retry of both, then
    HTTP and its close. Redirect hops of the hostile world are fast; they share this bound."""
    connects = (1 + getattr(settings, "connect_retries", 0)) * STEP_LIMITS["tcp"]
    endpoint = 2 * (connects + STEP_LIMITS["tls"])
    return STEP_LIMITS["dns"] + endpoint + STEP_LIMITS["http"] + SLACK


def _failures(step: str, obs: Any) -> str:
    """What one step saw: ``-`` (no observation), ``ok``, or the distinct failures (DNS: of
    the A queries; TLS: the handshake failure, else the chain's verification error)."""
    if step == "dns":
        obs = [o for o in obs if o.query_type == "A"]
    if not obs:
        return "-"
    found = [o.failure or (getattr(o, "verify_error", None) if step == "tls" else None)
             for o in obs]
    seen = sorted({f for f in found if f is not None})
    return "|".join(seen) if seen else "ok"


def _child(args: dict[str, Any]) -> dict[str, Any]:
    """Run the probe over ``args["urls"]`` and report what happened (runs in the child)."""
    from probe import failures
    from probe.run.engine import run_targets
    from probe.store import Store
    from probe.targets import parse_url

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = _settings(tuple(args["resolver"]), args["ca_pem"])
    keys = {url: key for key, url in args["urls"].items()}
    targets = [parse_url(url) for url in args["urls"].values()]
    started = time.monotonic()
    progress = asyncio.run(run_targets(targets, len(targets), settings, args["db"],
                                       concurrency=CONCURRENCY))
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The same run again: a leak would raise the peak a second time.
    asyncio.run(run_targets(targets, len(targets), settings, args["db"] + "-again",
                            concurrency=CONCURRENCY))
    peak_again = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = Store.open(args["db"])
    rows = {r["url"]: r for r in store.results()}
    report: list[dict[str, Any]] = []
    late: list[str] = []
    unknown: list[str] = []
    for _, m in store.iter_measurements("latest"):
        row = rows[m.target.url]
        steps = {"dns": m.dns, "tcp": m.tcp, "tls": m.tls, "http": m.http}
        for step, observations in steps.items():
            for o in observations:
                if o.t - o.t0 > STEP_LIMITS[step] + SLACK:
                    late.append(f"{keys[m.target.url]} {step} {o.t - o.t0:.2f}s")
                if not failures.is_known(o.failure):
                    unknown.append(f"{keys[m.target.url]} {step} {o.failure}")
        durations = [o.t for obs in steps.values() for o in obs]
        report.append({
            "key": keys[m.target.url], "verdict": row["verdict"], "method": row["method"],
            "seconds": max(durations, default=0.0), "hops": len(m.extra.get("hops", [])),
            **{step: _failures(step, obs) for step, obs in steps.items()},
        })
    store.close()
    return {"elapsed": elapsed, "baseline_kb": baseline, "peak_kb": peak,
            "peak_again_kb": peak_again, "late": late,
            "unknown": unknown, "done": progress.done, "interrupted": progress.interrupted,
            "rows": len(rows), "report": report}


def _table(result: dict[str, Any], layers: dict[str, tuple[str, str]]) -> str:
    head = ("behaviour", "layer", "verdict", "method", "dns", "tcp", "tls", "http", "s")
    lines = [head]
    for r in sorted(result["report"], key=lambda r: (layers[r["key"]][0], r["key"])):
        layer, behaviour = layers[r["key"]]
        lines.append((f"{r['key']} ({behaviour})"[:48], layer, str(r["verdict"]),
                      str(r["method"]), r["dns"], r["tcp"], r["tls"], r["http"],
                      f"{r['seconds']:.1f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                     for line in lines)


def test_hostile_world_run_is_harmless(tmp_path: Path) -> None:
    from probe.lab.world.hostile import HOSTILE_SITES, hostile_urls, hostile_world
    from probe.lab.world.loopback import LoopbackWorld

    assert len(HOSTILE_SITES) > 20 + 1  # at least 20 hostile behaviours besides the control
    with LoopbackWorld(hostile_world(tmp_path)) as world:
        urls = hostile_urls(world)
        args = {"urls": urls, "resolver": list(world.dns_address), "ca_pem": world.ca_pem,
                "db": str(tmp_path / "hostile.db")}
        target_bound = _target_bound(_settings(world.dns_address, world.ca_pem))
        bound = math.ceil(len(urls) / CONCURRENCY) * target_bound
        env = {**os.environ, "PYTHONWARNINGS": "default"}
        started = time.monotonic()
        proc = subprocess.run([sys.executable, __file__, json.dumps(args)], capture_output=True,
                              text=True, timeout=2 * bound + 60, env=env)
        took = time.monotonic() - started
    print(proc.stderr[-4000:])
    assert proc.returncode == 0, proc.stderr[-4000:]
    for bad in ("Traceback", "Task exception was never retrieved", "Exception in callback"):
        assert bad not in proc.stderr, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    layers = {key: (site.layer, site.behaviour[:24]) for key, site in HOSTILE_SITES.items()}
    growth_mb = (result["peak_kb"] - result["baseline_kb"]) / 1024
    print(f"\n{_table(result, layers)}\n\nhostile run: {len(urls)} targets in "
          f"{result['elapsed']:.1f} s (bound {bound:.0f} s, child {took:.1f} s); peak RSS "
          f"{result['peak_kb'] / 1024:.1f} MB = baseline {result['baseline_kb'] / 1024:.1f} MB "
          f"+ {growth_mb:.1f} MB; after a second run {result['peak_again_kb'] / 1024:.1f} MB")
    assert not result["interrupted"] and result["done"] == result["rows"] == len(urls)
    assert all(r["verdict"] is not None for r in result["report"]), result["report"]
    assert result["elapsed"] <= bound
    assert all(r["seconds"] <= target_bound for r in result["report"]), result["report"]
    assert not result["late"], result["late"]
    assert not result["unknown"], result["unknown"]
    assert growth_mb < MEMORY_BOUND_MB
    assert (result["peak_again_kb"] - result["peak_kb"]) / 1024 < LEAK_BOUND_MB
    by_key = {r["key"]: r for r in result["report"]}
    assert by_key["ok"]["http"] == "ok"  # the control site works through the same world


if __name__ == "__main__":  # the child: run the probe, print one JSON line
    print(json.dumps(_child(json.loads(sys.argv[1]))))
