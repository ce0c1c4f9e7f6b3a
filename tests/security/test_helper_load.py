"""Load check of the helper (issue 13): its memory and descriptors under 5,000 idle
connections and under 1,000 concurrent requests, on loopback, bounded in count and time.

Slow (``-m slow``), and it asserts only correctness (caps held, every request answered, health
answering under load); the figures are printed (``-s``) and kept in docs/helper.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.slow

IDLE = 5_000
CONCURRENT = 1_000


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        pytest.skip(f"cannot raise the descriptor limit to {need}")


def _figures(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024,
            "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


@contextlib.contextmanager
def _helper(*extra: str):
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "helper", "serve", "--listen", "127.0.0.1:0",
             *extra], stderr=log, text=True)
        try:
            deadline = time.monotonic() + 20
            while "listening" not in _read(log) and time.monotonic() < deadline:
                time.sleep(0.05)
            port = int(_read(log).split()[-2].rsplit(":", 1)[1])
            yield proc, port
        finally:
            proc.terminate()
            proc.wait(20)
            assert "Traceback" not in _read(log)


def _read(log) -> str:
    log.seek(0)
    return log.read()


def _health(port: int, source: str) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source, 0)) as s:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nhost: h\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    return time.monotonic() - started


def _idle(port: int, n: int, per_source: int) -> list[socket.socket]:
    out = []
    for i in range(n):
        src = f"127.0.{10 + i // per_source // 250}.{1 + (i // per_source) % 250}"
        s = socket.socket()
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        out.append(s)
    return out


@pytest.mark.parametrize("caps", ["default", "raised"])
def test_idle_connections(caps):
    _raise_fd_limit(IDLE + 1000)
    extra = () if caps == "default" else ("--max-connections", "8000", "--max-per-client", "8000")
    with _helper(*extra) as (proc, port):
        before = _figures(proc.pid)
        started = time.monotonic()
        idle = _idle(port, IDLE, 32)
        try:
            time.sleep(1.0)
            during = _figures(proc.pid)
            latency = max(_health(port, f"127.0.200.{i + 1}") for i in range(5))
        finally:
            for s in idle:
                s.close()
        took = time.monotonic() - started
        print(f"\nidle x{IDLE} ({caps} caps): before {before}, during {during}, "
              f"health worst {latency * 1000:.1f} ms, {took:.1f} s")
        if caps == "default":
            assert during["fds"] < 1024 + 64  # the cap holds, not 5,000 descriptors
        assert latency < 2.0


def test_concurrent_requests():
    _raise_fd_limit(CONCURRENT * 2 + 500)
    with _helper() as (proc, port):
        before = _figures(proc.pid)
        body = b'{"url": "http://10.1.2.3/", "addresses": ["10.1.2.3"]}'
        request = (b"POST /v1/measure HTTP/1.1\r\nhost: h\r\ncontent-length: "
                   + str(len(body)).encode() + b"\r\n\r\n" + body)
        health = b"GET /v1/health HTTP/1.1\r\nhost: h\r\n\r\n"

        async def one(i: int) -> bytes:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(f"127.0.{50 + i // 25 // 250}.{1 + i // 25}", 0))
            writer.write(request if i % 2 else health)
            await writer.drain()
            answer = await reader.read()
            writer.close()
            return answer[:12]

        async def all_at_once() -> tuple[list[bytes], dict[str, float]]:
            tasks = [asyncio.create_task(one(i)) for i in range(CONCURRENT)]
            await asyncio.sleep(0.05)
            during = _figures(proc.pid)
            return await asyncio.gather(*tasks), during

        started = time.monotonic()
        answers, during = asyncio.run(all_at_once())
        took = time.monotonic() - started
        after = _figures(proc.pid)
        statuses = {a[9:12] for a in answers}
        print(f"\nconcurrent x{CONCURRENT}: before {before}, during {during}, after {after}, "
              f"{took:.2f} s, {CONCURRENT / took:.0f} requests/s, statuses {statuses}")
        assert statuses <= {b"200", b"403"} and len(answers) == CONCURRENT
