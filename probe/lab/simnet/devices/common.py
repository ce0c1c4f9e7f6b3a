"""Shared start-up of the simulator's helper processes: arguments, config, ready file, signals."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any


def parse_args(prog: str) -> tuple[dict[str, Any], Path | None]:
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    parser.add_argument("--config", required=True)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    return config, Path(args.ready_file) if args.ready_file else None


def ready(path: Path | None, info: dict[str, Any] | None = None) -> None:
    """Announce readiness (atomically written JSON, or 'ready' on stdout)."""
    if path is None:
        print("ready", flush=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **(info or {})}), encoding="utf-8")
    tmp.replace(path)


def stop_event() -> threading.Event:
    """An event set on SIGTERM/SIGINT."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def log(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


async def until_signalled() -> None:
    """Return when SIGTERM or SIGINT arrives (for asyncio devices)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_async_device(
    prog: str,
    main_async: Callable[[dict[str, Any], Path | None], Coroutine[Any, Any, None]],
) -> int:
    """The ``main`` of an asyncio device: parse arguments, run until signalled, exit status."""
    config, ready_file = parse_args(prog)
    try:
        asyncio.run(main_async(config, ready_file))
    except OSError as exc:
        log(prog, f"cannot start: {exc}")
        return 1
    return 0


def run_nfqueue_device(prog: str, queue: int, judge: Callable[[bytes], str],
                       ready_file: Path | None, summary: Callable[[], str]) -> int:
    """Serve NFQUEUE ``queue`` until signalled: ``judge`` (a packet's bytes → ``"drop"`` or
    anything else to accept) decides each packet, and a packet always gets a verdict, even
    when ``judge`` raises (logged). Logs ``summary()`` on the way out; 1 when the queue cannot
    be bound."""
    from netfilterqueue import NetfilterQueue  # the optional `sim` extra

    def handle(pkt: Any) -> None:
        verdict = "accept"
        try:
            verdict = judge(pkt.get_payload())
        except Exception as exc:  # noqa: BLE001 - a verdict must always be given
            log(prog, f"{type(exc).__name__}: {exc}")
        finally:
            if verdict == "drop":
                pkt.drop()
            else:
                pkt.accept()

    stop = stop_event()
    nfq = NetfilterQueue()
    try:
        nfq.bind(queue, handle, max_len=4096)
    except OSError as exc:
        log(prog, f"cannot bind NFQUEUE: {exc}")
        return 1
    sock = socket.fromfd(nfq.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW)
    ready(ready_file, {"queue": queue})
    try:
        while not stop.is_set():
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                nfq.run(block=False)
    finally:
        sock.close()
        nfq.unbind()
    log(prog, summary())
    return 0


#: Makes a connection handler forwarding DNS queries to ``(host, port)``.
HandlerFactory = Callable[[tuple[str, int]], Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                       Coroutine[Any, Any, None]]]


def run_tls_resolver_device(prog: str, handler: HandlerFactory) -> int:
    """The ``main`` of an encrypted resolver (DoH, DoT): a TLS server on ``listen`` with a
    world certificate for ``names`` (from ``pki_dir``), each connection served by
    ``handler((upstream host, port))``, until signalled."""

    async def main_async(config: dict[str, Any], ready_file: Path | None) -> None:
        from probe.lab.world.pki import WorldPKI

        chain, key = WorldPKI.create(config["pki_dir"]).issue(config["names"], "valid")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        host, port = config["listen"].rsplit(":", 1)
        up_host, up_port = config["upstream"].rsplit(":", 1)
        server = await asyncio.start_server(handler((up_host, int(up_port))), host, int(port),
                                            ssl=ctx, reuse_address=True)
        ready(ready_file, {"listen": config["listen"]})
        await until_signalled()
        server.close()

    return run_async_device(prog, main_async)
