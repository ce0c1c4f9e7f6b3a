"""Politeness of a run, on loopback only: connections per server, look-ahead, start rate.

A counting HTTP server (in its own thread) records when each connection was accepted and how
many were open at once; the probe measures it through ``run_targets`` and through ``probe run``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from probe.cli.root import app
from probe.lab.world.loopback import LoopbackWorld, simple_world
from probe.measure.settings import MeasureSettings, Resolver
from probe.run.engine import KeyedLimiter, RateLimiter, RunOptions, run_targets
from probe.targets import parse_url
from tests.clirunner import CliRunner

PAGE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class CountingServer:
    """Plain HTTP on ``ip``: answers every request after ``delay`` seconds, counting
    connections open at once (from accept to close) and noting each accept time."""

    def __init__(self, ip: str = "127.0.0.1", delay: float = 0.15) -> None:
        self.ip = ip
        self.delay = delay
        self.port = 0
        self.open = 0
        self.peak = 0
        self.accepted: list[float] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CountingServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.ip}:{self.port}{path}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.ip, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
            self.accepted.append(time.monotonic())
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(self.delay)
            writer.write(PAGE)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with self._lock:
                self.open -= 1


def _settings(**kw: object) -> MeasureSettings:
    return MeasureSettings.with_timeout(3.0, **kw)


def _run(urls: list[str], db: Path, settings: MeasureSettings, **options: object) -> None:
    targets = [parse_url(u) for u in urls]
    opts = RunOptions(**options)  # type: ignore[arg-type]
    progress = asyncio.run(run_targets(iter(targets), len(targets), settings, str(db),
                                       options=opts))
    assert progress.done == len(targets)


def _starts(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT url, started_at FROM measurements"))


def test_one_host_never_gets_more_than_two_connections(tmp_path: Path) -> None:
    with CountingServer() as server:
        urls = [server.url(f"/page/{i}") for i in range(8)]
        _run(urls, tmp_path / "p.db", _settings(use_system_resolver=False), concurrency=8)
    assert server.peak == 2  # the limit holds, and it is used
    assert len(server.accepted) == 8


def test_names_sharing_one_address_share_its_limit(tmp_path: Path) -> None:
    """Different hostnames, one IP: the per-server cap is keyed by address too."""
    names = [f"site{i}.test" for i in range(6)]
    config = simple_world(tmp_path / "pki", {"unused.test": {}},
                          records={n: {"A": ["127.0.0.1"]} for n in names})
    with LoopbackWorld(config) as world, CountingServer() as server:
        ip, port = world.dns_address
        settings = _settings(use_system_resolver=False, resolvers=(Resolver(ip, port),),
                             dns_linger=0.0)
        _run([server.url("/", host=n) for n in names], tmp_path / "p.db", settings,
             concurrency=6)
    assert server.peak == 2
    assert len(server.accepted) == 6


def test_a_busy_host_waits_aside_while_other_hosts_go_first(tmp_path: Path) -> None:
    with CountingServer("127.0.0.1") as a, CountingServer("127.0.0.2") as b:
        urls = [a.url(f"/{i}") for i in range(6)] + [b.url(f"/{i}") for i in range(6)]
        db = tmp_path / "p.db"
        _run(urls, db, _settings(use_system_resolver=False), concurrency=4, per_host=2)
    assert a.peak == 2 and b.peak == 2
    starts = _starts(db)
    # B's first target started long before A's last one: nobody queued behind host A
    assert min(starts[u] for u in urls[6:]) < max(starts[u] for u in urls[:6])


def test_rate_spaces_target_starts(tmp_path: Path) -> None:
    with CountingServer(delay=0.0) as server:
        urls = [server.url(f"/{i}") for i in range(6)]
        _run(urls, tmp_path / "p.db", _settings(use_system_resolver=False), concurrency=6,
             per_host=6, rate=10.0)
    gaps = [b - a for a, b in zip(server.accepted, server.accepted[1:], strict=False)]
    assert len(gaps) == 5
    assert min(gaps) >= 0.08  # 10 per second: 0.1 s apart (a little scheduling slack)
    assert server.accepted[-1] - server.accepted[0] >= 0.45


def test_cli_takes_per_host_and_rate(tmp_path: Path) -> None:
    with CountingServer(delay=0.05) as server:
        urls = [server.url(f"/{i}") for i in range(4)]
        db = tmp_path / "p.db"
        res = CliRunner().invoke(app, ["run", *urls, "--db", str(db), "--quiet",
                                       "--concurrency", "4", "--per-host", "1",
                                       "--rate", "20", "--timeout", "3"])
        assert res.exit_code == 0, res.output
    assert server.peak == 1
    gaps = [b - a for a, b in zip(server.accepted, server.accepted[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 0.04
    assert len(_starts(db)) == 4


def test_cli_rejects_a_zero_per_host(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["run", "http://127.0.0.1:9/", "--db", str(tmp_path / "p.db"),
                                   "--per-host", "0"])
    assert res.exit_code == 2


def test_keyed_limiter_hands_slots_over_in_order_and_forgets_idle_keys() -> None:
    async def main() -> list[str]:
        limiter = KeyedLimiter(1)
        order: list[str] = []

        async def user(name: str) -> None:
            async with limiter.hold("k"):
                order.append(name)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(user(n) for n in "abc"))
        assert limiter.in_use("k") == 0 and not limiter._held and not limiter._waiting
        return order

    assert asyncio.run(main()) == ["a", "b", "c"]


def test_keyed_limiter_survives_a_cancelled_waiter() -> None:
    async def main() -> None:
        limiter = KeyedLimiter(1)
        await limiter.acquire("k")
        waiter = asyncio.create_task(limiter.acquire("k"))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        limiter.release("k")
        assert limiter.in_use("k") == 0
        await asyncio.wait_for(limiter.acquire("k"), 1)  # the slot is free again

    asyncio.run(main())


def test_rate_limiter_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0.0)
    assert RateLimiter(None).interval == 0.0
