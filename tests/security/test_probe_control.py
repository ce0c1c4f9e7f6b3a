"""The probe facing a hostile control helper (issue 13): every answer bounded, none fatal.

A real hostile helper on loopback (:mod:`tests.security.hostile_helper`) answers with deep
nesting, millions of elements, a 200 MB stream, a declared 2 GB body, a gzip bomb, wrong JSON
types, non-JSON and a slow drip. Each must come back as a failed control whose reason belongs
to the failure vocabulary, within the deadline, with the probe having stopped reading at its
byte cap; and a whole ``probe run`` against such a helper completes with every target judged
``inconclusive`` (``control_failed``), never ``blocked``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from probe import failures
from probe.cli.root import app
from probe.control import client
from probe.control.protocol import MeasureRequest
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from tests.clirunner import CliRunner
from tests.security.hostile_helper import MIB, HostileHelper

pytestmark = pytest.mark.timeout(60)

DEADLINE = 2.0


@pytest.fixture(scope="module")
def helper() -> Iterator[HostileHelper]:
    with HostileHelper() as h:
        yield h


def _ask(url: str) -> dict:
    async def go() -> dict:
        async with httpx.AsyncClient(trust_env=False, timeout=None) as http:
            return await client.query(http, url, MeasureRequest("https://example.test/", ()),
                                      DEADLINE)
    return asyncio.run(go())


@pytest.mark.parametrize(("behaviour", "reason"), [
    ("good", None),
    ("deep_list", "nested deeper"),
    ("deep_in_field", "nested deeper"),
    ("deep_under_parser_limit", "nested deeper"),
    ("many_items", "elements"),
    ("not_json", "not JSON"),
    ("truncated", "not JSON"),
    ("nan", "not JSON"),
    ("list_top", "unsupported version"),
    ("version_text", "unsupported version"),
    ("version_true", "'version' has the wrong type"),
    ("dns_text", "'dns' has the wrong type"),
    ("endpoints_list", "'endpoints' has the wrong type"),
    ("http_number", "'http' has the wrong type"),
    ("client_address_list", "'client_address' has the wrong type"),
    ("failure_object", "'failure' has the wrong type"),
    ("gzip_bomb", "content-encoded"),
    ("stream_200mb", "larger than"),
    ("declared_2gb", "larger than"),
    ("slow_drip", failures.GENERIC_TIMEOUT),
    ("status_500", "http status 500"),
])
def test_hostile_answer_is_a_failed_control(helper: HostileHelper, behaviour: str,
                                            reason: str | None) -> None:
    start = time.monotonic()
    answer = _ask(helper.url(behaviour))
    elapsed = time.monotonic() - start
    assert elapsed < DEADLINE + 3, f"{behaviour} took {elapsed:.1f}s"
    why = answer["control_failure"]
    assert answer["control"] == helper.url(behaviour)
    if reason is None:
        assert why is None, why
        return
    assert why is not None and reason in why, why
    assert failures.is_known(why)
    assert set(answer) == {"control", "version", "control_failure"}  # nothing of it kept


def _rss() -> int:
    """This process's resident memory now, in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("behaviour", ["stream_200mb", "declared_2gb", "gzip_bomb"])
def test_huge_answer_stops_at_the_cap(helper: HostileHelper, behaviour: str) -> None:
    """Hundreds of MB offered: the probe reads at most the cap (plus what socket buffers
    hold) and its resident memory, sampled while it reads, does not follow the stream."""
    baseline = _rss()
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        answer = _ask(helper.url(behaviour))
    finally:
        stop.set()
        sampler.join()
    assert answer["control_failure"].startswith(failures.UNKNOWN_PREFIX)
    time.sleep(0.5)  # the server's last send fails once the probe has hung up
    sent = helper.sent[behaviour]
    assert sent < client.MAX_ANSWER_BYTES + 32 * MIB, f"{sent / MIB:.0f} MiB sent"
    grown = (peak[0] - baseline) / MIB
    assert grown < 32, f"RSS grew by {grown:.0f} MiB while reading"


def test_bounds_are_checked_before_parsing() -> None:
    deep = b"[" * 100 + b"]" * 100
    with pytest.raises(client.AnswerRejected, match="deeper"):
        client.check_structure(deep)
    # brackets inside strings are text, not structure
    client.check_structure(json.dumps({"version": 1, "title": "[" * 10_000}).encode())
    client.check_structure(b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[["}')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackWorld]:
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


@pytest.mark.parametrize("behaviour", ["deep_list", "stream_200mb", "dns_text"])
def test_run_goes_on_past_a_hostile_helper(world: LoopbackWorld, helper: HostileHelper,
                                           tmp_path: Path, behaviour: str) -> None:
    from probe.store import Store

    urls = demo_urls(world)
    wanted = [urls["refused"], urls["nxdomain"]]  # failures: only a control could tell
    host, port = world.dns_address
    db = tmp_path / "p.db"
    res = CliRunner().invoke(app, [
        "run", *wanted, "--db", str(db), "--no-system-resolver", "--resolver",
        f"{host}:{port}", "--ca-bundle", world.ca_pem, "--timeout", "2", "--quiet",
        "--control", helper.url(behaviour)])
    assert res.exit_code == 0, res.output
    with Store.open_readonly(db) as store:
        assert store.get_run()["status"] == "completed"
        results = store.results()
    assert len(results) == len(wanted)
    for row in results:
        assert (row["verdict"], row["method"]) == ("inconclusive", "control_failed"), row
