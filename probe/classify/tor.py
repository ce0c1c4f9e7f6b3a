"""The rules of the ``tor`` test: can Tor's directory authorities and bridges be reached?

Responsibility: judge a ``tor`` measurement (:mod:`probe.measure.tor` wrote one summary per
target into ``extra["tor"]["targets"]``: its protocol, the step that failed and the failure)
into one verdict for the list, with the same vocabulary and the same caution as websites:

* per target: ``ok`` when it answered (the OR port's TLS handshake or the obfs4 handshake
  completed, the Dir port sent an HTTP response); otherwise the technique from the failing
  step (``tcp.timeout``/``tcp.reset``/``tcp.unreachable`` at the connect; ``tls.timeout``/
  ``tls.reset``/``tls.eof``/``tls.handshake`` at a TLS *or obfs4* handshake — obfs4 is the
  transport's own handshake on an open connection, so the TLS methods name it; ``http.*`` at
  the Dir port), judged against the control helper's measurement of the *same target*
  (``control["tor"]["targets"]``, matched by OONI's target id): ``blocked`` only where the
  control reached it, ``down`` (``down.tcp``/``down.tls``/``down.http``) where the control
  failed too, ``inconclusive`` (``no_control``/``control_failed``) without a control answer
  for it — never ``blocked``;
* then one verdict for the list (:func:`aggregate`), as for the app kinds: the most serious
  among the targets, ``blocked`` > ``shutdown`` > ``down`` > ``inconclusive`` > ``ok``, where a
  target only ``down``/``inconclusive`` is excused when another of the same protocol works
  (a Tor client needs one authority, one bridge). ``details``: ``scope`` (``all`` = nothing
  of that kind works, ``partial`` = others work), ``failing`` (labels of the targets behind
  the verdict), ``roles`` (protocol → verdict) and ``endpoints`` (one line per target). The
  method stays in the contract's closed vocabulary; *which* targets fail is in
  ``scope``/``failing``.

A shutdown or a local outage around the measurement replaces a failure verdict afterwards
(:func:`probe.classify.verdict.network_cut`), as for every kind. OONI (ts-023-tor "Possible
conclusions") looks only at each target's ``failure``; it never asks a control, so it would
call a shutdown "blocked". Pure, like the package.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from probe import failures as f
from probe.classify.base import Case, blocked, down, inconclusive, ok, verdict, without_control
from probe.model import Verdict, VerdictKind

#: How serious a verdict is for the list, most serious first.
SEVERITY: tuple[VerdictKind, ...] = (
    VerdictKind.BLOCKED, VerdictKind.INTERCEPTED, VerdictKind.SHUTDOWN, VerdictKind.DOWN,
    VerdictKind.INCONCLUSIVE, VerdictKind.THROTTLED, VerdictKind.OK)
#: Verdicts excused when another target of the same protocol works.
EXCUSABLE = (VerdictKind.DOWN, VerdictKind.INCONCLUSIVE)

_CONNECT = {f.GENERIC_TIMEOUT: "tcp.timeout", f.CONNECTION_RESET: "tcp.reset",
            f.CONNECTION_REFUSED: "tcp.reset", f.HOST_UNREACHABLE: "tcp.unreachable",
            f.NETWORK_UNREACHABLE: "tcp.unreachable"}
_HANDSHAKE = {f.GENERIC_TIMEOUT: "tls.timeout", f.CONNECTION_RESET: "tls.reset",
              f.CONNECTION_REFUSED: "tls.reset", f.EOF_ERROR: "tls.eof"}
_HTTP = {f.GENERIC_TIMEOUT: "http.timeout", f.CONNECTION_RESET: "http.reset",
         f.EOF_ERROR: "http.eof"}
_DOWN = {"connect": "down.tcp", "handshake": "down.tls", "http": "down.http"}


def technique(step: str, failure: str) -> str | None:
    """The blocking method a failure at ``step`` would be (None = none fits)."""
    if step == "connect":
        return _CONNECT.get(failure)
    if step == "handshake":
        return _HANDSHAKE.get(failure, "tls.handshake")
    if step == "http":
        return _HTTP.get(failure, "http.eof" if failure == f.HTTP_PROTOCOL_ERROR else None)
    return None


def label(t: Mapping[str, Any]) -> str:
    """``name protocol address`` (a bridge by its id: its address is its secret)."""
    proto = str(t.get("protocol"))
    if proto in ("or_port", "obfs4"):
        return f"{t.get('name') or 'bridge'} {proto} {str(t.get('id'))[:12]}"
    return f"{t.get('name') or t.get('address')} {proto} {t.get('address')}"


def control_targets(control: Sequence[Mapping[str, Any]]) -> dict[str, list[str | None]]:
    """Target id → the failures the control helpers saw for it (None = reached)."""
    out: dict[str, list[str | None]] = {}
    for answer in control:
        if not isinstance(answer, Mapping) or answer.get("control_failure") or answer.get(
                "failure"):
            continue
        tor = answer.get("tor")
        if not isinstance(tor, Mapping) or not isinstance(tor.get("targets"), list):
            continue
        for t in tor["targets"]:
            if isinstance(t, Mapping) and isinstance(t.get("id"), str):
                why = t.get("failure")
                out.setdefault(t["id"], []).append(why if isinstance(why, str) else None)
    return out


def judge_target(case: Case, t: Mapping[str, Any],
                 control: Mapping[str, list[str | None]]) -> Verdict:
    """One target's verdict (see the module docstring)."""
    lab = label(t)
    step, failure = str(t.get("step")), t.get("failure")
    details: dict[str, Any] = {"target": lab, "step": step, "failure": failure,
                               "tx_id": t.get("tx_id")}
    if failure is None:
        return ok(case, 0.9, f"{lab}: {_reached[step] if step in _reached else 'answered'}",
                  **details)
    failure = str(failure)
    what = f"{lab}: {step} failed ({failure})"
    if failure == f.INTERRUPTED:
        return inconclusive(case, "interrupted", f"{what}: the run was stopped", **details)
    if step == "transport":
        return inconclusive(case, "incomplete", f"{what}: the probe could not run the "
                            "pluggable transport, nothing is known about the bridge", **details)
    method = technique(step, failure)
    seen = control.get(str(t.get("id")))
    if not seen:
        return without_control(case, method or "unexplained", what, **details)
    if any(c is None for c in seen):
        if method is None:
            return inconclusive(case, "unexplained", f"{what}; the control reached it, but "
                                "the failure names no known technique", 0.4, **details)
        return blocked(case, method, 0.85, f"{what}; the control reached the same target",
                       **details)
    same = failure in seen
    return down(case, _DOWN.get(step, "down.tcp"), 0.8 if same else 0.6,
                f"{what}; the control failed {'the same way' if same else 'too'} "
                f"({seen[0]})", **details)


_reached = {"handshake": "handshake completed", "http": "the Dir port answered",
            "connect": "connected"}


def _summary(lab: str, proto: str, v: Verdict) -> dict[str, Any]:
    return {"label": lab, "role": proto, "verdict": v.verdict.value, "method": v.method,
            "confidence": v.confidence, "evidence": v.evidence.split("; ")[0][:160]}


def aggregate(case: Case, results: Sequence[tuple[str, str, Verdict]]) -> Verdict:
    """One verdict for the list from ``(label, protocol, verdict)`` per target (see the
    module docstring)."""
    if not results:
        return inconclusive(case, "incomplete", f"tor://{case.m.target.hostname}: no target "
                            "was measured")
    working_roles = {p for _, p, v in results if v.verdict is VerdictKind.OK}
    counted = [r for r in results if not (r[2].verdict in EXCUSABLE and r[1] in working_roles)]
    pool = counted or list(results)
    kind = next(k for k in SEVERITY if any(v.verdict is k for _, _, v in pool))
    behind = [r for r in pool if r[2].verdict is kind]
    roles: dict[str, str] = {}
    for _, p, v in results:
        here = roles.get(p)
        if here is None or SEVERITY.index(v.verdict) < SEVERITY.index(VerdictKind(here)):
            roles[p] = v.verdict.value
    for p in working_roles:
        if roles[p] in (VerdictKind.DOWN.value, VerdictKind.INCONCLUSIVE.value):
            roles[p] = VerdictKind.OK.value
    n = len(results)
    working = [r for r in results if r[2].verdict is VerdictKind.OK]
    details: dict[str, Any] = {"app": "tor", "roles": roles,
                               "endpoints": [_summary(*r) for r in results]}
    name = f"tor://{case.m.target.hostname}"
    if kind is VerdictKind.OK:
        excused = [lab for lab, _, v in results if v.verdict is not VerdictKind.OK]
        note = (f"; {len(excused)} failed where another of the same kind works: "
                f"{', '.join(excused[:4])}{'…' if len(excused) > 4 else ''}") if excused else ""
        return ok(case, min(v.confidence for _, _, v in behind),
                  f"{name}: {len(working)}/{n} targets work{note}", scope="all",
                  failing=excused or None, **details)
    methods = Counter(v.method for _, _, v in behind)
    method = methods.most_common(1)[0][0]
    confidence = max(v.confidence for _, _, v in behind if v.method == method)
    scope = "partial" if working else "all"
    first = next(r for r in behind if r[2].method == method)
    failing_roles = sorted({p for _, p, _ in behind})
    what = f"{kind.value} {method}" if method else kind.value
    if scope == "partial":
        ok_roles = sorted(p for p, v in roles.items() if v == VerdictKind.OK.value)
        evidence = (f"{name}: partly {what} — {', '.join(failing_roles)} fail, "
                    f"{', '.join(ok_roles)} work; e.g. {first[2].evidence.split('; ')[0]}")
        confidence *= 0.95
    else:
        evidence = (f"{name}: {what} at {len(behind)}/{n} targets "
                    f"({', '.join(failing_roles)}); e.g. {first[2].evidence}")
    keep = {k: v for k, v in first[2].details.items()
            if k in ("symptom", "step", "failure", "tx_id")}
    return verdict(case, kind, method, confidence, evidence, scope=scope,
                   failing=[lab for lab, _, _ in behind], failing_roles=failing_roles,
                   **keep, **details)


def judge_tor(case: Case) -> Verdict:
    """The one rule of the ``tor`` test: every target judged, then aggregated."""
    m = case.m
    info = m.extra.get("tor")
    if not isinstance(info, Mapping):
        return inconclusive(case, "unsupported_test", "tor: no per-target observations to "
                            "judge (imported or older data)", test_name=m.test_name)
    if info.get("list_error"):
        return inconclusive(case, "incomplete", f"tor: the Tor list could not be used "
                            f"({info['list_error']})", list_error=info["list_error"])
    control = control_targets(m.control)
    results: list[tuple[str, str, Verdict]] = []
    for t in info.get("targets") or ():
        if isinstance(t, Mapping):
            results.append((label(t), str(t.get("protocol")), judge_target(case, t, control)))
    if not results and m.extra.get("deadline_exceeded"):
        return inconclusive(case, "incomplete", f"tor://{m.target.hostname}: the measurement "
                            "ran out of time before any target finished")
    return aggregate(case, results)


#: The rules in order (one: it always gives a verdict).
RULES: tuple[Callable[[Case], Verdict | None], ...] = (judge_tor,)
