"""One measurement run: bounded concurrency, streaming results to the store, clean interruption.

The runner is the only place that sees measure, classify and store together. It pulls targets
from an iterator (so lists of any length stream through in constant memory), measures at most
``concurrency`` of them at once, classifies each finished measurement (a pure call) and hands it
to a single writer thread that owns the SQLite connection, so the event loop never blocks on
disk. Each target is committed in its own transaction as soon as it finishes; on Ctrl-C the
targets in flight are abandoned, everything finished is kept and the run is marked interrupted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from probe import __version__
from probe.classify import classify
from probe.measure.settings import MeasureSettings
from probe.measure.web import measure_target
from probe.model import Measurement, Target, Verdict
from probe.store import Store

DEFAULT_CONCURRENCY = 8


@dataclass(slots=True)
class RunProgress:
    """Live counters of a run, passed to the progress callback after every target."""

    run_id: str
    total: int
    done: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    interrupted: bool = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


#: Called with the progress, the finished target and its verdict (None before the first target).
ProgressCallback = Callable[[RunProgress, Target | None, Verdict | None], None]


def settings_record(settings: MeasureSettings, concurrency: int) -> dict[str, Any]:
    """The run settings as stored in the database (no paths that could identify the volunteer)."""
    record = asdict(settings)
    record["resolvers"] = [str(r) for r in settings.resolvers]
    record["ca_bundle"] = bool(settings.ca_bundle)
    record.pop("address_filter", None)
    record["concurrency"] = concurrency
    return record


class _Writer:
    """Owns the store on one dedicated thread; every call is awaited off the event loop."""

    def __init__(self, db_path: str) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="probe-store")
        self._store: Store | None = None
        self._db_path = db_path

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._get(), *args))

    def call_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.submit(lambda: fn(self._get(), *args)).result()

    def _get(self) -> Store:
        if self._store is None:
            self._store = Store.open(self._db_path)
        return self._store

    def close(self) -> None:
        def _close() -> None:
            if self._store is not None:
                self._store.close()

        self._pool.submit(_close).result()
        self._pool.shutdown(wait=True)


async def run_targets(
    targets: Iterable[Target],
    total: int,
    settings: MeasureSettings,
    db_path: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: ProgressCallback | None = None,
    measure: Callable[[Target, MeasureSettings], Any] = measure_target,
) -> RunProgress:
    """Measure every target, store observations and verdicts, return the final counters.

    Cancellation (Ctrl-C) stops the run: finished targets stay stored, the run is marked
    ``interrupted`` and the returned progress says so.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    writer = _Writer(db_path)
    try:
        await writer.call(lambda s: s.mark_stale_runs_interrupted())
        run_id: str = await writer.call(
            lambda s: s.start_run(settings_record(settings, concurrency), total, __version__)
        )
        progress = RunProgress(run_id=run_id, total=total)
        if on_progress:
            on_progress(progress, None, None)
        queue: asyncio.Queue[Target | None] = asyncio.Queue(maxsize=concurrency * 2)

        async def worker() -> None:
            while (target := await queue.get()) is not None:
                m: Measurement = await measure(target, settings)
                verdict = classify(m)
                await writer.call(lambda s, m=m, v=verdict: s.save_measurement(run_id, m, v))
                progress.done += 1
                progress.verdicts[verdict.verdict.value] += 1
                if on_progress:
                    on_progress(progress, target, verdict)

        async def feed() -> None:
            for target in targets:
                await queue.put(target)
            for _ in range(concurrency):
                await queue.put(None)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(feed())
                for _ in range(concurrency):
                    tg.create_task(worker())
        except asyncio.CancelledError:
            progress.interrupted = True
            writer.call_sync(lambda s: s.finish_run(run_id, "interrupted"))
            raise
        await writer.call(lambda s: s.finish_run(run_id, "completed"))
        return progress
    finally:
        writer.close()
