"""Unit tests of probe.report's aggregations on a tiny synthetic database whose every number
can be checked by hand, and of its pure pieces: health-state SQL vs infer_state, change
classification, timeline layout, IP scrubbing, time parsing, escaping."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from pathlib import Path

import markupsafe
import pytest

from probe.classify.health import infer_state
from probe.errors import UsageError
from probe.lab.synth import generate
from probe.model import HealthSample, HealthScope
from probe.report import ReportOptions, Window, build_report
from probe.report import aggregate as agg
from probe.report.compare import classify_change
from probe.report.layout import RunPoint, health_segments, plan_cells
from probe.report.markup import Markup, el, esc, join
from probe.report.records import Report, Status
from probe.report.scrub import clean_text, normalise_addresses, scrub_ips
from probe.report.times import local_midnight, parse_time, resolve_tz, tz_name
from probe.report.workspace import STATE_CASE_SQL, Workspace, state_from_verdicts
from tests.factories import tiny_spec

UTC = dt.UTC


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)




@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.db"
    generate(tiny_spec(), path)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_db: Path) -> Report:
    return build_report(ReportOptions((tiny_db,), UTC, now=_t("2024-03-10T06:00")))


# --- the report of the tiny database ----------------------------------------------------------


def test_summary_counts(tiny: Report) -> None:
    s = tiny.summary
    assert (s.targets, s.runs, s.networks, s.measurements) == (4, 12, 2, 48)
    assert s.verdicts == {
        "ok": 27,
        "blocked": 11,
        "intercepted": 0,
        "throttled": 0,
        "down": 2,
        "shutdown": 4,
        "inconclusive": 4,
    }
    assert s.runs_by_status == {"completed": 12}
    assert s.targets_interfered == 2
    assert s.targets_interfered_now == 2
    assert s.cut_seconds == 7200


def test_target_rows(tiny: Report) -> None:
    rows = {t.url: t for t in tiny.targets}
    a, b = rows["https://a.test/"], rows["https://b.test/"]
    assert (a.verdict, a.method, a.networks_interfered, a.networks) == (
        "blocked",
        "tls.timeout",
        2,
        2,
    )
    assert (a.measurements, a.interfered) == (12, 6)
    assert a.first_blocked == _t("2024-03-10T03:00")
    assert a.last_blocked == _t("2024-03-10T05:30")
    # The probe's own address (not contacted by the measurement) is scrubbed, the target's kept.
    assert a.evidence == "TLS to 192.0.2.1 timed out; asked from [ip]"
    assert (b.verdict, b.method, b.network, b.networks_interfered) == (
        "blocked",
        "tcp.reset",
        "AS100 NET-A (KZ)",
        1,
    )
    assert (b.first_blocked, b.last_blocked) == (_t("2024-03-10T00:00"), _t("2024-03-10T05:00"))
    assert rows["https://c.test/"].verdict == "ok"
    assert rows["https://d.test/"].category is None
    assert [t.url for t in tiny.targets][:2] == ["https://a.test/", "https://b.test/"]


def test_breakdowns(tiny: Report) -> None:
    cats = {c.category: c for c in tiny.categories}
    assert (cats["NEWS"].targets, cats["NEWS"].targets_interfered, cats["NEWS"].measurements) == (
        2,
        2,
        24,
    )
    assert (cats["GRP"].targets, cats["GRP"].targets_interfered) == (1, 0)
    assert cats[None].targets == 1
    assert [(m.verdict, m.method, m.measurements, m.targets, m.networks) for m in tiny.methods] == [
        ("blocked", "tls.timeout", 6, 1, 2),
        ("shutdown", "shutdown.full", 4, 4, 1),
        ("inconclusive", "local_outage", 4, 4, 1),
        ("blocked", "dns.nxdomain", 3, 1, 1),
        ("blocked", "tcp.reset", 2, 1, 1),
        ("down", "down.tcp", 2, 1, 1),
    ]
    nets = {n.label: n for n in tiny.networks}
    assert nets["AS100 NET-A (KZ)"].verdicts["shutdown"] == 4
    assert nets["AS200 NET-B (KZ)"].cut_seconds == 3600


def test_timeline_one_cell_per_run(tiny: Report) -> None:
    assert tiny.meta.timeline_unit == "run"
    assert [len(c) for c in tiny.cells.values()] == [6, 6]
    a0 = [s for s in tiny.timeline if s.url == "https://a.test/" and s.network.startswith("AS100")]
    assert [(s.verdict, s.cells) for s in a0] == [
        ("ok", 1),
        ("shutdown", 1),
        ("ok", 1),
        ("blocked", 3),
    ]
    assert a0[-1].start == _t("2024-03-10T03:00") and a0[-1].end == _t("2024-03-10T06:00")
    mix = [b for b in tiny.network_timeline if b.network.startswith("AS200")]
    assert mix[2].verdicts["inconclusive"] == 4


def test_health_segments_show_the_cuts(tiny: Report) -> None:
    cuts = [(h.network, h.state, h.start, h.end, h.source) for h in tiny.cuts]
    assert cuts == [
        (
            "AS100 NET-A (KZ)",
            "shutdown.full",
            _t("2024-03-10T01:00"),
            _t("2024-03-10T02:00"),
            "canaries",
        ),
        (
            "AS200 NET-B (KZ)",
            "local_outage",
            _t("2024-03-10T02:30"),
            _t("2024-03-10T03:30"),
            "canaries",
        ),
    ]


def test_changes_without_since_compare_before_the_last_run(tiny: Report) -> None:
    assert [(c.change, c.network, c.url) for c in tiny.changes] == [
        ("still_blocked", "AS100 NET-A (KZ)", "https://a.test/"),
        ("still_blocked", "AS100 NET-A (KZ)", "https://b.test/"),
        ("still_blocked", "AS200 NET-B (KZ)", "https://a.test/"),
    ]


def test_changes_since_the_previous_period(tiny_db: Path) -> None:
    r = build_report(
        ReportOptions((tiny_db,), UTC, since=_t("2024-03-10T03:00"), now=_t("2024-03-10T06:00"))
    )
    assert r.summary.runs == 6
    got = [
        (
            c.change,
            c.network[:5],
            c.url,
            c.before.verdict if c.before else None,
            c.before.method if c.before else None,
        )
        for c in r.changes
    ]
    assert got == [
        ("newly_blocked", "AS100", "https://a.test/", "ok", None),
        ("newly_blocked", "AS200", "https://a.test/", "ok", None),
        ("method_changed", "AS100", "https://b.test/", "blocked", "dns.nxdomain"),
    ]


def test_category_filter(tiny_db: Path) -> None:
    r = build_report(
        ReportOptions((tiny_db,), UTC, categories=("news",), now=_t("2024-03-10T06:00"))
    )
    assert {t.url for t in r.targets} == {"https://a.test/", "https://b.test/"}
    assert r.summary.measurements == 24
    assert r.meta.categories == ("NEWS",)


def test_only_current_verdicts_count(tiny_db: Path) -> None:
    with sqlite3.connect(tiny_db) as conn:
        total = conn.execute("SELECT count(*) FROM verdicts").fetchone()[0]
    assert total > 48  # the fixture stores superseded verdicts too
    r = build_report(ReportOptions((tiny_db,), UTC, now=_t("2024-03-10T06:00")))
    assert r.summary.measurements == 48


def test_period_outside_the_data_gives_an_empty_report(tiny_db: Path) -> None:
    r = build_report(
        ReportOptions((tiny_db,), UTC, since=_t("2030-01-01T00:00"), now=_t("2030-01-02T00:00"))
    )
    assert (r.summary.runs, r.summary.measurements, r.targets, r.health) == (0, 0, [], [])


def test_older_database_without_health_samples(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    generate(tiny_spec(health=False), path)
    r = build_report(ReportOptions((path,), UTC, now=_t("2024-03-10T06:00")))
    assert r.meta.health_source == "verdicts"
    assert [(h.state, h.start) for h in r.cuts] == [
        ("shutdown.full", _t("2024-03-10T01:00")),
        ("local_outage", _t("2024-03-10T02:30")),
    ]


def test_a_round_whose_portal_checks_got_one_same_answer_is_captive(tiny_db: Path,
                                                                   tmp_path: Path) -> None:
    copy = tmp_path / "portal.db"
    copy.write_bytes(tiny_db.read_bytes())
    with sqlite3.connect(copy) as conn:
        run_id, at, phase = conn.execute(
            "SELECT run_id, at, phase FROM health_samples ORDER BY at LIMIT 1").fetchone()
        conn.executemany(
            "INSERT INTO health_samples (run_id, at, phase, scope, target, elapsed, failure, "
            "unexpected) VALUES (?, ?, ?, 'portal', ?, 0.1, NULL, ?)",
            [(run_id, at, phase, f"http://check{n}.test/", "302 portal.example")
             for n in range(2)])
    r = build_report(ReportOptions((copy,), UTC, now=_t("2024-03-10T06:00")))
    assert [h.state for h in r.health][:1] == ["captive_portal"]
    before = build_report(ReportOptions((tiny_db,), UTC, now=_t("2024-03-10T06:00")))
    assert "captive_portal" not in {h.state for h in before.health}
    assert state_from_verdicts({("inconclusive", "captive_portal"): 3, ("ok", None): 1}) == (
        "captive_portal")


def test_several_databases_count_each_run_once(tiny_db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    copy.write_bytes(tiny_db.read_bytes())
    # The copy lost one run's last measurement: the fuller copy (the original) must win.
    with sqlite3.connect(copy) as conn:
        run_id = conn.execute("SELECT run_id FROM runs ORDER BY run_id LIMIT 1").fetchone()[0]
        mid = conn.execute(
            "SELECT measurement_id FROM measurements WHERE run_id = ? ORDER BY rowid DESC LIMIT 1",
            (run_id,),
        ).fetchone()[0]
        conn.execute("DELETE FROM verdicts WHERE measurement_id = ?", (mid,))
        conn.execute("DELETE FROM http_requests WHERE measurement_id = ?", (mid,))
        conn.execute("DELETE FROM dns_queries WHERE measurement_id = ?", (mid,))
        conn.execute("DELETE FROM tcp_connects WHERE measurement_id = ?", (mid,))
        conn.execute("DELETE FROM measurements WHERE measurement_id = ?", (mid,))
    one = build_report(ReportOptions((tiny_db,), UTC, now=_t("2024-03-10T06:00")))
    for order in ((copy, tiny_db), (tiny_db, copy, tiny_db)):
        both = build_report(ReportOptions(order, UTC, now=_t("2024-03-10T06:00")))
        assert both.summary == one.summary
        assert both.targets == one.targets


def test_status_and_cells_queries_directly(tiny_db: Path) -> None:
    with Workspace.open([tiny_db]) as ws:
        ws.load_runs([Window()])
        ws.load_verdicts()
        st = agg.status(ws.conn, 0)
        urls = dict(ws.conn.execute("SELECT target_idx, url FROM targets"))
        got = {(net, urls[t]): (p.verdict, p.method) for (net, t), p in st.items()}
        assert got[(0, "https://b.test/")] == ("blocked", "tcp.reset")
        assert got[(1, "https://b.test/")] == ("ok", None)
        # A target whose only verdicts say nothing about the site keeps its latest one.
        assert all(v[0] != "shutdown" for v in got.values())
        agg.build_rollup(ws.conn)
        assert sum(agg.verdict_counts(ws.conn).values()) == 48


# --- pure pieces -------------------------------------------------------------------------------

_SCOPES = ("gateway", "resolver", "domestic", "international", "control")
_SHORT = {
    "gateway": "gw",
    "resolver": "res",
    "domestic": "dom",
    "international": "intl",
    "control": "ctl",
}


def test_state_sql_agrees_with_infer_state_on_every_combination() -> None:
    # Portal checks of the round: how many got one same unexpected answer (0-2), and one
    # more check answering something else.
    combos = list(itertools.product((0, 1, 2), repeat=len(_SCOPES) * 2))
    portals = (0, 1, 2)
    conn = sqlite3.connect(":memory:")
    cols = [f"{_SHORT[s]}_{k}" for s in _SCOPES for k in ("up", "down")] + ["portal_same"]
    conn.execute(f"CREATE TABLE c (i INTEGER, {', '.join(cols)})")
    rows = [(i * 3 + p, *combo, p) for i, combo in enumerate(combos) for p in portals]
    conn.executemany(f"INSERT INTO c VALUES ({', '.join('?' * (len(cols) + 1))})", rows)
    sql_states = dict(conn.execute(f"SELECT i, {STATE_CASE_SQL} FROM c"))
    at = "2024-01-01T00:00:00Z"
    for i, combo in enumerate(combos):
        samples = []
        for k, scope in enumerate(_SCOPES):
            up, down = combo[2 * k], combo[2 * k + 1]
            samples += [HealthSample(at, "before", HealthScope(scope), "t", 0.1, None)] * up
            samples += [HealthSample(at, "before", HealthScope(scope), "t", 0.1,
                                     "generic_timeout_error")] * down
        for p in portals:
            checks = [HealthSample(at, "before", HealthScope.PORTAL, f"http://check{n}/", 0.1,
                                   None, "302 portal.example") for n in range(p)]
            other = HealthSample(at, "before", HealthScope.PORTAL, "http://other/", 0.1, None,
                                 "200 t:Login")
            got = infer_state(samples + checks + [other]).value
            assert sql_states[i * 3 + p] == got, (combo, p)


@pytest.mark.parametrize(
    ("before", "after", "change"),
    [
        (None, ("blocked", "dns.nxdomain"), "newly_blocked"),
        (("ok", None), ("blocked", "dns.nxdomain"), "newly_blocked"),
        (("down", "down.tcp"), ("throttled", "throttle"), "newly_blocked"),
        (("shutdown", "shutdown.full"), ("blocked", "tls.timeout"), "unclear"),
        (("blocked", "tls.timeout"), ("ok", None), "unblocked"),
        (("blocked", "tls.timeout"), ("down", "down.tcp"), "unclear"),
        (("blocked", "tls.timeout"), None, "unclear"),
        (("blocked", "tls.timeout"), ("blocked", "tls.timeout"), "still_blocked"),
        (("blocked", "tls.timeout"), ("blocked", "tls.reset"), "method_changed"),
        (("blocked", "tls.timeout"), ("intercepted", "tls.mitm"), "method_changed"),
        (("ok", None), ("ok", None), None),
        (("ok", None), ("down", "down.dns"), None),
        (None, ("ok", None), None),
    ],
)
def test_classify_change(
    before: tuple[str, str | None] | None,
    after: tuple[str, str | None] | None,
    change: str | None,
) -> None:
    at = _t("2024-01-01T00:00")
    b = Status(before[0], before[1], at) if before else None
    a = Status(after[0], after[1], at) if after else None
    assert classify_change(b, a) == change


def test_state_from_verdicts() -> None:
    assert state_from_verdicts({("shutdown", "shutdown.allowlist"): 3, ("ok", None): 1}) == (
        "shutdown.allowlist"
    )
    assert state_from_verdicts({("inconclusive", "local_outage"): 5}) == "local_outage"
    assert state_from_verdicts({("blocked", "dns.nxdomain"): 5, ("shutdown", "x"): 1}) == "whole"


def test_plan_cells_buckets_a_year_by_local_day() -> None:
    tz = resolve_tz("Asia/Almaty")
    start = _t("2024-02-27T00:00")
    runs = [RunPoint(i, 0, start + dt.timedelta(hours=i)) for i in range(24 * 250)]
    plan = plan_cells(runs, tz)
    assert plan.unit == "1 d"
    cells = plan.cells[0]
    assert len(cells) == len({r.started_at.astimezone(tz).date() for r in runs}) == 251
    # Kazakhstan moved from UTC+6 to UTC+5 on 2024-03-01: local midnight moves by an hour.
    assert cells[1][2] == _t("2024-02-28T18:00")  # ends Feb 29 00:00 +06
    assert cells[4][1] == _t("2024-03-01T19:00")  # starts Mar 2 00:00 +05
    assert plan.bucket_of[0] == 0 and plan.bucket_of[24 * 4] == 4


def test_plan_cells_one_per_run_with_gaps() -> None:
    start = _t("2024-01-01T00:00")
    hours = [0, 1, 2, 10, 11]
    runs = [RunPoint(i, 0, start + dt.timedelta(hours=h)) for i, h in enumerate(hours)]
    plan = plan_cells(runs, UTC)
    ends = [(c[2] - start).total_seconds() / 3600 for c in plan.cells[0]]
    assert plan.unit == "run"
    assert ends == [1, 2, 3, 11, 12]  # a long gap is not stretched over


def test_health_segments_merge_and_break_on_gaps() -> None:
    t0 = _t("2024-01-01T00:00").timestamp()
    rounds = [
        (t0, "whole", "canaries"),
        (t0 + 3600, "whole", "canaries"),
        (t0 + 7200, "shutdown.full", "canaries"),
        (t0 + 30 * 3600, "whole", "canaries"),
    ]
    segs = health_segments(rounds, 3600.0)
    assert [(s.state, s.rounds, (s.end - s.start).total_seconds()) for s in segs] == [
        ("whole", 2, 7200),
        ("shutdown.full", 1, 3600),
        ("whole", 1, 3600),
    ]


def test_scrub_ips() -> None:
    allowed = normalise_addresses(["192.0.2.1", "[2001:db8::1]:443", "198.51.100.53:53", None])
    text = (
        "from 203.0.113.5 to 192.0.2.1, v6 2001:db8::2 and 2001:DB8::1, resolver "
        "198.51.100.53:53, time 10:30:00, version 1.2.3, ::1"
    )
    assert scrub_ips(text, allowed) == (
        "from [ip] to 192.0.2.1, v6 [ip] and 2001:DB8::1, resolver 198.51.100.53:53, "
        "time 10:30:00, version 1.2.3, [ip]"
    )


def test_clean_text() -> None:
    assert clean_text("a\x1b[31mb\nc\u2028d  e") == "a [31mb c d e"
    assert clean_text(None) == ""
    assert clean_text("x" * 500, limit=10) == "x" * 9 + "…"


def test_parse_time_forms() -> None:
    almaty = resolve_tz("Asia/Almaty")
    now = _t("2024-06-01T12:00")
    assert parse_time("2022-01-05", almaty) == _t("2022-01-04T18:00")
    assert parse_time("2022-01-05", almaty, end=True) == _t("2022-01-05T18:00")
    assert parse_time("2024-06-01", almaty) == _t("2024-05-31T19:00")
    assert parse_time("2022-01-05T10:30Z", almaty) == _t("2022-01-05T10:30")
    assert parse_time("2022-01-05 16:30", almaty) == _t("2022-01-05T10:30")
    assert parse_time("2022-01-05T16:30+06:00", UTC) == _t("2022-01-05T10:30")
    assert parse_time("7d", UTC, now=now) == _t("2024-05-25T12:00")
    assert parse_time("36h", UTC, now=now) == _t("2024-05-31T00:00")
    with pytest.raises(UsageError):
        parse_time("yesterday-ish", UTC)


def test_resolve_tz() -> None:
    assert tz_name(resolve_tz("UTC")) == "UTC"
    assert tz_name(resolve_tz("+05:00")) == "UTC+05:00"
    assert tz_name(resolve_tz("Asia/Almaty")) == "Asia/Almaty"
    assert resolve_tz("local") is not None
    assert local_midnight(dt.date(2024, 3, 1), resolve_tz("Asia/Almaty")) == _t("2024-02-29T19:00")
    for bad in ("Mars/Olympus", "+25:00"):
        with pytest.raises(UsageError):
            resolve_tz(bad)


def test_markup_escapes_by_construction() -> None:
    hostile = '"><script>alert(1)</script>'
    # markupsafe's entities: &#34; for a double quote, &#39; for a single one
    assert esc(hostile) == "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert esc("it's") == "it&#39;s" and esc(None) == "" and esc(3) == "3"
    html = el(
        "td", {"data-sort": hostile, "class": None, "hidden": True}, hostile, el("b", None, "ok")
    )
    assert html == (
        '<td data-sort="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" hidden>'
        "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;<b>ok</b></td>"
    )
    assert Markup("<br>") + "<i>" == "<br>&lt;i&gt;"
    assert "<i>" + Markup("<br>") == "&lt;i&gt;<br>"
    assert join(["<i>", Markup("<br>"), None, ["&"]]) == "&lt;i&gt;<br>&amp;"
    assert isinstance(el("p"), markupsafe.Markup)  # the trusted library's type, not our own
    assert join(["<", Markup("<hr>")]) == "&lt;<hr>"
