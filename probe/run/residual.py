"""Residual censorship: which failed targets to measure again after a cool-down, and why.

Many censors keep blocking a client after one trigger: the GFW drops the (client, server,
port) triple for about 90 s after a forbidden keyword (Bock et al., "Geneva", CCS 2019, and
its public censor models in Kkevsterrr/geneva ``censors/``, which model residual per flow,
per server or per client), and others punish everything the client sends for a while. Targets
measured right after such a trigger fail although nothing blocks them. This module is the pure
decision of the runner (:mod:`probe.run.engine`) — no IO, no clock:

* a **trigger** is a failed target whose TCP connect succeeded and whose TLS/HTTP step then
  failed (the censor reacted to what was sent: SNI, Host, keyword);
* a **suspect** is a failed target that (a) failed within ``cooldown`` seconds after a
  trigger started and (b) either could not connect to an address the trigger had just
  connected to (the same server: IP blocking cannot explain a server that accepted the trigger
  a moment ago), or failed while a health round after the trigger saw the canaries cut (the
  censor punished everything of this client; without canaries this cannot be told) and no
  round between that cut and the suspect's start saw the network whole again (the block was
  over by then: a later failure is the site's own, or a later trigger's);
* suspects that failed before or at their connect are re-measured first, suspects that look
  like triggers themselves (they connected, then failed — they may be blocked on their own, or
  have sent their request just after the real trigger) last; a trigger followed by a
  client-wide cut that was not there before it is re-measured too (scope ``self``): a censor's
  trigger fails again after the cool-down, a site caught by a shutdown that began during its
  measurement does not (the "health before and after" a shutdown needs, issue 12) — so a
  real trigger re-fired by its re-measurement cannot spoil the others; the runner waits a
  cool-down before the first re-measurement and again after any re-measurement that fails
  like a trigger.

Cost is bounded (docs/classification.md, *Residual censorship*): nothing happens unless a
suspect exists; at most ``limit`` re-measurements (:data:`DEFAULT_MAX_REMEASURE`) and at most
``budget`` seconds of cool-down waiting per run (:data:`DEFAULT_BUDGET_FACTOR` × cool-down).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from probe.classify.health import HealthRound
from probe.model import Measurement

#: Seconds to wait before re-measuring: the GFW's residual window is about 90 s.
DEFAULT_COOLDOWN = 90.0
#: Most targets re-measured per run.
DEFAULT_MAX_REMEASURE = 10
#: Most cool-down waiting per run, in cool-downs.
DEFAULT_BUDGET_FACTOR = 4.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the residual decision needs of one failed measurement (small, kept in memory)."""

    url: str
    hostname: str
    started_at: str
    finished_at: str
    connected: frozenset[str]  # addresses the probe completed a TCP connect to
    unreachable: frozenset[str]  # addresses whose connect failed (refusals included: a
    # residual censor may answer a SYN with a RST, and a server that just accepted the
    # trigger's connection does not refuse the next one on its own)
    failure: str  # the last failing step, "step:failure"

    @property
    def trigger_like(self) -> bool:
        """Connected, then failed: the censor (if any) reacted to what was sent."""
        return bool(self.connected)


def attempt_of(m: Measurement) -> Attempt:
    """The residual view of a measurement that did not reach its input."""
    connected = frozenset(t.ip for t in m.tcp if t.failure is None)
    unreachable = frozenset(t.ip for t in m.tcp if t.failure is not None)
    steps: list[tuple[str, str | None]] = [
        *(("dns", d.failure) for d in m.dns), *(("tcp", t.failure) for t in m.tcp),
        *(("tls", t.failure) for t in m.tls), *(("http", h.failure) for h in m.http)]
    failed = [f"{step}:{failure}" for step, failure in steps if failure]
    return Attempt(m.target.url, m.target.hostname, m.started_at, m.finished_at, connected,
                   unreachable, failed[-1] if failed else "none")


def _t(at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00"))


def suspects(attempts: Sequence[Attempt], health: Sequence[HealthRound], cooldown: float,
             canaries: bool, limit: int) -> list[tuple[Attempt, Attempt]]:
    """The failed targets to re-measure, each with the trigger that may explain it, in the
    order to re-measure them (see the module docstring); at most ``limit``."""
    window = dt.timedelta(seconds=cooldown)
    triggers = [a for a in attempts if a.trigger_like]
    cuts = [_t(r.at) for r in health if r.state.is_cut]
    wholes = [_t(r.at) for r in health if not r.state.is_cut]

    def cut_when_it_began(c: dt.datetime, start: dt.datetime) -> bool:
        # a round after the cut that saw the network whole again before the suspect began
        # means the client-wide block was over: its failure is its own (or a later trigger's)
        return not any(c < w <= start for w in wholes)

    found: list[tuple[Attempt, Attempt]] = []
    for a in attempts:
        end = _t(a.finished_at)
        for trig in triggers:
            t0 = _t(trig.started_at)
            if not t0 <= end <= _t(trig.finished_at) + window:
                continue
            if trig is a and any(r.state.is_cut for r in _last_before(health, t0)):
                continue  # the cut was there before it: not this request's doing
            same_server = trig is not a and bool(a.unreachable & trig.connected)
            # without canaries only the same-server evidence counts (a run with two blocked
            # sites must not pay a cool-down for nothing)
            start = _t(a.started_at)
            everything = canaries and any(t0 <= c <= _t(trig.finished_at) + window
                                          and cut_when_it_began(c, start) for c in cuts)
            if same_server or everything:
                found.append((a, trig))
                break
    found.sort(key=lambda pair: pair[0].started_at)
    victims = interleave_servers(p for p in found if not p[0].trigger_like)
    alike = interleave_servers(p for p in found if p[0].trigger_like)
    return (victims + alike)[:limit]


def _last_before(health: Sequence[HealthRound], t0: dt.datetime) -> list[HealthRound]:
    before = [r for r in health if _t(r.at) <= t0]
    return before[-1:]


def note(first: Attempt, trigger: Attempt, cooldown: float) -> dict[str, Any]:
    """What a re-measurement records in ``Measurement.extra["residual"]`` (the classifier
    turns it into ``details["residual"]`` and a sentence of evidence)."""
    scope = ("self" if first is trigger else
             "same_server" if first.unreachable & trigger.connected else "client")
    return {"first_started_at": first.started_at, "first_failure": first.failure,
            "trigger_url": trigger.url, "trigger_failure": trigger.failure,
            "scope": scope, "cooldown_s": cooldown}


def interleave_servers(pairs: Iterable[tuple[Attempt, Attempt]]) -> list[tuple[Attempt, Attempt]]:
    """Spread suspects of the same server apart (stable otherwise): one server's targets back
    to back would meet that server's residual block together if one of them re-triggers it."""
    pending = list(pairs)
    out: list[tuple[Attempt, Attempt]] = []
    last: frozenset[str] = frozenset()
    while pending:
        pick = next((i for i, (a, _) in enumerate(pending)
                     if not (a.connected | a.unreachable) & last), 0)
        a, trig = pending.pop(pick)
        out.append((a, trig))
        last = a.connected | a.unreachable
    return out
