"""One measurement run: bounded concurrency, streaming results to the store, clean interruption.

The runner is the only place that sees measure, classify and store together. It pulls targets
from an iterator (so lists of any length stream through in constant memory), measures at most
``concurrency`` of them at once, classifies each finished measurement (a pure call) and hands it
to a single writer thread that owns the SQLite connection, so the event loop never blocks on
disk and a worker never waits for the disk either (a bounded queue sits between them). Each
target is committed in its own transaction as soon as it finishes; on Ctrl-C the targets in
flight are abandoned, everything finished is kept and the run is marked interrupted.

Politeness: at most ``per_host`` targets of one hostname (or IP-literal host) are measured at
once, and at most ``per_host`` of the probe's connections reach one IP address at once (a
later target of a busy host waits aside, within a bounded look-ahead, while targets of other
hosts go first); ``rate`` spaces target starts for volunteers on metered links.

Residual censorship (issue 12, :mod:`probe.run.residual`): failed targets that fell inside a
censor's residual block after another target triggered it are measured again after a
cool-down, once the list is done; the re-measurement is stored as a newer measurement of the
same URL in the run, with ``extra["residual"]`` saying why, and the first attempt stays as
history. Bounded (``residual_max`` targets, a few cool-downs of waiting) and off with
``residual_cooldown = 0``. Same-server targets are spread apart in time: after a target of a
host failed like a trigger, the scheduler lets later targets of other hosts go first (within
its look-ahead; it never waits for that), and the re-measurements alternate servers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import ssl
import time
import weakref
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from probe import __version__, failures
from probe.classify import Context, classify
from probe.classify import quic as quic_rules
from probe.classify.health import rounds as health_rounds
from probe.control import client as control_client
from probe.control.protocol import MAX_ADDRESSES, QUIC_CHECK, MeasureRequest
from probe.errors import InvalidValue, ProbeError
from probe.measure.health import HealthSampler
from probe.measure.settings import MeasureSettings
from probe.measure.web import Gate
from probe.model import HealthSample, Measurement, Target, Verdict
from probe.run import asn, lease, residual
from probe.run.kinds import kind_of
from probe.run.reanalyze import country_lookup, reclassify_run
from probe.store import Store

DEFAULT_CONCURRENCY = 8
#: Most targets of one host, and most connections to one IP address, in flight at once.
DEFAULT_PER_HOST = 2


@dataclass(slots=True)
class RunProgress:
    """Live counters of a run, passed to the progress callback after every target."""

    run_id: str
    total: int
    done: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    interrupted: bool = False
    network: str | None = None  # state shown by the last health round; None = no canaries

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

    def __init__(self, db_path: str, own_addresses: tuple[str, ...] = ()) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="probe-store")
        self._store: Store | None = None
        self._db_path = db_path
        self._own_addresses = own_addresses

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._get(), *args))

    def call_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.submit(lambda: fn(self._get(), *args)).result()

    def _get(self) -> Store:
        if self._store is None:
            self._store = Store.open(self._db_path, own_addresses=self._own_addresses)
        return self._store

    def close(self) -> None:
        def _close() -> None:
            if self._store is not None:
                self._store.close()

        self._pool.submit(_close).result()
        self._pool.shutdown(wait=True)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run, besides the per-step measurement settings.

    ``controls``: control helper base URLs queried for every target; empty = none.
    ``canaries``: (scope, target) pairs sampled before, every ``health_interval`` seconds
    during, and after the run; empty = no health sampling.
    ``asn_db``: an iptoasn TSV for the classifier; None = no ASN comparisons.
    ``own_addresses``: more addresses of the volunteer to scrub before storage, besides the
    local interface addresses and the public address the control helpers report.
    ``resume``: an interrupted run to complete: only its targets not stored yet are measured
    and they join that run; None = a new run.
    ``per_host``: most targets of one host (hostname, or the IP of an IP-literal URL) measured
    at once, and most probe connections open to one IP address at once.
    ``rate``: most targets started per second (evenly spaced); None = as fast as
    ``concurrency`` allows.
    ``residual_cooldown``: seconds to wait before re-measuring targets failed by residual
    censorship (:mod:`probe.run.residual`); 0 = never. ``residual_max``: most targets
    re-measured per run.
    ``privacy_note``: why bodies are not stored (the public address could not be learnt,
    :mod:`probe.run.public_address`), recorded in the run's settings as ``privacy``; None =
    nothing to say.
    """

    concurrency: int = DEFAULT_CONCURRENCY
    controls: tuple[str, ...] = ()
    control_token: str | None = None
    control_ca: str | None = None
    canaries: tuple[tuple[str, str], ...] = ()
    health_interval: float = 60.0
    asn_db: str | None = None
    own_addresses: tuple[str, ...] = ()
    resume: str | None = None
    per_host: int = DEFAULT_PER_HOST
    rate: float | None = None
    residual_cooldown: float = residual.DEFAULT_COOLDOWN
    residual_max: int = residual.DEFAULT_MAX_REMEASURE
    privacy_note: str | None = None


#: Most failed targets remembered for the residual decision (oldest forgotten first).
RESIDUAL_MEMORY = 10_000


class KeyedLimiter:
    """At most ``limit`` holders per key at once (first come, first served).

    Keys with no holder and no waiter are forgotten, so memory follows what is in flight,
    not how many keys a run has seen.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._held: Counter[str] = Counter()
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def in_use(self, key: str) -> int:
        return self._held[key]

    async def acquire(self, key: str) -> None:
        if self._held[key] < self.limit and not self._waiting.get(key):
            self._held[key] += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(key, deque())
        queue.append(waiter)
        try:
            await waiter  # release() hands its slot over: _held already counts us
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(key)  # the slot was handed to us as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
                if not queue and self._waiting.get(key) is queue:
                    del self._waiting[key]
            raise

    def release(self, key: str) -> None:
        queue = self._waiting.get(key)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                if not queue:
                    del self._waiting[key]
                waiter.set_result(None)  # the slot passes on: _held stays the same
                return
        self._waiting.pop(key, None)
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release(key)


class RateLimiter:
    """Spaces events at least ``1 / rate`` seconds apart (``rate`` per second; None = no limit).

    Starts are evenly spaced rather than bursty, so a metered link sees a steady trickle.
    """

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        start = max(now, self._next)
        self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


class _Scheduler:
    """Hands the next target to a worker: in list order, except that a target whose host
    already has ``per_host`` targets in flight waits aside (up to ``aside`` of them) while
    later targets of other hosts go first. Pulls from the target iterator lazily, so only
    the targets in flight and aside are in memory."""

    def __init__(self, targets: Iterator[Target], skip: set[str], per_host: int,
                 aside: int) -> None:
        self._targets = targets
        self._skip = skip
        self._hosts = KeyedLimiter(per_host)
        self._aside: list[Target] = []
        self._aside_max = aside
        self._exhausted = False
        self._changed = asyncio.Condition()
        self._cooling: dict[str, float] = {}  # host -> monotonic time its cool-down ends

    def _free(self, target: Target) -> bool:
        return self._hosts.in_use(target.hostname) < self._hosts.limit

    def cool(self, host: str, seconds: float) -> None:
        """A target of ``host`` just failed like a censor's trigger: for ``seconds``, later
        targets of that host yield to targets of other hosts (a residual block of that server
        would fail them now); they still go when nothing else is left."""
        now = time.monotonic()
        self._cooling = {h: t for h, t in self._cooling.items() if t > now}
        self._cooling[host] = now + seconds

    def _cooling_down(self, target: Target) -> bool:
        until = self._cooling.get(target.hostname)
        return until is not None and until > time.monotonic()

    async def take(self) -> Target | None:
        """The next target (its host slot taken), or None when every target was handed out."""
        async with self._changed:
            while True:
                stuck = self._exhausted or len(self._aside) >= self._aside_max
                for i, target in enumerate(self._aside):
                    if self._free(target) and (stuck or not self._cooling_down(target)):
                        del self._aside[i]
                        await self._hosts.acquire(target.hostname)  # free: returns at once
                        return target
                if stuck:
                    if self._exhausted and not self._aside:
                        return None
                    await self._changed.wait()
                    continue
                following = next(self._targets, None)
                if following is None:
                    self._exhausted = True
                    continue
                if following.url in self._skip:
                    continue
                if self._free(following) and not self._cooling_down(following):
                    await self._hosts.acquire(following.hostname)
                    return following
                self._aside.append(following)

    async def done(self, target: Target) -> None:
        """``target`` is finished: its host slot frees."""
        async with self._changed:
            self._hosts.release(target.hostname)
            self._changed.notify_all()


#: Seconds between heartbeats of a live run, and the silence after which another process may
#: declare the run dead (crash, kill -9, power cut) and mark it interrupted.
HEARTBEAT = 5.0
STALE_AFTER = 30.0
#: Fewest seconds between two health rounds (rounds triggered by failures are rate-limited).
HEALTH_MIN_GAP = 5.0


class _Judge:
    """Builds the classifier's context from what the run knows so far, and classifies."""

    def __init__(self, asn_db: str | None) -> None:
        self.samples: list[HealthSample] = []
        self.table = asn.load(asn_db) if asn_db else None
        self.asn_of = self.table.asn if self.table else None

    def context(self) -> Context:
        return Context(health=tuple(health_rounds(self.samples)), asn_of=self.asn_of,
                       country_of=country_lookup(self.table))

    def __call__(self, m: Measurement, context: Context | None = None) -> Verdict:
        return classify(m, context or self.context())


_Answers = tuple[dict[str, Any], ...]

#: Requests the probe keeps open to one control helper at once: the helper's share for one
#: client (``probe helper serve --max-concurrent-per-client``, default 8 of 32 in all), so a
#: busy run queues instead of getting 429s.
HELPER_SLOTS = 8


async def _measure_with_controls(
    target: Target, settings: MeasureSettings, options: RunOptions,
    client: httpx.AsyncClient | None, tg: asyncio.TaskGroup, gate: Gate | None = None,
    helper_slots: dict[str, asyncio.Semaphore] | None = None,
    unreachable: dict[str, tuple[str, float]] | None = None,
) -> tuple[Measurement, asyncio.Task[_Answers] | None]:
    """The probe's own measurement, by the target's kind of test (:mod:`probe.run.kinds`),
    with every control asked about the same input and addresses.

    Returns as soon as the probe's own measurement is done, with the task that gathers the
    controls' answers (None = no controls): a control waiting out a dead site or a cut
    network must not hold the probe's measurement slot (the task runs in ``tg``).
    """
    kind = kind_of(target.test_name)
    measure = kind.measure
    if client is None or not options.controls:
        return await measure(target, settings, None, gate), None
    if helper_slots is None:
        helper_slots = {h: asyncio.Semaphore(HELPER_SLOTS) for h in options.controls}
    resolved: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    def on_addresses(addresses: list[str]) -> None:
        if not resolved.done():
            resolved.set_result(addresses)

    async def ask(measuring: asyncio.Task[Measurement]) -> _Answers:
        waiting: set[asyncio.Future[Any]] = {resolved, measuring}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        addresses = resolved.result() if resolved.done() else []
        request = MeasureRequest(target.url, tuple(addresses[:MAX_ADDRESSES]), throughput=True)
        deadline = settings.connect_timeout + settings.tls_timeout + settings.http_timeout + 10
        async def one(helper: str, request: MeasureRequest) -> dict[str, Any]:
            # Queue for the helper rather than make it answer 503 (it serves a few at once).
            async with helper_slots[helper]:
                return await control_client.query(client, helper, request, deadline,
                                                  options.control_token)

        answers = tuple(await asyncio.gather(*(one(h, request) for h in options.controls)))
        if settings.http3 == "off":
            return answers
        # QUIC failed where TCP/TLS worked: ask the controls whether QUIC reaches those
        # addresses from outside (issue 15; a helper that cannot answers without "quic")
        wanted = quic_rules.control_wanted(await measuring)
        if not wanted:
            return answers
        again = MeasureRequest(target.url, tuple(wanted[:MAX_ADDRESSES]), quic=QUIC_CHECK)
        more = await asyncio.gather(*(one(h, again) for h in options.controls))
        return tuple(control_client.with_quic(a, b) for a, b in zip(answers, more, strict=True))

    async def ask_each(measuring: asyncio.Task[Measurement]) -> _Answers:
        """Kinds with many endpoints (the apps): one request per endpoint, once measured;
        each answer says which URL it is about (``request_url``)."""
        assert kind.control_requests is not None
        m = await measuring
        deadline = settings.connect_timeout + settings.tls_timeout + settings.http_timeout + 10
        # a helper that could not be reached (the network is cut, say) is not asked again,
        # for a while, about other endpoints: they get its failure at once (shared by the
        # run's inputs when the run passes ``unreachable``)
        dead = unreachable if unreachable is not None else {}

        async def one(helper: str, url: str, addresses: list[str]) -> dict[str, Any]:
            request = MeasureRequest(url, tuple(addresses[:MAX_ADDRESSES]), throughput=False)
            async with helper_slots[helper]:
                seen = dead.get(helper)
                if seen is not None and time.monotonic() - seen[1] < deadline:
                    return {"control": helper, "control_failure": seen[0], "request_url": url}
                answer = await control_client.query(client, helper, request, deadline,
                                                    options.control_token)
            why = answer.get("control_failure")
            if why and not str(why).startswith(failures.UNKNOWN_PREFIX):
                dead[helper] = (str(why), time.monotonic())
            elif not why:
                dead.pop(helper, None)
            return {**answer, "request_url": url}

        return tuple(await asyncio.gather(*(
            one(h, url, addrs) for url, addrs in kind.control_requests(m)
            for h in options.controls)))

    measuring = tg.create_task(measure(target, settings, on_addresses, gate))
    asking = tg.create_task(ask_each(measuring) if kind.control_requests is not None
                            else ask(measuring))
    return await measuring, asking


async def run_targets(
    targets: Iterable[Target],
    total: int,
    settings: MeasureSettings,
    db_path: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: ProgressCallback | None = None,
    options: RunOptions | None = None,
) -> RunProgress:
    """Measure every target, store observations and verdicts, return the final counters.

    Health rounds are taken before, during and after; every target is stored with a verdict
    as soon as it finishes, and once the run is over every verdict is recomputed with the whole
    run's health (a later round may show that a failure fell inside a cut); changed verdicts
    are stored as new current ones. Cancellation (Ctrl-C) stops the run: finished targets stay
    stored, the run is marked ``interrupted`` and the returned progress says so.
    """
    options = options or RunOptions(concurrency=concurrency)
    concurrency = options.concurrency
    if concurrency < 1:
        raise InvalidValue("concurrency must be at least 1")
    if options.per_host < 1:
        raise InvalidValue("per_host must be at least 1")
    _size_default_executor(asyncio.get_running_loop(), 2 * concurrency + 4)
    judge = _Judge(options.asn_db)
    writer = _Writer(db_path, options.own_addresses)  # the store scrubs what it writes
    sampler = HealthSampler(
        options.canaries, min(settings.connect_timeout, 3.0),
        query_name=_query_name(options.canaries),
        resolvers=[(r.ip, r.port) for r in settings.resolvers],
        use_system_resolver=settings.use_system_resolver) if options.canaries else None
    client = _control_client(settings, options.control_ca) if options.controls else None
    try:
        await writer.call(lambda s: s.mark_stale_runs_interrupted(STALE_AFTER))
        done: set[str] = set()
        me = lease.Owner.this_process()  # the run has one owner at a time (run/lease.py)
        if options.resume:
            resume = options.resume
            run_id: str = await writer.call(lambda s: lease.claim(s, resume, me))
            done = await writer.call(lambda s: s.measured_urls(run_id))
            judge.samples.extend(await writer.call(lambda s: s.health_samples(run_id)))
        else:
            record = settings_record(settings, concurrency)
            record["controls"] = len(options.controls)
            record["canaries"] = len(options.canaries)
            if options.privacy_note:
                record["privacy"] = options.privacy_note
            run_id = await writer.call(lambda s: s.start_run(record, total, __version__))
            await writer.call(lambda s: s.claim_run(run_id, lease.lease_fields(me), None,
                                                    lease.LEASE_SECONDS))
        progress = RunProgress(run_id=run_id, total=total, done=len(done))
        reserve = _Reserve.take(db_path)

        async def health(phase: str) -> None:
            if sampler is None:
                return
            samples = await sampler.round(phase)
            judge.samples.extend(samples)
            await writer.call(lambda s: s.save_health(run_id, samples))

        await health("before")
        if on_progress:
            on_progress(progress, None, None)
        scheduler = _Scheduler(iter(targets), done, options.per_host, aside=concurrency * 4)
        servers = KeyedLimiter(options.per_host)  # connections per IP address, across workers
        pacer = RateLimiter(options.rate)
        failed_soon = asyncio.Event()  # a failure asks for a health round soon
        # Workers hand finished targets to the store task and move on; the queue is bounded
        # so a slow disk slows the workers down instead of filling memory.
        finished: asyncio.Queue[tuple[Target, Measurement, Verdict] | None] = asyncio.Queue(
            maxsize=concurrency * 2)

        # Measurements waiting for their control answers (bounded: backpressure on workers).
        answering = asyncio.Semaphore(concurrency * 4)
        helper_slots = {h: asyncio.Semaphore(HELPER_SLOTS) for h in options.controls}
        unreachable: dict[str, tuple[str, float]] = {}  # helpers found dead (app kinds)

        network_known = False

        async def record_network(answers: _Answers) -> None:
            """The run's network (AS number, country, name), from the public address the
            control saw, looked up in the ASN table; the address itself is never stored."""
            nonlocal network_known
            if network_known or judge.table is None:
                return
            for answer in answers:
                info = judge.table.lookup(str(answer.get("client_address") or ""))
                if info is not None:
                    network_known = True
                    await writer.call(lambda s, i=info: s.set_run_network(
                        run_id, probe_asn=i.asn, probe_cc=i.country or None,
                        network_name=i.name or None))
                    return

        async def judge_and_hand_over(target: Target, m: Measurement,
                                      asking: asyncio.Task[_Answers] | None,
                                      measured_at: float) -> None:
            try:
                if asking is not None:
                    m = replace(m, control=await asking)
                    await record_network(m.control)
                v = judge(m)
                remember_failure(target, m, v, measured_at)
                await finished.put((target, m, v))
            finally:
                if asking is not None:
                    answering.release()

        residual_on = options.residual_cooldown > 0 and options.residual_max > 0
        failed: deque[tuple[Target, residual.Attempt, str]] = deque(maxlen=RESIDUAL_MEMORY)
        # monotonic time the latest failed measurement ended (the cool-down counts from it; its
        # control's answer may come much later, when the helper is reached through the block)
        last_failure = [0.0]
        # triggers whose control request fell inside the residual block (asked again later)
        no_control: list[tuple[Target, Measurement, str]] = []

        def remember_failure(target: Target, m: Measurement, v: Verdict,
                             failed_at: float) -> None:
            if not residual_on or "residual" in m.extra or _response_arrived(m):
                return
            attempt = residual.attempt_of(m)
            failed.append((target, attempt, v.verdict.value))
            last_failure[0] = max(last_failure[0], failed_at)
            if attempt.trigger_like:
                scheduler.cool(target.hostname, options.residual_cooldown)
                if (m.control and len(no_control) < options.residual_max
                        and kind_of(target.test_name).control_requests is None
                        and all(a.get("control_failure") for a in m.control)):
                    no_control.append((target, m, v.verdict.value))

        async def worker(work: asyncio.TaskGroup) -> None:
            while (target := await scheduler.take()) is not None:
                try:
                    await pacer.wait()
                    await answering.acquire()
                    try:
                        m, asking = await _measure_with_controls(
                            target, settings, options, client, work, servers.hold,
                            helper_slots, unreachable)
                    except BaseException:
                        answering.release()
                        raise
                finally:
                    await scheduler.done(target)
                measured_at = time.monotonic()  # the cool-down counts from here, not the control
                if not _response_arrived(m):
                    failed_soon.set()  # was it the site, or the network? ask the canaries now
                if asking is None:
                    answering.release()
                    await judge_and_hand_over(target, m, None, measured_at)
                else:
                    work.create_task(judge_and_hand_over(target, m, asking, measured_at))

        async def store() -> None:
            while (item := await finished.get()) is not None:
                target, m, verdict = item
                await writer.call(lambda s, m=m, v=verdict: s.save_measurement(run_id, m, v))
                again = m.extra.get("residual")
                if again:  # a re-measurement replaces its first attempt in the counters
                    progress.verdicts[again["first_verdict"]] -= 1
                else:
                    progress.done += 1
                progress.verdicts[verdict.verdict.value] += 1
                if on_progress:
                    on_progress(progress, target, verdict)

        def store_what_finished() -> None:
            """On cancellation: what the workers finished but the store task had not written."""
            while not finished.empty():
                item = finished.get_nowait()
                if item is not None:
                    _, m, verdict = item
                    writer.call_sync(lambda s, m=m, v=verdict: s.save_measurement(run_id, m, v))
                    progress.done += 1
                    progress.verdicts[verdict.verdict.value] += 1

        async def watch_health() -> None:
            # Every health_interval, and soon after a failed target (a cut shorter than the
            # interval must still be seen), but never more often than every min_gap seconds.
            min_gap = min(HEALTH_MIN_GAP, options.health_interval)
            last = time.monotonic()
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(options.health_interval):
                        await failed_soon.wait()
                await asyncio.sleep(max(0.0, min_gap - (time.monotonic() - last)))
                failed_soon.clear()
                await health("during")
                last = time.monotonic()

        async def measure_again(target: Target, extra: dict[str, Any] | None) -> bool:
            """One target measured on its own (controls included), judged and handed to the
            store; False when it failed like a trigger (it may have re-armed the censor)."""
            no_control[:] = [e for e in no_control if e[0].url != target.url]
            async with asyncio.TaskGroup() as again:
                m, asking = await _measure_with_controls(
                    target, settings, options, client, again, servers.hold, helper_slots,
                    unreachable)
                # the cool-down counts from the probe's own failure (what re-arms a residual
                # censor), not from the control's answer, which may come much later
                failed_at = time.monotonic()
                if asking is not None:
                    m = replace(m, control=await asking)
            if extra:
                m = replace(m, extra={**m.extra, "residual": extra})
            await finished.put((target, m, judge(m)))
            if _response_arrived(m):
                return True
            last_failure[0] = failed_at
            if not residual.attempt_of(m).trigger_like:
                return True
            # its control request may have fallen inside the block it re-armed: ask again
            if m.control and all(a.get("control_failure") for a in m.control):
                no_control.append((target, m, judge(m).verdict.value))
            return False

        async def remeasure_residual() -> None:
            """After the list: wait a cool-down, then measure the residual suspects again,
            one at a time, within the budget (probe.run.residual)."""
            cooldown = options.residual_cooldown
            chosen = residual.suspects(
                [a for _, a, _ in failed], health_rounds(judge.samples), cooldown,
                bool(options.canaries), options.residual_max)
            by_url = {a.url: (t, v) for t, a, v in failed}

            def entry(a: residual.Attempt, trig: residual.Attempt) -> tuple[Target, dict[str, Any]]:
                return by_url[a.url][0], {**residual.note(a, trig, cooldown),
                                          "first_verdict": by_url[a.url][1]}

            # Triggers followed by a client-wide cut first: failing again (like a trigger) shows
            # the censor's own block; answering shows the cut was a shutdown, and then the
            # targets failed in it keep their verdicts (only same-server suspects go on).
            selves = [entry(a, trig) for a, trig in chosen if trig is a]
            others = [entry(a, trig) for a, trig in chosen if trig is not a]
            budget = residual.DEFAULT_BUDGET_FACTOR * cooldown
            wait = True
            confirmed = not selves

            async def pause_if(wait: bool) -> bool:
                nonlocal budget
                if not wait:
                    return True
                pause = max(0.0, last_failure[0] + cooldown - time.monotonic())
                if pause > budget:
                    return False  # the rest keep their first verdicts
                budget -= pause
                await asyncio.sleep(pause)
                await health("during")  # is the network whole again? (the verdicts ask)
                return True

            for target, extra in selves:
                if not await pause_if(wait):
                    return
                wait = not await measure_again(target, extra)
                confirmed = confirmed or wait
            for target, extra in others:
                if not confirmed and extra["scope"] != "same_server":
                    continue
                if not await pause_if(wait):
                    return
                wait = not await measure_again(target, extra)
            if not chosen:
                return  # no residual block seen: a failed control is just a failed control
            for target, m, first in no_control:
                if not await pause_if(wait):
                    return
                wait = False
                await ask_control_again(target, m, first, cooldown)

        async def ask_control_again(target: Target, m: Measurement, first: str,
                                    cooldown: float) -> None:
            """A trigger's own control request fell inside the residual block of this client:
            ask the controls again (same URL and addresses) and store the measurement with the
            new answers, saying so (``extra["residual"]["control_again"]``)."""
            if client is None:
                return
            addresses = tuple(dict.fromkeys(t.ip for t in m.tcp))[:MAX_ADDRESSES]
            request = MeasureRequest(target.url, addresses, throughput=True)
            deadline = settings.connect_timeout + settings.tls_timeout + settings.http_timeout + 10

            async def one(helper: str) -> dict[str, Any]:
                async with helper_slots[helper]:
                    return await control_client.query(client, helper, request, deadline,
                                                      options.control_token)

            answers = tuple(await asyncio.gather(*(one(h) for h in options.controls)))
            note = {"control_again": True, "cooldown_s": cooldown, "first_verdict": first,
                    "first_failure": residual.attempt_of(m).failure}
            again = replace(m, control=answers, extra={**m.extra, "residual": note})
            await finished.put((target, again, judge(again)))

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT)
                await writer.call(lambda s: s.touch_run(run_id))

        try:
            async with asyncio.TaskGroup() as tg:
                background = [tg.create_task(heartbeat())]
                if sampler:
                    background.append(tg.create_task(watch_health()))
                storing = tg.create_task(store())
                async with asyncio.TaskGroup() as work:
                    for _ in range(concurrency):
                        work.create_task(worker(work))
                if residual_on and failed:
                    await remeasure_residual()
                await finished.put(None)
                await storing
                for task in background:
                    task.cancel()
            if total:  # a health-only run (no targets) needs no second round
                await health("after")
            if judge.samples:
                progress.network = health_rounds(judge.samples)[-1].state.value
            changed = await _reclassify(writer, run_id, judge)
            for old, new in changed:
                progress.verdicts[old] -= 1
                progress.verdicts[new] += 1
        except asyncio.CancelledError:
            progress.interrupted = True
            store_what_finished()
            _mark_interrupted_after_failure(writer, run_id)  # not when taken over meanwhile
            raise
        except Exception:  # a tool error (disk full, a corrupted file, a bad CA bundle) or a bug
            progress.interrupted = True
            reserve.release()  # room for the one-row update, even on a full disk
            _mark_interrupted_after_failure(writer, run_id)
            raise
        finally:
            reserve.release()
        await writer.call(lambda s: s.finish_run(run_id, "completed"))
        return progress
    finally:
        if client is not None:
            await client.aclose()
        writer.close()


#: Default-executor size set by _size_default_executor, per event loop.
_EXECUTOR_SIZE: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = (
    weakref.WeakKeyDictionary())


class _Reserve:
    """Disk space held for marking the run interrupted after a failure (a full disk).

    ``<db>-reserve``, a small file written when the run starts and deleted when it ends; on a
    failure it is deleted first, so the one-row ``runs`` update finds room even when the
    failure was the disk filling up. Best effort: no reserve (e.g. a read-only directory)
    only means the fallback of :func:`_mark_interrupted_after_failure`.
    """

    SIZE = 256 * 1024

    def __init__(self, path: str | None) -> None:
        self.path = path

    @classmethod
    def take(cls, db_path: str) -> _Reserve:
        path = db_path + "-reserve"
        try:
            with open(path, "wb") as f:
                f.write(b"\0" * cls.SIZE)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            return cls(None)
        return cls(path)

    def release(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


def _mark_interrupted_after_failure(writer: _Writer, run_id: str) -> None:
    """After a failure during the run, mark it ``interrupted``; everything stored stays.

    Best effort, on the writer's own connection, after :class:`_Reserve` gave its space back:
    the one-row update fits where the failed write did not, and a corrupted page elsewhere in
    the file does not touch the ``runs`` row. When even this fails, the run keeps ``running``
    with its last heartbeat, and the next run on the database marks it interrupted once it is
    ``STALE_AFTER`` seconds old (:meth:`~probe.store.Store.mark_stale_runs_interrupted`), as
    after a power cut.
    """
    with contextlib.suppress(Exception):
        writer.call_sync(lambda s: s.finish_run(run_id, "interrupted"))


def _size_default_executor(loop: asyncio.AbstractEventLoop, workers: int) -> None:
    """Give the loop's default executor at least ``workers`` threads.

    The system resolver (``loop.getaddrinfo``) runs there, and its default size is
    min(32, CPUs + 4): 6 threads on a 2-core machine, fewer than the targets in flight. A
    lookup that hangs (a resolver that drops queries holds its thread for the resolver's own
    timeouts, longer than our deadline) then makes the next lookups queue, and the queueing
    counts against their DNS deadline: false DNS timeouts and a slow run.
    """
    if _EXECUTOR_SIZE.get(loop, 0) >= workers:
        return
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="probe-io"))
    _EXECUTOR_SIZE[loop] = workers


async def _reclassify(writer: _Writer, run_id: str, judge: _Judge) -> list[tuple[str, str]]:
    """Recompute the run's verdicts with the whole run's context; store those that changed."""
    context = judge.context()
    return await writer.call(  # type: ignore[no-any-return]
        lambda store: reclassify_run(store, run_id, context)
    )


def _response_arrived(m: Measurement) -> bool:
    """Did the input answer? (IO-level fact of its kind of test, no judgement.)"""
    return kind_of(m.test_name).reached(m)


def _control_client(settings: MeasureSettings, control_ca: str | None = None
                    ) -> httpx.AsyncClient:
    """The HTTP client for the control helpers; ProbeError (one line) when ``--ca-bundle`` or
    ``--control-ca`` cannot be loaded by the TLS library (e.g. a bundle holding one good and
    one damaged certificate: the measuring code's own parser skips the damaged one, OpenSSL
    refuses)."""
    try:
        context = control_client.tls_context(settings.ca_bundle, control_ca)
    except (ssl.SSLError, OSError, ValueError) as e:
        which = f"--control-ca {control_ca}" if control_ca else f"--ca-bundle {settings.ca_bundle}"
        raise ProbeError(f"{which}: unusable for TLS "
                         f"({' '.join(str(e).split()) or type(e).__name__})") from e
    # no read timeout (httpx's 5 s default would cut a helper waiting out a dead site's
    # connect timeouts): every query has its own deadline (control.client.query). Reaching the
    # helper itself gets the targets' own connect + TLS budget: when the network is cut, a
    # query fails then instead of waiting out the whole deadline (~19 s a target)
    reach = settings.connect_timeout + settings.tls_timeout
    return httpx.AsyncClient(verify=context, trust_env=False,
                             timeout=httpx.Timeout(None, connect=reach))


def _query_name(canaries: tuple[tuple[str, str], ...]) -> str:
    """The resolver canary asks for the first domestic canary's name (a name it must know)."""
    for scope, target in canaries:
        if scope == "domestic" and "://" in target:
            host = urlsplit(target).hostname
            if host:
                return host
    return "example.com"
