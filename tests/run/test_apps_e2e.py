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
from tests.helperthread import world_helper

#: The test keys OONI's spec lists for each app (ooni/spec nettests ts-018, ts-019, ts-020,
#: ts-029: "Expected output" / "Semantics").
SPEC_KEYS: dict[str, set[str]] = {
    "whatsapp": {"network_events", "queries", "requests", "tcp_connect", "tls_handshakes",
                 "registration_server_failure", "registration_server_status",
                 "whatsapp_endpoints_blocked", "whatsapp_endpoints_dns_inconsistent",
                 "whatsapp_endpoints_status", "whatsapp_web_failure", "whatsapp_web_status"},
    "telegram": {"network_events", "queries", "requests", "tcp_connect", "tls_handshakes",
                 "telegram_http_blocking", "telegram_tcp_blocking", "telegram_web_failure",
                 "telegram_web_status"},
    "signal": {"network_events", "queries", "requests", "tcp_connect", "tls_handshakes",
               "signal_backend_failure", "signal_backend_status"},
    "facebook_messenger": {"facebook_dns_blocking", "facebook_tcp_blocking",
                           "facebook_b_api_dns_consistent", "facebook_b_api_reachable",
                           "facebook_edge_dns_consistent", "facebook_edge_reachable",
                           "tcp_connect", "queries"},
}


def _load_with_oonidata(objects: list[dict]) -> None:
    """OONI's own data library parses the exported objects into its app models, where it is
    installed: `make install` puts oonidata 0.3.0 in without its own pins (cryptography~=38,
    click~=8.0 conflict with probe's), so it is not a dev extra (docs/data.md)."""
    dataclient = pytest.importorskip("oonidata.dataclient")
    load_measurement = dataclient.load_measurement
    from oonidata.models.nettests import NETTEST_MODELS
    for o in objects:
        if o["test_name"] not in NETTEST_MODELS:
            continue
        parsed = load_measurement(o)
        assert type(parsed) is NETTEST_MODELS[o["test_name"]]
        assert parsed.test_keys is not None


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
    (directory / "facebook_messenger.toml").write_text(
        'app = "facebook_messenger"\nasns = [32934]\n' + _entry("b_api", ok, port, "tcp")
        + _entry("edge", refused, port, "tcp"))
    (directory / "vpn.toml").write_text(
        'app = "endpoint"\n' + _entry("somevpn", ok, port, "tls"))
    # circumvention measures tor://tor too: a Tor list on loopback (an OR port = a TLS server)
    (directory / "tor.toml").write_text(
        f'app = "tor"\n\n[[targets]]\nname = "loopauth"\nprotocol = "or_port_dirauth"\n'
        f'address = "127.0.0.1:{port}"\nsource = "test world"\ndate = "2026-12-07"\n')


def test_apps_run_beside_websites_with_one_verdict_each(world, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    write_lists(lists, world)
    db = tmp_path / "p.db"
    dns_host, dns_port = world.dns_address
    urls = demo_urls(world)
    runner = CliRunner()
    with world_helper(world) as helper:
        res = runner.invoke(app, [
            "run", urls["ok"], "whatsapp://whatsapp", "telegram://telegram", "signal://signal",
            "facebook_messenger://facebook_messenger", "endpoint://vpn",
            "--app-lists", str(lists), "--db", str(db),
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

    # facebook: one name down for the control too, the other works -> down, partial
    fb = rows["facebook_messenger://facebook_messenger"]
    assert (fb["verdict"], fb["details"]["scope"], fb["details"]["failing_roles"]) == (
        "down", "partial", ["edge"])

    # probe export --format ooni: each app in OONI's own format (ts-018/019/020/029)
    res = runner.invoke(app, ["export", "--db", str(db), "--format", "ooni", "--out", "-"])
    assert res.exit_code == 0, res.output
    exported = {o["test_name"]: o for o in map(json.loads, res.stdout.splitlines())}
    for name, keys in SPEC_KEYS.items():
        o = exported[name]
        assert o["input"] is None and o["test_keys"]["x_probe"]["verdict"]
        assert keys <= set(o["test_keys"]), (name, keys - set(o["test_keys"]))
    wa = exported["whatsapp"]["test_keys"]
    assert (wa["registration_server_status"], wa["whatsapp_endpoints_status"],
            wa["whatsapp_web_status"], wa["whatsapp_endpoints_blocked"]) == ("ok", "ok", "ok", [])
    assert exported["telegram"]["test_keys"]["telegram_tcp_blocking"] is False
    # signal's outage: OONI would write "blocked"; ours says nothing it did not find
    sig = exported["signal"]["test_keys"]
    assert sig["signal_backend_status"] is None and sig["signal_backend_failure"]
    fbk = exported["facebook_messenger"]["test_keys"]
    assert fbk["facebook_b_api_reachable"] is True and fbk["facebook_edge_reachable"] is False
    _load_with_oonidata(list(exported.values()))

    # probe results shows the test beside each input; the report has a row (timeline) per app
    res = runner.invoke(app, ["results", "--db", str(db)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if x.startswith("telegram://telegram"))
    assert line.split()[1:3] == ["telegram", "ok"]
    res = runner.invoke(app, ["report", "--db", str(db), "--format", "md", "--out", "-"])
    assert res.exit_code == 0, res.output
    assert "whatsapp://whatsapp" in res.stdout and "signal://signal" in res.stdout

    # reanalyze re-judges the apps from the stored observations, with the same verdicts
    res = runner.invoke(app, ["reanalyze", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "0 verdicts changed" in res.stdout


def test_tests_groups_pick_the_inputs(world, tmp_path: Path) -> None:
    """`--tests im` alone measures the four messengers (no other input needed); `web` adds the
    inputs given, `circumvention` the VPN list and the Tor list; without --tests the inputs
    given are measured, as before."""
    lists = tmp_path / "lists"
    write_lists(lists, world)
    dns_host, dns_port = world.dns_address
    common = ["--app-lists", str(lists), "--no-system-resolver", "--resolver",
              f"{dns_host}:{dns_port}", "--ca-bundle", world.ca_pem, "--timeout", "1",
              "--quiet"]
    runner = CliRunner()
    db = tmp_path / "im.db"
    res = runner.invoke(app, ["run", "--tests", "im", "--db", str(db), *common])
    assert res.exit_code == 0, res.output
    rows = json.loads(runner.invoke(app, ["results", "--db", str(db), "--format",
                                          "json"]).stdout)
    assert sorted(r["test_name"] for r in rows) == [
        "facebook_messenger", "signal", "telegram", "whatsapp"]
    db = tmp_path / "web.db"
    url = demo_urls(world)["ok"]
    res = runner.invoke(app, ["run", url, "--tests", "web,circumvention", "--db", str(db),
                              *common])
    assert res.exit_code == 0, res.output
    rows = json.loads(runner.invoke(app, ["results", "--db", str(db), "--format",
                                          "json"]).stdout)
    assert sorted(r["url"] for r in rows) == sorted([url, "endpoint://vpn", "tor://tor"])
    res = runner.invoke(app, ["run", url, "--tests", "chat", "--db", str(db), *common])
    assert res.exit_code != 0  # a usage error (exit 2 through probe's own main)
    assert "unknown test group 'chat'" in f"{res.output}{res.exception}"
