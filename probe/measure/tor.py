"""The ``tor`` test (OONI's name, spec ts-023-tor): reach Tor's directory authorities and bridges.

Responsibility: measuring one ``tor://LIST`` input — every target of the Tor list ``LIST``
(:mod:`probe.torlist`; the packaged ``targets/apps/tor.toml`` or the run's own list directory,
``settings.app_lists``) — into one :class:`~probe.model.Measurement`:

* ``or_port_dirauth`` / ``or_port`` (vanilla bridge): TCP connect, then a TLS handshake.
  Tor's link certificates are self-signed: the chain is recorded, its validation is not
  a failure (``TLSObservation.verified`` stays as measured, nobody judges it);
* ``dir_port``: TCP connect, then ``GET /tor/server/authority`` (the authority's own
  descriptor, a few kilobytes, instead of the consensus OONI fetches: volunteers pay for
  data) with the body capped at :data:`DIR_BODY_CAP`;
* ``obfs4``: a TCP connect (closed at once: it names the failing step), then the obfs4
  handshake through a real ``obfs4proxy`` run as a managed client transport
  (:mod:`probe.measure.pt`), one child process per measurement.

Targets are measured concurrently, each holding the run's per-address gate. A timed-out
connect is tried once more (``settings.connect_retries``). ``extra["tor"]["targets"]`` holds
one summary per target (id, name, protocol, address, the failing step and failure, tx ids) —
IO facts only; :mod:`probe.classify.tor` decides what they mean. A list that cannot be read
is recorded as ``extra["tor"]["list_error"]`` (the classifier says inconclusive).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from probe import failures
from probe.measure import http, tcp, tls
from probe.measure.pt import ManagedClient, PTHandshake, TransportError
from probe.measure.settings import MeasureSettings
from probe.measure.torlist import BadTorList, TorTarget, find_tor_list
from probe.measure.web import Gate, hold_addresses
from probe.model import (
    HTTPObservation,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
    utcnow_iso,
)

#: Bytes of a directory document kept (and read): a descriptor is ~3 KB.
DIR_BODY_CAP = 64 * 1024
#: What a Dir port is asked for.
DIR_PATH = "/tor/server/authority"

_Obs = TCPObservation | TLSObservation | HTTPObservation


class _Run:
    """The per-measurement state: clock, transaction ids and the observations so far."""

    def __init__(self, settings: MeasureSettings) -> None:
        self.settings = settings
        self.base = time.monotonic()
        self.counter = itertools.count(1)
        self.tcp: list[TCPObservation] = []
        self.tls: list[TLSObservation] = []
        self.http: list[HTTPObservation] = []
        self.pt: list[PTHandshake] = []

    def clock(self) -> float:
        return round(time.monotonic() - self.base, 6)

    def next_tx(self) -> int:
        return next(self.counter)

    async def connect(self, t: TorTarget, tx_id: int
                      ) -> tuple[TCPObservation, tcp.Connection | None]:
        obs, conn = await tcp.connect(t.ip, t.port, self.settings.connect_timeout, tx_id,
                                      self.clock)
        for _ in range(self.settings.connect_retries):
            if conn is not None or obs.failure != failures.GENERIC_TIMEOUT:
                break
            self.tcp.append(replace(obs, tx_id=self.next_tx()))
            obs, conn = await tcp.connect(t.ip, t.port, self.settings.connect_timeout, tx_id,
                                          self.clock)
        self.tcp.append(obs)
        return obs, conn


def _summary(t: TorTarget, tx_id: int, step: str, failure: str | None, t0: float,
             t1: float, **more: Any) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "protocol": t.protocol, "address": t.address,
            "fingerprint": t.fingerprint or None, "tx_id": tx_id, "step": step,
            "failure": failure, "t0": t0, "t": t1, "source": t.source, "date": t.date, **more}


async def _or_port(run: _Run, t: TorTarget) -> dict[str, Any]:
    tx = run.next_tx()
    obs, conn = await run.connect(t, tx)
    if conn is None:
        return _summary(t, tx, "connect", obs.failure, obs.t0, obs.t)
    try:
        hs = await tls.handshake(conn, t.ip, t.ip, t.port, run.settings.tls_timeout, None, tx,
                                 run.clock)
    finally:
        conn.close()
    run.tls.append(hs)
    return _summary(t, tx, "handshake", hs.failure, obs.t0, hs.t)


async def _dir_port(run: _Run, t: TorTarget) -> dict[str, Any]:
    tx = run.next_tx()
    obs, conn = await run.connect(t, tx)
    if conn is None:
        return _summary(t, tx, "connect", obs.failure, obs.t0, obs.t)
    settings = replace(run.settings, body_cap=min(run.settings.body_cap, DIR_BODY_CAP))
    got = await http.fetch(conn, f"http://{t.address}{DIR_PATH}", t.ip, t.port, settings, tx,
                           0, run.clock)
    run.http.append(got)
    return _summary(t, tx, "http", got.failure, obs.t0, got.t, status=got.status,
                    body_length=got.body_length)


async def _obfs4(run: _Run, t: TorTarget, client: ManagedClient | None,
                 start_error: str | None) -> dict[str, Any]:
    """A TCP connect of our own first (it names the step that fails, as OONI records
    ``tcp_connect`` for obfs4 targets), then the obfs4 handshake through the transport."""
    tx = run.next_tx()
    obs, conn = await run.connect(t, tx)
    if conn is None:
        return _summary(t, tx, "connect", obs.failure, obs.t0, obs.t)
    conn.close()
    if client is None:
        now = run.clock()
        return _summary(t, tx, "transport", start_error, now, now)
    # our own connect just succeeded, so the transport's is quick: the limit is the handshake's
    # (the helper measures the same list within 3 x its step timeout + 5 s)
    limit = run.settings.tls_timeout + 1.0
    hs, _, writer = await client.dial(t.ip, t.port, t.params, limit, run.clock)
    if writer is not None:
        writer.close()
    run.pt.append(hs)
    return _summary(t, tx, "handshake", hs.failure, obs.t0, hs.t, transport="obfs4",
                    socks_reply=hs.socks_reply)


async def _measure_all(run: _Run, targets: tuple[TorTarget, ...], gate: Gate | None
                       ) -> list[dict[str, Any]]:
    client: ManagedClient | None = None
    start_error: str | None = None
    if any(t.protocol == "obfs4" for t in targets):
        try:
            client = await ManagedClient("obfs4").__aenter__()
        except (TransportError, OSError, TimeoutError) as e:
            start_error = failures.unknown(f"obfs4proxy did not start: {e}")
            client = None

    async def one(t: TorTarget) -> dict[str, Any]:
        async with hold_addresses(gate, [t.ip]):
            if t.protocol == "dir_port":
                return await _dir_port(run, t)
            if t.protocol == "obfs4":
                return await _obfs4(run, t, client, start_error)
            return await _or_port(run, t)

    try:
        return list(await asyncio.gather(*(one(t) for t in targets)))
    finally:
        if client is not None:
            await client.close()


def _allowed(settings: MeasureSettings, t: TorTarget) -> bool:
    """May ``t`` be dialled: its address passes ``address_filter`` and ``endpoint_guard``
    (the control helper's policy) accepts its address and port? A refused target is named,
    never dialled; the others are still measured."""
    if settings.address_filter is not None and not settings.address_filter(t.ip):
        return False
    if settings.endpoint_guard is not None:
        try:
            settings.endpoint_guard([t.ip], t.port)
        except Exception:  # the guard's own refusal type (probe.control.measure.Refused)
            return False
    return True


async def measure_tor(
    target: Target,
    settings: MeasureSettings,
    on_addresses: Callable[[list[str]], None] | None = None,
    gate: Gate | None = None,
) -> Measurement:
    """Measure one ``tor://LIST`` input (see the module docstring).

    ``on_addresses`` is called once with every address of the list (the control helper
    measures the same list); ``gate`` is held around every use of an address. Never raises
    for network trouble; cancellation propagates.
    """
    started_at = utcnow_iso()
    run = _Run(settings)
    info: dict[str, Any] = {"list": target.hostname, "targets": []}
    extra: dict[str, Any] = {"tor": info}
    try:
        tor_list = find_tor_list(target.hostname, settings.app_lists)
    except BadTorList as e:
        info["list_error"] = str(e)
        if on_addresses is not None:
            on_addresses([])
        return Measurement(target=target, started_at=started_at, finished_at=utcnow_iso(),
                           extra=extra)
    targets = tor_list.targets
    if settings.address_filter is not None or settings.endpoint_guard is not None:
        refused = [t for t in targets if not _allowed(settings, t)]
        info["not_allowed"] = [t.id for t in refused]
        targets = tuple(t for t in targets if t not in refused)
    addresses = list(dict.fromkeys(t.ip for t in targets))
    extra["addresses"] = addresses
    if on_addresses is not None:
        on_addresses(addresses)
    try:
        async with asyncio.timeout(settings.target_deadline()):
            info["targets"] = await _measure_all(run, targets, gate)
    except TimeoutError:
        extra["deadline_exceeded"] = settings.target_deadline()
    info["pt"] = [{"transport": h.transport, "address": h.address, "t0": h.t0, "t": h.t,
                   "failure": h.failure, "socks_reply": h.socks_reply} for h in run.pt]
    return Measurement(target=target, started_at=started_at, finished_at=utcnow_iso(),
                       tcp=tuple(run.tcp), tls=tuple(run.tls), http=tuple(run.http),
                       extra=extra)
