"""Re-run the current classifier over stored observations, without touching the network.

Each run is classified with its own health samples (and an optional ASN table); a verdict is
stored only when it differs from the current one (verdict, method or analysis version), so the
previous verdicts and their versions stay as history and ``probe results`` shows the newest.
Imported measurements are judged with the missing-evidence context their stored provenance
names, as at import. The run's packet-level traces are re-judged too
(:func:`probe.classify.traces.judge`: where the censor is); a trace's judgement is replaced
where it changed, its probes stay as measured.

Shutdowns from the population (:mod:`probe.classify.population`): before judging, one pass
gathers a fact per measurement into per-(network, hour) states — an imported measurement's
network is its provenance's AS and country (across every run of the database), one of ours is
its own run (the vantage's country from the run's ``probe_cc``) — and a failure in a cut hour
becomes ``shutdown`` where the run's canaries said nothing. The same pass counts the run's
dual-stack targets per family: IPv6 failing for every one of them while IPv4 works is this
network's broken IPv6, never a block (:class:`probe.classify.families.IPv6Population`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from probe.classify import ANALYSIS_VERSION, Context, classify, throttle_baseline
from probe.classify import families as fam
from probe.classify import population as pop
from probe.classify.health import rounds
from probe.classify.traces import judge
from probe.ingest.pipeline import population_network
from probe.model import Measurement, Provenance, Verdict, VerdictKind
from probe.run import asn
from probe.store import Store

States = Mapping[tuple[str, str], pop.HourState]


def network_of(store: Store, mid: str, run: Mapping[str, Any],
               probe_cc: str | None = None,
               provenances: Mapping[str, Provenance] | None = None) -> tuple[str, str | None]:
    """The population network and vantage country of one stored measurement.

    Imported: ``AS<asn> <cc>`` from its provenance ("" when the AS is unknown: no inference —
    an unknown network is no population). Ours: ``run <id>`` and the run's country (or
    ``probe_cc`` when the caller knows it). ``provenances``: the run's, read once
    (:meth:`Store.provenances`); without them one query per measurement.
    """
    prov = provenances.get(mid) if provenances is not None else store.provenance(mid)
    if prov is not None:
        return population_network(prov)
    return f"run {run['run_id']}", probe_cc or run.get("probe_cc")


def _facts(store: Store, run_id: str, context: Context,
           into: pop.Population) -> Iterator[Measurement]:
    """Yield the run's measurements, adding each one's population fact to ``into``."""
    run = store.get_run(run_id)
    provenances = store.provenances(run_id)
    for mid, m in store.iter_measurements(run_id):
        network, cc = network_of(store, mid, run, context.probe_cc, provenances)
        into.add(pop.fact(m, network, cc, context.country_of))
        yield m


def population_states(store: Store, run_ids: Iterable[str], context: Context) -> States:
    """The per-(network, hour) states of every measurement of ``run_ids`` (one pass each)."""
    population = pop.Population()
    for run_id in run_ids:
        for _ in _facts(store, run_id, context, population):
            pass
    return population.states()


def reclassify_run(store: Store, run_id: str, context: Context,
                   states: States | None = None) -> list[tuple[str, str]]:
    """Classify every measurement of a run; store the verdicts that changed.

    The run's throttling baseline and population states are computed first, in one streaming
    pass, unless the context carries the baseline and ``states`` are given (by
    :func:`reanalyze`, over the whole database). Returns (old verdict, new verdict) for each
    change (old = new for a first verdict).
    """
    ipv6 = fam.IPv6Population()  # the run's own view of IPv6 (issue 15), same pass
    if context.throttle_baseline is None or states is None:
        population = pop.Population()
        measurements = _counted(_facts(store, run_id, context, population), ipv6, context)
        if context.throttle_baseline is None:
            context = replace(context, throttle_baseline=throttle_baseline(measurements,
                                                                           context.health))
        else:
            for _ in measurements:
                pass
        if states is None:
            states = population.states()
    else:
        for _ in _counted((m for _, m in store.iter_measurements(run_id)), ipv6, context):
            pass
    changed = []
    for mid, old, new in judge_run(store, run_id, context, states, ipv6=ipv6):
        store.save_verdict(mid, new)
        before: VerdictKind = old.verdict if old else new.verdict
        changed.append((before.value, new.verdict.value))
    return changed


def judge_run(store: Store, run_id: str, context: Context, states: States,
              ids: Iterable[str] | None = None, ipv6: fam.IPv6Population | None = None
              ) -> Iterator[tuple[str, Verdict | None, Verdict]]:
    """(measurement id, current verdict, new verdict) for each measurement of the run (or of
    ``ids``, measurements of that run) whose verdict changed; nothing is written. The one
    judging loop of both the single-process and the Dask path (:mod:`probe.run.distributed`).
    ``context`` must carry the run's throttling baseline. ``ipv6``: the run's own view of
    IPv6 (counted in the caller's pass; None = not applied)."""
    run = store.get_run(run_id)
    # Imported measurements are judged as when imported: without the evidence their source
    # lacks (Provenance.missing, docs/import.md).
    provenances = store.provenances(run_id)
    found = (store.iter_measurements(run_id) if ids is None
             else store.measurements_by_id(list(ids)))
    for mid, m in found:
        p = provenances.get(mid)
        judged = classify(m, replace(context, missing=frozenset(p.missing)) if p else context)
        network, cc = network_of(store, mid, run, context.probe_cc, provenances)
        x = pop.fact(m, network, cc, context.country_of)
        new = pop.apply(judged, x, states.get((x.network, x.hour)),
                        pop.canaries_state(m, context))
        if ipv6 is not None:
            new = ipv6.apply(new, m, context)
        old = store.current_verdict(mid)
        if old is None or (old.verdict, old.method, old.analysis_version) != (
            new.verdict, new.method, new.analysis_version
        ):
            yield mid, old, new


def _counted(measurements: Iterable[Measurement], into: fam.IPv6Population,
             context: Context) -> Iterator[Measurement]:
    """Yield ``measurements``, counting each one's per-family result into ``into``."""
    for m in measurements:
        into.add(m, context)
        yield m


def rejudge_traces(store: Store, run_id: str) -> int:
    """Judge every stored trace of a run again; store the judgements that changed. Returns
    how many changed."""
    changed = 0
    for trace_id, old in store.run_traces(run_id):
        new = judge(old)
        if new != old:
            store.update_trace_judgement(trace_id, new)
            changed += 1
    return changed


def country_lookup(table: asn.AsnTable | None) -> Callable[[str], str | None] | None:
    """IP → country code from an ASN table (None = no table)."""
    if table is None:
        return None

    def country_of(ip: str) -> str | None:
        info = table.lookup(ip)
        return info.country if info is not None and info.country not in ("", "None") else None

    return country_of


def reanalyze(db_path: str, run_id: str | None = None, asn_db: str | None = None) -> str:
    """Reclassify one run or every run; returns a one-line summary.

    The population states come from every run of the database (an imported network's hour
    may be spread over several imports), even when one run is reanalysed.
    """
    table = asn.load(asn_db) if asn_db else None
    asn_of = table.asn if table else None
    country_of = country_lookup(table)
    counts: Counter[str] = Counter()
    with Store.open(db_path, create=False) as store:  # never a new empty file
        runs = [store.get_run(run_id)["run_id"]] if run_id else store.run_ids()
        states = population_states(store, store.run_ids(),
                                   Context(asn_of=asn_of, country_of=country_of))
        for run in runs:
            context = Context(health=tuple(rounds(store.health_samples(run))), asn_of=asn_of,
                              country_of=country_of)
            counts["measurements"] += store.get_run(run)["measured"]
            counts["changed"] += len(reclassify_run(store, run, context, states))
            counts["traces"] += rejudge_traces(store, run)
    traces = f", {counts['traces']} traces re-judged" if counts["traces"] else ""
    return (f"reanalyzed {counts['measurements']} measurements in {len(runs)} runs with "
            f"classifier {ANALYSIS_VERSION}: {counts['changed']} verdicts changed{traces}")
