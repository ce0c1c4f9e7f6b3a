"""The knobs of one measurement run, frozen: resolvers, trust anchors, deadlines and caps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resolver:
    """A DNS resolver reached over UDP at ``ip:port``."""

    ip: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class MeasureSettings:
    """Everything a measurement step needs to know besides the target.

    ``use_system_resolver``: also resolve with getaddrinfo (the volunteer's configured resolver).
    ``resolvers``: extra UDP resolvers queried with dnspython (``--resolver``), in order.
    ``ca_bundle``: a PEM file of extra trust anchors (the simulated world's CA); None = system only.
    ``dns_linger``: seconds to keep listening after the first UDP answer (catches a second,
    genuine answer behind an injected one).
    ``max_addresses``: how many resolved addresses get TCP/TLS attempts.
    ``body_cap``: bytes of body kept; beyond it the body is truncated and marked so.
    ``store_bodies``: False = keep only hashes and lengths (``--no-bodies``).
    ``address_filter``: addresses for which it returns False are never dialled (the control
    helper refuses private networks this way); None = every resolved address may be dialled.
    ``endpoint_guard``: called once per hop (the target and every redirect) with every address
    the hop's host stands for (each DNS answer, or the IP literal; possibly none) and the hop's
    port, before anything is dialled; it raises to abort the whole measurement (the control
    helper's policy); None = no guard.
    ``sni_retry``: after a failed TLS handshake, retry the same address with an innocuous SNI
    (``innocuous_sni``) to show whether the SNI is what triggers the failure.
    ``app_lists``: a directory of the user's own endpoint/Tor lists (``NAME.toml``) that
    replace the packaged ``targets/apps`` ones of the same name; None = the packaged lists.
    ``connect_retries``: how many more times a connect that timed out is tried (packet loss
    that a retry survives is not blocking; a blackholed address costs this many more
    ``connect_timeout``).
    """

    use_system_resolver: bool = True
    resolvers: tuple[Resolver, ...] = ()
    ca_bundle: str | None = None
    dns_timeout: float = 5.0
    dns_linger: float = 0.5
    connect_timeout: float = 10.0
    tls_timeout: float = 10.0
    http_timeout: float = 15.0
    max_addresses: int = 4
    body_cap: int = 512 * 1024
    max_redirects: int = 10
    store_bodies: bool = True
    address_filter: Callable[[str], bool] | None = None
    endpoint_guard: Callable[[list[str], int], None] | None = None
    sni_retry: bool = True
    connect_retries: int = 1
    innocuous_sni: str = "example.org"
    app_lists: str | None = None
    user_agent: str = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0 Safari/537.36"
    )

    def target_deadline(self) -> float:
        """The deadline of one whole target: three times the worst single hop (redirect chains
        of slow-but-legal hops end here; a normal target never comes near it)."""
        connects = self.connect_timeout * (1 + self.connect_retries)
        hop = self.dns_timeout + self.dns_linger + connects + 2 * self.tls_timeout
        return 3 * (hop + self.http_timeout)

    @classmethod
    def with_timeout(cls, timeout: float, **kw: object) -> MeasureSettings:
        """Settings whose every per-step deadline is ``timeout`` seconds (``--timeout``)."""
        dns_timeout = min(timeout, 5.0)
        return cls(
            dns_timeout=dns_timeout,
            connect_timeout=timeout,
            tls_timeout=timeout,
            http_timeout=timeout,
            **kw,  # type: ignore[arg-type]
        )
