"""The benchmark's arithmetic and world design (fast, no network: `make bench` itself is not a
test)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from probe.lab.bench import sites as W
from probe.lab.bench import stats as B


def test_cycles_are_gaps_to_the_next_start_and_the_last_target_has_none() -> None:
    timed = [B.Timed("b", 10.0, 12.0), B.Timed("a", 0.0, 0.2), B.Timed("a", 0.3, 0.5)]
    assert B.cycles(timed) == [("a", pytest.approx(0.3)), ("a", pytest.approx(9.7))]
    assert B.cycles([B.Timed("a", 0.0, 1.0)]) == []


def test_class_minima_keep_the_fastest_of_each_class() -> None:
    assert B.class_minima([("a", 0.3), ("b", 2.0), ("a", 0.2), ("b", 2.5)]) == {
        "a": 0.2, "b": 2.0}


def test_unavoidable_prefers_the_design_cost_and_needs_a_measure_otherwise() -> None:
    design = {"healthy": None, "blackholed": 4.0}
    assert B.unavoidable(design, {"healthy": 0.22, "blackholed": 4.1}) == {
        "healthy": 0.22, "blackholed": 4.0}
    with pytest.raises(KeyError, match="healthy"):
        B.unavoidable(design, {"blackholed": 4.1})


def test_lower_bound_is_the_largest_of_share_longest_and_shared_bottleneck() -> None:
    costs = {"ok": 0.2, "bh": 4.0}
    # sum / concurrency: (10 * 0.2 + 2 * 4) / 2 = 5
    assert B.lower_bound({"ok": 10, "bh": 2}, costs, 2) == pytest.approx(5.0)
    # the longest target: one blackholed target cannot be split across workers
    assert B.lower_bound({"ok": 1, "bh": 1}, costs, 8) == pytest.approx(4.0)
    # a shared bottleneck (one shaped class) that needs longer on its own
    assert B.lower_bound({"ok": 10}, costs, 8, shared=[3.0]) == pytest.approx(3.0)
    # classes with no target in the run do not count
    assert B.lower_bound({"ok": 8, "bh": 0}, costs, 8) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        B.lower_bound({"ok": 1}, costs, 0)


def test_speedup_is_normalised_per_target() -> None:
    # 50 targets in 20 s alone; 1000 in 50 s at concurrency 8: 0.4 s vs 0.05 s per target
    assert B.speedup(20.0, 50, 50.0, 1000) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        B.speedup(0.0, 50, 50.0, 1000)


def test_ratio_rate_and_goals() -> None:
    assert B.ratio(52.0, 40.0) == pytest.approx(1.3)
    assert B.ratio(1.0, 0.0) == float("inf")
    assert B.rate(1000, 50.0) == pytest.approx(20.0)
    assert B.within(1.29, 1.3) == "ok" and B.within(1.31, 1.3) == "MISSED"
    assert B.median([3.0, 1.0, 2.0]) == 2.0
    with pytest.raises(ValueError):
        B.median([])


def test_table_aligns_its_columns() -> None:
    text = B.render_table(["run", "s"], [["a", "1.0"], ["longer", "10.5"]])
    lines = text.splitlines()
    assert lines[0] == "run        s"
    assert lines[2] == "a        1.0"
    assert lines[3] == "longer  10.5"


def test_mixed_list_has_the_designed_mix_and_subsets_keep_it() -> None:
    full = W.mixed_urls()
    assert len(full) == W.MIXED_TOTAL == 1000 and len(set(full)) == 1000
    counts = Counter(W.klass_of(u.split("/")[2]) for u in full)
    assert counts == {k.name: k.count for k in W.MIXED}
    for divisor in (W.SUBSET_DIVISOR, 5):
        sub = Counter(W.klass_of(u.split("/")[2]) for u in W.mixed_urls(divisor))
        assert sub == {k.name: k.count // divisor for k in W.MIXED}
    # interleaved, not sorted by outcome: the first 100 targets already mix the classes
    assert len({W.klass_of(u.split("/")[2]) for u in full[:100]}) >= 4
    with pytest.raises(ValueError):
        W.mixed_urls(7)


def test_fast_list_spreads_pages_over_sites() -> None:
    urls = list(W.fast_urls(W.FAST_SITES + 2))
    assert len(set(urls)) == len(urls)
    assert urls[0] == "https://f0000.bench-fast.net/page/0"
    assert urls[W.FAST_SITES] == "https://f0000.bench-fast.net/page/1"
    assert W.klass_of("f0001.bench-fast.net") == "fast"
    with pytest.raises(ValueError):
        list(W.fast_urls(W.FAST_SITES * W.FAST_PATHS + 1))


def test_design_costs_follow_the_timeout_and_the_connect_retries() -> None:
    k = W.KLASS_BY_NAME
    assert k["healthy"].design(2.0) is None  # measured
    assert k["blackholed"].design(2.0) == pytest.approx(2.0 * W.CONNECT_ATTEMPTS)
    assert k["down-timeout"].design(3.0) == pytest.approx(3.0 * W.CONNECT_ATTEMPTS)
    throttled = k["throttled"].design(2.0)
    assert throttled == pytest.approx(W.THROTTLED_SIZE * 8 / W.THROTTLE_BPS)
    assert throttled < W.TIMEOUT  # the page arrives before the HTTP step's deadline


def test_the_world_is_a_valid_simnet_scenario() -> None:
    sc = W.scenario()
    hosts = {s.host for s in sc.sites}
    assert len(sc.targets) == 1000
    assert {t.hostname for t in sc.targets} <= hosts
    assert W.fast_hostname(W.FAST_SITES - 1) in hosts
    assert {c.technique for c in sc.censors} == {"ip_block", "throttle"}


# --- the import case (issue 12) ---------------------------------------------------------------


def test_import_figures_per_core_cores_used_and_memory_ratio() -> None:
    # (measurements, wall s, CPU s, importer peak RSS kB, largest worker kB)
    runs = {100: [(100, 2.0, 3.0, 100 * 1024, 50 * 1024), (100, 4.0, 5.0, 120 * 1024,
                                                           50 * 1024),
                  (100, 3.0, 4.0, 110 * 1024, 60 * 1024)],
            1000: [(1000, 20.0, 40.0, 120 * 1024, 60 * 1024)]}
    f = B.import_figures(runs)
    small, big = f["sizes"]["100"], f["sizes"]["1000"]
    assert small["wall_s"] == 3.0 and small["rate"] == pytest.approx(100 / 3.0)
    assert small["per_core"] == pytest.approx(100 / 4.0)  # per CPU second: the goal's figure
    assert small["cores"] == pytest.approx(4.0 / 3.0)
    assert (small["rss_mb"], small["worker_rss_mb"]) == (110.0, 50.0)
    assert big["per_core"] == pytest.approx(25.0) and big["cores"] == pytest.approx(2.0)
    assert f["rss_ratio"] == pytest.approx((120 + 60) / (110 + 50))
    with pytest.raises(ValueError):
        B.import_figures({})


def test_synthesised_archive_nothing_dedups_and_the_layout_is_oonis(tmp_path: Path) -> None:
    from probe.ingest.mapper import dedup_key
    from probe.lab.bench import import_case as I

    tpls = I.templates()
    order = I.schedule(tpls)
    assert {*order} == set(range(len(tpls)))  # every real measurement is used
    web = sum(tpls[k].test_name == "web_connectivity" for k in order) / len(order)
    kinds = {t.test_name == "web_connectivity" for t in tpls}
    if kinds == {True, False}:
        assert web == pytest.approx(I.WEB_SHARE, abs=0.05)
    n = 250
    old = I.PER_HOUR
    I.PER_HOUR = 100
    try:
        hours = I.synthesise(tmp_path, n, tpls)
    finally:
        I.PER_HOUR = old
    assert [h.relative_to(tmp_path).parts for h in hours] == [
        ("raw", "20240101", "00"), ("raw", "20240101", "01"), ("raw", "20240101", "02")]
    docs = [json.loads(line) for line in I._iter_docs(hours)]
    assert len(docs) == n
    assert len({dedup_key(d) for d in docs}) == n
    for f in hours[0].rglob("*.jsonl.gz"):
        cc, test = f.parent.parent.name, f.parent.name
        with gzip.open(f, "rt") as fh:
            assert {(d.get("probe_cc") or "ZZ", d["test_name"]) for d in map(json.loads, fh)} == {
                (cc, test)}
    hours_seen = {d["measurement_start_time"][:13] for d in docs}
    assert hours_seen == {"2024-01-01 00", "2024-01-01 01", "2024-01-01 02"}


def test_import_stages_account_for_every_stage_and_the_floor(tmp_path: Path) -> None:
    from probe.lab.bench import import_case as I
    from probe.lab.bench import import_stages as S

    hours = I.synthesise(tmp_path / "in", 300)
    f = S.stage_costs(hours, 200, tmp_path)
    assert f["measurements"] == 200
    assert set(f["us"]) == set(S.STAGES)
    for stage in ("read", "decode", "map", "judge", "write"):
        assert f["us"][stage] > 0, stage
    assert f["floor_us"] == pytest.approx(f["us"]["read"] + f["us"]["decode"]
                                          + f["us"]["write"], abs=0.2)
    assert f["total_us"] >= f["floor_us"]
    assert f["ceiling_per_core"] == round(1e6 / f["floor_us"])
    assert [p.name for p in tmp_path.iterdir()] == ["in"]  # its database is gone
    text = S.render_stages(f)
    assert "of budget" in text and "200 µs" in text and "with mapping and judging free" in text


def test_the_benchmark_writes_under_the_checkout() -> None:
    from probe.lab.bench import harness

    assert (harness.REPO / "pyproject.toml").is_file() and (harness.REPO / "probe").is_dir()


# --- the protocols case (issue 15) ------------------------------------------------------------


@pytest.mark.parametrize("ipv6", [False, True])
def test_protocols_worlds_have_both_kinds_of_site(ipv6: bool) -> None:
    from probe.lab.bench import protocols_case as P

    sc = P.scenario(ipv6, count=10)
    by_host = {s.host: s for s in sc.sites}
    assert sc.ipv6 is ipv6 and len(by_host) == 20
    assert {by_host[u.split("/")[2]].site["http3"] for u in P.urls("h1", 10)} == {False}
    assert {by_host[u.split("/")[2]].site["http3"] for u in P.urls("h3", 10)} == {True}
    assert P.RUNS[0][:3] == ("plain", "v4", "h1") and not P.RUNS[0][3]


@pytest.mark.parametrize(("ms", "nbytes", "ratios"), [
    (100.0, 4096, ("1.00", "1.00")),
    (250.0, 6144, ("2.50", "1.50")),
])
def test_protocols_table_ratios_are_against_the_plain_run(ms: float, nbytes: int,
                                                          ratios: tuple[str, str]) -> None:
    from probe.lab.bench import protocols_case as P

    runs = [{"label": "plain", "targets": 2, "wall_s": 1.0, "bytes": 8192, "median_ms": 100.0,
             "verdicts": {"ok": 2}},
            {"label": "x", "targets": 2, "wall_s": 1.0, "bytes": 2 * nbytes, "median_ms": ms,
             "verdicts": {"ok": 2}}]
    text = P.render_protocols({"sites": 2, "timeout": 2.0, "concurrency": 8, "runs": runs})
    last = text.splitlines()[-1].split()
    assert last[0] == "x" and last[4] == f"{nbytes / 1024:.1f}" and tuple(last[5:7]) == ratios
