"""The helper over HTTPS, its certificate reloaded on SIGHUP, and trusted reverse proxies
(issue 13). Before: plain HTTP only, so tokens and the list of URLs a volunteer measures
crossed the censor in clear; behind a proxy the probe's address was the proxy's."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
import trustme

from probe.control import client
from probe.control.protocol import MeasureRequest
from probe.control.server import TLSFiles
from tests.security.helper_servers import exchange, helper_in_thread, post, read_answer


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def _write(ca, tmp_path, name: str) -> tuple[str, str, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert.private_key_pem.write_to_path(str(key))
    with open(chain, "wb") as fh:
        for blob in cert.cert_chain_pems:
            fh.write(blob.bytes())
    return str(chain), str(key), hashlib.sha256(ssl.PEM_cert_to_DER_cert(
        cert.cert_chain_pems[0].bytes().decode())).hexdigest()


def _presented(port: int, ca_pem: str) -> str:
    ctx = ssl.create_default_context(cafile=ca_pem)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nhost: h\r\n\r\n")
            assert read_answer(s)[0] == 200
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_the_cli_serves_https_and_reloads_its_certificate_on_sighup(ca, tmp_path):
    cert, key, first = _write(ca, tmp_path, "live")
    ca_pem = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_pem)
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe", "helper", "serve", "--listen", "127.0.0.1:0",
         "--tls-cert", cert, "--tls-key", key], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "(https)" in line, line
        port = int(line.split()[-2].rsplit(":", 1)[1])
        assert _presented(port, ca_pem) == first
        new_cert, new_key, second = _write(ca, tmp_path, "next")
        os.replace(new_cert, cert)
        os.replace(new_key, key)
        proc.send_signal(signal.SIGHUP)
        assert "reloaded" in proc.stderr.readline()
        assert _presented(port, ca_pem) == second
        # a broken pair keeps the old certificate
        with open(key, "w") as fh:
            fh.write("not a key")
        proc.send_signal(signal.SIGHUP)
        assert "keeping the old certificate" in proc.stderr.readline()
        assert _presented(port, ca_pem) == second
        # plain HTTP on the TLS port gets nothing useful
        assert exchange(port, b"GET /v1/health HTTP/1.1\r\nhost: h\r\n\r\n")[0] is None
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_probe_queries_an_https_helper_with_a_pinned_ca(ca, tmp_path):
    cert, key, _ = _write(ca, tmp_path, "c")
    ca_pem = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_pem)
    other = str(tmp_path / "other.pem")
    trustme.CA().cert_pem.write_to_path(other)
    with helper_in_thread(tls=TLSFiles(cert, key)) as (_, port):
        url = f"https://127.0.0.1:{port}"

        async def ask(context):
            return (await client.query_all([url], MeasureRequest("https://a.example/"), 5,
                                           verify=context))[0]

        good = asyncio.run(ask(client.tls_context(control_ca=ca_pem)))
        assert good["control_failure"] is None and good["client_address"] == "127.0.0.1"
        wrong = asyncio.run(ask(client.tls_context(control_ca=other)))
        assert wrong["control_failure"] is not None  # another CA: refused, nothing sent
        system = asyncio.run(ask(client.tls_context()))
        assert system["control_failure"] is not None


PROXY = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.mark.parametrize(
    ("trusted", "headers", "expected"),
    [
        ((), "x-forwarded-for: 198.51.100.7\r\n", "127.0.0.1"),  # untrusted peer: ignored
        (PROXY, "x-forwarded-for: 198.51.100.7\r\n", "198.51.100.7"),
        (PROXY, "x-forwarded-for: 203.0.113.9, 198.51.100.7, 127.0.0.5\r\n", "198.51.100.7"),
        (PROXY, 'forwarded: for="[2001:db8::7]:4711";proto=https\r\n', "2001:db8::7"),
        (PROXY, "forwarded: for=192.0.2.60;proto=http, for=127.0.0.2\r\n", "192.0.2.60"),
        (PROXY, "forwarded: for=_hidden\r\n", None),
        (PROXY, "x-forwarded-for: ::ffff:198.51.100.8\r\n", "198.51.100.8"),
        (PROXY, "", None),  # a trusted proxy that forwards nothing: the proxy is not the probe
        (PROXY, "x-forwarded-for: not-an-ip\r\n", None),
    ],
    ids=["untrusted", "xff", "xff-chain", "forwarded-v6", "forwarded-chain", "obfuscated",
         "mapped", "none", "garbage"],
)
def test_the_client_address_comes_from_a_trusted_proxy_only(trusted, headers, expected):
    with helper_in_thread(trusted_proxies=trusted) as (_, port):
        status, body = exchange(port, post("/v1/measure", b'{"url": "https://a.example/"}',
                                           headers))
    assert status == 200
    assert json.loads(body).get("client_address") == expected


def test_a_tls_handshake_that_never_starts_is_cut_at_the_header_deadline(ca, tmp_path):
    from probe.control.server import Limits

    cert, key, _ = _write(ca, tmp_path, "d")
    with helper_in_thread(tls=TLSFiles(cert, key),
                          limits=Limits(header_timeout=0.5)) as (server, port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            time.sleep(0.2)
            assert server.open_connections == 1  # counted before the handshake
            started = time.monotonic()
            assert s.recv(100) == b""
            assert time.monotonic() - started < 2


@pytest.mark.parametrize("content", [None, "", "not a certificate\n"],
                         ids=["missing", "empty", "garbage"])
def test_an_unusable_control_ca_is_one_line_and_no_run(tmp_path, content):
    from probe.cli.root import app
    from tests.clirunner import CliRunner

    pem = tmp_path / "helper-ca.pem"
    if content is not None:
        pem.write_text(content)
    db = tmp_path / "p.db"
    res = CliRunner().invoke(app, ["run", "https://a.example/", "--db", str(db), "--quiet",
                                   "--control", "https://127.0.0.1:9", "--control-ca", str(pem)])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "--control-ca" in lines[0], res.stderr
    assert not db.exists()
