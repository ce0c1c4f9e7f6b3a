"""An on-path censor with one of several documented behaviours (``model``), judged per packet.

Written for this simulator (no code taken from elsewhere) after the behaviours described by the
public Geneva project's censor models (github.com/Kkevsterrr/geneva, ``censors/``: censor2 resets
the client only, censor3 both ends, censor4/8b track a TCB from the handshake they saw and tear
it down on RST/FIN, censor1/4 drop every later packet of a flow) and by the papers and reports
cited per model in docs/simnet.md ("Censors we did not write"). Models:

* ``rst_client``: a RST+ACK to the client only; the trigger is forwarded (an on-path tap, not
  in-path), so the server answers a socket the client already closed (Geneva censor2).
* ``rst_both``: a RST+ACK to the client and a RST to the server (``seq`` = the trigger's, which
  the server expects next); the trigger is forwarded behind it (Geneva censor3).
* ``rst_stale``: a burst of RST+ACKs to the client whose ``ack`` is stale (the trigger's own
  ``seq``, not advanced past its payload) and whose ``seq`` is the expected one, then +1460 and
  +4380 (the GFW's spread of resets). Linux takes only the exact ``seq`` (RFC 5961 §3.2: an
  in-window one draws a challenge ACK) and never looks at a RST's ``ack``: the client resets.
* ``rst_server``: a RST to the server only (Geneva censor5), trigger forwarded behind it: the
  client's reset then comes from the server's own kernel, answering data for a closed socket.
* ``rst_miss``: RST+ACKs to the client that Linux does not take — one in the window but not at
  the expected ``seq`` (a challenge ACK, RFC 5961 §3.2), one outside it — trigger forwarded: a
  censor that fired and missed; the site works and must be ``ok``.
* ``fin``: a FIN+ACK to the client, trigger forwarded: the client reads EOF first.
* ``tls_alert``: a fatal TLS alert record (handshake_failure) + FIN to the client after a
  ClientHello with the SNI, the ClientHello dropped and the server reset.
* ``tcb``: keeps a TCB per flow from the client's SYN and the ACK that completes the handshake;
  a trigger on a flow without a complete handshake it saw is ignored; a client RST or FIN tears
  the TCB down. After a trigger every later client packet of the flow is dropped (the client
  times out).
* ``drop_reply``: the trigger is forwarded and the *server's* packets of that flow are dropped
  (the request arrives, the answer never does).

The trigger is the HTTP request's Host (``port`` 80) or the ClientHello's SNI (``port`` 443)
being (under) one of ``hosts``. iptables queues every packet between the client side and the
hosts' addresses on ``port`` (both directions for ``tcb`` and ``drop_reply``) with
``--queue-bypass``. Forgeries are sent *before* the trigger gets its verdict, so they arrive
first. Config::

    {"queue": 41, "model": "rst_client", "port": 443, "hosts": ["example.org"]}
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from probe.lab.simnet.devices.common import log, parse_args, run_nfqueue_device
from probe.lab.simnet.devices.injector import http_host, name_matches
from probe.lab.world.web_server import parse_sni

PROG = "probe.lab.simnet.devices.geneva"

MODELS = ("rst_client", "rst_both", "rst_server", "rst_stale", "rst_miss", "fin", "tls_alert",
          "tcb", "drop_reply")

#: TLS record: alert (21), TLS 1.2, length 2, level fatal (2), handshake_failure (40) — RFC 8446 §6
TLS_ALERT_HANDSHAKE_FAILURE = bytes([21, 3, 3, 0, 2, 2, 40])

#: The spread of sequence numbers of the GFW's resets (Weaver, Sommer, Paxson, "Detecting Forged
#: TCP Reset Packets", NDSS 2009: type-2 resets at seq, seq+1460, seq+4380).
STALE_OFFSETS = (0, 1460, 4380)
#: ``rst_miss``: just inside the client's receive window, and far outside it
MISS_OFFSETS = (1, -(1 << 30))

Flow = tuple[str, int, str, int]  # client ip, client port, server ip, server port
MAX_FLOWS = 10_000


class GenevaCensor:
    """``judge(packet bytes) -> "drop" | "accept"``, sending forgeries through ``send``."""

    def __init__(self, config: dict[str, Any], send: Callable[[Any], Any] | None = None) -> None:
        if config["model"] not in MODELS:
            raise ValueError(f"unknown model {config['model']!r}; known: {', '.join(MODELS)}")
        self.model: str = config["model"]
        self.port = int(config["port"])
        self.hosts = [h.lower() for h in config["hosts"]]
        if send is None:
            from scapy.config import conf  # deferred: scapy's import costs a second
            from scapy.supersocket import L3RawSocket

            conf.verb = 0
            send = L3RawSocket().send
        self.send: Callable[[Any], Any] = send
        self.tcbs: dict[Flow, str] = {}  # "syn" (SYN seen) | "est" (handshake seen)
        self.censored: set[Flow] = set()  # flows already triggered
        self.count = 0

    # --- helpers ------------------------------------------------------------------------
    def _trigger(self, payload: bytes) -> bool:
        name = http_host(payload) if self.port == 80 else parse_sni(payload)
        return name is not None and name_matches(name, self.hosts)

    def _remember(self, flow: Flow) -> None:
        if len(self.censored) > MAX_FLOWS:
            self.censored.clear()
        self.censored.add(flow)

    # --- the verdict ----------------------------------------------------------------------
    def judge(self, data: bytes) -> str:
        from scapy.layers.inet import IP, TCP

        ip = IP(data)
        if not ip.haslayer(TCP):
            return "accept"
        tcp = ip[TCP]
        if tcp.sport == self.port and tcp.dport != self.port:  # server -> client
            flow = (ip.dst, tcp.dport, ip.src, tcp.sport)
            return "drop" if self.model == "drop_reply" and flow in self.censored else "accept"
        flow = (ip.src, tcp.sport, ip.dst, tcp.dport)
        flags = str(tcp.flags)
        payload = bytes(tcp.payload)
        if self.model == "tcb":
            return self._tcb(flow, flags, payload, ip, tcp)
        if self.model == "drop_reply":
            if payload and flow not in self.censored and self._trigger(payload):
                self._remember(flow)
                self.count += 1
            return "accept"
        if not payload or not self._trigger(payload):
            return "accept"
        self.count += 1
        return self._inject(ip, tcp, payload)

    def _tcb(self, flow: Flow, flags: str, payload: bytes, ip: Any, tcp: Any) -> str:
        if flow in self.censored:
            if "R" in flags or "F" in flags:
                self.censored.discard(flow)
                self.tcbs.pop(flow, None)
                return "accept"
            return "drop"
        if flags == "S":
            if len(self.tcbs) > MAX_FLOWS:
                self.tcbs.clear()
            self.tcbs[flow] = "syn"
            return "accept"
        if "R" in flags or "F" in flags:
            self.tcbs.pop(flow, None)  # torn down: later segments are not watched
            return "accept"
        state = self.tcbs.get(flow)
        if state == "syn" and "A" in flags:
            self.tcbs[flow] = state = "est"
        if state != "est" or not payload or not self._trigger(payload):
            return "accept"
        self._remember(flow)
        self.count += 1
        return "drop"

    def _inject(self, ip: Any, tcp: Any, payload: bytes) -> str:
        from scapy.layers.inet import IP, TCP

        client_next = (tcp.seq + len(payload)) & 0xFFFFFFFF
        to_client = IP(src=ip.dst, dst=ip.src)

        def client_seg(flags: str, seq: int, ack: int) -> Any:
            return to_client / TCP(sport=tcp.dport, dport=tcp.sport, flags=flags,
                                   seq=seq & 0xFFFFFFFF, ack=ack)

        def reset_server() -> None:
            self.send(IP(src=ip.src, dst=ip.dst) / TCP(sport=tcp.sport, dport=tcp.dport,
                                                       flags="R", seq=tcp.seq))

        if self.model == "rst_client":
            self.send(client_seg("RA", tcp.ack, client_next))
            return "accept"
        if self.model == "rst_both":
            self.send(client_seg("RA", tcp.ack, client_next))
            reset_server()
            return "accept"
        if self.model == "rst_server":
            reset_server()
            return "accept"
        if self.model == "rst_miss":
            for offset in MISS_OFFSETS:
                self.send(client_seg("RA", tcp.ack + offset, client_next))
            return "accept"
        if self.model == "rst_stale":
            for offset in STALE_OFFSETS:
                self.send(client_seg("RA", tcp.ack + offset, tcp.seq))
            return "accept"
        if self.model == "fin":
            self.send(client_seg("FA", tcp.ack, client_next))
            return "accept"
        # tls_alert
        self.send(client_seg("FPA", tcp.ack, client_next) / TLS_ALERT_HANDSHAKE_FAILURE)
        reset_server()
        return "drop"


def main() -> int:
    config, ready_file = parse_args(PROG)
    try:
        device = GenevaCensor(config)
    except (ValueError, KeyError) as exc:
        log(PROG, f"bad config: {exc}")
        return 1
    return run_nfqueue_device(PROG, config["queue"], device.judge, ready_file,
                              lambda: f"stopped after {device.count} triggers ({device.model})")


if __name__ == "__main__":
    sys.exit(main())
