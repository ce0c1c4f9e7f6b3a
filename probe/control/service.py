"""Run the control helper as a long-lived service: policy from options, server, measurer."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys
from functools import partial

from probe.control.measure import measure_request
from probe.control.server import ControlServer, Policy
from probe.errors import ProbeError, UsageError
from probe.measure.settings import MeasureSettings, Resolver


def make_policy(allow: list[str], allow_ports: list[int], token: str | None,
                max_concurrent: int, timeout: float) -> Policy:
    """A Policy from command-line values; bad CIDRs raise UsageError."""
    try:
        nets = tuple(ipaddress.ip_network(a, strict=False) for a in allow)
    except ValueError as e:
        raise UsageError(f"--allow: {e}") from None
    return Policy(allow=nets, ports=frozenset({80, 443, *allow_ports}), token=token,
                  max_concurrent=max_concurrent, request_timeout=timeout * 3 + 5)


async def serve(host: str, port: int, allow: list[str], allow_ports: list[int],
                token: str | None, resolvers: tuple[Resolver, ...], ca_bundle: str | None,
                max_concurrent: int, step_timeout: float, app_lists: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT; prints one ``listening`` line when ready. ``app_lists``:
    the directory of lists (``tor://LIST`` requests) replacing the packaged ones."""
    policy = make_policy(allow, allow_ports, token, max_concurrent, step_timeout)
    # dns_linger=0: the helper reports only the first answer to each query (summarise), so
    # waiting for a second, injected-behind answer would only delay every probe's target.
    settings = MeasureSettings.with_timeout(
        step_timeout, use_system_resolver=not resolvers, resolvers=resolvers, ca_bundle=ca_bundle,
        dns_linger=0.0, app_lists=app_lists,
    )
    server = ControlServer(policy, partial(measure_request, settings=settings))
    try:
        bound = await server.start(host, port)
    except OSError as e:  # address in use, not ours: a tool error, one line
        raise ProbeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    print(f"probe helper listening on {bound[0]}:{bound[1]}", flush=True, file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
