"""The loopback subset: scenarios' server-side behaviours without namespaces (no root needed).

Where network namespaces cannot be made, the part of the catalogue that needs no router — sites
that are down, answer 5xx, have bad certificates, do not exist at the authoritative DNS, loop
redirects, or are simply healthy — still runs: the scenario's sites are served by
:class:`probe.lab.world.loopback.LoopbackWorld` on 127.0.0.x with OS-chosen ports, the probe runs
as a normal process with the world's DNS server as its only resolver and, when this checkout
has one, the control helper on 127.0.0.3 (which sees the same servers: that is what makes a
site "down"), and verdicts are compared as in the full runner. Targets that need the censor,
routing or a client region are skipped (and listed as skipped).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from probe.lab.simnet.scenario import Scenario
from probe.lab.simnet.scenario_run import (
    FAIL,
    PASS,
    XFAIL,
    XPASS,
    TargetResult,
    judge,
    normalise_url,
)
from probe.lab.simnet.sim import child_env, probe_capabilities
from probe.lab.simnet.site_plan import BuiltSite, World
from probe.lab.world.loopback import LoopbackWorld
from probe.lab.world.spec import DNSServerConfig, SiteConfig, WebServerConfig, WorldConfig

DNS_IP = "127.0.0.2"
HELPER_IP = "127.0.0.3"


def skip_reason(scenario: Scenario, site: BuiltSite) -> str | None:
    """Why a target on ``site`` cannot run on loopback (None = it can)."""
    if scenario.censors or scenario.events:
        return "needs the censor on the ISP router"
    spec = site.spec
    if spec.net == "unrouted":
        return "needs routing (unroutable address)"
    if spec.geo_net:
        return "needs a second vantage (CDN answer by resolver)"
    if spec.down == "timeout":
        return "needs a host that drops packets"
    if spec.site.get("region_block") or spec.site.get("behaviour") == "geo":
        return "needs the client's region"
    if spec.dns not in ("answer", "nxdomain", "cname_only"):
        return "needs a resolver chain"
    return None


def _config(world: World, sites: list[BuiltSite], pki_dir: str) -> tuple[Any, dict[str, str]]:
    ip_of: dict[str, str] = {}
    records: dict[str, Any] = {}
    behaviours: dict[str, str] = {}
    listen: list[str] = []
    served: dict[str, SiteConfig] = {}
    for i, s in enumerate(sites):
        ip = f"127.0.0.{10 + i}"
        ip_of[s.host] = ip
        for name in s.names:
            if s.spec.dns == "answer":
                records[name] = {"A": list(s.spec.a) or [ip]}
            elif s.spec.dns == "cname_only":
                behaviours[name] = "cname_only"
        if s.spec.down != "refused":
            listen.append(ip)
        served[s.host] = SiteConfig.from_dict(dict(s.spec.site))
    dns = DNSServerConfig(listen=[f"{DNS_IP}:0"], records=records, behaviours=behaviours)
    web = [WebServerConfig(listen_ips=listen or ["127.0.0.9"], http_port=0, https_port=0,
                           sites=served)]
    return WorldConfig(pki_dir=pki_dir, dns=[dns], web=web), ip_of


def _with_port(url: str, http_port: int, https_port: int) -> str:
    parts = urlsplit(url)
    port = https_port if parts.scheme == "https" else http_port
    host = parts.hostname or ""
    host = host.encode("idna").decode() if not host.isascii() else host
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))


def _start_helper(lw: Any, resolver: str, timeout: float,
                  tmp: str) -> tuple[subprocess.Popen[bytes], str] | None:
    """The control helper on 127.0.0.3 (when this probe has one); (process, URL) or None."""
    caps = probe_capabilities()
    if not (caps.get("helper") and caps.get("control")):
        return None
    with socket.socket() as s:
        s.bind((HELPER_IP, 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "probe", "helper", "serve", "--listen", f"{HELPER_IP}:{port}",
            "--allow", "127.0.0.0/8", "--allow-port", str(lw.http_port),
            "--allow-port", str(lw.https_port), "--resolver", resolver,
            "--ca-bundle", lw.ca_pem, "--timeout", str(timeout)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=child_env(probe=True), cwd=tmp)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex((HELPER_IP, port)) == 0:
                return proc, f"http://{HELPER_IP}:{port}"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    return None


def run_one(scenario: Scenario, timeout: float = 3.0) -> dict[str, Any]:
    world = World.build(scenario)
    runnable: list[tuple[Any, str | None]] = []
    skipped: list[tuple[Any, str | None]] = []
    for t in scenario.targets:
        if "://" in t.url and not t.url.startswith(("http://", "https://")):
            skipped.append((t, "an app's endpoint list or a Tor list: its addresses and ports "
                               "(the private Tor network's daemons) need the simulated network"))
            continue
        reason = skip_reason(scenario, world.site(t.hostname))
        (skipped if reason else runnable).append((t, reason))
    result: dict[str, Any] = {"name": scenario.name, "targets": [], "skipped": [
        {"url": t.url, "reason": r} for t, r in skipped]}
    if not runnable:
        return result
    sites = {world.site(t.hostname).host: world.site(t.hostname) for t, _ in runnable}
    with tempfile.TemporaryDirectory(prefix="probe-sim-loopback-") as tmp:
        config, _ = _config(world, list(sites.values()), str(Path(tmp) / "pki"))
        with LoopbackWorld(config) as lw:
            host, port = lw.dns_address
            urls = {t.url: _with_port(t.url, lw.http_port, lw.https_port) for t, _ in runnable}
            db = str(Path(tmp) / "probe.db")
            argv = [sys.executable, "-m", "probe", "run", *urls.values(), "--db", db,
                    "--ca-bundle", lw.ca_pem, "--timeout", str(timeout), "--quiet",
                    "--resolver", f"{host}:{port}", "--no-system-resolver"]
            helper = _start_helper(lw, f"{host}:{port}", timeout, tmp)
            try:
                if helper is not None:
                    argv += ["--control", helper[1]]
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                                      env=child_env(probe=True), cwd=tmp)
            finally:
                if helper is not None:
                    helper[0].terminate()
                    try:
                        helper[0].wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        helper[0].kill()
                        helper[0].wait()
            if proc.returncode != 0:
                result["error"] = proc.stderr.strip()[-400:]
                return result
        out = subprocess.run([sys.executable, "-m", "probe", "results", "--db", db,
                              "--format", "json"], capture_output=True, text=True,
                             env=child_env(probe=True), timeout=60, cwd=tmp)
        rows = {r["url"]: r for r in json.loads(out.stdout or "[]")}
    for t, _ in runnable:
        row = rows.get(normalise_url(urls[t.url])) or rows.get(urls[t.url]) or {}
        verdict, method = row.get("verdict"), row.get("method")
        got = f"{verdict}/{method}" if method else str(verdict)
        status = judge(t.expect, t.xfail, verdict, method) if row else FAIL
        result["targets"].append(TargetResult(t.url, t.expect_text, got, status, t.xfail,
                                              row.get("confidence"),
                                              str(row.get("evidence", ""))).__dict__)
    return result


def run_loopback(scenarios: list[Scenario], *, as_json: bool = False,
                 verbose: bool = False) -> int:
    """Run the loopback-capable targets of ``scenarios``; exit status like the full runner."""
    t0 = time.monotonic()
    results = []
    out = sys.stderr if as_json else sys.stdout
    print("probe sim: loopback subset (server-side behaviours only; no censor, no router)",
          file=out)
    for sc in scenarios:
        r = run_one(sc)
        results.append(r)
        if not r["targets"] and not r.get("error"):
            if verbose:
                print(f"SKIP           {sc.name}: {r['skipped'][0]['reason']}", file=out)
            continue
        statuses = [t["status"] for t in r["targets"]]
        status = "ERROR" if r.get("error") else FAIL if FAIL in statuses else PASS
        print(f"{status:<14} {sc.name}" + (f"  error: {r['error']}" if r.get("error") else ""),
              file=out)
        for t in r["targets"]:
            print(f"    {t['status']:<14} {t['url']:<40} expected {t['expected']:<26} "
                  f"got {t['got']}", file=out)
        for s in r["skipped"] if verbose else []:
            print(f"    SKIP           {s['url']}: {s['reason']}", file=out)
    ran = [r for r in results if r["targets"] or r.get("error")]
    counts: dict[str, int] = {}
    for r in ran:
        for t in r["targets"]:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing ran"
    print(f"{len(ran)} scenarios with loopback targets: {summary}; "
          f"wall time {time.monotonic() - t0:.1f}s", file=out)
    if as_json:
        print(json.dumps(results, indent=1, ensure_ascii=False))
    bad = any(r.get("error") for r in ran) or counts.get(FAIL, 0)
    return 1 if bad else 0


__all__ = ["run_loopback", "skip_reason", "XFAIL", "XPASS"]
