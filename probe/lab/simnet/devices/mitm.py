"""A transparent TLS interception proxy, like Kazakhstan's 2019 national-certificate middlebox.

iptables REDIRECTs the client's connections to the intercepted addresses (port 443) here. For
each connection the proxy peeks at the ClientHello; when its SNI is on the ``intercept`` list
(or the list is empty = every SNI) it opens its own TLS connection to the original destination
with that SNI, takes the real leaf certificate, has :meth:`probe.lab.world.pki.WorldPKI.forge` copy
its subject and SAN into a leaf signed by the rogue "national" CA, completes the client's
handshake with that forged chain and relays the decrypted bytes. Other SNIs are relayed as raw
bytes, untouched. Config::

    {"listen": "0.0.0.0:8443", "pki_dir": DIR, "intercept": [hosts], "upstream_ca": PEM}
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import sys
import threading
import time
from typing import Any

from probe.lab.simnet.devices.common import log, parse_args, ready, stop_event
from probe.lab.world.pki import WorldPKI
from probe.lab.world.web_server import parse_sni

PROG = "probe.lab.simnet.devices.mitm"
SO_ORIGINAL_DST = 80
IDLE = 30.0


def original_dst(sock: socket.socket) -> tuple[str, int]:
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), port


def peek_hello(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """The ClientHello bytes (peeked, left in the kernel buffer)."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        data = sock.recv(16384, socket.MSG_PEEK)
        if not data:
            return data
        if data[0] != 0x16:
            return data
        if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big"):
            return data
        time.sleep(0.01)
    return data


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (works for ssl sockets too)."""
    socks: list[socket.socket] = [a, b]
    for s in socks:
        s.settimeout(IDLE)
    try:
        while True:
            ready_now: list[socket.socket] = [
                s for s in socks if isinstance(s, ssl.SSLSocket) and s.pending()
            ]
            if not ready_now:
                ready_now = list(select.select(socks, [], [], IDLE)[0])
                if not ready_now:
                    return
            for s in ready_now:
                other = b if s is a else a
                try:
                    data = s.recv(65536)
                except ssl.SSLWantReadError:
                    continue
                if not data:
                    return
                other.sendall(data)
    except (OSError, ssl.SSLError):
        return


class Proxy:
    def __init__(self, config: dict[str, Any]) -> None:
        self.pki = WorldPKI.create(config["pki_dir"])
        self.intercept = [h.lower() for h in config.get("intercept", [])]
        self.upstream_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.upstream_ctx.check_hostname = False
        self.upstream_ctx.verify_mode = ssl.CERT_NONE  # a middlebox forges whatever it sees
        self.contexts: dict[str, ssl.SSLContext] = {}
        self.lock = threading.Lock()

    def wants(self, sni: str | None) -> bool:
        if sni is None:
            return False
        return not self.intercept or any(sni == h or sni.endswith("." + h) for h in self.intercept)

    def server_context(self, der: bytes) -> ssl.SSLContext:
        chain, key = self.pki.forge(der)
        with self.lock:
            ctx = self.contexts.get(chain)
            if ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(chain, key)
                self.contexts[chain] = ctx
        return ctx

    def handle(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            dst = original_dst(client)
            hello = peek_hello(client)
            sni = parse_sni(hello)
            upstream = socket.create_connection(dst, timeout=10)
            if not self.wants(sni):
                relay(client, upstream)
                return
            up_tls = self.upstream_ctx.wrap_socket(upstream, server_hostname=sni)
            upstream = up_tls
            der = up_tls.getpeercert(binary_form=True)
            if not der:
                return
            client.settimeout(10)
            c_tls = self.server_context(der).wrap_socket(client, server_side=True)
            client = c_tls
            relay(c_tls, up_tls)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log(PROG, f"connection ended: {type(exc).__name__}: {exc}")
        finally:
            for s in (client, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()


def main() -> int:
    config, ready_file = parse_args(PROG)
    stop = stop_event()
    proxy = Proxy(config)
    host, port = config["listen"].rsplit(":", 1)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        lsock.bind((host, int(port)))
    except OSError as exc:
        log(PROG, f"cannot listen on {config['listen']}: {exc}")
        return 1
    lsock.listen(128)
    lsock.settimeout(0.2)
    ready(ready_file, {"listen": config["listen"]})
    while not stop.is_set():
        try:
            conn, _ = lsock.accept()
        except TimeoutError:
            continue
        except OSError:
            break
        threading.Thread(target=proxy.handle, args=(conn,), daemon=True).start()
    lsock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
