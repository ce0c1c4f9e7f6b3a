"""Re-run the current classifier over stored observations, without touching the network.

Each run is classified with its own health samples (and an optional ASN table); a verdict is
stored only when it differs from the current one (verdict, method or analysis version), so the
previous verdicts and their versions stay as history and ``probe results`` shows the newest.
Imported measurements are judged with the missing-evidence context their stored provenance
names, as at import. The run's packet-level traces are re-judged too
(:func:`probe.classify.traces.judge`: where the censor is); a trace's judgement is replaced
where it changed, its probes stay as measured.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from probe.classify import ANALYSIS_VERSION, Context, classify, throttle_baseline
from probe.classify.health import rounds
from probe.classify.traces import judge
from probe.model import VerdictKind
from probe.run import asn
from probe.store import Store


def reclassify_run(store: Store, run_id: str, context: Context) -> list[tuple[str, str]]:
    """Classify every measurement of a run; store the verdicts that changed.

    The run's throttling baseline is computed first, in one streaming pass, unless the context
    carries one. Returns (old verdict, new verdict) for each change (old = new for a first
    verdict).
    """
    if context.throttle_baseline is None:
        measurements = (m for _, m in store.iter_measurements(run_id))
        context = replace(context, throttle_baseline=throttle_baseline(measurements,
                                                                       context.health))
    changed = []
    # Imported measurements are judged as when imported: without the evidence their source
    # lacks (Provenance.missing, docs/import.md).
    provenances = store.provenances(run_id)
    for mid, m in store.iter_measurements(run_id):
        p = provenances.get(mid)
        new = classify(m, replace(context, missing=frozenset(p.missing)) if p else context)
        old = store.current_verdict(mid)
        if old is None or (old.verdict, old.method, old.analysis_version) != (
            new.verdict, new.method, new.analysis_version
        ):
            store.save_verdict(mid, new)
            before: VerdictKind = old.verdict if old else new.verdict
            changed.append((before.value, new.verdict.value))
    return changed


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


def reanalyze(db_path: str, run_id: str | None = None, asn_db: str | None = None) -> str:
    """Reclassify one run or every run; returns a one-line summary."""
    asn_of = asn.load(asn_db).asn if asn_db else None
    counts: Counter[str] = Counter()
    with Store.open(db_path) as store:
        runs = [store.get_run(run_id)["run_id"]] if run_id else store.run_ids()
        for run in runs:
            context = Context(health=tuple(rounds(store.health_samples(run))), asn_of=asn_of)
            counts["measurements"] += store.get_run(run)["measured"]
            counts["changed"] += len(reclassify_run(store, run, context))
            counts["traces"] += rejudge_traces(store, run)
    traces = f", {counts['traces']} traces re-judged" if counts["traces"] else ""
    return (f"reanalyzed {counts['measurements']} measurements in {len(runs)} runs with "
            f"classifier {ANALYSIS_VERSION}: {counts['changed']} verdicts changed{traces}")
