"""A censor with residual blocking: one forbidden keyword, then the client is punished for a while.

Written for this simulator (no code taken from elsewhere) after the behaviour documented for
the Great Firewall — after a forbidden keyword it blocks the (client, server, port) triple for
about 90 s ("residual censorship"; Bock et al., "Geneva: Evolving Censorship Evasion
Strategies", CCS 2019, and the public censor models of the Geneva project, whose residual
censors keep dropping or resetting a flow's or client's packets after a trigger) — and the
censors that punish every connection of the client after a trigger.

Runs on a router. iptables queues the client's packets to ``port`` that contain a keyword
(``-m string``, a cheap pre-filter, ``--queue-bypass``); this device parses each queued
packet — the HTTP request head (Host header and request line) for port 80, the TLS
ClientHello's SNI for port 443 — and when a keyword really is there it adds, *before* giving
the packet its verdict, an element with a timeout to an nft set of the technique's table:

* scope ``server``: (client, server, port) to set ``flows`` — that server stays blocked;
* scope ``any``: the client's address to set ``clients`` — every server stays blocked.

The nft table (written by :class:`probe.lab.simnet.techniques.ResidualBlock`) drops (or
answers with a TCP reset) every forwarded packet matching a set element, both directions, until
the element expires. The triggering packet itself is dropped; its retransmission meets the rule
(a timeout with action ``drop``, a reset with ``reset``). Config::

    {"queue": 31, "port": 80, "keywords": ["meduza.io"], "scope": "server"|"any",
     "seconds": 90, "table": "c_res", "family": "inet"}
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from probe.lab.simnet.devices.common import log, parse_args, run_nfqueue_device
from probe.lab.world.web_server import parse_sni

PROG = "probe.lab.simnet.devices.penalty"


def request_head(payload: bytes) -> str | None:
    """The HTTP request head in ``payload`` (lower-case text), None = not an HTTP request."""
    head = payload.split(b"\r\n\r\n", 1)[0]
    first = head.split(b"\r\n", 1)[0]
    if b"HTTP/" not in first:
        return None
    return head.decode("latin-1").lower()


def triggered(payload: bytes, port: int, keywords: list[str]) -> bool:
    """Does this client segment carry a keyword where the censor looks?"""
    if port == 443:
        sni = parse_sni(payload)
        text = sni.lower() if sni else None
    else:
        text = request_head(payload)
    return text is not None and any(k.lower() in text for k in keywords)


def element(scope: str, src: str, dst: str, dport: int) -> tuple[str, str]:
    """(set name, element text) to add for a trigger seen from ``src`` to ``dst:dport``."""
    if scope == "any":
        return "clients", src
    return "flows", f"{src} . {dst} . {dport}"


class Residual:
    def __init__(self, config: dict[str, Any]) -> None:
        self.c = config
        self.count = 0
        self.seen: set[tuple[str, int, str, int]] = set()  # flows that already triggered

    def judge(self, data: bytes) -> str:
        from scapy.layers.inet import IP, TCP  # deferred: scapy's import costs a second

        ip = IP(data)
        if not ip.haslayer(TCP):
            return "accept"
        tcp = ip[TCP]
        payload = bytes(tcp.payload)
        if not payload or not triggered(payload, self.c["port"], self.c["keywords"]):
            return "accept"
        flow = (ip.src, tcp.sport, ip.dst, tcp.dport)
        if flow in self.seen:
            # the kernel keeps retransmitting a dropped request (even after the socket is
            # closed): one trigger per connection, so the block ends when it should
            return "drop"
        if len(self.seen) > 10_000:
            self.seen.clear()
        self.seen.add(flow)
        name, elem = element(self.c["scope"], ip.src, ip.dst, tcp.dport)
        script = (f"add element {self.c.get('family', 'inet')} {self.c['table']} {name} "
                  f"{{ {elem} timeout {int(self.c['seconds'] * 1000)}ms }}\n")
        done = subprocess.run(["nft", "-f", "-"], input=script, text=True,
                              capture_output=True, check=False)
        if done.returncode != 0:
            log(PROG, f"nft: {done.stderr.strip()}")
        self.count += 1
        # the request never arrives; its retransmission meets the residual rule (drop/reset)
        return "drop"


def main() -> int:
    config, ready_file = parse_args(PROG)
    device = Residual(config)
    return run_nfqueue_device(PROG, config["queue"], device.judge, ready_file,
                              lambda: f"stopped after {device.count} triggers")


if __name__ == "__main__":
    sys.exit(main())
