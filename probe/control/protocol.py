"""The control helper's wire protocol (version 1): request validation and response shape.

JSON over HTTP(S). ``POST /v1/measure`` with::

    {"url": "https://site/", "addresses": ["ip", ...], "throughput": true}

answers::

    {"version": 1, "url": ..., "failure": null | "<why the helper refused or failed>",
     "dns": {"resolver": "ip:port", "addrs": [...], "cnames": [...], "failure": ...},
     "endpoints": {"ip:port": {"origin": "probe"|"control"|"both", "tcp_failure": ...,
                   "tls_failure": ..., "verified": bool|null, "verify_error": ...,
                   "chain_sha256": [...], "spki_sha256": [...], "issuers": [...],
                   "tls_handshake_time": s|null}},
     "http": {"status": int|null, "failure": ..., "headers": [[k, v]...], "body_length": int|null,
              "body_sha256": ..., "title": ..., "redirect_chain": [url, ...],
              "elapsed": s, "throughput_bps": float|null},
     "elapsed": s, "client_address": "ip"}

``client_address`` is the address the helper saw the request come from: the probe's public
address. The probe keeps it in memory only, to scrub it from what it stores
(:mod:`probe.store.privacy`), and drops it from the stored answer.

A ``tcp://host:port`` ``url`` (backward-compatible extension) asks for TCP reachability
only (the ``tcp_connect`` test): the answer has the same ``dns`` and ``endpoints`` (no TLS
fields filled), ``"test_name": "tcp_connect"`` and ``"http": null``. The same address and
port policy applies. A helper that predates it refuses the scheme (403), which the probe
records as a failed control, so the verdict is inconclusive, never blocked.

``"quic": 1`` (optional, issue 15; the number is the version of the QUIC check asked for,
absent or 0 = none) asks the helper to try a QUIC handshake (aioquic, ALPN ``h3``, the URL's
host as SNI, handshake only, within its TLS timeout) to each of the probe's ``addresses`` at the
URL's port — an https URL only, under the same address and port policy — and the answer gains
``"quic_check": 1`` (the version it ran: the lower of the asked and :data:`QUIC_CHECK`) and
``"quic": [{"ip", "port", "failure", "quic_version", "alpn", "verified", "handshake_time"}]``,
one entry per address tried. A helper that predates the field ignores it (the request parser
skips unknown keys) and answers without ``quic``: the probe then has no control evidence over
QUIC, as before. A probe that predates it never asks, and the answer is unchanged.

``GET /v1/health`` answers ``{"version": 1, "status": "ok", "client_address": "ip"}`` (the
address since issue 13: the probe learns its public address from it before storing anything,
:mod:`probe.run.public_address`). Errors (each
``{"version": 1, "error": "<one line>"}``): 400 bad request (not JSON, nested too deep,
duplicate keys, wrong types...), 401 bad token, 403 refused target (a port not allowed, or an
address that is private, loopback, link-local, reserved, the helper's own... in any spelling,
given or resolved, for the URL or any redirect hop; the answer never names the address),
408 request too slow, 413 body too large, 414 URI too long, 431 headers too large,
503 busy or too many connections. The server's limits: :mod:`probe.control.server`.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from probe.errors import ProbeError

PROTOCOL_VERSION = 1
#: The newest version of the optional QUIC check (``"quic"`` in a request) this code knows.
QUIC_CHECK = 1
MAX_ADDRESSES = 8
MAX_URL_LENGTH = 2048
#: A request is an object holding a list of strings: anything nested deeper is hostile.
MAX_JSON_DEPTH = 3
#: Digits a JSON number may have (a request has no numbers; huge ones cost CPU to parse).
MAX_NUMBER_DIGITS = 32


class BadRequest(ProbeError, ValueError):
    """Raised when a request body is not a valid v1 measure request (the message is one line,
    fit to send back in a 400)."""


def decode_body(body: bytes) -> Any:
    """The JSON value of a request body, refusing what a hostile client could use: invalid
    UTF-8, nesting deeper than :data:`MAX_JSON_DEPTH`, duplicate keys, NaN/Infinity and
    numbers longer than :data:`MAX_NUMBER_DIGITS` digits. Raises :class:`BadRequest`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(text or "null", object_pairs_hook=_no_duplicates,
                          parse_constant=_no_constant, parse_int=_number(int),
                          parse_float=_number(float))
    except BadRequest:
        raise
    except (ValueError, RecursionError):
        raise BadRequest("body is not JSON") from None


def _depth(text: str) -> int:
    """The deepest nesting of arrays/objects in ``text``, outside strings (a linear scan)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number")


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        if len(text) > MAX_NUMBER_DIGITS:
            raise BadRequest("number too long")
        value = kind(text)
        if value in (float("inf"), float("-inf")):
            raise BadRequest("number out of range")
        return value
    return parse


@dataclass(frozen=True, slots=True)
class MeasureRequest:
    """A validated ``/v1/measure`` request."""

    url: str
    addresses: tuple[str, ...] = ()
    throughput: bool = False
    quic: int = 0  # the QUIC check's version asked for (issue 15); 0 = none

    @classmethod
    def from_body(cls, body: bytes) -> MeasureRequest:
        """Decode and validate a request body (:func:`decode_body`, :meth:`from_json`)."""
        return cls.from_json(decode_body(body))

    @classmethod
    def from_json(cls, data: Any) -> MeasureRequest:
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        url = data.get("url")
        if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
            raise BadRequest(f"'url' must be a non-empty string of at most {MAX_URL_LENGTH}")
        if not url.isprintable() or any(c.isspace() for c in url):
            raise BadRequest("'url' holds spaces or control characters")
        addrs = data.get("addresses", [])
        if not isinstance(addrs, list) or len(addrs) > MAX_ADDRESSES:
            raise BadRequest(f"'addresses' must be a list of at most {MAX_ADDRESSES} IPs")
        clean: list[str] = []
        for a in addrs:
            try:
                if not isinstance(a, str):
                    raise TypeError
                clean.append(str(ipaddress.ip_address(a)))
            except (ValueError, TypeError):
                raise BadRequest(f"'addresses': {str(a)[:60]!r} is not an IP address") from None
        throughput = data.get("throughput", False)
        if not isinstance(throughput, bool):
            raise BadRequest("'throughput' must be true or false")
        quic = data.get("quic", 0)
        if not isinstance(quic, int) or isinstance(quic, bool) or not 0 <= quic <= 1000:
            raise BadRequest("'quic' must be a version number (0 = no QUIC check)")
        return cls(url=url, addresses=tuple(clean), throughput=throughput, quic=quic)

    def to_json(self) -> dict[str, Any]:
        """The request body; ``quic`` only when asked, so requests without it are the bytes a
        helper of any age has always read."""
        out: dict[str, Any] = {"url": self.url, "addresses": list(self.addresses),
                               "throughput": self.throughput}
        if self.quic:
            out["quic"] = self.quic
        return out
