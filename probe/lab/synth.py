"""Synthetic probe databases for report tests, demos and the benchmark (deterministic, no IO
beyond the file written).

A :class:`SynthSpec` describes networks, targets whose verdicts follow *episodes* (blocked by
one method from a date, intercepted on one network, down for a day…), network-wide cuts in the
health timeline, and noise. :func:`generate` writes it with the store's own schema
(``Store.open`` creates and migrates the file, :mod:`probe.store.rows` builds every row and
:meth:`Store.insert_rows` writes them in bulk); same spec and seed → the same
rows. ``health=False`` drops the ``health_samples`` table, like a database from before it.

Two presets: :func:`january_2022_spec` (small, the Kazakhstan January 2022 pattern, with
hostile page titles and headers; the fixture of the golden tests) and :func:`year_spec` (a year
of runs × ~115 targets ≈ 1M verdicts, the benchmark).

Run ``python -m probe.lab.synth OUT.db [--year]`` to write one.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from probe.store import Store, rows

UTC = dt.UTC
Rows = list[rows.Row]
ANALYSIS_VERSION = "synth-1"

#: Canaries: (scope, target). Domestic hosts flagged True are on the 2022-01-08 allow-list.
CANARIES: tuple[tuple[str, str, bool], ...] = (
    ("gateway", "gateway", False),
    ("resolver", "system", False),
    ("domestic", "https://www.gov.kz/", False),
    ("domestic", "https://kaspi.kz/", True),
    ("domestic", "https://tengrinews.kz/", True),
    ("domestic", "https://halykbank.kz/", False),
    ("international", "https://www.wikipedia.org/", False),
    ("international", "https://www.example.com/", False),
    ("international", "https://www.debian.org/", False),
    ("control", "control", False),
)


@dataclass(frozen=True, slots=True)
class Episode:
    """A verdict a target gets from ``start`` until ``end`` (None = open) on some networks
    (None = all). Later episodes of a target override earlier ones."""

    start: dt.datetime | None
    end: dt.datetime | None
    verdict: str
    method: str | None
    evidence: str
    networks: frozenset[int] | None = None
    confidence: float = 0.9


@dataclass(frozen=True, slots=True)
class SynthTarget:
    """A target: its URL, category, episodes and what its final page looks like.

    ``domestic`` targets stay reachable during international and allow-list cuts.
    ``flaky`` is the probability of an ``inconclusive`` verdict outside episodes.
    """

    url: str
    category: str | None
    episodes: tuple[Episode, ...] = ()
    domestic: bool = False
    flaky: float = 0.0
    title: str = "Home"
    server: str = "nginx"
    address: str = "192.0.2.10"


@dataclass(frozen=True, slots=True)
class SynthNetwork:
    asn: int | None
    cc: str | None
    name: str | None
    offset: dt.timedelta = dt.timedelta(0)


@dataclass(frozen=True, slots=True)
class Cut:
    """A network state (``shutdown.full``, ``local_outage``…) over ``[start, end)``."""

    start: dt.datetime
    end: dt.datetime
    state: str
    networks: frozenset[int] | None = None


@dataclass(frozen=True)
class SynthSpec:
    start: dt.datetime
    runs_per_network: int
    interval: dt.timedelta
    networks: tuple[SynthNetwork, ...]
    targets: tuple[SynthTarget, ...]
    cuts: tuple[Cut, ...] = ()
    seed: int = 1
    health: bool = True
    observations: bool = False
    #: Extra non-current (superseded) verdicts per measurement, to exercise is_current.
    history: bool = False
    last_run_running: bool = False
    canaries: tuple[tuple[str, str, bool], ...] = field(default=CANARIES)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _compact(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _state_at(spec: SynthSpec, net: int, when: dt.datetime) -> str:
    state = "whole"
    for cut in spec.cuts:
        if cut.start <= when < cut.end and (cut.networks is None or net in cut.networks):
            state = cut.state
    return state


def _canary_failure(state: str, scope: str, allow: bool, rng: random.Random) -> str | None:
    if state == "whole":
        return "generic_timeout_error" if scope == "international" and rng.random() < 0.02 else None
    if state == "local_outage":
        return "host_unreachable"
    if scope in ("gateway", "resolver"):
        return None
    if scope == "domestic":
        if state == "shutdown.international" or (state == "shutdown.allowlist" and allow):
            return None
    return "generic_timeout_error"


def _verdict(
    spec: SynthSpec, t: SynthTarget, net: int, when: dt.datetime, state: str, rng: random.Random
) -> tuple[str, str | None, float, str]:
    if state == "local_outage":
        return (
            "inconclusive",
            "local_outage",
            0.8,
            "the gateway did not answer: the volunteer's own link is down",
        )
    if state.startswith("shutdown.") and not (t.domestic and state != "shutdown.full"):
        return (
            "shutdown",
            state,
            0.9,
            f"network cut ({state}): canaries beyond the gateway did not answer",
        )
    chosen: Episode | None = None
    for ep in t.episodes:
        if (ep.start is None or when >= ep.start) and (ep.end is None or when < ep.end):
            if ep.networks is None or net in ep.networks:
                chosen = ep
    if chosen is not None:
        return chosen.verdict, chosen.method, chosen.confidence, chosen.evidence
    if t.flaky and rng.random() < t.flaky:
        return "inconclusive", "flaky", 0.3, "results differed between attempts"
    return "ok", None, 0.95, "reachable; consistent with the control"


def generate(spec: SynthSpec, path: str | Path) -> dict[str, int]:
    """Write ``spec`` to a new database at ``path`` (an existing file is replaced).

    Returns counts of rows written: runs, measurements, verdicts, health_samples.
    """
    path = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    current = 0

    def counted() -> Iterator[dict[str, Rows]]:
        nonlocal current
        for batch in _batches(spec, random.Random(spec.seed)):
            current += sum(1 for v in batch["verdicts"] if v["is_current"])
            yield batch

    with Store.open(path) as store:  # the store's schema, migrations and row builders
        if not spec.health:  # an older database, from before health samples were stored
            store.drop_table("health_samples")
        written = store.insert_rows(counted(), durable=False)
        store.checkpoint()
    return {
        "runs": written.get("runs", 0),
        "measurements": written.get("measurements", 0),
        "verdicts": current,
        "health_samples": written.get("health_samples", 0),
    }


def _batches(spec: SynthSpec, rng: random.Random) -> Iterator[dict[str, Rows]]:
    """The rows of ``spec``, parents before children, in batches of about 50,000
    measurements."""
    schedule = sorted(
        (spec.start + net.offset + i * spec.interval, n)
        for n, net in enumerate(spec.networks)
        for i in range(spec.runs_per_network)
    )
    batch = _empty_batch()
    for k, (run_start, n) in enumerate(schedule):
        net = spec.networks[n]
        run_id = f"{_compact(run_start)}-{rng.getrandbits(32):08x}"
        state = _state_at(spec, n, run_start)
        duration = dt.timedelta(seconds=30 + len(spec.targets))
        running = spec.last_run_running and k == len(schedule) - 1
        batch["runs"].append(rows.run_row(
            run_id, _iso(run_start), "synth", {}, len(spec.targets),
            status="running" if running else "completed",
            finished_at=None if running else _iso(run_start + duration),
            last_seen_at=_iso(run_start + duration),
            probe_asn=net.asn, probe_cc=net.cc, network_name=net.name))
        if spec.health:
            phases = (("before", 0), ("during", 15), ("after", 30 + len(spec.targets)))
            for phase, delay in phases:
                at = run_start + dt.timedelta(seconds=delay)
                for scope, target, allow in spec.canaries:
                    failure = _canary_failure(state, scope, allow, rng)
                    batch["health_samples"].append(rows.new_row(
                        "health_samples", run_id=run_id, at=_iso(at), phase=phase, scope=scope,
                        target=target, elapsed=0.05 if failure is None else 5.0,
                        failure=failure))
        for i, t in enumerate(spec.targets):
            m_start = run_start + dt.timedelta(seconds=20 + i * 0.25, microseconds=k % 1000)
            mid = f"{_compact(m_start)}-{rng.getrandbits(64):016x}"
            host = t.url.split("/")[2].split(":")[0]
            scheme = t.url.split(":")[0]
            port = 443 if scheme == "https" else 80
            batch["measurements"].append(rows.new_row(
                "measurements", measurement_id=mid, run_id=run_id, url=t.url, hostname=host,
                scheme=scheme, port=port, path="/", category=t.category,
                source=f"synth.csv:{i + 2}", started_at=_iso(m_start),
                finished_at=_iso(m_start + dt.timedelta(seconds=1.5)), extra="{}"))
            verdict, method, conf, evidence = _verdict(spec, t, n, run_start, state, rng)
            created = _iso(m_start + dt.timedelta(seconds=2))
            if spec.history and i % 3 == 0:
                batch["verdicts"].append(rows.new_row(
                    "verdicts", measurement_id=mid, verdict="inconclusive", method="no_control",
                    confidence=0.2, evidence="superseded", analysis_version="synth-0",
                    created_at=created, is_current=0))
            batch["verdicts"].append(rows.new_row(
                "verdicts", measurement_id=mid, verdict=verdict, method=method, confidence=conf,
                evidence=evidence, analysis_version=ANALYSIS_VERSION, created_at=created,
                is_current=1))
            if spec.observations:
                _observations(batch, mid, t, host, port, verdict, method)
        if len(batch["measurements"]) >= 50_000 or k == len(schedule) - 1:
            yield batch
            batch = _empty_batch()


def _empty_batch() -> dict[str, Rows]:
    return {table: [] for table in ("runs", "measurements", "verdicts", "health_samples",
                                    "dns_queries", "tcp_connects", "http_requests")}


def _observations(batch: dict[str, Rows], mid: str, t: SynthTarget, host: str, port: int,
                  verdict: str, method: str | None) -> None:
    """One DNS query, one connect and one HTTP exchange of a synthetic measurement."""
    batch["dns_queries"].append(rows.new_row(
        "dns_queries", measurement_id=mid, idx=0, tx_id=1, hostname=host, query_type="A",
        engine="udp", resolver="198.51.100.53:53", t0=0.0, t=0.02, failure=None,
        rcode="NOERROR",
        answers=json.dumps([{"rtype": "A", "value": t.address, "ttl": 300}]),
        response_index=0))
    batch["tcp_connects"].append(rows.new_row(
        "tcp_connects", measurement_id=mid, idx=0, tx_id=2, ip=t.address, port=port, t0=0.03,
        t=0.05, failure=None))
    got_page = verdict in ("ok", "throttled") or (method or "").startswith("http.blockpage")
    batch["http_requests"].append(rows.new_row(
        "http_requests", measurement_id=mid, idx=0, tx_id=2, url=t.url, method="GET",
        ip=t.address, port=port, t0=0.1, t=0.4,
        failure=None if got_page else "generic_timeout_error", redirect_index=0,
        request_headers="[]", status=200 if got_page else None,
        headers=json.dumps([["Server", t.server], ["Content-Type", "text/html"]])
        if got_page else "[]",
        body=None, body_length=0 if not got_page else 5120, body_sha256=None,
        body_truncated=0, title=t.title if got_page else None, location=None))


# --- presets ---------------------------------------------------------------------------------


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


#: Markup a hostile site could put in its title, headers and URL (must stay inert in reports).
XSS_TITLE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">Blocked'
XSS_SERVER = '"><svg onload=window.__xss=3><style>*{display:none}</style>'
XSS_URL = 'https://hostile.example/?q="><script>window.__xss=4</script>'


def january_2022_spec() -> SynthSpec:
    """Two Kazakh networks, hourly runs 2022-01-04 12:00 → 2022-01-11 12:00 UTC, 10 targets.

    Cuts follow the January 2022 timeline (reference/kazakhstan.md): nationwide shutdown from
    Jan 5 10:30 with windows Jan 5 17:30–22:00, Jan 6 10:30–14:00, Jan 7/9 02:30–06:00, an
    allow-list-only window Jan 8 02:30–10:00, stable from Jan 11 02:15; mobile data (network 1)
    cut from the evening of Jan 4; a local outage of the volunteer's link on network 0.
    """
    a, b = frozenset({0}), frozenset({1})
    cuts = (
        Cut(_t("2022-01-04T14:00"), _t("2022-01-04T15:30"), "local_outage", a),
        Cut(_t("2022-01-04T18:00"), _t("2022-01-05T10:30"), "shutdown.full", b),
        Cut(_t("2022-01-05T10:30"), _t("2022-01-05T13:00"), "shutdown.international", a),
        Cut(_t("2022-01-05T13:00"), _t("2022-01-05T17:30"), "shutdown.full", a),
        Cut(_t("2022-01-05T10:30"), _t("2022-01-05T17:30"), "shutdown.full", b),
        Cut(_t("2022-01-05T22:00"), _t("2022-01-06T10:30"), "shutdown.full"),
        Cut(_t("2022-01-06T14:00"), _t("2022-01-07T02:30"), "shutdown.full"),
        Cut(_t("2022-01-07T06:00"), _t("2022-01-08T02:30"), "shutdown.full"),
        Cut(_t("2022-01-08T02:30"), _t("2022-01-08T10:00"), "shutdown.allowlist"),
        Cut(_t("2022-01-08T10:00"), _t("2022-01-09T02:30"), "shutdown.full"),
        Cut(_t("2022-01-09T06:00"), _t("2022-01-11T02:15"), "shutdown.full"),
    )
    tls_timeout = (
        "TLS handshake with {ip}:443 timed out after the ClientHello (SNI {host}); "
        "the control completed it"
    )
    targets = (
        SynthTarget(
            "https://meduza.io/",
            "NEWS",
            (
                Episode(
                    None,
                    None,
                    "blocked",
                    "tls.timeout",
                    tls_timeout.format(ip="192.0.2.21", host="meduza.io"),
                    confidence=0.85,
                ),
            ),
            address="192.0.2.21",
        ),
        SynthTarget(
            "https://www.azattyq.org/",
            "NEWS",
            (
                Episode(
                    None,
                    None,
                    "throttled",
                    "throttle",
                    "TLS handshake took 4.2 s vs 0.3 s for the control and 0.2 s for canaries",
                    a,
                    0.7,
                ),
            ),
            address="192.0.2.22",
        ),
        SynthTarget(
            "https://www.facebook.com/",
            "GRP",
            (
                Episode(
                    _t("2022-01-06T00:00"),
                    None,
                    "intercepted",
                    "tls.mitm",
                    "certificate issued by 'C=KZ, CN=Security Certificate', not the control's "
                    "chain (SPKI 8e12d0cb…)",
                    a,
                    0.95,
                ),
            ),
            title="Facebook",
            address="192.0.2.23",
        ),
        SynthTarget(
            "https://web.whatsapp.com/",
            "COMT",
            (
                Episode(
                    _t("2022-01-04T12:00"),
                    None,
                    "blocked",
                    "dns.nxdomain",
                    "resolver 198.51.100.53 answered NXDOMAIN; the control resolved 192.0.2.24",
                    confidence=0.9,
                ),
                Episode(
                    _t("2022-01-08T00:00"),
                    None,
                    "blocked",
                    "tcp.reset",
                    "TCP connection to 192.0.2.24:443 reset; the control connected",
                    confidence=0.9,
                ),
            ),
            address="192.0.2.24",
        ),
        SynthTarget(
            "https://nordvpn.com/",
            "ANON",
            (
                Episode(
                    None,
                    None,
                    "blocked",
                    "http.blockpage",
                    "block page fingerprint 'ru-blockpage' in the HTTP body",
                    confidence=0.99,
                ),
                Episode(
                    _t("2022-01-10T00:00"),
                    None,
                    "ok",
                    None,
                    "reachable; consistent with the control",
                    b,
                    0.95,
                ),
            ),
            title="Страница заблокирована",
            server="nginx",
            address="192.0.2.25",
        ),
        SynthTarget(
            "https://tengrinews.kz/",
            "NEWS",
            domestic=True,
            title="Tengrinews.kz",
            address="192.0.2.26",
        ),
        SynthTarget(
            "https://www.wikipedia.org/",
            "CULTR",
            flaky=0.08,
            title="Wikipedia",
            address="192.0.2.27",
        ),
        SynthTarget(
            "https://down.example/",
            None,
            (
                Episode(
                    _t("2022-01-04T12:00"),
                    _t("2022-01-05T06:00"),
                    "down",
                    "down.tcp",
                    "TCP connection to 192.0.2.28:443 timed out; the control saw the same",
                    confidence=0.8,
                ),
            ),
            address="192.0.2.28",
        ),
        SynthTarget(
            XSS_URL,
            "MISC",
            (
                Episode(
                    None,
                    None,
                    "blocked",
                    "http.blockpage",
                    '<b>block page</b> "Your IP: 203.0.113.77" <script>window.__xss=5</script> '
                    "served from 192.0.2.29",
                    confidence=0.99,
                ),
            ),
            title=XSS_TITLE,
            server=XSS_SERVER,
            address="192.0.2.29",
        ),
        SynthTarget(
            "https://www.change.org/",
            "HUMR",
            (
                Episode(
                    _t("2022-01-10T00:00"),
                    None,
                    "blocked",
                    "tls.reset",
                    "TLS handshake reset with SNI www.change.org; fine with an innocuous SNI",
                    confidence=0.9,
                ),
            ),
            address="192.0.2.30",
        ),
    )
    return SynthSpec(
        start=_t("2022-01-04T12:00:05"),
        runs_per_network=168,
        interval=dt.timedelta(hours=1),
        networks=(
            SynthNetwork(9198, "KZ", "KAZTELECOM", dt.timedelta(0)),
            SynthNetwork(21299, "KZ", "KAR-TEL-AS", dt.timedelta(minutes=7)),
        ),
        targets=targets,
        cuts=cuts,
        seed=2022,
        observations=True,
        history=True,
        last_run_running=True,
    )


_METHODS = (
    "tls.timeout",
    "tls.reset",
    "dns.nxdomain",
    "tcp.reset",
    "http.blockpage",
    "dns.bogon",
    "tcp.timeout",
)


def year_spec(targets: int = 115, seed: int = 7) -> SynthSpec:
    """A year (2023-03-01 → 2024-02-29) of runs every 2 h on two networks (offset by 1 h, so
    hourly overall) × ``targets`` targets ≈ 1M verdicts with 115 targets."""
    rng = random.Random(seed)
    start = _t("2023-03-01T00:00:00")
    built = []
    for i in range(targets):
        kind = rng.random()
        host = f"site{i:03d}.example"
        cat = rng.choice(("NEWS", "POLR", "HUMR", "ANON", "GRP", "COMT", "MMED", "CULTR"))
        eps: list[Episode] = []
        when = start + dt.timedelta(days=rng.randrange(20, 340))
        method = rng.choice(_METHODS)
        nets = rng.choice((None, frozenset({0}), frozenset({1})))
        ev = f"{method} for {host} (synthetic)"
        if kind < 0.12:
            eps.append(Episode(None, None, "blocked", method, ev, nets))
        elif kind < 0.27:
            eps.append(Episode(when, None, "blocked", method, ev, nets))
        elif kind < 0.31:
            eps.append(Episode(None, when, "blocked", method, ev, nets))
        elif kind < 0.34:
            eps.append(
                Episode(
                    when,
                    when + dt.timedelta(days=40),
                    "throttled",
                    "throttle",
                    f"slow TLS handshakes for {host}",
                    nets,
                    0.7,
                )
            )
        elif kind < 0.36:
            eps.append(
                Episode(
                    when,
                    None,
                    "intercepted",
                    "tls.mitm",
                    f"national CA certificate for {host}",
                    nets,
                )
            )
        elif kind < 0.41:
            eps.append(
                Episode(
                    when,
                    when + dt.timedelta(days=3),
                    "down",
                    "down.tcp",
                    f"{host} unreachable from the control too",
                    None,
                    0.8,
                )
            )
        elif kind < 0.44:
            other = rng.choice(_METHODS)
            eps.append(Episode(None, None, "blocked", method, ev, nets))
            eps.append(Episode(when, None, "blocked", other, f"{other} for {host}", nets))
        built.append(
            SynthTarget(f"https://{host}/", cat, tuple(eps), domestic=i % 20 == 0, flaky=0.01)
        )
    cuts = [
        Cut(start + dt.timedelta(days=d, hours=h), start + dt.timedelta(days=d, hours=h + n), state)
        for d, h, n, state in (
            (40, 10, 30, "shutdown.full"),
            (41, 22, 4, "shutdown.international"),
            (120, 3, 6, "local_outage"),
            (200, 12, 70, "shutdown.full"),
            (203, 14, 20, "shutdown.allowlist"),
            (300, 1, 8, "shutdown.international"),
        )
    ]
    return SynthSpec(
        start=start,
        runs_per_network=4380,
        interval=dt.timedelta(hours=2),
        networks=(
            SynthNetwork(9198, "KZ", "KAZTELECOM", dt.timedelta(0)),
            SynthNetwork(21299, "KZ", "KAR-TEL-AS", dt.timedelta(hours=1)),
        ),
        targets=tuple(built),
        cuts=tuple(cuts),
        seed=seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: python -m probe.lab.synth OUT.db [--year]", file=sys.stderr)
        return 2
    spec = year_spec() if "--year" in args else january_2022_spec()
    counts = generate(spec, args[0])
    print(f"{args[0]}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
