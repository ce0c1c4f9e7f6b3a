"""A real control helper on loopback, serving from its own thread and event loop.

End-to-end tests run ``probe run`` (synchronous, its own event loop) against a helper that must
answer at the same time; this is the one way they start it. ``world_helper`` builds the usual
one for a loopback world: its resolver and CA, loopback allowed, the given ports.
:func:`full_backlog` is the opposite: a loopback port whose connects hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from functools import partial
from typing import Self

from probe.control.measure import measure_request
from probe.control.server import ControlServer, Policy
from probe.lab.world.loopback import LoopbackWorld
from probe.measure.settings import MeasureSettings, Resolver


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A loopback port whose connects hang: a listener that never accepts, its accept queue
    filled, so Linux drops further SYNs (a blackholed server, without root)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            fillers.append(s)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


class LoopThread:
    """Servers run from their own thread and event loop: a subclass's :meth:`start` runs in
    that loop before ``with`` enters, its :meth:`stop` when the block leaves."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.stop())
        self._loop.close()


class HelperThread(LoopThread):
    """``server`` (a ControlServer class) measuring with ``settings`` under ``policy``, on
    ``host`` port 0; ``url`` once entered."""

    def __init__(self, settings: MeasureSettings, policy: Policy,
                 server: type[ControlServer] = ControlServer, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.settings = settings
        self.policy = policy
        self.server = server
        self.host = host
        self.url = ""

    async def start(self) -> None:
        self._server = self.server(self.policy, partial(measure_request, settings=self.settings))
        host, port = await self._server.start(self.host, 0)
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        await self._server.close()


def world_helper(world: LoopbackWorld, ports: frozenset[int] | None = None,
                 server: type[ControlServer] = ControlServer,
                 dns_linger: float | None = 0.0) -> HelperThread:
    """A helper resolving with ``world``'s DNS server and trusting its CA; loopback allowed;
    ``ports`` (default: 80, 443 and the world's own HTTP and HTTPS ports)."""
    host, port = world.dns_address
    extra = {} if dns_linger is None else {"dns_linger": dns_linger}
    settings = MeasureSettings.with_timeout(
        2.0, use_system_resolver=False, resolvers=(Resolver(host, port),),
        ca_bundle=world.ca_pem, **extra)
    allowed = ports if ports is not None else frozenset(
        {80, 443, world.http_port, world.https_port})
    return HelperThread(settings, Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),),
                                         ports=allowed), server)
