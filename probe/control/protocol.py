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

``GET /v1/health`` answers ``{"version": 1, "status": "ok", "client_address": "ip"}`` (the
address since issue 13: the probe learns its public address from it before storing anything,
:mod:`probe.run.public_address`). Errors: 400 bad request,
401 bad token, 403 refused target (private address or port), 503 busy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from probe.errors import ProbeError

PROTOCOL_VERSION = 1
MAX_ADDRESSES = 8


class BadRequest(ProbeError, ValueError):
    """Raised when a request body is not a valid v1 measure request."""


@dataclass(frozen=True, slots=True)
class MeasureRequest:
    """A validated ``/v1/measure`` request."""

    url: str
    addresses: tuple[str, ...] = ()
    throughput: bool = False

    @classmethod
    def from_json(cls, data: Any) -> MeasureRequest:
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        url = data.get("url")
        if not isinstance(url, str) or not url or len(url) > 2048:
            raise BadRequest("'url' must be a non-empty string")
        addrs = data.get("addresses", [])
        if not isinstance(addrs, list) or len(addrs) > MAX_ADDRESSES:
            raise BadRequest(f"'addresses' must be a list of at most {MAX_ADDRESSES} IPs")
        clean: list[str] = []
        for a in addrs:
            try:
                clean.append(str(ipaddress.ip_address(a)))
            except (ValueError, TypeError):
                raise BadRequest(f"'addresses': {a!r} is not an IP address") from None
        return cls(url=url, addresses=tuple(clean), throughput=bool(data.get("throughput")))

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "addresses": list(self.addresses), "throughput": self.throughput}
