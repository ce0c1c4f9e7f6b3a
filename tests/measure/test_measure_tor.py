"""The tor measure step on loopback, without root: a real obfs4proxy server and client, a TLS
"OR port", an HTTP "Dir port" and a closed port, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from probe import failures as f
from probe.measure.pt import ManagedClient, socks_auth
from probe.measure.settings import MeasureSettings
from probe.measure.tor import DIR_PATH, measure_tor
from probe.targets import parse_input

needs_obfs4 = pytest.mark.skipif(shutil.which("obfs4proxy") is None,
                                 reason="obfs4proxy not installed (deps/apt.txt)")


def _serve(sock: socket.socket, handle) -> None:
    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def _listener(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket()
    s.bind((host, 0))
    s.listen(16)
    return s


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


@contextlib.contextmanager
def obfs4_server(orport: int, state: Path, host: str = "127.0.0.1"
                 ) -> Iterator[tuple[int, str]]:
    """obfs4proxy as a managed *server* transport on ``host`` in front of ``orport`` (on
    127.0.0.1): (port, cert)."""
    env = {"PATH": os.environ["PATH"], "TOR_PT_MANAGED_TRANSPORT_VER": "1",
           "TOR_PT_STATE_LOCATION": str(state), "TOR_PT_SERVER_TRANSPORTS": "obfs4",
           "TOR_PT_SERVER_BINDADDR": f"obfs4-{host}:0",
           "TOR_PT_ORPORT": f"127.0.0.1:{orport}", "TOR_PT_EXIT_ON_STDIN_CLOSE": "1"}
    proc = subprocess.Popen(["obfs4proxy"], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        port, cert = 0, ""
        for line in proc.stdout:
            words = line.split()
            if words[:2] == ["SMETHOD", "obfs4"]:
                port = int(words[2].rpartition(":")[2])
                args = dict(a.split("=", 1) for a in words[3].removeprefix("ARGS:").split(","))
                cert = args["cert"]
            if words[:2] == ["SMETHODS", "DONE"]:
                break
        assert port and cert
        yield port, cert
    finally:
        proc.kill()
        proc.wait()


def test_socks_arguments_fit_username_and_password() -> None:
    short = socks_auth((("cert", "abc"), ("iat-mode", "0")))
    assert short == (b"cert=abc;iat-mode=0", b"\x00")
    user, password = socks_auth((("cert", "x" * 300),))
    assert len(user) == 255 and user + password == b"cert=" + b"x" * 300


@needs_obfs4
def test_obfs4_handshake_through_a_real_transport_reaches_the_echo(tmp_path) -> None:
    with _listener() as echo:
        _serve(echo, _echo)
        with obfs4_server(echo.getsockname()[1], tmp_path) as (port, cert):
            async def go() -> tuple[object, bytes, object]:
                async with ManagedClient() as client:
                    clock = asyncio.get_running_loop().time
                    hs, reader, writer = await client.dial(
                        "127.0.0.1", port, (("cert", cert), ("iat-mode", "0")), 5.0, clock)
                    assert reader is not None and writer is not None
                    writer.write(b"hello through obfs4")
                    echoed = await reader.readexactly(19)
                    writer.close()
                    bad, _, _ = await client.dial(
                        "127.0.0.1", port, (("cert", "A" * 70), ("iat-mode", "0")), 1.5,
                        clock)
                    return hs, echoed, bad
            hs, echoed, bad = asyncio.run(go())
    assert hs.failure is None and hs.socks_reply == 0  # type: ignore[attr-defined]
    assert echoed == b"hello through obfs4"
    assert bad.failure is not None  # type: ignore[attr-defined]


class _Dir(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"router test 127.0.0.1\n" * 10 if self.path == DIR_PATH else b"no"
        self.send_response(200 if self.path == DIR_PATH else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@needs_obfs4
def test_measure_tor_on_loopback(tmp_path) -> None:
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("www.tor-link.example").configure_cert(ctx)

    def tls_conn(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as s:
            s.recv(10)

    closed = _listener()
    closed_port = closed.getsockname()[1]
    closed.close()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Dir)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with _listener() as orport, _listener() as echo:
        _serve(orport, tls_conn)
        _serve(echo, _echo)
        with obfs4_server(echo.getsockname()[1], tmp_path / "pt") as (port, cert):
            (tmp_path / "mine.toml").write_text(f'''app = "tor"
[[targets]]
name = "auth1"
protocol = "or_port_dirauth"
address = "127.0.0.1:{orport.getsockname()[1]}"
source = "test"
date = 2026-12-07
[[targets]]
name = "auth1"
protocol = "dir_port"
address = "127.0.0.1:{httpd.server_address[1]}"
source = "test"
date = 2026-12-07
[[targets]]
name = "gone"
protocol = "or_port"
address = "127.0.0.1:{closed_port}"
fingerprint = "{"A" * 40}"
source = "test"
date = 2026-12-07
[[targets]]
name = "bridge"
bridge = "obfs4 127.0.0.1:{port} {"B" * 40} cert={cert} iat-mode=0"
source = "test"
date = 2026-12-07
''')
            settings = MeasureSettings.with_timeout(3.0, app_lists=str(tmp_path))
            seen: list[list[str]] = []
            m = asyncio.run(measure_tor(parse_input("tor://mine"), settings, seen.append))
    httpd.shutdown()
    assert m.test_name == "tor" and seen == [["127.0.0.1"]]
    by_name = {t["name"]: t for t in m.extra["tor"]["targets"]}
    assert by_name["auth1"]["failure"] is None
    assert (by_name["gone"]["step"], by_name["gone"]["failure"]) == ("connect",
                                                                      f.CONNECTION_REFUSED)
    assert by_name["bridge"]["failure"] is None and by_name["bridge"]["step"] == "handshake"
    (hs,) = m.tls
    assert hs.failure is None and hs.verified is False and hs.certificates  # recorded only
    (got,) = m.http
    assert got.status == 200 and got.body_length == 220
    assert m.extra["tor"]["pt"][0]["failure"] is None


def test_a_missing_list_is_recorded_not_raised(tmp_path) -> None:
    settings = MeasureSettings.with_timeout(1.0, app_lists=str(tmp_path))
    m = asyncio.run(measure_tor(parse_input("tor://nosuchlist"), settings))
    assert "no such Tor list" in m.extra["tor"]["list_error"] and m.tcp == ()


def test_targets_the_policy_refuses_are_named_not_dialled(tmp_path) -> None:
    """The control helper's policy (address filter and per-hop guard) applies per target: a
    refused address or port is listed under ``not_allowed`` and never dialled; the rest are
    measured."""
    closed = _listener()
    free_port = closed.getsockname()[1]
    closed.close()
    src = 'source = "test"\ndate = 2026-12-07\n'
    rows = [("127.0.0.1", free_port, True), ("127.0.0.1", 9999, False),
            ("192.0.2.9", 80, False)]
    (tmp_path / "mixed.toml").write_text('app = "tor"\n' + "".join(
        f'[[targets]]\nprotocol = "dir_port"\naddress = "{ip}:{port}"\n{src}'
        for ip, port, _ in rows))

    def guard(addresses: list[str], port: int) -> None:
        if port == 9999:
            raise PermissionError("port 9999 not allowed")

    settings = replace(MeasureSettings.with_timeout(1.0, app_lists=str(tmp_path)),
                       address_filter=lambda a: a != "192.0.2.9", endpoint_guard=guard)
    m = asyncio.run(measure_tor(parse_input("tor://mixed"), settings))
    info = m.extra["tor"]
    assert sorted(info["not_allowed"]) == sorted(
        f"{ip}:{port}" for ip, port, ok in rows if not ok)
    assert [t["id"] for t in info["targets"]] == [f"127.0.0.1:{free_port}"]
    assert {c.port for c in m.tcp} == {free_port}
