"""The knobs of one measurement run, frozen: resolvers, trust anchors, deadlines and caps."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Resolver:
    """A DNS resolver reached over UDP at ``ip:port``."""

    ip: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class EncryptedResolver:
    """A DNS resolver reached over TLS: DNS-over-HTTPS (RFC 8484, ``engine`` ``doh``, POST of
    ``application/dns-message`` to ``https://host[:port]/path``) or DNS-over-TLS (RFC 7858,
    ``engine`` ``dot``, length-prefixed messages on a TLS connection to ``host:port``).

    ``host`` is a name (resolved with the system resolver, as a stub's bootstrap does) or an
    IP literal (IPv6 without brackets). ``str()`` is what observations name it by: the DoH URL,
    or ``host:port`` for DoT (OONI's ``resolver_address``).
    """

    engine: str
    host: str
    port: int
    path: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.engine == "doh":
            port = "" if self.port == 443 else f":{self.port}"
            return f"https://{host}{port}{self.path or '/'}"
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, engine: str, text: str) -> EncryptedResolver:
        """``--doh https://HOST[:PORT]/PATH`` or ``--dot HOST[:PORT]`` (also OONI's
        ``dot://HOST:PORT/``; default port 853); raises ValueError naming the problem."""
        if engine == "doh":
            parts = urlsplit(text.strip())
            if parts.scheme.lower() != "https" or not parts.hostname:
                raise ValueError(f"{text!r} is not an https:// URL")
            default_port, path = 443, parts.path or "/"
            if parts.query or parts.fragment:
                raise ValueError(f"{text!r}: a DoH URL takes no query or fragment")
        elif engine == "dot":
            raw = text.strip()
            if "://" in raw:
                if not raw.lower().startswith("dot://"):
                    raise ValueError(f"{text!r} is not HOST[:PORT] or dot://HOST[:PORT]")
            else:
                raw = f"dot://{raw}"
            parts = urlsplit(raw)
            if not parts.hostname or parts.path not in ("", "/") or parts.query:
                raise ValueError(f"{text!r} is not HOST[:PORT]")
            default_port, path = 853, ""
        else:
            raise ValueError(f"unknown encrypted DNS engine {engine!r}")
        try:
            port = parts.port or default_port
        except ValueError:
            raise ValueError(f"{text!r}: bad port") from None
        host = parts.hostname.lower()
        if ":" in host:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{text!r}: bad IPv6 address") from None
        elif not all(c.isalnum() or c in "-._" for c in host):
            raise ValueError(f"{text!r}: bad host name")
        return cls(engine, host, port, path)


@dataclass(frozen=True, slots=True)
class MeasureSettings:
    """Everything a measurement step needs to know besides the target.

    ``use_system_resolver``: also resolve with getaddrinfo (the volunteer's configured resolver).
    ``resolvers``: extra UDP resolvers queried with dnspython (``--resolver``), in order.
    ``encrypted_resolvers``: DoH/DoT resolvers (``--doh``, ``--dot``), in order; each gets its
    own A and AAAA observations, the connection underneath in ``extra["dns_exchanges"]``.
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
    ``dnscheck_domain``: the name the ``dnscheck`` test looks up through the resolver under
    test (OONI's dnscheck default, ``example.org``).
    ``http3``: when the web test also tries HTTP/3 (QUIC) after the TCP path: ``advertised``
    (the target's HTTP/1.1 response carries an ``h3`` Alt-Svc, RFC 7838/9114 §3.1), ``always``
    (every https target, ``--http3``) or ``off``.
    ``connect_retries``: how many more times a connect that timed out is tried (packet loss
    that a retry survives is not blocking; a blackholed address costs this many more
    ``connect_timeout``).
    """

    use_system_resolver: bool = True
    resolvers: tuple[Resolver, ...] = ()
    encrypted_resolvers: tuple[EncryptedResolver, ...] = ()
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
    dnscheck_domain: str = "example.org"
    http3: str = "advertised"
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
