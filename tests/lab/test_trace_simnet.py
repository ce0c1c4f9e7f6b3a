"""Issue 8 on the simulated network: every injection scenario is detected by the DNS injection
test and every reset, drop, block-page and interception scenario is localised to the hop of
the router its censor runs on (the ISP router = hop 1, transit router tK = hop K + 1).

The cases come from the catalogue itself: every scenario whose censors are all techniques a
trace can localise (and that has no timed events) is brought up, and every target whose host
one of its censors names is traced with ``probe trace`` inside the client namespace. The
scenario / expected hop / measured hop table is printed at the end (past pytest's output
capture). Root only; every namespace, process and rule is removed even when a test fails
(``Sim.stop`` in ``finally``), and the root namespace's rules are compared before and after.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from probe.lab.simnet import addressing as A
from probe.lab.simnet import netns
from probe.lab.simnet import scenario as S

ROOT_OK, ROOT_REASON = netns.have_root()
needs_root = pytest.mark.skipif(not ROOT_OK, reason=ROOT_REASON or "needs root")

#: technique → the trace kind that localises it (tcp_inject: by its port)
KIND_OF = {
    "dns_inject": "dns", "sni_reset": "tls", "sni_drop": "tls", "sni_fin": "tls",
    "tls_mitm": "tls", "http_reset": "http", "http_blockpage": "http", "http_redirect": "http",
    "tcp_inject": "http", "ip_block": "tcp",
}
#: what each technique looks like to a trace
SIGNATURES = {
    "dns_inject": {"injected"}, "sni_reset": {"reset"}, "sni_drop": {"drop"},
    "sni_fin": {"eof"}, "tls_mitm": {"cert"}, "http_reset": {"reset"},
    "http_blockpage": {"blockpage"}, "http_redirect": {"blockpage"},
    "tcp_inject": {"reset", "eof", "blockpage"}, "ip_block": {"drop", "reset", "unreachable"},
}
CONTROL_URL = f"http://{A.CONTROL_IP}:{A.CONTROL_PORT}"
TRACE_TIMEOUT = "1.5"  # seconds a silent TTL-limited probe waits


@dataclass(frozen=True)
class Case:
    url: str
    kind: str
    technique: str
    router: str


def _cases(sc: S.Scenario) -> list[Case]:
    out = []
    for target in sc.targets:
        parts = urlsplit(target.url)
        if parts.scheme not in ("http", "https", "doh"):
            continue  # a DoT input has no URL a trace takes
        url = target.url if parts.scheme != "doh" else f"https://{parts.netloc}{parts.path}"
        host = parts.hostname
        for c in sc.censors:
            hosts = c.params.get("hosts") or []
            if c.params.get("family") == "ipv6" or c.params.get("protocol") == "udp":
                continue  # the trace speaks TCP over IPv4: it cannot see these blocks
            if host in hosts:
                kind = KIND_OF[c.technique]
                if c.technique == "tcp_inject" and c.params.get("port") == 443:
                    kind = "tls"
                out.append(Case(url, kind, c.technique, c.router))
    return out


def _localisable() -> list[str]:
    names = []
    for sc in S.load_all():
        if sc.events or not sc.censors:
            continue
        if all(c.technique in KIND_OF for c in sc.censors) and _cases(sc):
            names.append(sc.name)
    return names


SCENARIOS = _localisable()
TABLE: list[tuple[str, str, str, str, str, int, int | None, str]] = []


def test_the_catalogue_has_what_issue_8_asks_for() -> None:
    kinds = {KIND_OF[c.technique] for n in SCENARIOS for c in S.load(S.find(n)).censors}
    assert {"dns", "tls", "http", "tcp"} <= kinds
    assert {"dns_injection", "dns_injection_only", "sni_reset", "sni_drop", "http_host_reset",
            "http_blockpage", "tls_mitm_kz2019", "tls_mitm_all", "national_gateway",
            "censor_depths"} <= set(SCENARIOS)


def _root_rules() -> str:
    ipt = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    return ipt + nft


@pytest.fixture(scope="module")
def hop_table(request: pytest.FixtureRequest) -> Iterator[list[Any]]:
    yield TABLE
    if not TABLE:
        return
    lines = ["", "issue 8: censor localisation in the simulated network",
             f"{'scenario':<22} {'target':<32} {'kind':<5} {'censor':<15} {'router':<6} "
             f"{'expected':>8} {'measured':>8}  signature"]
    for name, url, kind, technique, router, expected, measured, sig in sorted(TABLE):
        lines.append(f"{name:<22} {url:<32} {kind:<5} {technique:<15} {router:<6} "
                     f"{expected:>8} {measured if measured is not None else '-':>8}  {sig}")
    text = "\n".join(lines)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(text, flush=True)


@pytest.fixture(scope="module")
def root_rules() -> str:
    return _root_rules()


def _reference(sim: Any) -> list[str]:
    """The control helper's address (the default), or — when the censor blocks it too
    (control_unreachable) — an innocuous site's, given with --reference."""
    blocked = {ip for c in sim.scenario.censors for ip in c.params.get("ips") or []}
    if A.CONTROL_IP not in blocked:
        return ["--control", CONTROL_URL]
    ok = next(t for t in sim.scenario.targets if any(e.verdict == "ok" for e in t.expect))
    return ["--reference", sim.world.ip_of(urlsplit(ok.url).hostname)]


def _trace(sim: Any, case: Case) -> list[dict[str, Any]]:
    from probe.lab.simnet.sim import child_env

    argv = [sys.executable, "-m", "probe", "trace", case.url, "--kind", case.kind,
            "--format", "json", *_reference(sim), "--ca-bundle", sim.files["ca"],
            "--timeout", TRACE_TIMEOUT, "--max-ttl", "8"]
    proc = subprocess.run(sim.exec_argv(argv), capture_output=True, text=True, timeout=120,
                          env=child_env(probe=True), cwd=str(Path(__file__).parents[2]))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@needs_root
@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("name", SCENARIOS)
def test_censor_is_localised(name: str, hop_table: list[Any], root_rules: str) -> None:
    from probe.lab.simnet.sim import Sim

    sc = S.load(S.find(name))
    sim = Sim.start(sc, mode="run", control=False)
    try:
        problems = []
        for case in _cases(sc):
            expected = sim.topo.hop_of(case.router)
            found = _trace(sim, case)
            obs = next((o for o in found if o["kind"] == case.kind), None)
            hop = obs["hop"] if obs else None
            sig = (obs["signature"] or obs["result"]) if obs else "(no trace)"
            hop_table.append((name, case.url, case.kind, case.technique, case.router, expected,
                              hop, sig))
            if obs is None:
                problems.append(f"{case.url}: no {case.kind} trace in {found}")
                continue
            if case.kind == "dns" and obs["result"] != "injected":
                problems.append(f"{case.url}: injection not detected: {obs['result']}")
            if hop != expected:
                problems.append(f"{case.url}: {case.technique} on {case.router} is hop "
                                f"{expected}, the trace says {hop} ({obs})")
            if obs["signature"] not in SIGNATURES[case.technique]:
                problems.append(f"{case.url}: signature {obs['signature']} for "
                                f"{case.technique}")
        assert not problems, "\n".join(problems)
    finally:
        sim.stop()
        assert netns.namespaces_of(sim.prefix) == []
        assert not (netns.RUN_ROOT / sim.prefix).exists()
    assert _root_rules() == root_rules


@needs_root
@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(150)
def test_run_trace_blocked_stores_and_shows_the_hop(tmp_path: Path) -> None:
    """`probe run --trace-blocked` in the national_gateway scenario: the blocked target's trace
    is stored with its measurement and shown by `probe results` (table note and JSON)."""
    from probe.lab.simnet.scenario_run import RunOptions, probe_argv
    from probe.lab.simnet.sim import Sim, child_env

    sim = Sim.start(S.load(S.find("national_gateway")), mode="run", control=True)
    try:
        db = sim.rundir / "probe.db"
        argv = probe_argv(sim, db, RunOptions(extra_args=("--trace-blocked",)))
        proc = subprocess.run(sim.exec_argv(argv), capture_output=True, text=True, timeout=120,
                              env=child_env(probe=True))
        assert proc.returncode == 0, proc.stderr
        env = child_env(probe=True)
        out = subprocess.run([sys.executable, "-m", "probe", "results", "--db", str(db),
                              "--format", "json"], capture_output=True, text=True, env=env)
        rows = {r["url"]: r for r in json.loads(out.stdout)}
        table = subprocess.run([sys.executable, "-m", "probe", "results", "--db", str(db)],
                               capture_output=True, text=True, env=env).stdout
    finally:
        sim.stop()
    blocked = rows["https://centralasia.media/"]
    assert blocked["verdict"] == "blocked"
    (trace,) = blocked["traces"]
    assert (trace["kind"], trace["hop"], trace["signature"]) == ("tls", 3, "reset")
    assert trace["hop_address"] == trace["path"][2]["address"]
    assert "traces" not in rows["https://www.example.com/"]
    assert "[censor at hop 3: reset]" in table
