"""The app kinds in one ``probe run`` on the loopback world: endpoint lists replaced with
``--app-lists``, the control helper asked per endpoint, one verdict per app stored beside the
websites' and shown by ``probe results``, and exported in OONI's app formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from probe.cli.root import app
from probe.lab.world.loopback import DEMO_SITES, LoopbackWorld, demo_urls, demo_world
from tests.run.test_kinds_e2e import HelperThread


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def _entry(role: str, host: str, port: int, protocol: str, path: str = "/") -> str:
    extra = f'path = "{path}"\n' if path != "/" else ""
    return (f'\n[[endpoints]]\nrole = "{role}"\nhost = "{host}"\nport = {port}\n'
            f'protocol = "{protocol}"\n{extra}source = "test world"\ndate = "2026-12-07"\n')


def write_lists(directory: Path, world: LoopbackWorld) -> None:
    ok, refused = DEMO_SITES["ok"][0], DEMO_SITES["refused"][0]
    port, plain = world.https_port, world.http_port
    directory.mkdir(exist_ok=True)
    (directory / "whatsapp.toml").write_text(
        'app = "whatsapp"\n' + _entry("chat", ok, port, "tcp")
        + _entry("registration", ok, port, "https", "/v2/register")
        + _entry("web", ok, port, "https"))
    (directory / "telegram.toml").write_text(
        'app = "telegram"\n' + _entry("dc", DEMO_SITES["plain"][0], plain, "http_post")
        + _entry("web", ok, port, "https"))
    # the app's own outage: every endpoint refuses, for the control too
    (directory / "signal.toml").write_text(
        'app = "signal"\n' + _entry("service", refused, port, "https"))
    (directory / "vpn.toml").write_text(
        'app = "endpoint"\n' + _entry("somevpn", ok, port, "tls"))


def test_apps_run_beside_websites_with_one_verdict_each(world, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    write_lists(lists, world)
    db = tmp_path / "p.db"
    dns_host, dns_port = world.dns_address
    urls = demo_urls(world)
    runner = CliRunner()
    with HelperThread(world) as helper:
        res = runner.invoke(app, [
            "run", urls["ok"], "whatsapp://whatsapp", "telegram://telegram", "signal://signal",
            "endpoint://vpn", "--app-lists", str(lists), "--db", str(db),
            "--no-system-resolver", "--resolver", f"{dns_host}:{dns_port}",
            "--ca-bundle", world.ca_pem, "--timeout", "2", "--quiet",
            "--control", helper.url, "--concurrency", "4"])
    if res.exception and not isinstance(res.exception, SystemExit):
        import traceback
        traceback.print_exception(res.exception)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["results", "--db", str(db), "--format", "json"])
    rows = {r["url"]: r for r in json.loads(res.stdout)}
    assert rows["whatsapp://whatsapp"]["test_name"] == "whatsapp"
    assert rows["whatsapp://whatsapp"]["verdict"] == "ok"
    assert rows["telegram://telegram"]["verdict"] == "ok"
    # the control sees the same failure: the app's own outage, never blocked
    assert rows["signal://signal"]["verdict"] == "down"
    assert rows["signal://signal"]["details"]["scope"] == "all"
    assert rows["signal://signal"]["details"]["failing_roles"] == ["service"]
    assert rows["endpoint://vpn"]["verdict"] == "ok"
    assert rows[urls["ok"]]["verdict"] == "ok"
    wa = rows["whatsapp://whatsapp"]["details"]
    assert wa["roles"] == {"chat": "ok", "registration": "ok", "web": "ok"}
    assert [e["verdict"] for e in wa["endpoints"]] == ["ok", "ok", "ok"]
    assert wa["control"]["helpers"]  # the control was asked, per endpoint

    # reanalyze re-judges the apps from the stored observations, with the same verdicts
    res = runner.invoke(app, ["reanalyze", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "0 verdicts changed" in res.stdout
