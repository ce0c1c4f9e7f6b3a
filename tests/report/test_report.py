"""Tests for probe report / probe compare: golden Markdown/CSV/JSON for a fixed database, the
CLI contract, safety of every output against hostile content, and reading a live database.

Golden files live in tests/golden/report/. After an intended change, regenerate them with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report.py`` and review ``git diff``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
import typer

from probe.cli.report_cmd import register
from probe.lab.synth import generate as generate_synth
from probe.lab.synth import january_2022_spec
from probe.report import Report, ReportOptions, Window, build_report, compare, write_report
from probe.report.output import render_comparison
from probe.report.render_csv import csv_value, render_csv
from probe.report.render_html import render_html
from probe.report.render_json import render_json
from probe.report.render_md import md_escape, render_md
from probe.report.times import resolve_tz
from tests.clirunner import CliRunner

GOLDEN = Path(__file__).parent / "golden" / "report"
UTC = dt.UTC
ALMATY = resolve_tz("Asia/Almaty")
NOW = dt.datetime(2022, 1, 12, tzinfo=UTC)
#: What the hostile fixture site puts in front of the analyst (must never run or render).
PROBE_IP = "203.0.113.77"


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def jan_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jan") / "jan2022.db"
    generate_synth(january_2022_spec(), path)
    return path


@pytest.fixture(scope="module")
def golden_report(jan_db: Path) -> Report:
    """Jan 8-9 (Almaty) in the middle of the cuts, compared with the two days before."""
    return build_report(
        ReportOptions(
            (jan_db,), ALMATY, since=_t("2022-01-07T18:00"), until=_t("2022-01-09T18:00"), now=NOW
        )
    )


@pytest.fixture(scope="module")
def full_report(jan_db: Path) -> Report:
    return build_report(ReportOptions((jan_db,), ALMATY, now=NOW))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden {path}: run UPDATE_GOLDEN=1 pytest tests/test_report.py"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (
        f"{name} differs from its golden file; if intended, regenerate with "
        "UPDATE_GOLDEN=1 pytest tests/test_report.py and review git diff"
    )


# --- golden files --------------------------------------------------------------------------------


def test_golden_markdown(golden_report: Report) -> None:
    check_golden("report.md", render_md(golden_report))


def test_golden_json(golden_report: Report) -> None:
    text = render_json(golden_report)
    json.loads(text)
    check_golden("report.json", text)


def test_golden_csv(golden_report: Report) -> None:
    tables = render_csv(golden_report)
    assert set(tables) == {
        "summary",
        "verdicts",
        "targets",
        "changes",
        "cuts",
        "health",
        "networks",
        "comparison",
        "categories",
        "methods",
        "timeline",
        "network_timeline",
    }
    for name, text in tables.items():
        check_golden(f"csv/{name}.csv", text)


def test_golden_compare_periods(jan_db: Path) -> None:
    c = compare(
        [jan_db],
        ALMATY,
        periods=(
            Window(_t("2022-01-03T18:00"), _t("2022-01-05T18:00")),
            Window(_t("2022-01-09T18:00"), None),
        ),
    )
    # www.change.org on both networks, www.facebook.com intercepted on one; nordvpn.com
    # unblocked on the mobile network; whatsapp moved from DNS to TCP resets on both.
    assert {k: v for k, v in c.counts.items() if k != "still_blocked"} == {
        "newly_blocked": 3,
        "unblocked": 1,
        "method_changed": 2,
        "unclear": 0,
    }
    check_golden("compare-periods.md", render_comparison(c, "md"))
    check_golden("compare-periods.json", render_comparison(c, "json"))
    check_golden("compare-periods.txt", render_comparison(c, "table"))


def test_golden_compare_runs(jan_db: Path) -> None:
    with sqlite3.connect(jan_db) as conn:
        ids = [
            r[0]
            for r in conn.execute("SELECT run_id FROM runs WHERE probe_asn = 9198 ORDER BY run_id")
        ]
    # Run 48 is in the Jan 6 10:30-14:00 UTC window of connectivity.
    c = compare([jan_db], ALMATY, runs=(ids[48], ids[-1]))
    text = render_comparison(c, "table")
    assert c.counts["still_blocked"] == 5 and c.counts["method_changed"] == 1
    check_golden("compare-runs.txt", text)


def test_golden_report_content(golden_report: Report) -> None:
    """The golden period sees the allow-list window of Jan 8 and the whatsapp method change."""
    states = {(h.network[:6], h.state) for h in golden_report.cuts}
    assert ("AS9198", "shutdown.allowlist") in states
    assert ("AS9198", "shutdown.full") in states
    changes = {(c.change, c.url) for c in golden_report.changes}
    assert ("method_changed", "https://web.whatsapp.com/") in changes
    assert golden_report.meta.timeline_unit == "run"


# --- safety ---------------------------------------------------------------------------------------


def _all_outputs(report: Report) -> dict[str, str]:
    out = {"html": render_html(report), "md": render_md(report), "json": render_json(report)}
    out.update({f"csv/{k}": v for k, v in render_csv(report).items()})
    return out


def test_hostile_content_is_inert_in_every_format(full_report: Report) -> None:
    outputs = _all_outputs(full_report)
    page = outputs["html"]
    # Only our own script, style and meta CSP; no markup from the network survives as markup.
    assert page.count("<script") == 1 and page.count("<style") == 1
    for raw in ("<img", "<svg onload", "<script>window.__xss", "<style>*"):
        assert raw not in page, raw
    assert not re.search(r"<[a-zA-Z][^<>]*\son[a-z]+\s*=", page)  # no event handler attribute
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page
    assert re.search(
        r"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
        r"&#39;none&#39;",
        page,
    )
    assert '<a href="http' not in page  # URLs are text, never links
    md = outputs["md"]
    assert "<script" not in md and "<img" not in md and "<svg" not in md
    assert "&lt;script&gt;window.\\_\\_xss=1&lt;/script&gt;" in md
    data = json.loads(outputs["json"])
    hostile = [t for t in data["targets"] if t["url"].startswith("https://hostile.example/")]
    assert hostile[0]["title"].startswith("<script>window.__xss=1")  # data kept, as data


def test_no_probe_address_or_settings_in_any_output(jan_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "with-settings.db"
    shutil.copy(jan_db, db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE runs SET settings = ?",
            (json.dumps({"probe_ip": "100.64.7.7", "resolvers": ["10.9.8.7:53"]}),),
        )
    report = build_report(ReportOptions((db,), ALMATY, now=NOW))
    for name, text in _all_outputs(report).items():
        for secret in (PROBE_IP, "100.64.7.7", "10.9.8.7"):
            assert secret not in text, (name, secret)
    # The target's own address stays: it is evidence, not the probe's.
    assert "192.0.2.29" in render_md(report)


def test_csv_guards_against_formulas() -> None:
    assert csv_value('=HYPERLINK("http://x")', UTC) == '\'=HYPERLINK("http://x")'
    assert csv_value("@SUM(1)", UTC) == "'@SUM(1)"
    assert csv_value(-3, UTC) == "-3"
    assert csv_value(None, UTC) == ""
    assert csv_value(_t("2022-01-05T10:30"), ALMATY) == "2022-01-05T16:30:00+06:00"


def test_markdown_escaping() -> None:
    assert md_escape("a|b *c* [x](y) <b>&") == "a\\|b \\*c\\* \\[x\\](y) &lt;b&gt;&amp;"
    assert md_escape("line\nbreak") == "line break"


def test_times_shown_in_the_zone_asked(jan_db: Path) -> None:
    r = build_report(ReportOptions((jan_db,), resolve_tz("UTC"), now=NOW))
    assert "2022-01-04 12:00" in render_md(r)
    assert "2022-01-04 18:00" in render_md(build_report(ReportOptions((jan_db,), ALMATY, now=NOW)))
    assert '"period_start": "2022-01-04T18:00:05+06:00"' in render_json(
        build_report(ReportOptions((jan_db,), ALMATY, now=NOW))
    )


# --- the database is only read, even while being written ------------------------------


def test_report_reads_a_database_being_written(jan_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    shutil.copy(jan_db, db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    before = build_report(ReportOptions((db,), UTC, now=NOW)).summary.runs
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # nothing written

    started, release, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            conn = sqlite3.connect(db, timeout=10)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO runs (run_id, started_at, finished_at, last_seen_at, probe_version, "
                "settings, status, targets_total) VALUES ('20220111T120000Z-live0001', "
                "'2022-01-11T12:00:00.000000Z', NULL, '2022-01-11T12:00:00.000000Z', 'x', '{}', "
                "'running', 10)"
            )
            started.set()
            release.wait(20)
            conn.commit()
            conn.close()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
            started.set()
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(10)
        during = build_report(ReportOptions((db,), UTC, now=NOW)).summary.runs
    finally:
        release.set()
        thread.join(20)
    assert not errors
    assert during == before  # the uncommitted run is invisible, and nothing blocked
    after = build_report(ReportOptions((db,), UTC, now=NOW)).summary
    assert after.runs == before + 1 and after.runs_by_status.get("running") == 2


# --- CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    return app


def _run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_report_formats(cli: typer.Typer, jan_db: Path, tmp_path: Path) -> None:
    code, out, err = _run(
        cli, "report", "--db", str(jan_db), "--tz", "Asia/Almaty", "--format", "md", "--out", "-"
    )
    assert code == 0, err
    assert out.startswith("# Reachability report")
    target = tmp_path / "r.html"
    code, out, _ = _run(
        cli, "report", "--db", str(jan_db), "--db", str(jan_db), "--out", str(target)
    )
    assert code == 0 and out.strip() == str(target)
    assert target.read_text().startswith("<!DOCTYPE html>")
    code, out, _ = _run(
        cli,
        "report",
        "--db",
        str(jan_db),
        "--format",
        "csv",
        "--out",
        str(tmp_path / "csv"),
        "--category",
        "NEWS",
    )
    assert code == 0 and (tmp_path / "csv" / "targets.csv").exists()
    code, out, _ = _run(
        cli,
        "report",
        "--db",
        str(jan_db),
        "--format",
        "json",
        "--out",
        "-",
        "--since",
        "2022-01-10",
        "--until",
        "2022-01-10",
        "--tz",
        "+06:00",
    )
    assert code == 0
    assert json.loads(out)["summary"]["runs"] == 48


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["report", "--tz", "Mars/Base"], 2, "unknown time zone"),
        (["report", "--since", "last tuesday"], 2, "bad time"),
        (["report", "--format", "pdf"], 2, "--format"),
        (["report", "--since", "2022-01-09", "--until", "2022-01-05"], 2, "before"),
        (["compare", "a"], 2, "exactly two runs"),
        (["compare", "a", "b", "--since", "7d"], 2, "not both"),
        (["compare", "--since", "7d"], 2, "--since twice"),
        (["compare", "nope", "latest"], 1, "no run 'nope'"),
        (["compare", "2022", "latest"], 1, "ambiguous"),
    ],
)
def test_cli_errors(
    cli: typer.Typer, jan_db: Path, args: list[str], code: int, message: str
) -> None:
    got, out, err = _run(cli, *args, "--db", str(jan_db))
    assert got == code, (out, err)
    assert message in err and err.count("\n") == 1 and err.startswith("probe: error: ")


def test_cli_missing_or_foreign_database(cli: typer.Typer, tmp_path: Path) -> None:
    code, _, err = _run(cli, "report", "--db", str(tmp_path / "missing.db"))
    assert code == 1 and "no database" in err
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE x (a)").connection.commit()
    code, _, err = _run(cli, "report", "--db", str(foreign))
    assert code == 1 and "not a probe database" in err


def test_cli_compare(cli: typer.Typer, jan_db: Path) -> None:
    code, out, err = _run(cli, "compare", "--db", str(jan_db), "--tz", "Asia/Almaty")
    assert code == 0, err
    assert out.startswith("before: run ") and "KAR-TEL-AS" in out  # previous vs latest run
    code, out, err = _run(
        cli,
        "compare",
        "--db",
        str(jan_db),
        "--since",
        "2022-01-04",
        "--until",
        "2022-01-06",
        "--since",
        "2022-01-10",
        "--until",
        "2022-01-11",
        "--format",
        "json",
        "--tz",
        "Asia/Almaty",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["summary"]["newly_blocked"] == 2 and data["changes"]


def test_write_report_csv_to_stdout(
    full_report: Report, capsys: pytest.CaptureFixture[str]
) -> None:
    assert write_report(full_report, "csv", "-") == []
    out = capsys.readouterr().out
    assert out.startswith("# summary\nmetric,value\n") and "\n# targets\n" in out


def test_bench_report_caches_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.lab.bench import report_case as bench
    from tests.factories import tiny_spec

    monkeypatch.setattr(bench, "year_spec", tiny_spec)
    first = bench.bench_report(tmp_path, repeat=1)
    assert first["verdicts"] == 48 and first["generated_s"] is not None
    assert first["total_s"] > 0 and first["html_kb"] > 0
    second = bench.bench_report(tmp_path, repeat=2)
    assert second["generated_s"] is None and second["repeat"] == 2
    assert (tmp_path / "report-bench.html").exists()
