"""One running simulation: bring it up, keep its state on disk, exec in it, tear it down.

This module owns the lifecycle of the simulated censoring network for one scenario:

1. a fresh run prefix and a state file (``/run/probe-sim/<prefix>/state.json``) are written
   *before* anything is created, so a crash at any point leaves something `probe sim down` can
   find and remove;
2. the topology (namespaces, veths, routes), the world's servers (probe.lab.world per world
   namespace, the ISP resolver on the router, the control helper on the control host), the
   censor's helper processes and rules;
3. self-checks, the probe, timed events (see :mod:`probe.lab.simnet.scenario_run`);
4. teardown: kill every process in the namespaces, delete the namespaces, /etc/netns entries and
   the state directory. Idempotent; also used for leftovers of crashed runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.errors import ProbeError
from probe.lab.simnet import addressing as A
from probe.lab.simnet import netns
from probe.lab.simnet.checks import world_checks
from probe.lab.simnet.scenario import Scenario
from probe.lab.simnet.site_plan import World, write_app_lists, write_probe_files
from probe.lab.simnet.techniques import Ctx, Device, Technique, instantiate
from probe.lab.simnet.topology import Topology, bring_up, plan, resolv_conf
from probe.lab.world.pki import WorldPKI
from probe.lab.world.tor_net import TorNet, TorNetError, standard_nodes, tor_checks

Say = Callable[[str], None]
READY_TIMEOUT = 20.0
#: How long the private Tor network may take to publish its first consensus (it takes ~7-17 s).
TOR_BOOTSTRAP_TIMEOUT = 60.0


def _quiet(_: str) -> None:
    pass


class SimError(ProbeError, RuntimeError):
    """The simulation could not be brought up or used (not a probe or scenario failure)."""


def _proc_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_alive(state: dict[str, Any]) -> bool:
    pid = state.get("owner_pid")
    return isinstance(pid, int) and _proc_start(pid) == state.get("owner_start")


def child_env(probe: bool = False) -> dict[str, str]:
    """Environment of the processes we start: this checkout's `probe` package first.

    ``probe``: for the probe's own processes (run, results, helper), which may come from
    another checkout named by ``PROBE_SIM_PROBE_PATH`` (test a probe against this simulator).
    """
    root = str(Path(__file__).resolve().parents[3])  # the checkout: probe/lab/simnet/sim.py
    if probe and os.environ.get("PROBE_SIM_PROBE_PATH"):
        root = os.environ["PROBE_SIM_PROBE_PATH"]
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=root + (os.pathsep + path if path else ""))
    if probe:
        # the simulated world is not the real Internet: measuring it carries no risk to accept
        env["PROBE_ACCEPT_RISK"] = "1"
    return env


@functools.cache
def probe_capabilities() -> dict[str, bool]:
    """Which optional `probe run` flags and commands exist in this checkout (issue 4 adds some)."""
    py = sys.executable
    caps = {"asn_db": False, "control": False, "canaries": False, "helper": False}
    try:
        out = subprocess.run([py, "-m", "probe", "run", "--help"], capture_output=True,
                             text=True, timeout=30, env=child_env(probe=True), cwd="/").stdout
        caps["asn_db"] = "--asn-db" in out
        caps["control"] = "--control" in out
        caps["canaries"] = "--canaries" in out
        caps["doh"] = "--doh" in out
        caps["dot"] = "--dot" in out
        caps["app_lists"] = "--app-lists" in out
        out = subprocess.run([py, "-m", "probe", "helper", "serve", "--help"],
                             capture_output=True, text=True, timeout=30,
                             env=child_env(probe=True), cwd="/").stdout
        caps["helper"] = "--listen" in out
        for flag in ("ca-bundle", "resolver", "timeout", "allow-port", "app-lists"):
            caps[f"helper_{flag.replace('-', '_')}"] = f"--{flag}" in out
    except (OSError, subprocess.SubprocessError):
        pass
    return caps


@dataclass
class Proc:
    name: str
    role: str
    popen: subprocess.Popen[bytes]
    log: Path
    ready: Path | None

    def tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


@dataclass
class Sim:
    scenario: Scenario
    prefix: str
    rundir: Path
    topo: Topology
    world: World
    mode: str
    say: Say = _quiet
    techniques: list[Technique] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    control_url: str | None = None
    probe_timeout: float = 3.0  # the probe's --timeout; the control helper uses the same
    active: dict[str, bool] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    tor: TorNet | None = None
    tor_started: float = 0.0

    # --- lifecycle ---------------------------------------------------------------------
    @classmethod
    def start(cls, scenario: Scenario, *, mode: str = "run", control: bool = True,
              say: Say = _quiet, probe_timeout: float | None = None) -> Sim:
        """Bring the whole simulation up; on any failure everything is removed again."""
        t0 = time.monotonic()
        prefix = netns.new_prefix()
        rundir = netns.RUN_ROOT / prefix
        rundir.mkdir(parents=True, mode=0o755)
        sim = cls(scenario=scenario, prefix=prefix, rundir=rundir,
                  topo=plan(prefix, scenario.transit, scenario.ipv6),
                  world=World.build(scenario), mode=mode, say=say,
                  probe_timeout=probe_timeout or scenario.timeout)
        sim.write_state()
        try:
            sim._bring_up(control)
        except BaseException:
            sim.stop()
            raise
        sim.timings["up"] = time.monotonic() - t0
        return sim

    def _bring_up(self, control: bool) -> None:
        t0 = time.monotonic()
        bring_up(self.topo)
        self._safety_check()
        self.timings["topology"] = time.monotonic() - t0
        pki_dir = self.rundir / "pki"
        pki = WorldPKI.create(pki_dir)
        ca = self.rundir / "world-ca.pem"
        ca.write_text(Path(pki.ca_pem).read_text())
        self.files["ca"] = str(ca)
        written = write_probe_files(self.world, self.rundir)
        self.files.update({k: str(v) for k, v in written.items()})
        if self.scenario.app_lists:
            self.files["app_lists"] = str(write_app_lists(self.scenario.app_lists, pki,
                                                          self.rundir))
        ctx = Ctx(topo=self.topo, world=self.world, rundir=self.rundir, pki_dir=pki_dir,
                  ca_pem=str(ca))
        self.techniques = [instantiate(c, ctx) for c in self.scenario.censors]
        # resolv.conf for the control host: it resolves through the public resolver
        etc = netns.ETC_NETNS / self.topo.ns("ctl")
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(resolv_conf(A.PUBLIC_RESOLVER_IP))
        # world servers
        lies: dict[str, str] = {}
        records: dict[str, Any] = {}
        for t in self.techniques:
            lies.update(t.resolver_behaviours())
            records.update(t.resolver_records())
        worlds = {
            "isp": {"pki_dir": str(pki_dir), "dns": [self.world.isp_resolver(lies, records)],
                    "web": []},
            "dom": self.world.world_config("dom", str(pki_dir)),
            "intl": self.world.world_config("intl", str(pki_dir)),
        }
        for role, cfg in worlds.items():
            if cfg is None:
                continue
            path = self.rundir / f"world-{role}.json"
            path.write_text(json.dumps(cfg, indent=1, ensure_ascii=False))
            self._spawn(f"world-{role}", role,
                        [sys.executable, "-m", "probe.lab.world", "--config", str(path),
                         "--ready-file", str(self.rundir / f"world-{role}.ready")],
                        ready=self.rundir / f"world-{role}.ready")
        if self.scenario.tor is not None:
            self._start_tor(self.scenario.tor)
        caps = probe_capabilities()
        if control and caps["helper"]:
            listen = f"{A.CONTROL_IP}:{A.CONTROL_PORT}"
            allow = [n.cidr for n in A.NETWORKS] + ["10.0.0.0/8", "127.0.0.0/8"]
            argv = [sys.executable, "-m", "probe", "helper", "serve", "--listen", listen]
            for cidr in allow:
                argv += ["--allow", cidr]
            if caps.get("helper_ca_bundle"):
                argv += ["--ca-bundle", str(ca)]  # the control trusts the world CA like the probe
            if caps.get("helper_resolver"):
                argv += ["--resolver", A.PUBLIC_RESOLVER_IP]
            if caps.get("helper_timeout"):
                argv += ["--timeout", str(self.probe_timeout)]
            if caps.get("helper_allow_port"):
                argv += ["--allow-port", "853"]  # DoT: the dnscheck inputs' control
            if self.files.get("app_lists") and caps.get("helper_app_lists"):
                argv += ["--app-lists", self.files["app_lists"]]
            self._spawn("control", "ctl", argv, ready=None, probe=True)
            self.control_url = f"http://{listen}"
        self._spawn_device(Device("doh", "intl", "probe.lab.simnet.devices.doh", {
            "listen": f"{A.PUBLIC_RESOLVER_IP}:443",
            "names": [A.PUBLIC_RESOLVER_NAME, A.PUBLIC_RESOLVER_IP],
            "upstream": f"{A.PUBLIC_RESOLVER_IP}:53",
            "pki_dir": str(pki_dir),
        }))
        self._spawn_device(Device("dot", "intl", "probe.lab.simnet.devices.dot", {
            "listen": f"{A.PUBLIC_RESOLVER_IP}:853",
            "names": [A.PUBLIC_RESOLVER_NAME, A.PUBLIC_RESOLVER_IP],
            "upstream": f"{A.PUBLIC_RESOLVER_IP}:53",
            "pki_dir": str(pki_dir),
        }))
        for dev in (d for t in self.techniques for d in t.devices()):
            self._spawn_device(dev)
        # world-side rules (servers that are down) and the censor's rules
        for role in ("dom", "intl"):
            script = self.world.host_rules(role)
            if script:
                netns.run(["nft", "-f", "-"], ns=self.topo.ns(role), input=script)
        scripts: dict[str, list[str]] = {}
        for t in self.techniques:
            part = t.setup()
            self.active[t.id] = t.spec.active
            if t.spec.active:
                part += t.apply()
            if part:
                scripts.setdefault(t.router, []).append(f"# {t.id} ({t.name})\n{part}")
        for role, parts in scripts.items():
            self._router_script(role, "\n".join(parts))
        self.write_state()
        self._wait_ready()
        if self.control_url:
            self._wait_tcp("ctl", A.CONTROL_IP, A.CONTROL_PORT)
        if self.tor is not None:
            self._wait_tor()
        self.timings["servers"] = time.monotonic() - t0

    def _start_tor(self, spec: dict[str, int]) -> None:
        """The private Tor network: keys into the run's state directory, one ``tor`` per node
        in its namespace (stopped and removed with everything else at teardown)."""
        t0 = time.monotonic()
        self.tor = TorNet(self.rundir / "tor", standard_nodes(spec["authorities"],
                                                               spec["relays"]))
        # the one list directory of the run (write_app_lists's): the scenario's own lists and
        # the private network's Tor lists side by side
        self.files["app_lists"] = str(self.rundir / "app-lists")
        try:
            self.tor.prepare()
        except TorNetError as exc:
            raise SimError(f"the private Tor network: {exc}") from None
        self.timings["tor_keys"] = time.monotonic() - t0
        self.tor_started = time.monotonic()
        for node in self.tor.nodes:
            self._spawn(f"tor-{node.name}", node.role, self.tor.argv(node), ready=None)

    def _wait_tor(self) -> None:
        """Until the authorities published a consensus and the obfs4 bridge's transport wrote
        its bridge line; then the Tor lists the probe and the helper read."""
        assert self.tor is not None
        deadline = self.tor_started + TOR_BOOTSTRAP_TIMEOUT
        bridge = next(n for n in self.tor.nodes if n.transport == "obfs4")
        while not (self.tor.consensus_ready() and self.tor.obfs4_cert(bridge) is not None):
            dead = [p for p in self.procs if p.name.startswith("tor-") and p.popen.poll()]
            if dead:
                raise SimError(f"{dead[0].name} exited with {dead[0].popen.returncode}: "
                               f"{dead[0].tail()}")
            if time.monotonic() > deadline:
                raise SimError(f"the private Tor network published no consensus within "
                               f"{TOR_BOOTSTRAP_TIMEOUT:.0f}s")
            time.sleep(0.2)
        self.timings["tor_consensus"] = time.monotonic() - self.tor_started
        try:
            self.tor.write_lists(Path(self.files["app_lists"]))
        except TorNetError as exc:
            raise SimError(f"the private Tor network: {exc}") from None

    def _router_script(self, role: str, script: str) -> None:
        path = self.rundir / f"rules-{role}-{int(time.monotonic() * 1000)}.sh"
        path.write_text(script)
        try:
            netns.run_script(script, ns=self.topo.ns(role))
        except netns.NetnsError as exc:
            raise SimError(f"applying censor rules on {role} failed: {exc}") from None

    def _spawn(self, name: str, role: str, argv: list[str], ready: Path | None,
               probe: bool = False) -> Proc:
        logdir = self.rundir / "logs"
        logdir.mkdir(exist_ok=True)
        log = logdir / f"{name}.log"
        env = child_env(probe)
        with open(log, "wb") as fh:
            popen = subprocess.Popen(
                ["ip", "netns", "exec", self.topo.ns(role), *argv],
                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, cwd=str(self.rundir),
            )
        proc = Proc(name, role, popen, log, ready)
        self.procs.append(proc)
        return proc

    def _spawn_device(self, dev: Device) -> None:
        cfg = self.rundir / f"{dev.name}.json"
        cfg.write_text(json.dumps(dev.config, indent=1))
        ready = self.rundir / f"{dev.name}.ready"
        self._spawn(dev.name, dev.role, dev.argv(cfg, ready), ready)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        pending = [p for p in self.procs if p.ready is not None]
        while pending:
            for p in list(pending):
                if p.ready is not None and p.ready.exists():
                    pending.remove(p)
                elif p.popen.poll() is not None:
                    raise SimError(f"{p.name} exited with {p.popen.returncode}: {p.tail()}")
            if time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                raise SimError(f"not ready after {READY_TIMEOUT:.0f}s: {names}")
            time.sleep(0.02)

    def _wait_tcp(self, role: str, ip: str, port: int) -> None:
        script = (f"for i in $(seq 1 400); do (exec 3<>/dev/tcp/{ip}/{port}) 2>/dev/null "
                  "&& exit 0; sleep 0.05; done; exit 1")
        proc = netns.run(["bash", "-c", script], ns=self.topo.ns(role), check=False, timeout=30)
        if proc.returncode != 0:
            control = next((p for p in self.procs if p.name == "control"), None)
            tail = control.tail() if control else ""
            raise SimError(f"the control helper never listened on {ip}:{port}: {tail}")

    def _safety_check(self) -> None:
        """Every veth in our namespaces must have its peer in one of our namespaces."""
        ours = set(self.topo.namespaces)
        for ns in ours:
            out = netns.run(["ip", "-o", "-d", "link", "show", "type", "veth"], ns=ns).stdout
            for line in out.splitlines():
                if "link-netns " not in line:
                    raise SimError(f"safety: a veth in {ns} has a peer outside the simulation: "
                                   f"{line[:120]}")
                peer_ns = line.split("link-netns ", 1)[1].split()[0]
                if peer_ns not in ours:
                    raise SimError(f"safety: {ns} is linked to {peer_ns}, not ours")

    def stop(self) -> None:
        """Remove everything this simulation made (idempotent)."""
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                if p.popen.poll() is None:
                    p.popen.terminate()
        deadline = time.monotonic() + 1.0
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        netns.cleanup_prefix(self.prefix)
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.popen.wait(timeout=1)

    # --- state file ----------------------------------------------------------------------
    def write_state(self) -> None:
        state = {
            "prefix": self.prefix,
            "scenario": self.scenario.name,
            "scenario_path": self.scenario.path,
            "mode": self.mode,
            "owner_pid": os.getpid() if self.mode == "run" else None,
            "owner_start": _proc_start(os.getpid()) if self.mode == "run" else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "client_ns": self.topo.client_ns,
            "router_ns": self.topo.router_ns,
            "namespaces": self.topo.namespaces,
            "topology": self.topo.to_dict(),
            "processes": [{"name": p.name, "role": p.role, "pid": p.popen.pid}
                          for p in self.procs],
            "files": self.files,
            "control_url": self.control_url,
            "active": self.active,
        }
        path = self.rundir / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)

    # --- use ------------------------------------------------------------------------------
    def exec_argv(self, argv: list[str], role: str = "cli") -> list[str]:
        return ["ip", "netns", "exec", self.topo.ns(role), *argv]

    def technique(self, cid: str) -> Technique:
        for t in self.techniques:
            if t.id == cid:
                return t
        raise KeyError(cid)

    def set_active(self, cid: str, on: bool) -> None:
        t = self.technique(cid)
        if self.active.get(cid) == on:
            return
        self._router_script(t.router, t.apply() if on else t.remove())
        self.active[cid] = on

    def checks(self) -> list[dict[str, Any]]:
        """The self-checks that must hold in the current state."""
        active = [t for t in self.techniques if self.active.get(t.id)]
        touched = {h for t in active for h in t.touched_hosts()}
        global_cut = any(t.global_effect for t in active)
        ca = self.files["ca"]
        out = world_checks(self.world, ca, touched, client_side=not global_cut)
        for t in active:
            out.extend(t.checks())
        if self.tor is not None:
            blocked = {ip for t in active if t.name == "ip_block" for ip in t.ips()}
            out.extend(tor_checks(self.tor, client_side=not global_cut, blocked=blocked))
        for i, c in enumerate(self.scenario.selfchecks):
            out.append({"id": f"scenario:{i}", "ns": "cli", "why": "declared in the scenario",
                        **c})
        return out

    def run_checks(self, checks: list[dict[str, Any]], label: str = "") -> list[dict[str, Any]]:
        """Run checks inside their namespaces (one process per namespace, in parallel)."""
        by_ns: dict[str, list[dict[str, Any]]] = {}
        for c in checks:
            by_ns.setdefault(c.get("ns", "cli"), []).append(c)
        procs = {}
        for role, items in by_ns.items():
            path = self.rundir / f"checks-{label}-{role}.json"
            path.write_text(json.dumps(items, ensure_ascii=False))
            procs[role] = subprocess.Popen(
                self.exec_argv([sys.executable, "-m", "probe.lab.simnet.selfcheck", str(path)],
                               role),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
            )
        results: dict[str, dict[str, Any]] = {}
        for role, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise SimError(f"self-check runner failed in {role}: {err.strip()[-300:]}")
            for r in json.loads(out):
                results[r["id"]] = r
        merged = []
        for c in checks:
            r = results.get(c["id"], {"ok": False, "problems": ["no result"], "got": {}})
            merged.append({"id": c["id"], "ns": c.get("ns", "cli"), "why": c.get("why", ""),
                           "ok": r["ok"], "problems": r["problems"], "got": r["got"],
                           "stage": label})
        return merged

    def arm_clock(self) -> None:
        """Count the client's first SYN to any target address (the events' time origin)."""
        ips = sorted({ip for t in self.scenario.targets if not t.url.startswith("tor://")
                      for ip in self.world.site(t.hostname).served_ips})
        if not ips:
            return
        script = (
            "table inet sim_clock {\n  counter seen { }\n"
            "  chain cforward { type filter hook forward priority -20; policy accept;\n"
            f'    iifname "lan0" ip daddr {{ {", ".join(ips)} }} '
            'tcp flags & (syn | ack) == syn counter name "seen"\n  }\n}\n'
        )
        netns.run(["nft", "-f", "-"], ns=self.topo.router_ns, input=script)

    def clock_started(self) -> bool:
        proc = netns.run(["nft", "-j", "list", "counter", "inet", "sim_clock", "seen"],
                         ns=self.topo.router_ns, check=False)
        try:
            for item in json.loads(proc.stdout)["nftables"]:
                if "counter" in item:
                    return int(item["counter"]["packets"]) > 0
        except (ValueError, KeyError, TypeError):
            pass
        return False

    def reset_state(self) -> None:
        """Undo what self-checks consumed (loss quotas…) before the probe runs."""
        for t in self.techniques:
            script = t.reset()
            if script and self.active.get(t.id):
                self._router_script(t.router, script)


def load_state(prefix: str) -> dict[str, Any] | None:
    path = netns.RUN_ROOT / prefix / "state.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def running() -> list[dict[str, Any]]:
    """States of every simulation with a state file (newest first)."""
    out = []
    if netns.RUN_ROOT.is_dir():
        for entry in netns.RUN_ROOT.iterdir():
            if netns.is_prefix(entry.name):
                state = load_state(entry.name)
                if state is not None:
                    state["alive"] = state.get("mode") == "up" or owner_alive(state)
                    out.append(state)
    return sorted(out, key=lambda s: s.get("created", ""), reverse=True)


def orphans() -> list[str]:
    """Prefixes left by crashed runs: no state file, or a `run` whose owner process is gone."""
    out = []
    for prefix in netns.leftover_prefixes():
        state = load_state(prefix)
        if state is None or (state.get("mode") == "run" and not owner_alive(state)):
            out.append(prefix)
    return out


def teardown(prefixes: list[str] | None = None, *, everything: bool = False) -> list[str]:
    """Remove simulations: the given prefixes; else every `up` one and every orphan of a crashed
    run (``everything`` = also runs whose owner is still alive). Returns the prefixes removed."""
    removed = []
    targets = prefixes if prefixes is not None else netns.leftover_prefixes()
    for prefix in targets:
        if prefixes is None and not everything:
            state = load_state(prefix)
            if state is not None and state.get("mode") == "run" and owner_alive(state):
                continue  # someone else's live run
        netns.cleanup_prefix(prefix)
        removed.append(prefix)
    if everything or prefixes is None:
        for ns in netns.list_netns():
            if ns.startswith(netns.GLOBAL_PREFIX + "test-"):
                netns.destroy_namespaces([ns])
    return removed


class EventTimer:
    """Applies/removes censor entries at offsets from a start instant (a background thread)."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.log: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, t0: float) -> None:
        events = sorted(self.sim.scenario.events, key=lambda e: e.at)
        if not events:
            return

        def loop() -> None:
            origin = t0
            if self.sim.scenario.clock == "first_target":
                deadline = time.monotonic() + 120
                while not self.sim.clock_started():
                    if self._stop.wait(0.05) or time.monotonic() > deadline:
                        return
                origin = time.monotonic()
                self.log.append({"at": round(origin - t0, 2), "action": "clock",
                                 "censor": "first SYN to a target", "ok": True, "error": ""})
            for ev in events:
                if self._stop.wait(max(0.0, origin + ev.at - time.monotonic())):
                    return
                try:
                    self.sim.set_active(ev.censor, ev.action == "apply")
                    ok, err = True, ""
                except Exception as exc:  # noqa: BLE001 - reported in the result
                    ok, err = False, str(exc)
                self.log.append({"at": round(time.monotonic() - t0, 2), "action": ev.action,
                                 "censor": ev.censor, "ok": ok, "error": err})
                self.sim.say(f"  event +{ev.at:.1f}s: {ev.action} {ev.censor}"
                             + ("" if ok else f" FAILED: {err}"))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
