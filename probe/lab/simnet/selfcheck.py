"""Self-checks: plain-tool probes that prove the simulated network does what a scenario claims.

Before the probe runs, every scenario checks itself from the client namespace (and from the
control host, which must see a clean network) with the simplest tools available — a raw
dnspython query, a raw socket connect, an ``ssl`` handshake, a hand-written HTTP/1.1 request —
none of which share code with the probe's measurement engine. A failing self-check means the
*simulator* is broken, and is reported apart from a probe mismatch.

A check is a JSON object ``{"id", "kind", "why", "expect": {...}, ...parameters}``; this module
runs a list of them inside one namespace (``python -m probe.lab.simnet.selfcheck CHECKS.json``, run
under ``ip netns exec``) and prints one JSON result per check. Kinds:

``dns``      server, name, qtype=A, port=53, timeout, linger → every response received
             within ``linger`` after the first (injected + genuine), or a timeout.
             expect: ``rcode``, ``addrs_any``, ``addrs_none``, ``first_addr``,
             ``min_responses``, ``outcome`` (``ok``/``timeout``)
``resolve``  name → getaddrinfo through the namespace's resolv.conf (the ISP resolver).
             expect: ``outcome`` (``ok``/``error``), ``addrs_any``, ``addrs_none``
``tcp``      ip, port → expect ``outcome``: ok | refused | reset | timeout | unreachable
``tls``      ip, port=443, sni, verify (world CA) → expect ``outcome`` (ok | reset | timeout |
             eof | refused | unreachable | cert | tls_error), ``issuer_contains``,
             ``issuer_not_contains``
``http``     ip, port, host, tls, sni, path → expect ``outcome``, ``status``,
             ``body_contains``, ``body_not_contains``, ``location_contains``,
             ``min_seconds``, ``max_seconds``, ``min_length``, ``max_length`` (body bytes),
             ``late_error`` (how a body cut off after the head ended: ``timeout``, ``reset``…)
``control_quic``  host, port=443, helper (the simulation's control helper URL) → resolve
             ``host`` here, ask the helper for its QUIC check of those addresses (``"quic": 1``,
             what the probe's second request asks: :mod:`probe.control.protocol`).
             expect ``outcome``: ok (every address's handshake succeeded) | failed | missing
             (no QUIC entry: a helper without the check) | error
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
from cryptography import x509

Check = dict[str, Any]
Result = dict[str, Any]


def outcome_of(exc: BaseException) -> str:
    """One word for how a connection attempt ended."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "cert"
    if isinstance(exc, ssl.SSLEOFError | EOFError):
        return "eof"
    if isinstance(exc, ssl.SSLZeroReturnError):
        return "eof"
    if isinstance(exc, ssl.SSLError):
        text = str(exc).lower()
        if "eof" in text:
            return "eof"
        if "reset" in text:
            return "reset"
        return "tls_error"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in (
        errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN
    ):
        return "unreachable"
    return f"error:{type(exc).__name__}"


def _connect(ip: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((ip, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def check_tcp(c: Check) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        _connect(c["ip"], c["port"], c.get("timeout", 2.0)).close()
        return {"outcome": "ok", "seconds": time.monotonic() - t0}
    except OSError as exc:
        return {"outcome": outcome_of(exc), "seconds": time.monotonic() - t0}


def _tls_context(c: Check) -> ssl.SSLContext:
    if c.get("verify") and c.get("cafile"):
        ctx = ssl.create_default_context(cafile=c["cafile"])
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _peer_names(tls: ssl.SSLSocket) -> dict[str, Any]:
    der = tls.getpeercert(binary_form=True)
    if not der:
        return {}

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    return {"issuer": cert.issuer.rfc4514_string(), "subject": cert.subject.rfc4514_string(),
            "san": names}


def check_tls(c: Check) -> dict[str, Any]:
    t0 = time.monotonic()
    timeout = c.get("timeout", 2.0)
    try:
        sock = _connect(c["ip"], c.get("port", 443), timeout)
    except OSError as exc:
        return {"outcome": "tcp_" + outcome_of(exc), "seconds": time.monotonic() - t0}
    try:
        with _tls_context(c).wrap_socket(sock, server_hostname=c["sni"]) as tls:
            info = _peer_names(tls)
            return {"outcome": "ok", "seconds": time.monotonic() - t0, **info}
    except (OSError, EOFError) as exc:
        return {"outcome": outcome_of(exc), "seconds": time.monotonic() - t0,
                "error": str(exc)[:200]}
    finally:
        sock.close()


def check_http(c: Check) -> dict[str, Any]:
    t0 = time.monotonic()
    timeout = c.get("timeout", 3.0)
    port = c.get("port", 443 if c.get("tls") else 80)
    try:
        sock = _connect(c["ip"], port, timeout)
    except OSError as exc:
        return {"outcome": "tcp_" + outcome_of(exc), "seconds": time.monotonic() - t0}
    conn: socket.socket = sock
    info: dict[str, Any] = {}
    try:
        if c.get("tls"):
            ctx = _tls_context(c)
            try:
                conn = ctx.wrap_socket(sock, server_hostname=c.get("sni") or c["host"])
            except (OSError, EOFError) as exc:
                return {"outcome": "tls_" + outcome_of(exc), "seconds": time.monotonic() - t0}
            info = _peer_names(conn)  # type: ignore[arg-type]
        request = (
            f"GET {c.get('path', '/')} HTTP/1.1\r\nHost: {c['host']}\r\n"
            "User-Agent: probe-simnet-selfcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        conn.sendall(request.encode())
        data = b""
        max_bytes = c.get("max_bytes", 4 * 1024 * 1024)
        deadline = t0 + c.get("total_timeout", timeout * 4)
        try:
            while len(data) < max_bytes:
                if time.monotonic() > deadline:
                    raise TimeoutError("total deadline")
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (OSError, EOFError) as exc:
            if not data or b"\r\n\r\n" not in data:
                return {"outcome": outcome_of(exc), "seconds": time.monotonic() - t0,
                        "received": len(data)}
            info["late_error"] = outcome_of(exc)
        if not data:
            return {"outcome": "eof", "seconds": time.monotonic() - t0}
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            return {"outcome": "garbage", "seconds": time.monotonic() - t0,
                    "head": lines[0][:80]}
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return {
            "outcome": "ok",
            "status": status,
            "seconds": time.monotonic() - t0,
            "length": len(body),
            "location": headers.get("location"),
            "body": body[:4096].decode("utf-8", "replace"),
            **info,
        }
    finally:
        conn.close()


def check_dns(c: Check) -> dict[str, Any]:
    timeout = c.get("timeout", 2.0)
    linger = c.get("linger", 0.6)
    query = dns.message.make_query(c["name"], c.get("qtype", "A"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.monotonic()
    responses: list[dict[str, Any]] = []
    try:
        sock.sendto(query.to_wire(), (c["server"], c.get("port", 53)))
        deadline = t0 + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                wire, _ = sock.recvfrom(65535)
            except TimeoutError:
                break
            except OSError as exc:
                responses.append({"error": outcome_of(exc)})
                break
            try:
                msg = dns.message.from_wire(wire)
            except Exception as exc:  # noqa: BLE001 - garbage is an observation
                responses.append({"error": f"garbage:{type(exc).__name__}"})
                continue
            if msg.id != query.id:
                continue
            addrs = [
                rd.address
                for rrset in msg.answer
                if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
                for rd in rrset
            ]
            responses.append({"rcode": dns.rcode.to_text(msg.rcode()), "addrs": addrs,
                              "t": round(time.monotonic() - t0, 3)})
            if len(responses) == 1:
                deadline = min(deadline, time.monotonic() + linger)
    finally:
        sock.close()
    if not responses:
        return {"outcome": "timeout", "seconds": time.monotonic() - t0}
    first = responses[0]
    return {"outcome": "ok" if "rcode" in first else first["error"], "responses": responses,
            "rcode": first.get("rcode"), "addrs": first.get("addrs", []),
            "seconds": time.monotonic() - t0}


def check_resolve(c: Check) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        infos = socket.getaddrinfo(c["name"], 443, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return {"outcome": "error", "error": str(exc), "seconds": time.monotonic() - t0}
    addrs = sorted({str(i[4][0]) for i in infos})
    return {"outcome": "ok", "addrs": addrs, "seconds": time.monotonic() - t0}


def check_quic(c: Check) -> dict[str, Any]:
    """A QUIC handshake (ALPN h3, no verification) to ``ip:port``: ``ok`` or ``timeout``."""
    import asyncio

    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    async def handshake() -> str:
        config = QuicConfiguration(is_client=True, alpn_protocols=["h3"],
                                   verify_mode=ssl.CERT_NONE, server_name=c.get("sni"))
        family = socket.AF_INET6 if ":" in c["ip"] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: QuicConnectionProtocol(QuicConnection(configuration=config)), sock=sock)
        try:
            async with asyncio.timeout(c.get("timeout", 2.0)):
                protocol.connect((c["ip"], c["port"]))
                await protocol.wait_connected()
            return "ok"
        except TimeoutError:
            return "timeout"
        except ConnectionError:
            return "closed"
        finally:
            protocol.close()
            transport.close()

    t0 = time.monotonic()
    return {"outcome": asyncio.run(handshake()), "seconds": time.monotonic() - t0}


def check_sequence(c: Check) -> dict[str, Any]:
    """Run ``steps`` one after the other (e.g. a first SYN lost, a retry that gets through)."""
    steps = [run_check(step) for step in c["steps"]]
    bad = [f"step {i + 1}: {'; '.join(r['problems'])}" for i, r in enumerate(steps) if not r["ok"]]
    return {"outcome": "ok" if not bad else "failed", "steps": [r["got"] for r in steps],
            "problems": bad}


def check_obfs4(c: Check) -> dict[str, Any]:
    """An obfs4 handshake with the bridge ``ip:port`` (``cert``, ``iat_mode``) through a real
    obfs4proxy client (the tor test's own transport code, :mod:`probe.measure.pt`)."""
    import asyncio

    from probe.measure.pt import ManagedClient

    async def go() -> dict[str, Any]:
        async with ManagedClient() as client:
            hs, _, writer = await client.dial(
                c["ip"], c["port"], (("cert", c["cert"]), ("iat-mode", str(c["iat_mode"]))),
                c.get("timeout", 4.0), time.monotonic)
            if writer is not None:
                writer.close()
            return {"outcome": "ok" if hs.failure is None else "failed",
                    "failure": hs.failure, "seconds": hs.t - hs.t0}
    try:
        return asyncio.run(go())
    except Exception as exc:  # noqa: BLE001 - the transport would not start: say so
        return {"outcome": "error", "error": str(exc)[:200]}


def check_control_quic(c: Check) -> dict[str, Any]:
    import httpx

    t0 = time.monotonic()
    port = int(c.get("port", 443))
    try:
        infos = socket.getaddrinfo(c["host"], port, socket.AF_INET, socket.SOCK_STREAM)
        addrs = sorted({str(i[4][0]) for i in infos})
        r = httpx.post(f"{c['helper']}/v1/measure", timeout=c.get("timeout", 15.0),
                       json={"url": f"https://{c['host']}:{port}/", "addresses": addrs,
                             "quic": 1})
        entries = r.json().get("quic")
    except Exception as exc:  # noqa: BLE001 - no answer is an outcome here
        return {"outcome": "error", "error": str(exc)[:200], "seconds": time.monotonic() - t0}
    if not isinstance(entries, list) or not entries:
        return {"outcome": "missing", "seconds": time.monotonic() - t0}
    failed = {e.get("ip"): e.get("failure") for e in entries if e.get("failure") is not None}
    return {"outcome": "failed" if failed else "ok", "addrs": addrs, "failures": failed,
            "seconds": time.monotonic() - t0}


KINDS = {"sequence": check_sequence, "tcp": check_tcp, "tls": check_tls, "http": check_http,
         "quic": check_quic, "control_quic": check_control_quic,
         "dns": check_dns,
         "resolve": check_resolve, "obfs4": check_obfs4}


def judge(expect: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Every way ``got`` differs from ``expect`` (empty = pass)."""
    problems: list[str] = []
    for key, want in expect.items():
        if key == "outcome":
            wants = want if isinstance(want, list) else [want]
            if got.get("outcome") not in wants:
                problems.append(f"outcome {got.get('outcome')!r}, expected {want!r}")
        elif key == "status":
            if got.get("status") != want:
                problems.append(f"status {got.get('status')!r}, expected {want!r}")
        elif key == "rcode":
            if got.get("rcode") != want:
                problems.append(f"rcode {got.get('rcode')!r}, expected {want!r}")
        elif key == "addrs_any":
            if not set(want) & set(got.get("addrs") or []):
                problems.append(f"addresses {got.get('addrs')!r} include none of {want!r}")
        elif key == "addrs_none":
            if set(want) & set(got.get("addrs") or []):
                problems.append(f"addresses {got.get('addrs')!r} include one of {want!r}")
        elif key == "addrs_empty":
            if bool(got.get("addrs")) == bool(want):
                problems.append(f"addresses {got.get('addrs')!r}, expected none")
        elif key == "first_addr":
            if want not in (got.get("addrs") or []):
                problems.append(f"first answer {got.get('addrs')!r}, expected {want!r}")
        elif key == "min_responses":
            n = len(got.get("responses") or [])
            if n < want:
                problems.append(f"{n} DNS responses, expected at least {want}")
        elif key == "later_addr":
            later = [a for r in (got.get("responses") or [])[1:] for a in r.get("addrs", [])]
            if want not in later:
                problems.append(f"later answers {later!r} lack the genuine {want!r}")
        elif key in ("body_contains", "body_not_contains"):
            body = (got.get("body") or "").lower()
            for text in want if isinstance(want, list) else [want]:
                present = text.lower() in body
                if present != (key == "body_contains"):
                    problems.append(f"body {'lacks' if not present else 'has'} {text!r}")
        elif key == "location_contains":
            if want not in (got.get("location") or ""):
                problems.append(f"location {got.get('location')!r} lacks {want!r}")
        elif key in ("issuer_contains", "issuer_not_contains"):
            issuer = got.get("issuer") or ""
            present = want.lower() in issuer.lower()
            if present != (key == "issuer_contains"):
                problems.append(f"issuer {issuer!r} {'lacks' if not present else 'has'} {want!r}")
        elif key == "min_seconds":
            if (got.get("seconds") or 0) < want:
                problems.append(f"took {got.get('seconds', 0):.2f}s, expected at least {want}s")
        elif key == "max_seconds":
            if (got.get("seconds") or 0) > want:
                problems.append(f"took {got.get('seconds', 0):.2f}s, expected at most {want}s")
        elif key == "min_length":
            if (got.get("length") or 0) < want:
                problems.append(f"body {got.get('length')} bytes, expected at least {want}")
        elif key == "max_length":
            if (got.get("length") or 0) > want:
                problems.append(f"body {got.get('length')} bytes, expected at most {want}")
        elif key == "late_error":
            if got.get("late_error") != want:
                problems.append(f"the body ended with {got.get('late_error') or 'its end'}, "
                                f"expected {want}")
        else:
            problems.append(f"unknown expectation {key!r}")
    return problems


def run_check(c: Check) -> Result:
    fn = KINDS.get(c.get("kind", ""))
    if fn is None:
        return {"id": c.get("id"), "ok": False, "problems": [f"unknown kind {c.get('kind')!r}"],
                "got": {}}
    try:
        got = fn(c)
    except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check
        got = {"outcome": f"crash:{type(exc).__name__}: {exc}"}
    problems = judge(c.get("expect", {}), got)
    if c.get("kind") == "sequence":
        problems = got.pop("problems", [])
    if "body" in got:
        got["body"] = got["body"][:160]
    return {"id": c.get("id"), "ok": not problems, "problems": problems, "got": got}


def run_checks(checks: list[Check], workers: int = 32) -> list[Result]:
    """Run checks in parallel (each has its own deadline); results in input order."""
    if not checks:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(checks))) as pool:
        return list(pool.map(run_check, checks))


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m probe.lab.simnet.selfcheck CHECKS.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        checks = json.load(f)
    json.dump(run_checks(checks), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
