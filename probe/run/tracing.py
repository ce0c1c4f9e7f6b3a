"""Library entry of the packet-level checks (issue 8): `probe trace URL` and the optional
`probe run --trace-blocked` step.

Responsibility: decide which test explains a URL or a stored blocked measurement
(:func:`plan_for_url`, :func:`plan_for_result`, both pure), run the tests in one packet session
(:mod:`probe.measure.raw`, every blocking call off the event loop), judge each one
(:mod:`probe.classify.traces`: where the censor is), store it as a trace linked to its
measurement, and render results as text. The tests themselves are :mod:`probe.measure.trace`;
docs/trace.md explains how hops are read.

Without raw sockets (not root, no ``CAP_NET_RAW``) nothing is sent: the caller gets
:data:`~probe.measure.raw.NEED_RAW` once, as one line, and the steps are skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from probe import failures
from probe.classify import traces
from probe.errors import PrivilegeError, UsageError
from probe.measure import trace as tests
from probe.measure.raw import NEED_RAW, PacketIO, in_thread, raw_unavailable
from probe.measure.trace import TraceSettings
from probe.model import Target, TraceObservation, split_url
from probe.store import Store
from probe.store.privacy import Scrubber

__all__ = [
    "NEED_RAW",
    "TracePlan",
    "TraceSettings",
    "plan_for_result",
    "raw_unavailable",
    "plan_for_url",
    "reference_address",
    "render_text",
    "trace_blocked",
    "trace_url",
]

Say = Callable[[str], None]
KIND_CHOICES = ("auto", *tests.KINDS)


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class TracePlan:
    """One packet-level test to run.

    ``kind``: dns | tls | http | tcp. ``name``: the triggering name (SNI, Host, DNS query
    name; for tcp only what to resolve); None = unknown. ``ip``: the address to probe; None =
    resolve ``name`` with the system resolver (dns plans never need one). ``measurement_id``:
    the stored measurement the result explains; None = none.
    """

    kind: str
    url: str
    name: str | None
    ip: str | None
    port: int
    path: str = "/"
    measurement_id: str | None = None


# --- planning (pure) -----------------------------------------------------------------------------


def plan_for_url(target: Target, kind: str = "auto", via: str | None = None) -> list[TracePlan]:
    """The tests for a URL: ``auto`` = the DNS injection test, then the exchange of the URL's
    scheme (a ClientHello for https, a request for http); ``via`` = the address to probe."""
    if kind not in KIND_CHOICES:
        raise UsageError(f"--kind {kind!r}: choose one of {', '.join(KIND_CHOICES)}")
    exchange = "tls" if target.scheme == "https" else "http"
    kinds = ["dns", exchange] if kind == "auto" else [kind]
    out = []
    for k in kinds:
        port = 53 if k == "dns" else target.port
        out.append(TracePlan(k, target.url, target.hostname, via if k != "dns" else None,
                             port, target.path))
    return out


def plan_for_result(row: Mapping[str, Any]) -> TracePlan | None:
    """The test that explains one ``probe results`` row, from its verdict's method and details
    (which step failed, on which address and name); None = nothing to trace (not blocked,
    or no step to repeat)."""
    if row.get("verdict") not in ("blocked", "intercepted"):
        return None
    details: Mapping[str, Any] = row.get("details") or {}
    method = row.get("method") or ""
    step = details.get("step") or method.split(".", 1)[0]
    url = str(row["url"])
    parts = split_url(str(details.get("url") or url))
    host = str(details.get("server_name") or details.get("hostname") or parts.hostname
               or row.get("hostname") or "")
    ip = details.get("ip") if isinstance(details.get("ip"), str) else None
    mid = row.get("measurement_id")
    default_port = 443 if parts.scheme == "https" else 80
    port = int(details.get("port") or parts.port or default_port)
    if step == "dns" or method.startswith("dns."):
        return TracePlan("dns", url, str(details.get("hostname") or row.get("hostname")),
                         None, 53, measurement_id=mid)
    if step == "tcp":
        return TracePlan("tcp", url, host or None, ip, port, measurement_id=mid)
    if step == "tls" or method == "tls.mitm":
        return TracePlan("tls", url, host, ip, port, measurement_id=mid)
    if step == "http":
        if parts.scheme == "https":  # the Host is encrypted: only the SNI can trigger
            return TracePlan("tls", url, parts.hostname or host, ip, port, measurement_id=mid)
        return TracePlan("http", url, parts.hostname or host, ip, port, parts.path or "/",
                         measurement_id=mid)
    return None


def reference_address(reference: str | None, controls: Sequence[str] = ()) -> str | None:
    """The address beyond the censor that runs no DNS resolver: ``reference`` if given, else
    the first control helper's host when it is an IP literal; None = unknown (resolve a
    control host name with :func:`resolve_reference`)."""
    if reference:
        try:
            return str(ipaddress.IPv4Address(reference))
        except ValueError:
            raise UsageError(f"--reference {reference!r}: not an IPv4 address") from None
    for url in controls:
        host = split_url(url).hostname
        if host:
            try:
                return str(ipaddress.IPv4Address(host))
            except ValueError:
                continue
    return None


async def resolve_reference(reference: str | None, controls: Sequence[str]) -> str | None:
    """:func:`reference_address`, resolving a control helper's host name if need be."""
    found = reference_address(reference, controls)
    if found or not controls:
        return found
    host = split_url(controls[0]).hostname
    return await _resolve(host) if host else None


async def _resolve(name: str) -> str | None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, None, family=socket.AF_INET,
                                                             type=socket.SOCK_STREAM)
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None


# --- running -------------------------------------------------------------------------------------


async def _run_one(io: PacketIO, plan: TracePlan, settings: TraceSettings,
                   reference: str | None, say: Say) -> TraceObservation | None:
    if plan.kind == "dns":
        if reference is None:
            say(f"{plan.url}: DNS injection test skipped: no address beyond the censor "
                "(give --reference IP or --control URL)")
            return None
        return traces.judge(await tests.dns_injection(io, reference, plan.name or "", settings))
    ip = plan.ip
    if ip is None:
        ip = await _resolve(plan.name or "")
        if ip is None:
            say(f"{plan.url}: {plan.name} does not resolve; give --via IP")
            return None
    if plan.kind == "tcp":
        if reference is None:
            say(f"{plan.url}: IP-blocking trace skipped: no other address to compare with "
                "(give --reference IP or --control URL)")
            return None
        return traces.judge(await tests.locate_address(io, ip, plan.port, reference, settings,
                                                       signature=traces.signature))
    return traces.judge(await tests.locate_stream(io, plan.kind, ip, plan.port, plan.name or "",
                                                  settings, plan.path,
                                                  signature=traces.signature))


async def run_plans(plans: Sequence[TracePlan], settings: TraceSettings,
                    reference: str | None, say: Say = _quiet,
                    skip_after_injection: bool = True
                    ) -> list[tuple[TracePlan, TraceObservation]]:
    """Run the plans in order in one packet session; results with their plans. Raises
    PrivilegeError when the session's raw sockets cannot be opened.

    With ``skip_after_injection`` an exchange trace of a name whose DNS answers were just found
    injected, and that has no address of its own (``ip`` None), is skipped: the system
    resolver's address for it may well be the forged one.
    """
    try:
        io = await in_thread(PacketIO)
    except PermissionError:
        raise PrivilegeError(NEED_RAW) from None
    except OSError as e:
        raise PrivilegeError(f"packet-level checks are not possible here ({e}); skipped") from None
    out: list[tuple[TracePlan, TraceObservation]] = []
    injected: set[str] = set()
    try:
        for plan in plans:
            if (skip_after_injection and plan.kind != "dns" and plan.ip is None
                    and plan.name in injected):
                say(f"{plan.url}: exchange trace skipped: DNS answers for {plan.name} are "
                    "injected (give --via IP, the site's real address)")
                continue
            try:
                obs = await _run_one(io, plan, settings, reference, say)
            except OSError as e:  # a socket error of our own: record it, go on
                obs = TraceObservation(kind=plan.kind, target=plan.ip or "", port=plan.port,
                                       name=plan.name, innocuous=settings.innocuous_name,
                                       started_at="", elapsed=0.0,
                                       failure=failures.classify_exception(e))
            if obs is None:
                continue
            if obs.kind == "dns" and obs.result == "injected" and obs.name:
                injected.add(obs.name)
            out.append((plan, obs))
    finally:
        await in_thread(io.close)
    return out


def trace_url(target: Target, settings: TraceSettings, *, via: str | None = None,
              kind: str = "auto", reference: str | None = None,
              controls: Sequence[str] = (), db_path: str | None = None,
              say: Say = _quiet) -> list[TraceObservation]:
    """`probe trace URL`: run the tests for one URL; with ``db_path`` store them, linked to
    the latest measurement of that URL in the database (if any). Raises UsageError for bad
    input and PrivilegeError (message :data:`NEED_RAW`) when raw sockets cannot be opened."""
    if via is not None:
        try:
            via = str(ipaddress.IPv4Address(via))
        except ValueError:
            raise UsageError(f"--via {via!r}: not an IPv4 address") from None
    plans = plan_for_url(target, kind, via)
    reason = raw_unavailable()
    if reason:
        raise PrivilegeError(reason)

    async def main() -> list[tuple[TracePlan, TraceObservation]]:
        ref = await resolve_reference(reference, controls)
        return await run_plans(plans, settings, ref, say, skip_after_injection=via is None)

    done = asyncio.run(main())
    observations = [_scrubbed(obs) for _, obs in done]
    if db_path:
        with Store.open(db_path) as store:
            mid = store.latest_measurement_of(target.url)
            for obs in observations:
                store.save_trace(obs, target.url, mid)
    return observations


async def trace_blocked(db_path: str, run_id: str, settings: TraceSettings,
                        controls: Sequence[str] = (), reference: str | None = None,
                        say: Say = _quiet) -> list[tuple[str, TraceObservation]]:
    """`probe run --trace-blocked`: trace every blocked or intercepted target of a stored run
    and store the traces linked to their measurements. Without raw sockets says
    :data:`NEED_RAW` once and returns nothing. Returns (url, trace) pairs."""
    reason = raw_unavailable()
    if reason:
        say(reason)
        return []

    def load() -> list[dict[str, Any]]:
        with Store.open(db_path) as store:
            return store.results(run_id)

    plans = [p for p in map(plan_for_result, await in_thread(load)) if p is not None]
    if not plans:
        return []
    ref = await resolve_reference(reference, controls)
    try:
        done = await run_plans(plans, settings, ref, say, skip_after_injection=False)
    except PrivilegeError as e:
        say(str(e))
        return []

    def save() -> list[tuple[str, TraceObservation]]:
        out = []
        with Store.open(db_path) as store:
            for plan, obs in done:
                obs = _scrubbed(obs)
                store.save_trace(obs, plan.url, plan.measurement_id)
                out.append((plan.url, obs))
        return out

    return await in_thread(save)


def _scrubbed(obs: TraceObservation) -> TraceObservation:
    """The volunteer's own addresses never reach storage or output."""
    return Scrubber.for_this_host().value(obs)


# --- rendering -----------------------------------------------------------------------------------


def summary(obs: TraceObservation) -> str:
    """One line: what the trace found."""
    what = {"dns": f"DNS {obs.name} → {obs.target}", "tls": f"TLS SNI {obs.name}",
            "http": f"HTTP Host {obs.name}", "tcp": "TCP SYN"}[obs.kind]
    where = f"{obs.target}:{obs.port}" if obs.kind != "dns" else "no resolver there"
    head = f"{what} ({where})"
    if obs.failure:
        return f"{head}: could not trace ({obs.failure})"
    at = ""
    if obs.hop is not None:
        at = f"hop {obs.hop}" + (f" ({obs.hop_address})" if obs.hop_address else "")
        at += f", first seen with TTL {obs.trigger_ttl}"
    if obs.kind == "dns":
        if obs.result == "injected":
            forged = ", ".join(obs.answers) or "an answer"
            where_ = f"; injector at {at}" if at else "; injector not placed"
            return f"{head}: injected ({forged}){where_}"
        if obs.result == "answering":
            return f"{head}: the address answers innocuous queries too (runs a resolver?)"
        return f"{head}: no injected answer"
    if obs.result == "located":
        return f"{head}: censor at {at}: {obs.signature}"
    if obs.result == "not_blocked":
        return f"{head}: not blocked now (the exchange got through like the innocuous one)"
    return f"{head}: no difference located up to TTL {max((p.ttl for p in obs.probes), default=0)}"


def render_text(url: str, observations: Sequence[TraceObservation]) -> str:
    """A readable report of the traces of one URL: a summary line each, then a TTL table."""
    lines = [f"trace {url}"]
    for obs in observations:
        lines.append("  " + summary(obs))
        if obs.failure:
            continue
        routers = {h.ttl: h.address for h in obs.path}
        by_ttl: dict[int, dict[str, str]] = {}
        for p in obs.probes:
            cell = p.outcome + (f" from {p.source}" if p.outcome in ("reset", "answer", "eof",
                                                                       "unreachable")
                                and p.source else "")
            if p.reply_ttl is not None and p.outcome != "expired":
                cell += f" ttl={p.reply_ttl}"
            if p.note:
                cell += f" ({p.note})"
            by_ttl.setdefault(p.ttl, {})[p.variant] = cell
        if not by_ttl:
            continue
        if obs.kind == "dns":  # beyond the injector / the silent address: more of the same
            last = obs.trigger_ttl or obs.details.get("destination_ttl")
            if last:
                by_ttl = {t: row for t, row in by_ttl.items() if t <= last or t > 32}
        lines.append(f"    {'ttl':>3}  {'router':<15}  {'blocked':<40}  innocuous")
        for ttl in sorted(by_ttl):
            row = by_ttl[ttl]
            lines.append(f"    {ttl:>3}  {routers.get(ttl, '-'):<15}  "
                         f"{row.get('blocked', '-'):<40}  {row.get('innocuous', '-')}")
    return "\n".join(lines) + "\n"


def to_jsonable(url: str, obs: TraceObservation) -> dict[str, Any]:
    """One trace as a JSON object (``probe trace --format json``)."""
    return {"url": url, **dataclasses.asdict(obs)}
