"""Where the censor is: the judgement of stored packet-level traces (issue 8, docs/trace.md).

Responsibility: turning a trace's recorded per-TTL probes (:class:`~probe.model.TraceProbe`,
measured by :mod:`probe.measure.trace`) into its result, the censor's signature, the TTL that
first triggered it, its hop and the router there. Pure: :func:`judge` reads one
:class:`~probe.model.TraceObservation` and returns it re-judged, so ``reanalyze`` re-reads old
traces with the current rules. The measurement asks :func:`signature` (handed to it by
:mod:`probe.run.tracing`) when to repeat a silent probe and when to stop raising the TTL.

How hops are counted. A packet sent with TTL ``k`` expires at the router ``k`` hops away,
whose ICMP time-exceeded names it. A router checks the TTL before its forwarding path
(netfilter's FORWARD hook, a tap on its outgoing link), so a device acting on what router ``h``
forwards is first triggered by TTL ``h + 1``: an in-path censor's hop is the trigger TTL minus
one, and the router that answered time-exceeded for that TTL is its address. A device that
*terminates* the connection (an interception proxy: the TCP endpoint answering SYNs is nearer
than the destination answering pings) receives the trigger as soon as the TTL reaches it: its
hop is the trigger TTL. A trigger that works from TTL 1 is put at hop 1 (the first router, or
something between it and the volunteer). This is how CenTrace (Censored Planet, "Network
Measurement Methods for Locating and Examining Censorship Devices", CoNEXT 2022) reads
TTL-limited replays too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from probe.model import TraceHop, TraceObservation, TraceProbe

BLOCKED, INNOCUOUS = "blocked", "innocuous"
#: ``details`` keys this module writes; the others are the measurement's.
JUDGED_DETAILS = ("reply_ttl", "hop_range", "terminates")


def signature(kind: str, blocked: TraceProbe, innocuous: TraceProbe) -> str | None:
    """What the censor did to the blocked exchange at one TTL, judged against the innocuous
    exchange at the same TTL; None = no difference that points at a censor.

    A TLS answer whose chain does not validate for its name (``cert_error``) is interception,
    which shows itself even when every SNI is intercepted. An answer the innocuous exchange did
    not get at this TTL (it expired on the way), or one sent from nearer (a higher IP TTL on
    arrival than the innocuous answer's), was injected.
    """
    if "error" in (blocked.outcome, innocuous.outcome):
        return None
    if kind == "tls" and blocked.outcome == "answer" and _cert_bad(blocked):
        return "cert"
    if blocked.outcome == innocuous.outcome and blocked.outcome != "answer":
        return None
    injected = "blockpage" if kind == "http" else "answer"
    match blocked.outcome:
        case "reset" | "eof" | "unreachable":
            return blocked.outcome
        case "silent":
            return "drop"
        case "answer":
            if innocuous.outcome in ("expired", "silent", "unreachable"):
                return injected
            if (innocuous.outcome == "answer" and blocked.reply_ttl is not None
                    and innocuous.reply_ttl is not None
                    and blocked.reply_ttl > innocuous.reply_ttl):
                return injected
    return None


def _cert_bad(p: TraceProbe) -> bool:
    # traces stored before ``cert_error`` was recorded said so in their note only
    return p.cert_error is not None or "; does not validate: " in (p.note or "")


def censor_hop(trigger_ttl: int, terminating: bool) -> int:
    """The censor's hop from the first TTL that triggered it (module docstring)."""
    return trigger_ttl if terminating else max(trigger_ttl - 1, 1)


def judge(obs: TraceObservation) -> TraceObservation:
    """The trace with its result, signature, trigger TTL, hop and hop address (re)computed
    from its probes, path and measured details; a trace that could not run (``failure``) has
    none."""
    details = {k: v for k, v in obs.details.items() if k not in JUDGED_DETAILS}
    cleared = dataclasses.replace(obs, result=None, signature=None, trigger_ttl=None, hop=None,
                                  hop_address=None, details=details)
    if obs.failure is not None:
        return cleared
    match obs.kind:
        case "dns":
            return _judge_dns(cleared)
        case "tls" | "http":
            return _judge_stream(cleared)
        case "tcp":
            return _judge_address(cleared)
    return cleared


def _judge_dns(obs: TraceObservation) -> TraceObservation:
    """Any answer from a silent address is injected; the first TTL that brings one back places
    the injector (it acts on what the router one hop nearer forwards). An address that answers
    the innocuous name too runs a resolver and proves nothing (``answering``)."""
    blocked = [p for p in obs.probes if p.variant == BLOCKED]
    control = next((p for p in obs.probes if p.variant == INNOCUOUS), None)
    if not blocked or control is None:
        return obs
    full, swept = blocked[0], {p.ttl: p for p in blocked[1:]}
    answered = sorted(t for t, p in swept.items() if p.outcome == "answer")
    judged: dict[str, Any] = {}
    if control.outcome == "answer":
        return dataclasses.replace(obs, result="answering")
    if not (full.outcome == "answer" or answered):
        return dataclasses.replace(obs, result="not_injected")
    trigger = hop = hop_address = None
    if answered:
        trigger = answered[0]
        hop = censor_hop(trigger, terminating=False)
        hop_address = _address(obs.path, hop)
        judged["reply_ttl"] = swept[trigger].reply_ttl
    details = dict(obs.details)  # the reply TTL sits after full_ttl, before destination_ttl
    ordered = {k: details.pop(k) for k in ("full_ttl",) if k in details}
    return dataclasses.replace(obs, result="injected", signature="injected", trigger_ttl=trigger,
                               hop=hop, hop_address=hop_address,
                               details={**ordered, **judged, **details})


def _judge_stream(obs: TraceObservation) -> TraceObservation:
    """TTL by TTL, the innocuous exchange against the blocked one (and its repetition after a
    silence): the first difference places the censor; both answered alike = not blocked."""
    details = dict(obs.details)
    d_tcp, d_ip = details.get("tcp_endpoint_ttl"), details.get("destination_ttl")
    middlebox = d_tcp is not None and d_ip is not None and d_tcp < d_ip
    result, sig, trigger = "not_located", None, None
    for ttl, inn, tries in _by_ttl(obs.probes):
        if inn is None or not tries:
            continue
        blk = tries[0]
        sig = signature(obs.kind, blk, inn)
        if sig == "drop" and len(tries) > 1:  # the silence was asked about once more
            blk = tries[-1]
            sig = signature(obs.kind, blk, inn)
        if sig is not None:
            trigger, result = ttl, "located"
            details["reply_ttl"] = blk.reply_ttl
            if sig == "drop":
                _drop_range(details, obs.probes, ttl)
            break
        if inn.outcome == "answer" and blk.outcome == "answer":
            result = "not_blocked"
            break
    hop = hop_address = None
    if trigger is not None:
        terminating = sig == "cert" or (middlebox and d_tcp is not None and trigger >= d_tcp)
        hop = censor_hop(trigger, terminating)
        hop_address = _address(obs.path, hop)
        if terminating:
            details["terminates"] = True
    return dataclasses.replace(obs, result=result, signature=sig, trigger_ttl=trigger, hop=hop,
                               hop_address=hop_address, details=details)


def _judge_address(obs: TraceObservation) -> TraceObservation:
    """The first TTL where the blocked address's SYN is reset, answered by an ICMP unreachable
    or lost while the other address's still expires on a router places the censor; the same
    answer from no nearer than the destination (which answers pings there) is its own."""
    details = dict(obs.details)
    d_ip = details.get("destination_ttl")
    result, sig, trigger = "not_located", None, None
    for ttl, inn, tries in _by_ttl(obs.probes):
        if inn is None or not tries:
            continue
        b = tries[0]
        if b.outcome == "answer":
            result = "not_blocked"  # the SYN-ACK came: the address accepts connections
            break
        s = signature("tcp", b, inn)
        if s is not None and s != "answer":
            if d_ip is not None and ttl >= d_ip:
                break  # the destination itself answers so: no censor on the way
            sig, trigger, result = s, ttl, "located"
            details["reply_ttl"] = b.reply_ttl
            break
        if inn.outcome in ("answer", "reset") and b.outcome == inn.outcome:
            break
    if sig == "drop" and trigger is not None:
        _drop_range(details, obs.probes, trigger)
    hop = censor_hop(trigger, terminating=False) if trigger is not None else None
    return dataclasses.replace(
        obs, result=result, signature=sig, trigger_ttl=trigger, hop=hop,
        hop_address=_address(obs.path, hop) if hop is not None else None, details=details)


def _by_ttl(probes: Sequence[TraceProbe]
            ) -> list[tuple[int, TraceProbe | None, list[TraceProbe]]]:
    """Per TTL in the order probed: the innocuous probe and the blocked ones (first try first)."""
    out: dict[int, tuple[list[TraceProbe], list[TraceProbe]]] = {}
    for p in probes:
        inn, blk = out.setdefault(p.ttl, ([], []))
        (blk if p.variant == BLOCKED else inn).append(p)
    return [(ttl, inn[0] if inn else None, blk) for ttl, (inn, blk) in out.items()]


def _drop_range(details: dict[str, Any], probes: Sequence[TraceProbe], trigger: int) -> None:
    """A drop first seen at TTL ``trigger`` lies after the last router the blocked trigger
    still expired on; when silent TTLs sit in between, record every hop it may be at
    (``details["hop_range"]``; the reported hop, ``trigger - 1``, is the farthest)."""
    last = max((p.ttl for p in probes if p.variant == BLOCKED and p.ttl < trigger
                and p.outcome != "silent"), default=0)
    if last < trigger - 1:
        details["hop_range"] = [max(last, 1), censor_hop(trigger, terminating=False)]


def _address(path: Sequence[TraceHop], ttl: int) -> str | None:
    return next((h.address for h in path if h.ttl == ttl), None)
