"""Assemble and execute one `probe run` or `probe watch` from a plain request record.

Everything between "the user asked for this" and "the engine runs": validate the target lists,
canaries, resolvers and files; build the measurement settings and run options; learn the
public address from the control helpers before anything is stored (or store no bodies and say
why: issue 13); run once or watch; then, when asked, trace every blocked target. The command
line builds a :class:`RunRequest` (after settings precedence) and renders what
:func:`execute` reports through its callbacks; a library user calls the same function. Tool
errors are :class:`~probe.errors.ProbeError` (bad usage: :class:`~probe.errors.UsageError`);
nothing here prints.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from probe import applists
from probe import targets as target_lists
from probe.control import client as control_client
from probe.errors import TargetListError, UsageError
from probe.measure import certs
from probe.measure.settings import EncryptedResolver, MeasureSettings, Resolver
from probe.measure.torlist import find_tor_list
from probe.model import APP_TESTS, TOR, Target, TraceObservation
from probe.run import public_address, tracing
from probe.run.engine import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PER_HOST,
    ProgressCallback,
    RunOptions,
    RunProgress,
    run_targets,
)
from probe.run.kinds import TEST_GROUPS
from probe.run.residual import DEFAULT_COOLDOWN
from probe.run.watch import WatchPlan
from probe.run.watch import watch as watch_runs
from probe.store import default_db_path

__all__ = ["EventCallback", "RunOutcome", "RunRequest", "execute", "parse_resolver"]

#: Called with a topic and one line of text: ``finished`` (a run ended or was interrupted;
#: text empty), ``watch`` (a watch event), ``trace`` (a --trace-blocked step), ``notice``
#: (something the user must see even when quiet, e.g. why tracing was skipped).
EventCallback = Callable[[str, str], None]


def _ignore(topic: str, text: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One `probe run` (or, with ``watch``, `probe watch`), as plain values.

    ``sources``: URLs and/or target list files. ``db``: None = the user data dir's database.
    ``resolvers``: extra UDP resolvers as ``IP[:PORT]`` text. ``doh``/``dot``: encrypted
    resolvers as ``--doh``/``--dot`` text. ``categories``: only list rows of
    these category codes; empty = all. ``canaries``/``asn_db``/``ca_bundle``: files; None =
    none. ``rate``: targets started per second; 0 = no limit. ``resume``: an interrupted run
    to complete; None = a new run. ``watch``: None = run once; else measure periodically.
    ``trace_blocked``: after a single run, locate the censor of every blocked target.
    ``tests``: test groups (``web``, ``im``, ``circumvention``); empty = the sources as given;
    otherwise the sources only when ``web`` is named, plus each group's inputs
    (:data:`probe.run.kinds.TEST_GROUPS`). ``app_lists``: a directory of lists (the apps'
    endpoint lists, :mod:`probe.applists`; Tor's, :mod:`probe.measure.torlist`) replacing the
    packaged ``targets/apps`` ones of the same name; None = the packaged lists.
    ``own_addresses``: the volunteer's public address(es), when known without asking a
    control helper; empty = learn it from the helpers (:func:`execute`).
    """

    sources: tuple[str, ...]
    db: Path | None = None
    resolvers: tuple[str, ...] = ()
    use_system_resolver: bool = True
    doh: tuple[str, ...] = ()
    dot: tuple[str, ...] = ()
    ca_bundle: Path | None = None
    categories: tuple[str, ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    per_host: int = DEFAULT_PER_HOST
    rate: float = 0.0
    timeout: float = 10.0
    controls: tuple[str, ...] = ()
    control_token: str | None = None
    control_ca: Path | None = None
    canaries: Path | None = None
    health_interval: float = 60.0
    residual_cooldown: float = DEFAULT_COOLDOWN
    asn_db: Path | None = None
    tests: tuple[str, ...] = ()
    app_lists: Path | None = None
    store_bodies: bool = True
    own_addresses: tuple[str, ...] = ()
    http3: str = "advertised"
    trace_blocked: bool = False
    resume: str | None = None
    watch: WatchPlan | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What :func:`execute` did. ``progress``: the (last) run's counters; None when watch
    made no full run. ``traces``: (url, trace) pairs of ``--trace-blocked``; empty when not
    asked or not possible."""

    db_path: str
    progress: RunProgress | None
    traces: tuple[tuple[str, TraceObservation], ...] = ()


def parse_resolver(text: str) -> Resolver:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` → Resolver; raises UsageError on bad input."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 53
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            raise UsageError(f"--resolver {text!r}: port must be a number")
        port = int(p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--resolver {text!r}: not an IP address") from None
    if not 0 < port < 65536:
        raise UsageError(f"--resolver {text!r}: bad port")
    return Resolver(host, port)


def parse_encrypted(engine: str, text: str) -> EncryptedResolver:
    """``--doh URL`` / ``--dot HOST[:PORT]`` → EncryptedResolver; UsageError on bad input."""
    try:
        return EncryptedResolver.parse(engine, text)
    except ValueError as e:
        raise UsageError(f"--{engine} {e}") from None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A validated request: what the engine needs."""

    total: int
    settings: MeasureSettings
    options: RunOptions
    db_path: str


def with_test_groups(sources: list[str], tests: tuple[str, ...]) -> list[str]:
    """The sources of a run with ``--tests``: the given ones when ``web`` is named (or no
    group is), then each named group's inputs (:data:`probe.run.kinds.TEST_GROUPS`)."""
    if not tests:
        return sources
    unknown = [t for t in tests if t != "web" and t not in TEST_GROUPS]
    if unknown:
        raise UsageError(f"--tests: unknown test group {unknown[0]!r} (known: web, "
                         f"{', '.join(TEST_GROUPS)})")
    out = list(sources) if "web" in tests else []
    for group in tests:
        out += [i for i in TEST_GROUPS.get(group, ()) if i not in out]
    return out


def check_app_lists(sources: list[str], directory: Path | None) -> None:
    """Every list (endpoint list, Tor list) a ``KIND://LIST`` input names is valid
    (``FILE:LINE: reason`` problems otherwise, before a run is created); ``directory`` must
    exist when given."""
    if directory is not None and not directory.is_dir():
        raise UsageError(f"--app-lists {directory}: no such directory")
    problems: list[str] = []
    for source in sources:
        try:
            target = target_lists.parse_input(source) if "://" in source else None
        except ValueError:
            continue  # reported with the other inputs
        if target is None or target.test_name not in APP_TESTS:
            continue
        try:
            if target.test_name == TOR:  # a Tor list: its own format, the same problems
                find_tor_list(target.hostname, directory)
                continue
            lst = applists.find_app_list(target.hostname, directory)
        except applists.BadAppList as e:  # BadTorList is one
            problems += e.problems
            continue
        if lst.app != target.test_name:
            problems.append(f"{lst.path}:1: a list for {lst.app!r}, not {target.test_name!r}")
    if problems:
        raise TargetListError(problems, summary=f"bad list ({len(problems)} "
                              "problems); nothing measured")


def _prepare(request: RunRequest) -> _Plan:
    """Validate every input before anything is measured or stored."""
    categories = set(request.categories) if request.categories else None
    sources = with_test_groups(list(request.sources), request.tests)
    check_app_lists(sources, request.app_lists)
    try:
        # Read the lists once to validate and count; the run streams them again (flat memory).
        total = sum(1 for _ in target_lists.iter_sources(sources, categories))
        canary_list = tuple(
            (c.scope, c.url_or_host) for c in target_lists.load_canaries(str(request.canaries))
        ) if request.canaries else ()
    except TargetListError as e:
        raise TargetListError(
            e.problems, summary=f"bad target list ({len(e.problems)} problems); nothing measured"
        ) from None
    if request.asn_db is not None and not request.asn_db.is_file():
        raise UsageError(f"--asn-db {request.asn_db}: no such file")
    resolvers = tuple(parse_resolver(r) for r in request.resolvers)
    encrypted = tuple(parse_encrypted(engine, text) for engine, texts in
                      (("doh", request.doh), ("dot", request.dot)) for text in texts)
    if request.ca_bundle is not None and not request.ca_bundle.is_file():
        raise UsageError(f"--ca-bundle {request.ca_bundle}: no such file")
    if request.ca_bundle is not None:  # unusable: fail before a run is created
        certs.trust_anchors(str(request.ca_bundle))
        try:  # OpenSSL refuses what the x509 parser skips (one good, one damaged certificate)
            control_client.tls_context(str(request.ca_bundle))
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise UsageError(f"--ca-bundle {request.ca_bundle}: unusable for TLS "
                             f"({' '.join(str(e).split()) or type(e).__name__})") from None
    if request.control_ca is not None:
        if not request.control_ca.is_file():
            raise UsageError(f"--control-ca {request.control_ca}: no such file")
        try:
            control_client.tls_context(control_ca=str(request.control_ca))
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise UsageError(f"--control-ca {request.control_ca}: unusable: {e}") from None
    if not request.use_system_resolver and not resolvers and not encrypted:
        raise UsageError("--no-system-resolver needs at least one --resolver, --doh or --dot")
    if not total:
        raise UsageError("no targets to measure")
    settings = MeasureSettings.with_timeout(
        request.timeout,
        use_system_resolver=request.use_system_resolver,
        resolvers=resolvers,
        encrypted_resolvers=encrypted,
        ca_bundle=str(request.ca_bundle) if request.ca_bundle else None,
        store_bodies=request.store_bodies,
        app_lists=str(request.app_lists) if request.app_lists else None,
        http3=request.http3,
    )
    options = RunOptions(
        concurrency=request.concurrency,
        controls=request.controls,
        control_token=request.control_token,
        control_ca=str(request.control_ca) if request.control_ca else None,
        canaries=canary_list,
        health_interval=request.health_interval,
        residual_cooldown=request.residual_cooldown,
        asn_db=str(request.asn_db) if request.asn_db else None,
        resume=request.resume,
        per_host=request.per_host,
        rate=request.rate or None,
    )
    return _Plan(total, settings, options, str(request.db or default_db_path()))


def execute(
    request: RunRequest,
    *,
    on_progress: ProgressCallback | None = None,
    on_event: EventCallback = _ignore,
    confirm: Callable[[], object] | None = None,
) -> RunOutcome:
    """Validate ``request``, call ``confirm`` (e.g. the consent notice; it raises to stop),
    then run once (or watch until stopped, SIGTERM stopping like Ctrl-C) and, when asked,
    trace the blocked targets.

    A run that fails midway (disk full, a corrupted database, an unusable CA bundle) is left
    ``interrupted`` with every finished target stored, and its error is raised. Ctrl-C raises
    KeyboardInterrupt after the ``finished`` event.
    """
    plan = _prepare(request)
    if confirm is not None:
        confirm()
    plan = _address_first(request, plan)
    if plan.options.privacy_note:  # said once the run has started (its store is open)
        on_progress = _saying_first(plan.options.privacy_note, on_progress, on_event)
    if request.watch is not None:
        return _watch(request, request.watch, plan, on_progress, on_event)
    last: list[RunProgress] = []

    def progress(p: RunProgress, target: Target | None, verdict: Any) -> None:
        if not last:
            last.append(p)
        if on_progress is not None:
            on_progress(p, target, verdict)

    categories = set(request.categories) if request.categories else None
    targets = target_lists.iter_sources(
        with_test_groups(list(request.sources), request.tests), categories)
    try:
        done = asyncio.run(run_targets(targets, plan.total, plan.settings, plan.db_path,
                                       plan.options.concurrency, progress, plan.options))
    except KeyboardInterrupt:
        on_event("finished", "")
        raise
    on_event("finished", "")
    traces: tuple[tuple[str, TraceObservation], ...] = ()
    if request.trace_blocked:
        traces = _trace_blocked(done.run_id, plan, on_event)
    return RunOutcome(plan.db_path, done, traces)


#: Seconds a control helper has to say who is asking, at start-up.
LEARN_DEADLINE = 10.0


def _saying_first(note: str, on_progress: ProgressCallback | None,
                  on_event: EventCallback) -> ProgressCallback:
    """``on_progress`` that first sends ``note`` as a ``notice`` event, at a run's start."""
    said: list[bool] = []

    def progress(p: RunProgress, target: Target | None, verdict: Any) -> None:
        if not said:
            said.append(True)
            on_event("notice", note)
        if on_progress is not None:
            on_progress(p, target, verdict)

    return progress


def _address_first(request: RunRequest, plan: _Plan) -> _Plan:
    """Make sure the store's scrubber knows the public address before anything is stored.

    Given (``own_addresses``) or learnt from the control helpers now
    (:func:`probe.run.public_address.learn`): the run scrubs it from its first write. When it
    cannot be learnt (no helper, or none answered), the run stores no bodies (the likeliest
    place for a page to echo the address in some spelling) and records why in its settings
    (``privacy``); :func:`execute` says so (a ``notice`` event) when the run starts.
    """
    own = tuple(request.own_addresses)
    problems: tuple[str, ...] = ()
    if request.controls:
        first = next(iter(target_lists.iter_sources(
            list(request.sources), set(request.categories) if request.categories else None)),
            None)
        learnt = asyncio.run(public_address.learn(
            request.controls, token=request.control_token,
            ca_bundle=str(request.ca_bundle) if request.ca_bundle else None,
            control_ca=str(request.control_ca) if request.control_ca else None,
            deadline=min(LEARN_DEADLINE, max(request.timeout, 2.0) * 2),
            probe_url=first.url if first is not None else None))
        own, problems = own + learnt.addresses, learnt.problems
    options = replace(plan.options, own_addresses=tuple(dict.fromkeys(
        (*plan.options.own_addresses, *own))))
    if own or not plan.settings.store_bodies:
        return replace(plan, options=options)
    why = ("the public address could not be learnt from the control helpers ("
           + "; ".join(problems) + ")" if request.controls else
           "no control helper to learn the public address from (--control)")
    note = f"{why}: page bodies are not stored, so none can hold it"
    return replace(plan, settings=replace(plan.settings, store_bodies=False),
                   options=replace(options, privacy_note=note))


def _watch(request: RunRequest, watch_plan: WatchPlan, plan: _Plan,
           on_progress: ProgressCallback | None, on_event: EventCallback) -> RunOutcome:
    categories = set(request.categories) if request.categories else None

    def reload() -> list[Target]:
        return target_lists.load_sources(
            with_test_groups(list(request.sources), request.tests), categories)

    log = _run_until_signalled(watch_runs(
        reload, plan.settings, plan.db_path, plan.options, watch_plan, on_progress,
        lambda text: on_event("watch", text)), on_event)
    return RunOutcome(plan.db_path, log.full_runs[-1] if log.full_runs else None)


def _trace_blocked(run_id: str, plan: _Plan,
                   on_event: EventCallback) -> tuple[tuple[str, TraceObservation], ...]:
    """``--trace-blocked``: locate the censor of every blocked target of the run just made."""
    reason = tracing.raw_unavailable()
    if reason:
        on_event("notice", reason)
        return ()
    settings = tracing.TraceSettings(timeout=min(plan.settings.connect_timeout, 2.0),
                                     ca_bundle=plan.settings.ca_bundle,
                                     innocuous_name=plan.settings.innocuous_sni)
    found = asyncio.run(tracing.trace_blocked(plan.db_path, run_id, settings,
                                              plan.options.controls,
                                              say=lambda text: on_event("trace", text)))
    for url, obs in found:
        on_event("trace", f"{url}: {tracing.summary(obs)}")
    return tuple(found)


def _run_until_signalled(coro: Coroutine[Any, Any, Any], on_event: EventCallback) -> Any:
    """Run ``coro``; SIGTERM stops it like Ctrl-C (the run in progress is interrupted)."""

    async def main() -> Any:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coro
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        on_event("finished", "")
        raise

