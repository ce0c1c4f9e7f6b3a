"""probe.measure.web end to end against the loopback world (real DNS/HTTP/HTTPS servers).

One world serves every case (started once per module). Web ports are picked before the world
starts so that redirect targets can name them; DNS uses an OS-chosen port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from probe import failures
from probe.measure import web
from probe.measure.settings import MeasureSettings, Resolver
from probe.model import Measurement, Target

world_config = pytest.importorskip("probe.lab.world.spec")
world_loopback = pytest.importorskip("probe.lab.world.loopback")

pytestmark = pytest.mark.timeout(30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HTTP_PORT = _free_port()
HTTPS_PORT = _free_port()
H3_PORT = _free_port()  # UDP: the HTTP/3 server of h3.test (advertised in its Alt-Svc)
SITES = {
    "h3world.test": {"title": "Both ways", "http3": True},  # the world's own HTTP/3
    "h3.test": {"title": "TCP page", "headers": {"Alt-Svc": f'h3=":{H3_PORT}"; ma=60'}},
    "ok.test": {"title": "Healthy site"},
    "expired.test": {"cert": "expired"},
    "notyet.test": {"cert": "not_yet_valid"},
    "wronghost.test": {"cert": "wrong_host"},
    "unknownca.test": {"cert": "unknown_ca"},
    "selfsigned.test": {"cert": "self_signed"},
    "reset.test": {"behaviour": "reset"},
    "close.test": {"behaviour": "close"},
    "hang.test": {"behaviour": "hang"},
    "slow.test": {"behaviour": "slow:20000", "size": 4000},
    "veryslow.test": {"behaviour": "slow:2000", "size": 20000},
    "big.test": {"behaviour": "big:200000"},
    "status.test": {"behaviour": "status:503"},
    "redir.test": {"behaviour": f"redirect:https://ok.test:{HTTPS_PORT}/landing"},
    "relative.test": {"behaviour": "redirect:/elsewhere"},
    "badloc.test": {"behaviour": "redirect:ftp://files.test/"},
    "loop.test": {"behaviour": "redirect_loop"},
    "tlsreset.test": {"behaviour": "tls_reset"},
    "tlsclose.test": {"behaviour": "tls_close"},
    "tlshang.test": {"behaviour": "tls_hang"},
    "refused.test": {},
    "twice.test": {},
}
RECORDS = {
    "refused.test": {"A": ["127.0.0.9"]},  # nothing listens there
    "loopback6.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
}
DNS_BEHAVIOURS = {
    "nx.test": "nxdomain",
    "refusing.test": "refused",
    "servfail.test": "servfail",
    "silent.test": "silent",
    "garbage.test": "garbage",
    "twice.test": "twice:127.0.0.2",  # injected answer first; nothing listens on .2
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    config = world_loopback.simple_world(
        tmp_path_factory.mktemp("world") / "pki", SITES, records=RECORDS,
        behaviours=DNS_BEHAVIOURS)
    config = dataclasses.replace(config, web=[dataclasses.replace(
        config.web[0], http_port=HTTP_PORT, https_port=HTTPS_PORT, handshake_timeout=5)])
    with world_loopback.LoopbackWorld(config, free_ports=False) as w:
        yield w


@pytest.fixture
def settings(world: object) -> MeasureSettings:
    ip, port = world.dns_address  # type: ignore[attr-defined]
    return MeasureSettings(
        use_system_resolver=False, resolvers=(Resolver(ip, port),),
        ca_bundle=world.ca_pem,  # type: ignore[attr-defined]
        dns_timeout=0.4, dns_linger=0.05, connect_timeout=0.6, tls_timeout=0.6,
        http_timeout=0.8, body_cap=64 * 1024)


def target(url: str) -> Target:
    p = urlsplit(url)
    assert p.hostname is not None
    return Target(url=url, hostname=p.hostname, scheme=p.scheme,
                  port=p.port or (443 if p.scheme == "https" else 80), path=p.path or "/")


def measure(url: str, settings: MeasureSettings) -> tuple[Measurement, float]:
    start = time.monotonic()
    m = asyncio.run(web.measure_target(target(url), settings))
    return m, time.monotonic() - start


def https(host: str, path: str = "/") -> str:
    return f"https://{host}:{HTTPS_PORT}{path}"


def http(host: str, path: str = "/") -> str:
    return f"http://{host}:{HTTP_PORT}{path}"


# --- healthy sites ---------------------------------------------------------------------------


def test_healthy_https_site(settings: MeasureSettings) -> None:
    m, _ = measure(https("ok.test"), settings)
    assert [(d.query_type, d.failure, d.rcode) for d in m.dns] == [
        ("A", None, "NOERROR"), ("AAAA", failures.DNS_NO_ANSWER, "NOERROR")]
    assert m.dns[0].answers[0].value == "127.0.0.1" and m.dns[0].answers[0].ttl is not None
    (tcp,), (tls,), (h,) = m.tcp, m.tls, m.http
    assert tcp.failure is None and tcp.ip == "127.0.0.1" and tcp.port == HTTPS_PORT
    assert tls.failure is None and tls.verified is True and tls.verify_error is None
    assert tls.server_name == "ok.test" and tls.tls_version and tls.cipher_suite
    assert len(tls.certificates) == 2  # leaf + world CA, as presented
    assert "ok.test" in tls.certificates[0].san
    assert tcp.tx_id == tls.tx_id == h.tx_id
    assert {d.tx_id for d in m.dns}.isdisjoint({tcp.tx_id})
    assert h.failure is None and h.status == 200 and h.title == "Healthy site"
    assert h.ip == "127.0.0.1" and h.redirect_index == 0
    assert ("Host", f"ok.test:{HTTPS_PORT}") in h.request_headers
    assert h.body is not None and h.body_length == len(h.body) and not h.body_truncated
    assert any(k.lower() == "content-type" for k, _ in h.headers)
    # times are relative to the start and ordered along the flow
    assert 0 <= m.dns[0].t0 <= m.dns[0].t <= tcp.t0 <= tcp.t <= tls.t0 <= tls.t <= h.t0 <= h.t
    assert m.extra["hops"][0]["http_tx_id"] == h.tx_id


def test_plain_http_site(settings: MeasureSettings) -> None:
    m, _ = measure(http("ok.test"), settings)
    assert m.tls == ()
    (h,) = m.http
    assert h.status == 200 and h.title == "Healthy site" and h.port == HTTP_PORT


def test_ip_literal_target_skips_dns(settings: MeasureSettings) -> None:
    m, _ = measure(f"https://127.0.0.1:{HTTPS_PORT}/", settings)
    assert m.dns == ()
    (tls,) = m.tls
    assert tls.verified is True  # the world's default certificate names its listen IPs
    assert m.http[0].status is not None


def test_status_is_recorded(settings: MeasureSettings) -> None:
    m, _ = measure(https("status.test"), settings)
    assert m.http[0].status == 503 and m.http[0].failure is None


def test_loopback_ipv6_answer_is_dialled_after_ipv4(settings: MeasureSettings) -> None:
    m, _ = measure(http("loopback6.test"), settings)
    assert [t.ip for t in m.tcp] == ["127.0.0.1", "::1"]
    assert m.http[0].ip == "127.0.0.1"


def test_system_resolver_loopback_answers_are_not_dialled(settings: MeasureSettings) -> None:
    s = dataclasses.replace(settings, use_system_resolver=True, resolvers=())
    m, _ = measure(http("localhost"), s)
    assert m.dns and m.dns[0].engine == "system"
    assert m.tcp == () and m.http == ()


# --- DNS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "failure", "rcode"), [
    ("nx.test", failures.DNS_NXDOMAIN, "NXDOMAIN"),
    ("refusing.test", failures.DNS_REFUSED, "REFUSED"),
    ("servfail.test", failures.DNS_SERVFAIL, "SERVFAIL"),
    ("garbage.test", failures.DNS_SERVER_MISBEHAVING, None),
])
def test_dns_failures(settings: MeasureSettings, host: str, failure: str,
                      rcode: str | None) -> None:
    m, _ = measure(https(host), settings)
    assert {(d.failure, d.rcode) for d in m.dns} == {(failure, rcode)}
    assert m.tcp == () and m.http == ()


def test_silent_resolver_times_out_within_deadline(settings: MeasureSettings) -> None:
    m, took = measure(https("silent.test"), settings)
    assert {d.failure for d in m.dns} == {failures.GENERIC_TIMEOUT}
    assert took < settings.dns_timeout + 1.0


def test_answered_twice_records_both_and_dials_the_first(settings: MeasureSettings) -> None:
    s = dataclasses.replace(settings, dns_linger=0.4)
    m, _ = measure(https("twice.test"), s)
    a = [d for d in m.dns if d.query_type == "A"]
    assert [d.response_index for d in a] == [0, 1]
    assert a[0].addresses == ("127.0.0.2",) and a[1].addresses == ("127.0.0.1",)
    assert a[0].t < a[1].t
    assert [t.ip for t in m.tcp] == ["127.0.0.2"]


# --- TCP / TLS -------------------------------------------------------------------------------


def test_connection_refused(settings: MeasureSettings) -> None:
    m, _ = measure(https("refused.test"), settings)
    (tcp,) = m.tcp
    assert tcp.ip == "127.0.0.9" and tcp.failure == failures.CONNECTION_REFUSED
    assert m.tls == () and m.http == ()


@pytest.mark.parametrize(("host", "failure"), [
    ("tlsreset.test", failures.CONNECTION_RESET),
    ("tlsclose.test", failures.EOF_ERROR),
    ("tlshang.test", failures.GENERIC_TIMEOUT),
])
def test_tls_handshake_failures(settings: MeasureSettings, host: str, failure: str) -> None:
    m, took = measure(https(host), settings)
    tls, retry = m.tls
    assert tls.failure == failure and tls.verified is None and tls.certificates == ()
    assert m.http == ()
    # the same address is retried once with an innocuous SNI; the world only punishes the
    # blocked name, so that handshake completes: the SNI is the trigger
    assert retry.ip == tls.ip and retry.server_name == settings.innocuous_sni
    assert retry.failure is None and retry.tx_id != tls.tx_id
    assert took < 4.0


@pytest.mark.parametrize(("host", "verify_error"), [
    ("expired.test", failures.SSL_INVALID_CERTIFICATE),
    ("notyet.test", failures.SSL_INVALID_CERTIFICATE),
    ("wronghost.test", failures.SSL_INVALID_HOSTNAME),
    ("unknownca.test", failures.SSL_UNKNOWN_AUTHORITY),
    ("selfsigned.test", failures.SSL_UNKNOWN_AUTHORITY),
])
def test_bad_certificates_are_recorded_and_no_http_is_sent(
        settings: MeasureSettings, host: str, verify_error: str) -> None:
    m, _ = measure(https(host), settings)
    (tls,) = m.tls
    assert tls.failure is None  # the handshake itself completed
    assert tls.verified is False and tls.verify_error == verify_error
    assert tls.certificates and tls.certificates[0].sha256
    assert m.http == ()


# --- HTTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "host", "failure"), [
    ("https", "reset.test", failures.CONNECTION_RESET),
    ("http", "reset.test", failures.CONNECTION_RESET),
    ("https", "close.test", failures.EOF_ERROR),
    ("http", "close.test", failures.EOF_ERROR),
])
def test_http_reset_and_eof(settings: MeasureSettings, scheme: str, host: str,
                            failure: str) -> None:
    m, _ = measure(https(host) if scheme == "https" else http(host), settings)
    (h,) = m.http
    assert h.failure == failure and h.status is None


def test_http_hang_times_out_within_deadline(settings: MeasureSettings) -> None:
    m, took = measure(https("hang.test"), settings)
    (h,) = m.http
    assert h.failure == failures.GENERIC_TIMEOUT and h.status is None
    assert settings.http_timeout <= h.t - h.t0 < settings.http_timeout + 0.5
    assert took < settings.http_timeout + 1.5


def test_slow_response_completes(settings: MeasureSettings) -> None:
    m, _ = measure(https("slow.test"), settings)
    (h,) = m.http
    assert h.failure is None and h.body_length == 4000 and h.t - h.t0 >= 0.08


def test_too_slow_response_keeps_what_arrived(settings: MeasureSettings) -> None:
    m, _ = measure(https("veryslow.test"), settings)
    (h,) = m.http
    assert h.failure == failures.GENERIC_TIMEOUT and h.status == 200
    assert h.body_length is not None and 0 < h.body_length < 20000


def test_oversized_body_is_truncated_at_cap(settings: MeasureSettings) -> None:
    s = dataclasses.replace(settings, body_cap=10_000)
    m, _ = measure(https("big.test"), s)
    (h,) = m.http
    assert h.failure is None and h.body_truncated
    assert h.body_length == 10_000 and h.body is not None and len(h.body) == 10_000


def test_no_bodies_keeps_hash_and_length(settings: MeasureSettings) -> None:
    m, _ = measure(https("ok.test"), dataclasses.replace(settings, store_bodies=False))
    (h,) = m.http
    assert h.body is None and h.body_length and h.body_sha256


# --- redirects -------------------------------------------------------------------------------


def test_redirect_each_hop_is_measured(settings: MeasureSettings) -> None:
    m, _ = measure(http("redir.test"), settings)
    first, second = m.http
    assert first.status == 302 and first.location == https("ok.test", "/landing")
    assert second.redirect_index == 1 and second.url == https("ok.test", "/landing")
    assert second.status == 200
    assert [d.hostname for d in m.dns if d.query_type == "A"] == ["redir.test", "ok.test"]
    assert len(m.tcp) == 2 and len(m.tls) == 1 and m.tls[0].server_name == "ok.test"
    assert first.tx_id != second.tx_id
    hops = m.extra["hops"]
    assert [h["url"] for h in hops] == [http("redir.test"), https("ok.test", "/landing")]


def test_relative_redirect_resolves_against_the_url(settings: MeasureSettings) -> None:
    m, _ = measure(https("relative.test", "/a/b"), dataclasses.replace(settings, max_redirects=1))
    assert m.http[0].location == https("relative.test", "/elsewhere")
    assert m.http[1].url == https("relative.test", "/elsewhere")
    assert m.http[1].failure == failures.HTTP_TOO_MANY_REDIRECTS  # max_redirects is honoured


def test_unusable_redirect_location(settings: MeasureSettings) -> None:
    m, _ = measure(https("badloc.test"), settings)
    (h,) = m.http
    assert h.status == 302 and h.location is None
    assert h.failure == failures.HTTP_INVALID_REDIRECT_LOCATION_HOST


def test_redirect_loop_stops_at_max_redirects(settings: MeasureSettings) -> None:
    m, _ = measure(https("loop.test"), settings)
    assert len(m.http) == settings.max_redirects + 1 == 11
    assert [h.redirect_index for h in m.http] == list(range(11))
    assert all(h.failure is None for h in m.http[:-1])
    last = m.http[-1]
    assert last.failure == failures.HTTP_TOO_MANY_REDIRECTS and last.status == 302
    assert len({h.tx_id for h in m.http}) == 11


# --- cancellation ----------------------------------------------------------------------------


def test_cancellation_propagates(settings: MeasureSettings) -> None:
    async def go() -> None:
        task = asyncio.create_task(web.measure_target(target(https("hang.test")), settings))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_bad_ca_bundle_is_a_tool_error(settings: MeasureSettings, tmp_path: Path) -> None:
    from probe.errors import ProbeError

    with pytest.raises(ProbeError):
        measure(https("ok.test"), dataclasses.replace(settings,
                                                      ca_bundle=str(tmp_path / "none.pem")))


def test_a_whole_target_has_a_deadline_even_when_every_step_is_within_its_own(
        settings: MeasureSettings) -> None:
    @dataclasses.dataclass(frozen=True)
    class Tight(MeasureSettings):  # generous step deadlines, a tiny one for the target
        def target_deadline(self) -> float:
            return 0.5

    tight = Tight(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
                     if f.name not in ("connect_timeout", "tls_timeout", "http_timeout")},
                  connect_timeout=10.0, tls_timeout=10.0, http_timeout=10.0)
    m, took = measure(https("hang.test"), tight)
    assert took < 2.0
    assert m.extra["deadline_exceeded"] == 0.5
    assert m.tcp and m.tls and m.tls[0].verified  # what finished before the deadline is kept


# --- HTTP/3 after the TCP path ----------------------------------------------------------------


def _h3_measure(url: str, settings: MeasureSettings, serve: bool) -> Measurement:
    from probe.lab.world import WorldPKI
    from probe.lab.world.h3_server import serving

    async def go() -> Measurement:
        if not serve:
            return await web.measure_target(target(url), settings)
        pki = WorldPKI.create(Path(settings.ca_bundle or "").parent)
        chain, key = pki.issue(["h3.test", "ok.test"])
        async with serving("127.0.0.1", H3_PORT, chain, key, body=b"<title>Over h3</title>"):
            return await web.measure_target(target(url), settings)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("host", "mode", "serve", "reason", "port", "handshakes", "statuses"),
    [
        # advertised in Alt-Svc, the server answers: one handshake, the page over HTTP/3
        ("h3.test", "advertised", True, "alt-svc", "h3", [None], [200]),
        # not advertised: no HTTP/3 attempt unless asked for
        ("ok.test", "advertised", True, None, None, [], []),
        ("h3.test", "off", True, None, None, [], []),
        # advertised, nothing answers the Initial: a timeout, then the innocuous-SNI retry
        ("h3.test", "advertised", False, "alt-svc", "h3",
         [failures.GENERIC_TIMEOUT, failures.GENERIC_TIMEOUT], []),
        # --http3 on a site that does not speak it: the server's HTTP/3 (for h3world.test)
        # answers with a chain not naming ok.test, so no request is sent over it
        ("ok.test", "always", False, "always", "https", [None], []),
    ],
)
def test_http3_attempt(settings: MeasureSettings, host: str, mode: str, serve: bool,
                       reason: str | None, port: str | None, handshakes: list[str | None],
                       statuses: list[int]) -> None:
    settings = dataclasses.replace(settings, http3=mode)
    m = _h3_measure(https(host), settings, serve)
    assert [h.status for h in m.http] == [200]  # the TCP path is unchanged
    assert [h.failure for h in m.quic] == handshakes
    assert [h.status for h in m.http3] == statuses
    if reason is None:
        assert "http3" not in m.extra
        return
    expected_port = {"h3": H3_PORT, "https": HTTPS_PORT}[port or ""]
    assert (m.extra["http3"]["reason"], m.extra["http3"]["port"]) == (reason, expected_port)
    assert all(q.port == expected_port and q.ip == "127.0.0.1" for q in m.quic)
    if len(m.quic) == 2:
        assert (m.quic[0].server_name, m.quic[1].server_name) == (host, "example.org")
        assert m.extra["http3"]["retry_tx_ids"] == [m.quic[1].tx_id]
    if statuses:
        (q,), (h,) = m.quic, m.http3
        assert (q.alpn, q.verified, h.tx_id, h.title) == ("h3", True, q.tx_id, "Over h3")
        assert h.t0 >= m.http[0].t


@pytest.mark.parametrize(("headers", "port"), [
    ((("Alt-Svc", 'h3=":443"; ma=86400'),), 443),
    ((("alt-svc", 'h3-29=":8443", h3=":9443"'),), 9443),
    ((("Alt-Svc", 'h3="other.example:443"'),), None),  # another host: not followed
    ((("Alt-Svc", "clear"),), None),
    ((("Alt-Svc", 'h2=":443"'),), None),
    ((("Alt-Svc", 'h3=":99999"'),), None),
    ((("Server", 'h3=":443"'),), None),
    ((), None),
])
def test_alt_svc_h3_port(headers: tuple[tuple[str, str], ...], port: int | None) -> None:
    assert web.alt_svc_h3_port(headers) == port


def test_world_site_serves_http3_and_advertises_it(settings: MeasureSettings) -> None:
    m, _ = measure(https("h3world.test"), settings)
    (h,) = m.http
    assert (h.status, h.title) == (200, "Both ways")
    assert ("Alt-Svc", f'h3=":{HTTPS_PORT}"; ma=3600') in h.headers
    assert m.extra["http3"]["reason"] == "alt-svc"
    (q,), (h3,) = m.quic, m.http3
    assert (q.failure, q.alpn, q.verified, q.port) == (None, "h3", True, HTTPS_PORT)
    assert (h3.status, h3.title, h3.url) == (200, "Both ways", https("h3world.test"))
    # a site without http3 on the same server: no Alt-Svc, no attempt
    m, _ = measure(https("ok.test"), settings)
    assert not any(k.lower() == "alt-svc" for k, _ in m.http[0].headers) and not m.quic
