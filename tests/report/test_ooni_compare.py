"""Ours next to OONI's (probe.report.ooni_compare, probe compare --ooni) on a small database.

The database holds imported measurements written with ``Store.save_import``: each row of
:data:`CASES` is one measurement with our stored verdict and OONI's own ``blocking`` /
``accessible`` / ``x_blocking_flags``, and the group the comparison must put it in (None =
agreement). A measurement of our own run must not appear.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import typer

from probe.cli.report_cmd import register
from probe.model import Provenance, Verdict, VerdictKind
from probe.report import ooni_compare as oc
from probe.store import Store
from tests.clirunner import CliRunner
from tests.factories import https_ok, meas, target

V = VerdictKind

# name, our verdict (kind, method) or None, OONI blocking, accessible, flags, expected group
CASES: list[tuple[str, tuple[VerdictKind, str | None] | None, Any, Any, int | None,
                  str | None]] = [
    ("agree-ok", (V.OK, None), False, True, 32, None),
    ("agree-dns", (V.BLOCKED, "dns.nxdomain"), "dns", False, 1, None),
    ("agree-tls", (V.BLOCKED, "tls.reset"), "http-failure", False, 12, None),
    ("agree-down", (V.DOWN, "down.tcp"), False, False, None, None),
    ("agree-unsure", (V.INCONCLUSIVE, "control_failed"), None, None, None, None),
    ("captcha", (V.INCONCLUSIVE, "server_side"), "http-diff", False, 16,
     "ooni_anomaly_server_side"),
    ("died", (V.DOWN, "down.dns"), "dns", False, 1, "ooni_anomaly_site_down"),
    ("ipv6", (V.INCONCLUSIVE, "local_ipv6"), "tcp_ip", False, 2, "ooni_anomaly_broken_ipv6"),
    ("cut", (V.SHUTDOWN, "shutdown.international"), "tcp_ip", False, 2,
     "ooni_anomaly_network_cut"),
    ("reached", (V.OK, None), "http-diff", False, 16, "ooni_anomaly_we_reached"),
    ("blockpage200", (V.BLOCKED, "http.blockpage"), False, True, 32, "block_ooni_missed"),
    ("mitm", (V.INTERCEPTED, "tls.mitm"), False, True, None, "block_ooni_missed"),
    ("down-blocked", (V.BLOCKED, "tcp.timeout"), False, False, None, "ooni_down_we_blocked"),
    ("unsure-judged", (V.BLOCKED, "dns.bogon"), None, None, None, "ooni_unsure_we_judged"),
    ("unjudged", None, "dns", False, 1, "not_judged"),
]


def _verdict(kind: VerdictKind, method: str | None) -> Verdict:
    return Verdict(kind, method, 0.8, f"evidence of {method or kind.value}", "1.2.0")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "probe.db"
    with Store.open(path) as store:
        run = store.start_run({"import": "ooni"}, 0)
        for i, (name, ours, blocking, accessible, flags, _) in enumerate(CASES):
            m = meas(f"https://{name}.example/")
            prov = Provenance(source="ooni", origin=f"corpus.jsonl:{i + 1}", dedup_key=name,
                              test_name="web_connectivity", measurement_uid=f"uid-{name}",
                              report_id=f"report-{name}", test_version="0.5.26",
                              probe_asn=9198, probe_cc="KZ", ooni_blocking=blocking,
                              ooni_accessible=accessible, ooni_flags=flags)
            store.save_import(run, m, _verdict(*ours) if ours else None, prov)
        own = store.start_run({}, 1)
        store.save_measurement(own, https_ok(), _verdict(V.OK, None))
    return path


def test_groups_and_matrix(db: Path) -> None:
    c = oc.compare_ooni([db])
    assert c.total == len(CASES)
    got = {r.input.split("//")[1].split(".")[0]: g
           for g, rows in c.disagreements.items() for r in rows}
    expected = {name: g for name, *_, g in CASES if g is not None}
    assert got == expected
    assert c.agree == sum(1 for *_, g in CASES if g is None)
    assert c.matrix["ok"]["accessible"] == 1
    assert c.matrix["blocked"]["accessible"] == 1  # the block page OONI scored accessible
    assert c.matrix["blocked"]["anomaly.http-failure"] == 1
    assert c.matrix["none"]["anomaly.dns"] == 1
    assert sum(sum(row.values()) for row in c.matrix.values()) == len(CASES)
    assert list(c.disagreements)[0] == "block_ooni_missed"  # the groups' display order


@pytest.mark.parametrize(("blocking", "accessible", "outcome"), [
    (False, True, "accessible"), ("dns", False, "anomaly.dns"), ("tcp_ip", None, "anomaly.tcp_ip"),
    ("tls", False, "anomaly.tls"), (False, False, "down"), (None, None, "failure"),
    (None, False, "failure"), (True, True, "unknown"), (False, None, "unknown"),
])
def test_ooni_outcome(blocking: Any, accessible: Any, outcome: str) -> None:
    assert oc.ooni_outcome(blocking, accessible) == outcome


# OONI's app tests publish their own verdict keys (ooni/spec ts-018/019/020/029); the values
# are the corpus's (tests/data/ooni: whatsapp IE and IT, telegram RU, facebook RU, signal IR).
@pytest.mark.parametrize(("keys", "outcome"), [
    ({"facebook_dns_blocking": True, "facebook_tcp_blocking": False}, "anomaly.dns"),
    ({"facebook_dns_blocking": False, "facebook_tcp_blocking": True}, "anomaly.tcp_ip"),
    ({"facebook_dns_blocking": False, "facebook_tcp_blocking": False}, "accessible"),
    ({"telegram_tcp_blocking": False, "telegram_http_blocking": False,
      "telegram_web_status": "blocked", "telegram_web_failure": "generic_timeout_error"},
     "anomaly.tcp_ip"),
    ({"telegram_tcp_blocking": False, "telegram_http_blocking": True,
      "telegram_web_status": "ok"}, "anomaly.http-failure"),
    ({"telegram_tcp_blocking": False, "telegram_http_blocking": False,
      "telegram_web_status": "ok", "telegram_web_failure": None}, "accessible"),
    ({"whatsapp_endpoints_status": "ok", "registration_server_status": "blocked",
      "registration_server_failure": "ssl_invalid_hostname", "whatsapp_web_status": "blocked",
      "whatsapp_web_failure": "ssl_invalid_hostname"}, "anomaly.tls"),
    ({"whatsapp_endpoints_status": "ok", "registration_server_status": "ok",
      "whatsapp_web_status": "blocked", "whatsapp_web_failure": "http_unexpected_status_code"},
     "anomaly.http-failure"),
    ({"whatsapp_endpoints_status": "blocked", "registration_server_status": "ok"},
     "anomaly.tcp_ip"),
    ({"signal_backend_status": "blocked", "signal_backend_failure": "android_dns_cache_no_data"},
     "anomaly.dns"),
    ({"signal_backend_status": "ok", "signal_backend_failure": None}, "accessible"),
    ({"signal_backend_status": None}, "failure"),
    ({}, "failure"),
])
def test_app_outcome(keys: dict[str, Any], outcome: str) -> None:
    assert oc.ooni_outcome(keys, None) == outcome


def test_flag_names() -> None:
    assert oc.flag_names(12) == ["tls", "http-failure"]
    assert oc.flag_names(None) == [] and oc.flag_names(0) == []


def _cli(db: Path, *args: str) -> Any:
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, ["compare", "--ooni", "--db", str(db), *args])


def test_cli_table(db: Path) -> None:
    res = _cli(db)
    assert res.exit_code == 0, res.output
    out = res.output
    assert f"{len(CASES)} imported measurements" in out
    assert "blocks OONI missed" in out and "https://blockpage200.example/" in out
    assert "ours: blocked http.blockpage 0.80: evidence of http.blockpage" in out
    assert "OONI: accessible: blocking=false accessible=true x_blocking_flags=32 (success)" in out
    assert "KZ AS9198" in out and "uid uid-blockpage200" in out


def test_cli_md(db: Path) -> None:
    res = _cli(db, "--format", "md")
    assert res.exit_code == 0, res.output
    assert "| ours \\ OONI | accessible |" in res.output
    assert "### OONI anomaly, a server-side refusal for us" in res.output


def test_cli_csv(db: Path) -> None:
    res = _cli(db, "--format", "csv")
    assert res.exit_code == 0, res.output
    matrix, disagreements = res.output.split("# disagreements\n")
    rows = list(csv.DictReader(io.StringIO(disagreements)))
    assert len(rows) == sum(1 for *_, g in CASES if g is not None)
    missed = [r for r in rows if r["group"] == "block_ooni_missed"]
    assert {r["our_method"] for r in missed} == {"http.blockpage", "tls.mitm"}
    assert rows[0]["measurement_uid"].startswith("uid-")
    assert matrix.startswith("# matrix\nours,accessible,")


def test_cli_json(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "ooni.json"
    res = _cli(db, "--format", "json", "--out", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())["ooni"]
    assert doc["total"] == len(CASES) and doc["agree"] + doc["disagree"] == len(CASES)
    cut = doc["disagreements"]["ooni_anomaly_network_cut"][0]
    assert cut["ours"]["method"] == "shutdown.international"
    assert cut["ooni_blocking"] == "tcp_ip" and cut["ooni_flag_names"] == ["tcp_ip"]
    assert cut["probe_asn"] == 9198


@pytest.mark.parametrize("args", [["latest", "previous"], ["--format", "html"],
                                  ["--category", "NEWS"]])
def test_cli_usage(db: Path, args: list[str]) -> None:
    assert _cli(db, *args).exit_code == 2


def test_no_imports(tmp_path: Path) -> None:
    path = tmp_path / "own.db"
    with Store.open(path) as store:
        store.save_measurement(store.start_run({}, 1), meas(target().url), None)
    c = oc.compare_ooni([path])
    assert c.total == 0 and not c.disagreements
    assert "0 imported measurements" in oc.render(c, "table")
