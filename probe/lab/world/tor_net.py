"""A private Tor network for the simulated world: authorities, relays and bridges run by real tor.

Responsibility: everything file-side of a private Tor network — generating each node's keys
into a state directory (``tor-gencert`` with the passphrase on standard input for the
authorities' v3 keys, ``tor --list-fingerprint`` for every identity), writing one torrc per
node, and the Tor lists the probe and the control helper read (:mod:`probe.measure.torlist`
format) — plus the command line that runs each node in the foreground. Running the processes
(inside the world's namespaces) and stopping them is the caller's business (the simulator's
:class:`~probe.lab.simnet.sim.Sim` spawns them like every world server, so teardown kills
them and removes the state directory whatever happens).

Facts this relies on (tor(1), "TESTING NETWORK OPTIONS" and "DIRECTORY AUTHORITY SERVER
OPTIONS"): ``TestingTorNetwork 1`` allows private addresses and shortens the voting schedule
(``TestingV3AuthInitial*``, ``V3AuthVotingInterval``); every node names the same
``DirAuthority`` lines (``orport=``, ``v3ident=`` = the authority certificate's fingerprint,
``IP:DIRPORT``, the relay identity fingerprint); ``AssumeReachable 1`` skips the reachability
self-test a closed world cannot pass; a bridge is ``BridgeRelay 1`` with obfs4proxy as its
``ServerTransportPlugin`` (``ServerTransportListenAddr`` where it listens); obfs4proxy writes the
bridge's ``cert=`` and ``iat-mode=`` to ``pt_state/obfs4_bridgeline.txt``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The passphrase that protects the authorities' identity keys (a test network's).
PASSPHRASE = "probe-sim-tor"
#: How long the key tools may take.
TOOL_TIMEOUT = 60.0


class TorNetError(RuntimeError):
    """The private Tor network's files could not be made (missing tor, a tool failed)."""


@dataclass(frozen=True, slots=True)
class TorNode:
    """One node: ``kind`` is ``authority``, ``relay`` or ``bridge``; ``transport`` ``obfs4``
    for an obfs4 bridge (listening on ``pt_ip:pt_port``), empty otherwise. ``role`` is the
    simulator namespace it runs in (``intl``)."""

    name: str
    kind: str
    ip: str
    or_port: int
    dir_port: int = 0
    transport: str = ""
    pt_ip: str = ""
    pt_port: int = 0
    role: str = "intl"


@dataclass
class TorNet:
    """A private Tor network under ``root``: its nodes, and once :meth:`prepare` ran, each
    node's fingerprint (and v3 identity for authorities)."""

    root: Path
    nodes: tuple[TorNode, ...]
    fingerprints: dict[str, str] = field(default_factory=dict)
    v3idents: dict[str, str] = field(default_factory=dict)
    tor: str = "tor"
    gencert: str = "tor-gencert"
    obfs4proxy: str = "obfs4proxy"

    def datadir(self, node: TorNode) -> Path:
        return self.root / node.name

    def torrc(self, node: TorNode) -> Path:
        return self.root / f"{node.name}.torrc"

    # --- keys and configuration ------------------------------------------------------------
    def prepare(self) -> None:
        """Generate every key and write every torrc (no network; the key tools run in
        parallel, one per node)."""
        for tool in (self.tor, self.gencert, self.obfs4proxy):
            if shutil.which(tool) is None:
                raise TorNetError(f"{tool} not found (Debian packages tor, obfs4proxy)")
        self.root.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            d = self.datadir(node)
            (d / "keys").mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
            # the identity key needs no network options yet
            self.torrc(node).write_text(
                f"DataDirectory {d}\nNickname {node.name}\nAddress {node.ip}\n"
                f"ORPort {node.ip}:{node.or_port}\nSocksPort 0\n")

        def keys(node: TorNode) -> None:
            if node.kind == "authority":
                self.v3idents[node.name] = self._gencert(node)
            self.fingerprints[node.name] = self._fingerprint(node)

        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for done in [pool.submit(keys, n) for n in self.nodes]:
                done.result()
        for node in self.nodes:
            self.torrc(node).write_text(self._config(node))

    def _run(self, argv: list[str], cwd: Path, stdin: str = "") -> str:
        try:
            out = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True,
                                 timeout=TOOL_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TorNetError(f"{argv[0]} failed: {e}") from None
        if out.returncode != 0:
            tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
            raise TorNetError(f"{' '.join(argv[:2])} exited with {out.returncode}: {tail}")
        return out.stdout

    def _gencert(self, node: TorNode) -> str:
        keys = self.datadir(node) / "keys"
        self._run([self.gencert, "--create-identity-key", "-m", "12", "-a",
                   f"{node.ip}:{node.dir_port}", "--passphrase-fd", "0"], keys,
                  stdin=PASSPHRASE + "\n")
        cert = (keys / "authority_certificate").read_text()
        m = re.search(r"^fingerprint ([0-9A-F]{40})$", cert, re.M)
        if m is None:
            raise TorNetError(f"{node.name}: no fingerprint in authority_certificate")
        return m.group(1)

    def _fingerprint(self, node: TorNode) -> str:
        out = self._run([self.tor, "--list-fingerprint", "-f", str(self.torrc(node)),
                         "--hush"], self.root)
        m = re.search(r"([0-9A-F]{4}(?: [0-9A-F]{4}){9})", out)
        if m is None:
            m2 = re.search(r"([0-9A-F]{40})", out)
            if m2 is None:
                raise TorNetError(f"{node.name}: tor --list-fingerprint printed no fingerprint")
            return m2.group(1)
        return m.group(1).replace(" ", "")

    def dir_authority_lines(self) -> list[str]:
        return [f"DirAuthority {n.name} orport={n.or_port} no-v2 "
                f"v3ident={self.v3idents[n.name]} {n.ip}:{n.dir_port} "
                f"{self.fingerprints[n.name]}"
                for n in self.nodes if n.kind == "authority"]

    def _config(self, node: TorNode) -> str:
        d = self.datadir(node)
        lines = [
            "TestingTorNetwork 1",
            f"DataDirectory {d}",
            "RunAsDaemon 0",
            f"Nickname {node.name}",
            f"Address {node.ip}",
            f"OutboundBindAddress {node.ip}",
            f"ORPort {node.ip}:{node.or_port}",
            "SocksPort 0",
            "ControlPort 0",
            "ContactInfo probe-sim",
            "ExitPolicy reject *:*",
            "AssumeReachable 1",
            "PathsNeededToBuildCircuits 0.25",
            "TestingV3AuthInitialVotingInterval 5",
            "TestingV3AuthInitialVoteDelay 2",
            "TestingV3AuthInitialDistDelay 2",
            "V3AuthVotingInterval 10",
            "V3AuthVoteDelay 2",
            "V3AuthDistDelay 2",
            "TestingDirAuthVoteGuard *",
            "TestingDirAuthVoteExit *",
            "TestingDirAuthVoteHSDir *",
            "DataDirectoryGroupReadable 0",
            f"Log notice file {d}/notice.log",
            "SafeLogging 0",
        ]
        if node.dir_port:
            lines.append(f"DirPort {node.ip}:{node.dir_port}")
        if node.kind == "authority":
            lines += ["AuthoritativeDirectory 1", "V3AuthoritativeDirectory 1"]
        if node.kind == "bridge":
            lines += ["BridgeRelay 1", "PublishServerDescriptor 0"]
            if node.transport == "obfs4":
                lines += [f"ServerTransportPlugin obfs4 exec {shutil.which(self.obfs4proxy)}",
                          f"ServerTransportListenAddr obfs4 {node.pt_ip}:{node.pt_port}",
                          "ExtORPort auto"]
        lines += self.dir_authority_lines()
        return "\n".join(lines) + "\n"

    # --- running ---------------------------------------------------------------------------
    def argv(self, node: TorNode) -> list[str]:
        """The foreground command that runs ``node``."""
        return [self.tor, "-f", str(self.torrc(node)), "--hush"]

    def consensus_ready(self) -> bool:
        """Does every authority hold the consensus (its ``cached-consensus``)? Each one writes
        it when the vote completes or when it fetches it from a peer a little later; the
        self-checks ask every authority's Dir port for it, so waiting for the first one only
        was a race (a 404 from the others on a busy machine, CI at 02:59 on 2026-12-07)."""
        return all((self.datadir(n) / "cached-consensus").is_file()
                   for n in self.nodes if n.kind == "authority")

    def obfs4_cert(self, node: TorNode) -> tuple[str, int] | None:
        """The obfs4 bridge's ``cert`` and ``iat-mode`` once obfs4proxy wrote them."""
        path = self.datadir(node) / "pt_state" / "obfs4_bridgeline.txt"
        try:
            text = path.read_text()
        except OSError:
            return None
        m = re.search(r"^Bridge obfs4 .* cert=(\S+) iat-mode=(\d)\s*$", text, re.M)
        return (m.group(1), int(m.group(2))) if m else None

    # --- the lists the probe reads ---------------------------------------------------------
    def list_entries(self, which: str) -> list[str]:
        """TOML ``[[targets]]`` entries for ``which``: ``dirauths`` (OR port and Dir port
        of every authority), ``vanilla`` (bridges without a transport), ``obfs4``."""
        out: list[str] = []
        src = 'source = "probe simnet private Tor network (probe/lab/world/tor_net.py)"\n' \
              'date = 2026-12-07\n'
        for n in self.nodes:
            fpr = self.fingerprints[n.name]
            if which == "dirauths" and n.kind == "authority":
                out.append(f'[[targets]]\nname = "{n.name}"\nprotocol = "or_port_dirauth"\n'
                           f'address = "{n.ip}:{n.or_port}"\nfingerprint = "{fpr}"\n{src}')
                out.append(f'[[targets]]\nname = "{n.name}"\nprotocol = "dir_port"\n'
                           f'address = "{n.ip}:{n.dir_port}"\nfingerprint = "{fpr}"\n{src}')
            elif which == "vanilla" and n.kind == "bridge" and not n.transport:
                out.append(f'[[targets]]\nname = "{n.name}"\n'
                           f'bridge = "{n.ip}:{n.or_port} {fpr}"\n{src}')
            elif which == "obfs4" and n.transport == "obfs4":
                got = self.obfs4_cert(n)
                if got is None:
                    raise TorNetError(f"{n.name}: obfs4proxy wrote no bridge line")
                cert, iat = got
                out.append(f'[[targets]]\nname = "{n.name}"\nbridge = "obfs4 {n.pt_ip}:'
                           f'{n.pt_port} {fpr} cert={cert} iat-mode={iat}"\n{src}')
        return out

    def write_lists(self, directory: Path) -> dict[str, Path]:
        """``tor-dirauths``, ``tor-vanilla``, ``tor-obfs4`` and ``tor`` (all of them) as
        list files in ``directory``; returns their paths by name."""
        directory.mkdir(parents=True, exist_ok=True)
        groups = {"tor-dirauths": ["dirauths"], "tor-vanilla": ["vanilla"],
                  "tor-obfs4": ["obfs4"], "tor": ["dirauths", "vanilla", "obfs4"]}
        paths: dict[str, Path] = {}
        for name, parts in groups.items():
            entries = [e for p in parts for e in self.list_entries(p)]
            if not entries:
                continue
            path = directory / f"{name}.toml"
            path.write_text('app = "tor"\n\n' + "\n".join(entries))
            paths[name] = path
        return paths


def tor_checks(net: TorNet, client_side: bool, blocked: set[str]) -> list[dict[str, Any]]:
    """Self-checks (:mod:`probe.lab.simnet.selfcheck` format) proving the private network
    serves: from the control host every authority's OR port completes TLS and its Dir port
    serves the consensus, the vanilla bridge completes TLS, the obfs4 bridge completes the
    obfs4 handshake; from the client, the obfs4 handshake works unless its address is
    ``blocked`` (IP blocking's own checks cover the rest)."""
    out: list[dict[str, Any]] = []

    def add(cid: str, ns: str, kind: str, why: str, expect: dict[str, Any],
            **params: Any) -> None:
        out.append({"id": f"tor:{cid}", "ns": ns, "kind": kind, "why": why, "expect": expect,
                    **params})

    for n in net.nodes:
        if n.kind == "authority":
            add(f"{n.name}-or", "ctl", "tls", f"the control completes TLS with {n.name}'s OR "
                "port (a self-signed Tor link certificate)", {"outcome": "ok"}, ip=n.ip,
                port=n.or_port, sni=None, verify=False)
            add(f"{n.name}-consensus", "ctl", "http", f"{n.name}'s Dir port serves the private "
                "network's consensus", {"outcome": "ok", "status": 200}, ip=n.ip,
                port=n.dir_port, host=f"{n.ip}:{n.dir_port}",
                path="/tor/status-vote/current/consensus", max_bytes=65536)
        elif n.kind == "bridge" and not n.transport:
            add(f"{n.name}-or", "ctl", "tls", f"the control completes TLS with the vanilla "
                f"bridge {n.name}", {"outcome": "ok"}, ip=n.ip, port=n.or_port, sni=None,
                verify=False)
        elif n.transport == "obfs4":
            got = net.obfs4_cert(n)
            if got is None:
                continue
            cert, iat = got
            add(f"{n.name}-obfs4", "ctl", "obfs4", "the control completes the obfs4 handshake "
                "with the bridge", {"outcome": "ok"}, ip=n.pt_ip, port=n.pt_port, cert=cert,
                iat_mode=iat)
            if client_side and n.pt_ip not in blocked:
                add(f"{n.name}-obfs4-client", "cli", "obfs4", "the client completes the obfs4 "
                    "handshake with the bridge", {"outcome": "ok"}, ip=n.pt_ip,
                    port=n.pt_port, cert=cert, iat_mode=iat)
    return out


def standard_nodes(authorities: int = 3, relays: int = 1) -> tuple[TorNode, ...]:
    """The simulated world's Tor network at fixed addresses (scenarios' censor rules name
    them): authorities at 185.61.250.1…, OR 443 / Dir 80 (eu-host, DE); relays at
    185.61.250.11…; a vanilla bridge at 95.213.250.21:443 (ru-host); an obfs4 bridge whose
    transport listens on 64.90.250.31:443 (us-host; its own OR port 64.90.250.32:9001)."""
    nodes = [TorNode(f"auth{i}", "authority", f"185.61.250.{i}", 443, 80)
             for i in range(1, authorities + 1)]
    nodes += [TorNode(f"relay{i}", "relay", f"185.61.250.{10 + i}", 443)
              for i in range(1, relays + 1)]
    nodes += [TorNode("bridge1", "bridge", "95.213.250.21", 443),
              TorNode("obfs4bridge", "bridge", "64.90.250.32", 9001, transport="obfs4",
                      pt_ip="64.90.250.31", pt_port=443)]
    return tuple(nodes)
