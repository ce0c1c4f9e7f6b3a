"""The tor kind end to end on loopback, without root: ``probe run tor://LIST --app-lists DIR``
against a TLS "OR port", an HTTP "Dir port", a real obfs4proxy bridge and a closed port, with a
control helper measuring its own copy of the list; stored, re-judged and exported alike."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import trustme
from typer.testing import CliRunner

from probe.cli.root import app
from probe.control.service import make_policy
from probe.measure.settings import MeasureSettings
from tests.helperthread import HelperThread
from tests.measure.test_measure_tor import (
    _Dir,
    _echo,
    _listener,
    _serve,
    needs_obfs4,
    obfs4_server,
)

#: Not 127.0.0.1: the probe scrubs the volunteer's own addresses (loopback's included) from
#: everything it stores, and a Tor target is named by its address.
HOST = "127.0.0.2"


def _helper(lists: Path) -> HelperThread:
    """The helper of ``probe helper serve --allow 127.0.0.0/8 --allow-self --app-lists DIR``:
    the ports it allows are the ones the lists declare."""
    return HelperThread(
        MeasureSettings.with_timeout(2.0, dns_linger=0.0, app_lists=str(lists)),
        make_policy(["127.0.0.0/8"], [], None, 8, 2.0, allow_self=True, app_lists=str(lists)))


@needs_obfs4
def test_tor_lists_run_with_a_control_store_reanalyse_and_export(tmp_path: Path) -> None:
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("www.tor-link.example").configure_cert(ctx)

    def tls_conn(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as s:
            s.recv(10)

    closed = _listener(HOST)
    closed_port = closed.getsockname()[1]
    closed.close()
    httpd = ThreadingHTTPServer((HOST, 0), _Dir)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    lists = tmp_path / "lists"
    lists.mkdir()
    src = 'source = "test"\ndate = 2026-12-07\n'
    db = tmp_path / "p.db"
    runner = CliRunner()
    with _listener(HOST) as orport, _listener() as echo:
        _serve(orport, tls_conn)
        _serve(echo, _echo)
        with obfs4_server(echo.getsockname()[1], tmp_path / "pt", HOST) as (port, cert):
            (lists / "works.toml").write_text(
                f'app = "tor"\n[[targets]]\nname = "auth1"\nprotocol = "or_port_dirauth"\n'
                f'address = "{HOST}:{orport.getsockname()[1]}"\n{src}'
                f'[[targets]]\nname = "auth1"\nprotocol = "dir_port"\n'
                f'address = "{HOST}:{httpd.server_address[1]}"\n{src}'
                f'[[targets]]\nname = "b"\nbridge = "obfs4 {HOST}:{port} {"B" * 40} '
                f'cert={cert} iat-mode=0"\n{src}')
            (lists / "gone.toml").write_text(
                f'app = "tor"\n[[targets]]\nname = "gone"\nprotocol = "or_port"\n'
                f'address = "{HOST}:{closed_port}"\nfingerprint = "{"A" * 40}"\n{src}')
            with _helper(lists) as helper:
                res = runner.invoke(app, [
                    "run", "tor://works", "tor://gone", "--db", str(db), "--timeout", "2",
                    "--quiet", "--control", helper.url, "--app-lists", str(lists)])
    httpd.shutdown()
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["results", "--db", str(db), "--format", "json"])
    rows = {r["url"]: r for r in json.loads(res.stdout)}
    assert rows["tor://works"]["test_name"] == "tor"
    assert rows["tor://works"]["verdict"] == "ok", rows["tor://works"]["evidence"]
    # the helper's own measurement fails the same way: the bridge is down, not blocked
    gone = rows["tor://gone"]
    assert (gone["verdict"], gone["method"]) == ("down", "down.tcp"), gone["evidence"]
    (label,) = gone["details"]["failing"]
    assert label.startswith("gone or_port ") and "127.0.0.2" not in label  # a bridge: no address

    # re-judged from what was stored: the same verdicts
    assert runner.invoke(app, ["reanalyze", "--db", str(db)]).exit_code == 0
    again = {r["url"]: r for r in json.loads(
        runner.invoke(app, ["results", "--db", str(db), "--format", "json"]).stdout)}
    assert {u: (r["verdict"], r["method"]) for u, r in again.items()} == {
        u: (r["verdict"], r["method"]) for u, r in rows.items()}

    # OONI's tor test keys
    res = runner.invoke(app, ["export", "--db", str(db), "--format", "ooni", "--out", "-"])
    assert res.exit_code == 0, res.output
    docs = {d["input"]: d for d in map(json.loads, res.stdout.splitlines())}
    keys = docs["tor://works"]["test_keys"]
    assert docs["tor://works"]["test_name"] == "tor"
    assert (keys["or_port_dirauth_total"], keys["or_port_dirauth_accessible"]) == (1, 1)
    assert (keys["dir_port_total"], keys["obfs4_total"], keys["obfs4_accessible"]) == (1, 1, 1)
    by_proto = {t["target_protocol"]: t for t in keys["targets"].values()}
    assert by_proto["or_port_dirauth"]["failure"] is None
    assert by_proto["or_port_dirauth"]["tls_handshakes"][0]["peer_certificates"]
    assert by_proto["dir_port"]["requests"][0]["response"]["code"] == 200
    assert by_proto["obfs4"]["summary"]["handshake"]["failure"] is None
    gone_keys = docs["tor://gone"]["test_keys"]
    (t,) = gone_keys["targets"].values()
    assert t["failure"] == "connection_refused" and gone_keys["or_port_accessible"] == 0
