"""An on-path injector: reads packets from NFQUEUE, forges answers with scapy.

Runs on a router; iptables sends it the client's packets that may trigger it (``-j NFQUEUE
--queue-bypass``, so traffic flows normally when it is not running). Every packet gets exactly
one verdict (accept/drop) whatever happens. Config::

    {"rules": [
      {"queue": 11, "kind": "dns", "hosts": [...], "answer": "10.10.34.35", "drop_query": false},
      {"queue": 21, "kind": "tcp", "hosts": [...], "port": 80|443,
       "action": "rst"|"fin"|"page"|"redirect", "location": "http://..."}
    ]}

DNS: for a query whose name is one of ``hosts`` (or a subdomain), send a forged answer from the
queried resolver's address *before* accepting the query, so the forgery always arrives first and
the genuine answer second (or drop the query: only the forgery arrives).

TCP: for a segment carrying an HTTP request whose Host is (under) one of ``hosts`` (port 80), or
a ClientHello whose SNI is (port 443): drop it, reset the server (``seq`` = the segment's seq),
and send the client, from the server's address with ``seq`` = the segment's ack: a RST, a FIN,
a small HTTP/1.0 block page + FIN, or a 302 to the block page + FIN. Exact sequence numbers
matter: Linux ignores out-of-window segments.
"""

from __future__ import annotations

import functools
import select
import socket
import sys
import time
from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset

from probe.lab.simnet.devices.common import log, parse_args, ready, stop_event
from probe.lab.world.web_server import parse_sni

PROG = "probe.lab.simnet.devices.injector"

BLOCKPAGE_BODY = (
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
    "<title>Доступ ограничен / Access restricted</title></head><body>"
    "<h1>Страница заблокирована</h1>"
    "<p>Доступ к данному ресурсу ограничен. Access to this resource is restricted under "
    "Article 41-1 of the Law 'On Communications'.</p>"
    "<!-- probe-simnet-blockpage injected -->"
    "</body></html>"
)


def blockpage_response() -> bytes:
    body = BLOCKPAGE_BODY.encode()
    head = (
        "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def redirect_response(location: str) -> bytes:
    return (
        f"HTTP/1.0 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def name_matches(name: str, hosts: list[str]) -> bool:
    name = name.rstrip(".").lower()
    return any(name == h or name.endswith("." + h) for h in hosts)


def http_host(payload: bytes) -> str | None:
    """The Host header of an HTTP request head in ``payload`` (lower-case, no port)."""
    head = payload.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    if not lines or b"HTTP/" not in lines[0]:
        return None
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"host":
            host = value.strip().decode("latin-1").lower()
            if host.startswith("["):
                return host.split("]")[0] + "]"
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return None


class Injector:
    def __init__(self, rules: list[dict[str, Any]]) -> None:
        # scapy is imported where used, on purpose: its import costs about a second
        from scapy.config import conf
        from scapy.supersocket import L3RawSocket

        self.rules = {r["queue"]: r for r in rules}
        conf.verb = 0
        self.l3 = L3RawSocket()  # raw IP socket: the kernel routes the forgeries
        self.count = 0

    def handle(self, rule: dict[str, Any], pkt: Any) -> None:
        verdict = "accept"
        try:
            if rule["kind"] == "dns":
                verdict = self._dns(rule, pkt.get_payload())
            else:
                verdict = self._tcp(rule, pkt.get_payload())
        except Exception as exc:  # noqa: BLE001 - a verdict must always be given
            log(PROG, f"rule on queue {rule['queue']}: {type(exc).__name__}: {exc}")
        finally:
            if verdict == "drop":
                pkt.drop()
            else:
                pkt.accept()

    def _dns(self, rule: dict[str, Any], data: bytes) -> str:
        from scapy.layers.inet import IP, UDP

        ip = IP(data)
        if not ip.haslayer(UDP):
            return "accept"
        udp = ip[UDP]
        query = dns.message.from_wire(bytes(udp.payload))
        if not query.question:
            return "accept"
        q = query.question[0]
        if not name_matches(q.name.to_text(), rule["hosts"]):
            return "accept"
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if q.rdtype == dns.rdatatype.A:
            response.answer.append(
                dns.rrset.from_text(q.name, 60, "IN", "A", rule["answer"])
            )
        forged = IP(src=ip.dst, dst=ip.src) / UDP(sport=udp.dport, dport=udp.sport) / (
            response.to_wire()
        )
        self.l3.send(forged)
        self.count += 1
        return "drop" if rule.get("drop_query") else "accept"

    def _tcp(self, rule: dict[str, Any], data: bytes) -> str:
        from scapy.layers.inet import IP, TCP

        ip = IP(data)
        if not ip.haslayer(TCP):
            return "accept"
        tcp = ip[TCP]
        payload = bytes(tcp.payload)
        if not payload:
            return "accept"
        name = http_host(payload) if rule["port"] == 80 else parse_sni(payload)
        if name is None or not name_matches(name, rule["hosts"]):
            return "accept"
        client_next = (tcp.seq + len(payload)) & 0xFFFFFFFF
        to_client = IP(src=ip.dst, dst=ip.src)
        action = rule["action"]
        if action == "rst":
            self.l3.send(to_client / TCP(sport=tcp.dport, dport=tcp.sport, flags="RA",
                                         seq=tcp.ack, ack=client_next))
        else:
            body = b""
            if action == "page":
                body = blockpage_response()
            elif action == "redirect":
                body = redirect_response(rule["location"])
            seg = TCP(sport=tcp.dport, dport=tcp.sport, flags="FPA" if body else "FA",
                      seq=tcp.ack, ack=client_next)
            self.l3.send(to_client / seg / body if body else to_client / seg)
        # the server never sees the request: reset its half of the connection
        self.l3.send(IP(src=ip.src, dst=ip.dst) / TCP(sport=tcp.sport, dport=tcp.dport,
                                                       flags="R", seq=tcp.seq))
        self.count += 1
        return "drop"


def main() -> int:
    config, ready_file = parse_args(PROG)
    # deferred on purpose: netfilterqueue is the optional `sim` extra (`--help` works without)
    from netfilterqueue import NetfilterQueue

    stop = stop_event()
    injector = Injector(config["rules"])
    queues = []
    try:
        for qnum, rule in injector.rules.items():
            nfq = NetfilterQueue()
            nfq.bind(qnum, functools.partial(injector.handle, rule), max_len=4096)
            sock = socket.fromfd(nfq.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW)
            queues.append((nfq, sock))
    except OSError as exc:
        log(PROG, f"cannot bind NFQUEUE: {exc}")
        return 1
    ready(ready_file, {"queues": list(injector.rules)})
    try:
        by_fd = {sock.fileno(): nfq for nfq, sock in queues}
        while not stop.is_set():
            readable, _, _ = select.select([s for _, s in queues], [], [], 0.2)
            for sock in readable:
                by_fd[sock.fileno()].run(block=False)
    finally:
        for nfq, sock in queues:
            sock.close()
            nfq.unbind()
        time.sleep(0)
    log(PROG, f"stopped after {injector.count} injections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
