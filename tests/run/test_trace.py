"""Packet-level checks (issue 8) without the network: the decisions over replies, planning,
storage of traces, their rendering, the CLI without raw sockets, and packet parsing."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from probe.classify import traces
from probe.cli.root import app
from probe.errors import StorageError, UsageError
from probe.measure import raw
from probe.measure import trace as T
from probe.measure.raw import Reply
from probe.model import Measurement, Target, TraceHop, TraceObservation, TraceProbe
from probe.report.run_results import render_table, trace_note
from probe.run import tracing
from probe.store import Store
from probe.targets import parse_url
from tests.clirunner import CliRunner


def r(outcome: str, ttl: int = 2, **kw: Any) -> Reply:
    return Reply(ttl, outcome, **kw)


def as_probe(reply: Reply, variant: str, cert_bad: bool = False) -> TraceProbe:
    """What the measurement records of a reply (a chain that does not validate: cert_error)."""
    bad = "ssl_unknown_authority" if cert_bad and reply.chain else None
    return TraceProbe(ttl=reply.ttl, variant=variant, outcome=reply.outcome,
                      source=reply.source, reply_ttl=reply.reply_ttl, cert_error=bad)


def locate_stream(io: Any, kind: str, ip: str, port: int, name: str,
                  settings: T.TraceSettings) -> TraceObservation:
    """Measure, then judge: what `probe trace` does."""
    return traces.judge(asyncio.run(T.locate_stream(io, kind, ip, port, name, settings,
                                                    signature=traces.signature)))


# --- decisions -----------------------------------------------------------------------------

SIGNATURE_CASES = [
    # kind, blocked, innocuous, cert_bad, expected
    ("tls", r("expired"), r("expired"), False, None),
    ("tls", r("reset"), r("expired"), False, "reset"),
    ("tls", r("reset"), r("answer", reply_ttl=60), False, "reset"),
    ("tls", r("reset"), r("reset"), False, None),
    ("tls", r("eof"), r("expired"), False, "eof"),
    ("tls", r("silent"), r("expired"), False, "drop"),
    ("tls", r("silent"), r("answer"), False, "drop"),
    ("tls", r("silent"), r("silent"), False, None),
    ("tcp", r("unreachable"), r("expired"), False, "unreachable"),
    ("http", r("answer", reply_ttl=64), r("expired"), False, "blockpage"),
    ("http", r("answer", reply_ttl=62), r("answer", reply_ttl=61), False, "blockpage"),
    ("http", r("answer", reply_ttl=61), r("answer", reply_ttl=61), False, None),
    ("tls", r("answer", chain=(b"x",)), r("answer", chain=(b"y",)), True, "cert"),
    ("tls", r("answer", chain=(b"x",)), r("answer", chain=(b"y",)), False, None),
    ("tls", r("answer", chain=(b"x",), reply_ttl=64), r("expired"), False, "answer"),
    ("tls", r("error", error="connection_refused"), r("expired"), False, None),
    ("tls", r("expired"), r("answer"), False, None),
]


@pytest.mark.parametrize("kind,blocked,innocuous,cert_bad,expected", SIGNATURE_CASES)
def test_signature(kind: str, blocked: Reply, innocuous: Reply, cert_bad: bool,
                   expected: str | None) -> None:
    assert traces.signature(kind, as_probe(blocked, "blocked", cert_bad),
                            as_probe(innocuous, "innocuous")) == expected


@pytest.mark.parametrize("trigger,terminating,hop", [
    (2, False, 1),  # a router's forwarding path: triggered from TTL hop + 1
    (4, False, 3),
    (1, False, 1),  # from TTL 1: at the first hop
    (1, True, 1),  # an interception proxy on the first router
    (3, True, 3),
])
def test_censor_hop(trigger: int, terminating: bool, hop: int) -> None:
    assert traces.censor_hop(trigger, terminating) == hop


def test_path_takes_the_first_router_per_ttl_also_behind_an_answer() -> None:
    replies = [r("expired", 1, source="10.0.0.1"), r("answer", 2, source="9.9.9.9",
                                                     router="10.0.1.1"),
               r("expired", 1, source="10.0.0.9"), r("silent", 3)]
    assert T.path_of(replies) == (TraceHop(1, "10.0.0.1"), TraceHop(2, "10.0.1.1"))


def test_first_answer_ttl() -> None:
    got = {1: r("expired", 1), 2: r("silent", 2), 3: r("answer", 3), 4: r("answer", 4)}
    assert T.first_answer_ttl(got) == 3
    assert T.first_answer_ttl({1: r("expired", 1)}) is None


def test_notes() -> None:
    page = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<title>Access restricted</title>"
    assert T.note_of("http", r("answer", data=page)) == "HTTP/1.0 200 OK «Access restricted»"
    assert T.note_of("dns", r("answer", rcode="NOERROR", answers=("10.10.34.35",))) == \
        "NOERROR 10.10.34.35"
    assert T.note_of("tcp", r("unreachable", icmp_code=1)) == "ICMP unreachable code 1"
    assert T.note_of("tls", r("error", error="connection_refused")) == "connection_refused"
    assert T.note_of("tls", r("expired")) is None
    assert T.note_of("tls", r("answer", tls_error="ssl_failed_handshake")) == \
        "not a TLS handshake: ssl_failed_handshake"


def test_http_request_names_the_host() -> None:
    req = T.http_request("blocked.example", "/a?b=1")
    assert req.startswith(b"GET /a?b=1 HTTP/1.1\r\nHost: blocked.example\r\n")
    assert req.endswith(b"\r\n\r\n")


def test_settings_bound_the_ttl() -> None:
    with pytest.raises(ValueError):
        T.TraceSettings(max_ttl=0)
    assert T.TraceSettings(max_ttl=64).max_ttl == 64


# --- planning ------------------------------------------------------------------------------


def test_plan_for_url() -> None:
    https = parse_url("https://Blocked.Example/x")
    plans = tracing.plan_for_url(https)
    assert [(p.kind, p.name, p.ip, p.port) for p in plans] == [
        ("dns", "blocked.example", None, 53), ("tls", "blocked.example", None, 443)]
    (http,) = tracing.plan_for_url(parse_url("http://b.example:8080/p"), "http", via="1.2.3.4")
    assert (http.kind, http.ip, http.port, http.path) == ("http", "1.2.3.4", 8080, "/p")
    with pytest.raises(UsageError):
        tracing.plan_for_url(https, "icmp")


def _row(verdict: str, method: str | None, target: str = "https://b.example/",
         **details: Any) -> dict[str, Any]:
    return {"url": target, "hostname": "b.example", "verdict": verdict, "method": method,
            "measurement_id": "m1", "details": details}


@pytest.mark.parametrize("row,expected", [
    (_row("ok", None), None),
    (_row("down", "down.tcp", step="tcp", ip="1.2.3.4", port=443), None),
    (_row("blocked", "dns.injected", step="dns", hostname="b.example"),
     ("dns", "b.example", None, 53)),
    (_row("blocked", "dns.bogon"), ("dns", "b.example", None, 53)),
    (_row("blocked", "tcp.timeout", step="tcp", ip="1.2.3.4", port=443),
     ("tcp", "b.example", "1.2.3.4", 443)),
    (_row("blocked", "tls.reset", step="tls", ip="1.2.3.4", port=443, server_name="b.example"),
     ("tls", "b.example", "1.2.3.4", 443)),
    (_row("intercepted", "tls.mitm", step="tls", ip="1.2.3.4", port=443,
          server_name="b.example"), ("tls", "b.example", "1.2.3.4", 443)),
    (_row("blocked", "http.reset", "http://b.example/", step="http", ip="1.2.3.4",
          port=80, url="http://c.example/path"),
     ("http", "c.example", "1.2.3.4", 80)),
    (_row("blocked", "http.eof", step="http", ip="1.2.3.4", port=443,
          url="https://b.example/"), ("tls", "b.example", "1.2.3.4", 443)),
    (_row("blocked", "http.blockpage", "http://b.example/", step="http", port=80),
     ("http", "b.example", None, 80)),
])
def test_plan_for_result(row: dict[str, Any], expected: tuple[Any, ...] | None) -> None:
    plan = tracing.plan_for_result(row)
    got = None if plan is None else (plan.kind, plan.name, plan.ip, plan.port)
    assert got == expected
    if plan is not None:
        assert plan.measurement_id == "m1"


def test_reference_address() -> None:
    assert tracing.reference_address("141.106.0.10") == "141.106.0.10"
    assert tracing.reference_address(None, ["http://141.106.0.10:80"]) == "141.106.0.10"
    assert tracing.reference_address(None, ["https://helper.example/"]) is None
    assert tracing.reference_address(None) is None
    with pytest.raises(UsageError):
        tracing.reference_address("helper.example")


# --- storage and results -------------------------------------------------------------------

TRACE = TraceObservation(
    kind="tls", target="185.61.1.12", port=443, name="blocked.example",
    innocuous="example.org", started_at="2026-01-05T10:30:00.000000Z", elapsed=3.2,
    failure=None, result="located", signature="reset", trigger_ttl=4, hop=3,
    hop_address="80.80.2.2",
    path=(TraceHop(1, "37.150.1.1"), TraceHop(2, "80.80.1.2"), TraceHop(3, "80.80.2.2")),
    probes=(TraceProbe(3, "blocked", "expired", "80.80.2.2", 62),
            TraceProbe(4, "blocked", "reset", "185.61.1.12", 62, None),
            TraceProbe(4, "innocuous", "expired", "80.80.3.2", 61, "a note «é»")),
    details={"tcp_endpoint_ttl": 5, "destination_ttl": 5, "reply_ttl": 62},
)


def _measurement(url: str) -> Measurement:
    t = parse_url(url)
    return Measurement(target=t, started_at="2026-01-05T10:29:00.000000Z",
                       finished_at="2026-01-05T10:29:01.000000Z")


def test_traces_round_trip_and_show_in_results(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p.db") as store:
        run = store.start_run({}, 2)
        blocked = store.save_measurement(run, _measurement("https://blocked.example/"), None)
        store.save_measurement(run, _measurement("https://fine.example/"), None)
        assert store.latest_measurement_of("https://blocked.example/") == blocked
        assert store.latest_measurement_of("https://never.example/") is None
        store.save_trace(TRACE, "https://blocked.example/", blocked)
        store.save_trace(dataclasses.replace(TRACE, kind="dns"), "https://x.example/", None)
        assert store.traces(blocked) == [TRACE]
        with pytest.raises(StorageError):
            store.save_trace(TRACE, "https://blocked.example/", "no-such-measurement")
        rows = {r["url"]: r for r in store.results(run)}
    (summary,) = rows["https://blocked.example/"]["traces"]
    assert (summary["hop"], summary["signature"], summary["hop_address"]) == (3, "reset",
                                                                             "80.80.2.2")
    assert summary["path"][0] == {"ttl": 1, "address": "37.150.1.1"}
    assert "traces" not in rows["https://fine.example/"]
    table = render_table(list(rows.values()), width=160)
    assert "[censor at hop 3: reset]" in table


def test_trace_note() -> None:
    assert trace_note(None) == ""
    assert trace_note([{"kind": "dns", "hop": 1, "signature": "injected"},
                       {"kind": "tls", "hop": 3, "signature": "reset"}]) == \
        "injector at hop 1: injected; censor at hop 3: reset"
    assert trace_note([{"kind": "dns", "hop": None, "result": "injected"}]) == "DNS injected"
    assert trace_note([{"kind": "tls", "hop": None, "result": "not_blocked"}]) == ""


def test_render_text_and_summary() -> None:
    text = tracing.render_text("https://blocked.example/", [TRACE])
    assert "censor at hop 3 (80.80.2.2), first seen with TTL 4: reset" in text
    assert "reset from 185.61.1.12 ttl=62" in text
    dns = dataclasses.replace(TRACE, kind="dns", target="141.106.0.10", result="injected",
                              signature="injected", trigger_ttl=2, hop=1,
                              hop_address="37.150.1.1", answers=("10.10.34.35",))
    assert tracing.summary(dns).endswith(
        "injected (10.10.34.35); injector at hop 1 (37.150.1.1), first seen with TTL 2")
    failed = dataclasses.replace(TRACE, failure="connection_refused", result=None)
    assert "could not trace (connection_refused)" in tracing.summary(failed)
    assert tracing.to_jsonable("u", TRACE)["path"][0] == {"ttl": 1, "address": "37.150.1.1"}


# --- without raw sockets -------------------------------------------------------------------


def test_trace_command_without_raw_sockets_says_so_in_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "raw_unavailable", lambda: raw.NEED_RAW)
    res = CliRunner().invoke(app, ["trace", "https://blocked.example/", "--accept-risk"])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert lines == [f"probe: error: {raw.NEED_RAW}"]


@pytest.mark.parametrize("args,message", [
    (["--format", "xml"], "--format"),
    (["--via", "not-an-ip"], "--via"),
    (["--kind", "icmp"], "--kind"),
    (["--reference", "helper.example"], "--reference"),
])
def test_trace_command_usage_errors(args: list[str], message: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "raw_unavailable", lambda: None)
    monkeypatch.setattr(tracing, "run_plans", _no_network)
    res = CliRunner().invoke(app, ["trace", "https://b.example/", "--accept-risk", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output


async def _no_network(*_: Any, **__: Any) -> list[Any]:
    raise AssertionError("no packets in unit tests")


def test_trace_blocked_without_raw_sockets_says_so_once(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setattr(tracing, "raw_unavailable", lambda: raw.NEED_RAW)
    said: list[str] = []
    got = asyncio.run(tracing.trace_blocked(str(tmp_path / "none.db"), "latest",
                                            T.TraceSettings(), say=said.append))
    assert got == [] and said == [raw.NEED_RAW]


def test_run_trace_blocked_step_without_raw_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    from probe.measure.settings import MeasureSettings
    from probe.run import session
    from probe.run.engine import RunOptions

    monkeypatch.setattr(tracing, "raw_unavailable", lambda: raw.NEED_RAW)
    events: list[tuple[str, str]] = []
    plan = session._Plan(1, MeasureSettings(), RunOptions(), "/nonexistent.db")
    assert session._trace_blocked("run", plan, lambda t, x: events.append((t, x))) == ()
    assert events == [("notice", raw.NEED_RAW)]  # `probe run` prints it as "probe: …"


def test_raw_unavailable_names_the_missing_privilege(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> Any:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(raw.socket, "socket", refuse)
    assert raw.raw_unavailable() == raw.NEED_RAW


def test_trace_flag_is_a_run_setting_not_a_watch_option() -> None:
    res = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "--trace-blocked" in res.output
    res = CliRunner().invoke(app, ["watch", "--help"], env={"COLUMNS": "200"})
    assert "--trace-blocked" not in res.output


# --- packet parsing ------------------------------------------------------------------------


def test_parse_icmp_time_exceeded_quoting_a_tcp_segment() -> None:
    from scapy.layers.inet import ICMP, IP, TCP

    quoted = IP(src="37.150.1.2", dst="185.61.1.12", ttl=1) / TCP(sport=40000, dport=443,
                                                                  flags="PA", seq=1234)
    pkt = IP(src="80.80.1.2", dst="37.150.1.2", ttl=63) / ICMP(type=11, code=0) / \
        bytes(quoted)[:28]
    p = raw.parse_packet(bytes(pkt), 1.0)
    assert p is not None
    assert (p.src, p.ttl, p.icmp_type, p.inner_dst, p.inner_proto, p.inner_sport,
            p.inner_dport) == ("80.80.1.2", 63, 11, "185.61.1.12", 6, 40000, 443)
    assert p.quotes(raw.PROTO_TCP, "185.61.1.12", 40000, 443)
    assert not p.quotes(raw.PROTO_TCP, "185.61.1.12", 40001, 443)


def test_parse_tcp_udp_and_echo() -> None:
    from scapy.layers.inet import ICMP, IP, TCP, UDP

    rst = raw.parse_packet(bytes(IP(src="1.2.3.4", dst="5.6.7.8", ttl=62) /
                                 TCP(sport=443, dport=40000, flags="RA")), 0.0)
    assert rst is not None and "R" in rst.flags and rst.sport == 443 and rst.ttl == 62
    udp = raw.parse_packet(bytes(IP(src="1.2.3.4", dst="5.6.7.8") /
                                 UDP(sport=53, dport=20001) / b"abc"), 0.0)
    assert udp is not None and udp.payload == b"abc" and udp.dport == 20001
    echo = raw.parse_packet(bytes(IP(src="1.2.3.4", dst="5.6.7.8") /
                                  ICMP(type=0, id=77, seq=5)), 0.0)
    assert echo is not None and (echo.icmp_type, echo.inner_sport, echo.inner_dport) == (0, 77,
                                                                                         5)
    raw.parse_packet(b"\x45garbage", 0.0)  # a malformed packet never raises


def test_trace_url_refuses_a_bad_via_before_any_packet() -> None:
    target = Target(url="https://b.example/", hostname="b.example", scheme="https", port=443,
                    path="/")
    with pytest.raises(UsageError):
        tracing.trace_url(target, T.TraceSettings(), via="b.example")


def test_judging_the_stored_trace_gives_it_back() -> None:
    assert traces.judge(TRACE) == TRACE
    failed = dataclasses.replace(TRACE, failure="connection_refused")
    assert (traces.judge(failed).result, traces.judge(failed).hop) == (None, None)


def test_reanalyze_rejudges_stored_traces(tmp_path: Path) -> None:
    from probe.run.reanalyze import reanalyze

    db = tmp_path / "p.db"
    stale = dataclasses.replace(TRACE, result="not_located", signature=None, trigger_ttl=None,
                                hop=None, hop_address=None,
                                details={"tcp_endpoint_ttl": 5, "destination_ttl": 5})
    with Store.open(db) as store:
        run = store.start_run({}, 1)
        mid = store.save_measurement(run, _measurement("https://blocked.example/"), None)
        store.save_trace(stale, "https://blocked.example/", mid)
        store.finish_run(run, "completed")
    assert "1 traces re-judged" in reanalyze(str(db))
    with Store.open(db) as store:
        assert store.traces(mid) == [TRACE]  # same probes, the current rules' judgement
    assert "re-judged" not in reanalyze(str(db))  # nothing left to change


def test_reports_note_where_the_censor_is(tmp_path: Path) -> None:
    import datetime as dt

    from probe.model import Verdict, VerdictKind
    from probe.report import ReportOptions, build_report

    db = tmp_path / "p.db"
    with Store.open(db) as store:
        run = store.start_run({}, 1)
        verdict = Verdict(VerdictKind.BLOCKED, "tls.reset", 0.9, "TLS reset", "test")
        mid = store.save_measurement(run, _measurement("https://blocked.example/"), verdict)
        store.save_trace(TRACE, "https://blocked.example/", mid)
        store.finish_run(run, "completed")
    report = build_report(ReportOptions((db,), dt.UTC, now=dt.datetime(2026, 1, 6, tzinfo=dt.UTC)))
    (row,) = [t for t in report.targets if t.url == "https://blocked.example/"]
    assert row.evidence == "TLS reset [censor at hop 3: reset]"


# --- the tests' orchestration, on a scripted path ---------------------------------------------


class ScriptedPath:
    """A fake packet session: routers at hops 1..``dest - 1``, the destination at ``dest``, a
    censor acting on what hop ``censor`` forwards (``terminating``: it *is* hop ``censor``)
    with ``action``; ``quiet`` routers send no time-exceeded."""

    def __init__(self, dest: int, censor: int, action: str, blocked: str = "blocked.example",
                 terminating: bool = False, quiet: frozenset[int] = frozenset()) -> None:
        self.dest, self.censor, self.action, self.blocked = dest, censor, action, blocked
        self.terminating, self.quiet = terminating, quiet

    def _hop(self, ttl: int) -> Reply:
        if ttl in self.quiet:
            return Reply(ttl, "silent")
        return Reply(ttl, "expired", f"10.0.{ttl}.1", 65 - ttl, router=f"10.0.{ttl}.1")

    def syn_sweep(self, ip: str, port: int, ttls: list[int], *_: Any) -> dict[int, Reply]:
        end = self.censor if self.terminating else self.dest
        return {t: self._hop(t) if t < end else Reply(t, "answer", ip, 65 - end) for t in ttls}

    def echo_sweep(self, ip: str, ttls: list[int], *_: Any) -> dict[int, Reply]:
        return {t: self._hop(t) if t < self.dest else Reply(t, "answer", ip, 65 - self.dest)
                for t in ttls}

    def stream_probe(self, ip: str, port: int, ttl: int, *, request: bytes | None = None,
                     tls_name: str | None = None, **_: Any) -> Reply:
        name = tls_name if tls_name is not None else (request or b"").split(b"Host: ")[1] \
            .split(b"\r\n")[0].decode()
        reaches = ttl >= self.censor if self.terminating else ttl > self.censor
        if name == self.blocked and reaches:
            if self.action == "drop":
                return Reply(ttl, "silent")
            if self.action == "page":
                return Reply(ttl, "answer", ip, 65 - self.censor, data=b"HTTP/1.0 200 OK\r\n")
            return Reply(ttl, self.action, ip, 65 - self.censor)
        if ttl < self.dest and not (self.terminating and ttl >= self.censor):
            return self._hop(ttl)
        return Reply(ttl, "answer", ip, 65 - self.dest, data=b"HTTP/1.1 200 OK\r\n")

    def dns_sweep(self, server: str, queries: list[tuple[str, int]], *_: Any,
                  **__: Any) -> dict[tuple[str, int], Reply]:
        out = {}
        for name, ttl in queries:
            if name == self.blocked and ttl > self.censor:
                out[(name, ttl)] = Reply(ttl, "answer", server, 65 - self.censor,
                                         rcode="NOERROR", answers=("10.10.34.35",))
            elif ttl < self.dest:
                out[(name, ttl)] = self._hop(ttl)
            else:
                out[(name, ttl)] = Reply(ttl, "unreachable", server, 60, icmp_code=3)
        return out


SETTINGS = T.TraceSettings(max_ttl=10)


@pytest.mark.parametrize("kind,dest,censor,action,terminating,hop,sig", [
    ("tls", 5, 1, "reset", False, 1, "reset"),
    ("tls", 5, 3, "reset", False, 3, "reset"),  # national gateway
    ("tls", 5, 4, "reset", False, 4, "reset"),  # the last router before the server
    ("tls", 5, 2, "drop", False, 2, "drop"),
    ("tls", 6, 1, "eof", False, 1, "eof"),
    ("http", 5, 1, "page", False, 1, "blockpage"),
    ("http", 4, 3, "page", False, 3, "blockpage"),  # injected from nearer than the server
])
def test_locate_stream_on_a_scripted_path(kind: str, dest: int, censor: int, action: str,
                                          terminating: bool, hop: int, sig: str) -> None:
    io: Any = ScriptedPath(dest, censor, action, terminating=terminating)
    obs = locate_stream(io, kind, "192.0.2.1", 443, "blocked.example",
                                      SETTINGS)
    assert (obs.result, obs.signature, obs.hop, obs.trigger_ttl) == ("located", sig, hop,
                                                                      censor + 1)
    assert obs.hop_address == f"10.0.{hop}.1"
    assert [h.ttl for h in obs.path][:hop] == list(range(1, hop + 1))


def test_locate_stream_puts_a_terminating_proxy_at_its_own_hop() -> None:
    io: Any = ScriptedPath(5, 2, "reset", terminating=True)
    obs = locate_stream(io, "tls", "192.0.2.1", 443, "blocked.example",
                                      SETTINGS)
    assert (obs.hop, obs.trigger_ttl, obs.details["endpoint"]) == (2, 2, "middlebox")
    assert obs.details["terminates"] is True


def test_the_measurement_records_and_leaves_judging_to_classify() -> None:
    io: Any = ScriptedPath(5, 3, "reset")
    raw_obs = asyncio.run(T.locate_stream(io, "tls", "192.0.2.1", 443, "blocked.example",
                                          SETTINGS, signature=traces.signature))
    assert (raw_obs.result, raw_obs.signature, raw_obs.hop, raw_obs.trigger_ttl) == (
        None, None, None, None)
    assert "reply_ttl" not in raw_obs.details and raw_obs.probes
    judged = traces.judge(raw_obs)
    assert (judged.result, judged.hop) == ("located", 3)
    assert traces.judge(judged) == judged  # judging again changes nothing


def test_locate_stream_not_blocked_and_drop_ranges() -> None:
    clean: Any = ScriptedPath(4, 1, "reset", blocked="other.example")
    obs = locate_stream(clean, "tls", "192.0.2.1", 443, "blocked.example",
                                      SETTINGS)
    assert (obs.result, obs.hop, len(obs.probes)) == ("not_blocked", None, 8)
    # a router that says nothing right before the drop: the hop could be 2 or 3
    quiet: Any = ScriptedPath(6, 3, "drop", quiet=frozenset({3}))
    obs = locate_stream(quiet, "tls", "192.0.2.1", 443, "blocked.example",
                                      SETTINGS)
    assert (obs.signature, obs.hop, obs.details["hop_range"]) == ("drop", 3, [2, 3])


def test_dns_injection_on_a_scripted_path() -> None:
    io: Any = ScriptedPath(6, 2, "inject")
    obs = traces.judge(asyncio.run(T.dns_injection(io, "192.0.2.53", "blocked.example",
                                                    SETTINGS)))
    assert (obs.result, obs.hop, obs.trigger_ttl, obs.answers) == ("injected", 2, 3,
                                                                   ("10.10.34.35",))
    assert obs.hop_address == "10.0.2.1"
    clean: Any = ScriptedPath(6, 2, "inject", blocked="other.example")
    obs = traces.judge(asyncio.run(T.dns_injection(clean, "192.0.2.53", "blocked.example",
                                                    SETTINGS)))
    assert (obs.result, obs.hop, obs.details["destination_ttl"]) == ("not_injected", None, 6)


def test_locate_address_on_a_scripted_path() -> None:
    class Blocked(ScriptedPath):
        def syn_sweep(self, ip: str, port: int, ttls: list[int], *_: Any) -> dict[int, Reply]:
            if ip == "192.0.2.9":  # the reference: a clean path
                return ScriptedPath(7, 1, "none").syn_sweep(ip, port, ttls)
            return {t: self._hop(t) if t <= self.censor else Reply(t, "silent") for t in ttls}

        def echo_sweep(self, ip: str, ttls: list[int], *_: Any) -> dict[int, Reply]:
            return self.syn_sweep(ip, 0, ttls)

    blocked: Any = Blocked(6, 2, "drop")
    obs = traces.judge(asyncio.run(T.locate_address(blocked, "192.0.2.1", 443, "192.0.2.9",
                                                    SETTINGS, signature=traces.signature)))
    assert (obs.kind, obs.result, obs.signature, obs.hop) == ("tcp", "located", "drop", 2)
