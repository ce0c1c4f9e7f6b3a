"""Continuous monitoring for volunteers: periodic runs that ride out shutdowns.

``watch`` repeats normal runs every ``every`` seconds (± jitter, so many probes do not hit a
site in lockstep). When a run's last health round shows the network fully cut (or the
volunteer's own link down) it stops spending full runs on a dead network: it takes cheap
health-only rounds (stored as runs with no targets, so the outage is on record), starting at
``health_every`` and backing off to ``every``, and starts a full run as soon as a round shows
connectivity again. Cancellation (SIGINT/SIGTERM) stops it cleanly: the run in progress is
marked interrupted and nothing finished is lost. With a ``collector`` it uploads the outbox
after each full run whose network was up (:mod:`probe.collector.upload`); a failed upload is
only reported: the queue stays and the next round sends it.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from probe.errors import InvalidValue
from probe.measure.settings import MeasureSettings
from probe.model import Target
from probe.run.engine import ProgressCallback, RunOptions, RunProgress, run_targets

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

#: Network states (from probe.classify.health) in which full runs are pointless.
OFFLINE_STATES = frozenset({"shutdown.full", "local_outage"})


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1.5h``, ``1d`` → seconds; InvalidValue otherwise."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise InvalidValue(f"bad duration {text!r} (examples: 90s, 15m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True, slots=True)
class WatchPlan:
    """``every``: seconds between full runs; ``jitter``: fraction of ``every`` added or taken
    at random; ``health_every``: first pause between health-only rounds while offline;
    ``max_runs``: stop after this many full runs (None = until stopped); ``collector`` and
    ``collector_token``: upload after each round (None = do not upload)."""

    every: float
    jitter: float = 0.1
    health_every: float = 60.0
    max_runs: int | None = None
    collector: str | None = None
    collector_token: str | None = None


@dataclass(slots=True)
class WatchLog:
    """What happened, for the caller's display and for tests."""

    full_runs: list[RunProgress]
    health_runs: list[RunProgress]


def upload_round(db_path: str, plan: WatchPlan) -> str:
    """Send the outbox to ``plan.collector``; one line saying what happened."""
    from probe.collector.upload import upload
    from probe.errors import ProbeError

    assert plan.collector and plan.collector_token
    try:
        r = upload(db_path, plan.collector, plan.collector_token)
    except ProbeError as e:
        return f"upload: {e} (kept in the queue)"
    return f"upload: {r.accepted} sent, {r.duplicates} already there, {r.pending} pending"


def next_pause(plan: WatchPlan, rng: random.Random) -> float:
    """Seconds until the next full run: ``every`` ± ``jitter`` × ``every``."""
    spread = plan.every * plan.jitter
    return max(0.0, plan.every + rng.uniform(-spread, spread))


async def watch(
    targets: Callable[[], Sequence[Target]],
    settings: MeasureSettings,
    db_path: str,
    options: RunOptions,
    plan: WatchPlan,
    on_progress: ProgressCallback | None = None,
    on_event: Callable[[str], None] = lambda _: None,
    rng: random.Random | None = None,
    sleep: Callable[[float], object] = asyncio.sleep,
) -> WatchLog:
    """Run until cancelled (or ``plan.max_runs`` full runs); see the module docstring.

    ``targets`` is called before every full run so an edited list is picked up.
    """
    rng = rng or random.Random()
    log = WatchLog([], [])
    while plan.max_runs is None or len(log.full_runs) < plan.max_runs:
        found = list(targets())
        progress = await run_targets(found, len(found), settings, db_path,
                                     options.concurrency, on_progress, options)
        log.full_runs.append(progress)
        on_event(f"run {progress.run_id}: {progress.done}/{progress.total} targets, "
                 f"network {progress.network or 'unknown'}")
        if plan.collector and plan.collector_token and progress.network not in OFFLINE_STATES:
            on_event(await asyncio.to_thread(upload_round, db_path, plan))
        if plan.max_runs is not None and len(log.full_runs) >= plan.max_runs:
            break
        pause = plan.health_every
        while progress.network in OFFLINE_STATES and options.canaries:
            on_event(f"network {progress.network}: health check in {pause:.0f}s")
            await sleep(pause)  # type: ignore[misc]
            progress = await run_targets([], 0, settings, db_path, 1, None, options)
            log.health_runs.append(progress)
            pause = min(pause * 2, plan.every)
        if log.health_runs and progress is log.health_runs[-1]:
            on_event(f"network {progress.network}: connectivity is back, measuring now")
            continue
        wait = next_pause(plan, rng)
        on_event(f"next run in {wait:.0f}s")
        await sleep(wait)  # type: ignore[misc]
    return log
