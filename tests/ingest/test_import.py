"""Importing into a database: idempotency, one run per report, provenance, reanalyze, the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from probe.cli.root import app
from probe.ingest import import_ooni
from probe.run.reanalyze import reanalyze
from probe.store import Store
from tests.clirunner import CliRunner
from tests.ingest.test_mapper import CONTROL, QUERY, REQUEST, TCP, TLS, doc


def _docs() -> list[dict]:
    ok = doc("0.4.3", queries=[QUERY], tcp_connect=[TCP], tls_handshakes=[TLS],
             requests=[REQUEST], control=CONTROL, blocking=False, accessible=True)
    reset = dict(doc("0.4.3", queries=[QUERY], tcp_connect=[TCP],
                     tls_handshakes=[dict(TLS, failure="connection_reset")],
                     requests=[dict(REQUEST, failure="connection_reset", response=None)],
                     control=CONTROL, blocking="http-failure", accessible=False),
                 measurement_uid="uid-reset", input="https://example.org/reset")
    other_report = dict(ok, measurement_uid=None, report_id="20240515T000000Z_x_KZ_1_n1_y",
                        input="https://example.org/other")
    app_test = dict(doc("0.9.0"), test_name="whatsapp", measurement_uid="uid-wa", input=None)
    return [ok, reset, other_report, app_test]


def _write(path: Path, docs: list[dict]) -> Path:
    text = "".join(json.dumps(d) + "\n" for d in docs)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_import_is_idempotent_and_groups_runs_by_report(tmp_path: Path) -> None:
    src = _write(tmp_path / "m.jsonl.gz", _docs())
    with Store.open(tmp_path / "p.db") as store:
        first = import_ooni(store, [str(src)])
        again = import_ooni(store, [str(src)])
        runs = store.run_ids()
        results = [r for run in runs for r in store.results(run)]
        run = store.get_run(runs[0])
    assert (first.read, first.stored, first.duplicates, first.skipped) == (4, 4, 0, 0)
    assert (again.stored, again.duplicates) == (0, 4)
    assert first.runs == again.runs and len(runs) == 2
    assert len(results) == 4
    assert run["settings"]["source"] == "ooni" and run["status"] == "completed"
    assert (run["probe_asn"], run["probe_cc"], run["network_name"]) == (
        9198, "KZ", "JSC Kazakhtelecom")
    by_url = {r["url"]: r for r in results}
    assert by_url["https://example.org/"]["verdict"] == "ok"
    assert by_url["ooni://whatsapp"]["method"] == "unsupported_test"
    reset = by_url["https://example.org/reset"]
    assert "innocuous_sni_retry" in reset["details"]["missing"]


def test_provenance_round_trip(tmp_path: Path) -> None:
    src = _write(tmp_path / "m.jsonl", _docs()[:1])
    with Store.open(tmp_path / "p.db") as store:
        import_ooni(store, [str(src)])
        (run,) = store.run_ids()
        (row,) = store.results(run)
        p = store.provenance(row["measurement_id"])
    assert p is not None
    assert (p.source, p.origin, p.dedup_key, p.measurement_uid) == (
        "ooni", f"{src}:1", "uid-0.4.3", "uid-0.4.3")
    assert (p.test_name, p.test_version, p.software_name, p.software_version) == (
        "web_connectivity", "0.4.3", "ooniprobe-cli", "3.21.0")
    assert (p.probe_asn, p.probe_cc, p.resolver_ip, p.resolver_asn) == (
        9198, "KZ", "92.47.0.1", 9198)
    assert (p.ooni_blocking, p.ooni_accessible, p.ooni_flags) == (False, True, None)
    assert "canaries" in p.missing


def test_a_bad_line_mid_file_is_skipped_and_nothing_stored_is_lost(tmp_path: Path) -> None:
    docs = _docs()
    src = tmp_path / "m.jsonl"
    src.write_text(json.dumps(docs[0]) + "\n{oops\n" + json.dumps({"no": "test"}) + "\n"
                   + json.dumps(docs[1]) + "\n")
    problems: list[tuple[str, str]] = []
    with Store.open(tmp_path / "p.db") as store:
        result = import_ooni(store, [str(src)], on_problem=lambda o, w: problems.append((o, w)))
    assert (result.stored, result.skipped) == (2, 2)
    assert [o for o, _ in problems] == [f"{src}:2", f"{src}:3"]


def test_reanalyze_keeps_the_missing_evidence(tmp_path: Path) -> None:
    src = _write(tmp_path / "m.jsonl", _docs()[1:2])
    db = tmp_path / "p.db"
    with Store.open(db) as store:
        import_ooni(store, [str(src)])
        (run,) = store.run_ids()
        (before,) = store.results(run)
    reanalyze(str(db))
    with Store.open(db) as store:
        (after,) = store.results(run)
    assert (after["verdict"], after["method"], after["confidence"]) == (
        before["verdict"], before["method"], before["confidence"])
    assert after["details"]["missing"] == before["details"]["missing"]


def test_the_command_line_reads_files_and_stdin(tmp_path: Path) -> None:
    docs = _docs()
    src = _write(tmp_path / "m.jsonl", docs[:2] + [{"not": "a measurement"}])
    db = tmp_path / "p.db"
    runner = CliRunner()
    r = runner.invoke(app, ["import", "ooni", str(src), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "imported 2 of 3 OONI measurements" in r.stdout and "1 skipped" in r.stdout
    assert f"{src}:3: skipped: no test_name" in r.stderr
    r = runner.invoke(app, ["import", "ooni", "-", "--db", str(db)],
                      input="".join(json.dumps(d) + "\n" for d in docs))
    assert r.exit_code == 0, r.output
    assert "imported 2 of 4" in r.stdout and "2 already stored" in r.stdout
    r = runner.invoke(app, ["import", "ooni", str(tmp_path / "missing.json"), "--db", str(db)])
    assert r.exit_code == 2 and "no such file" in r.output
