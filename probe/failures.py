"""The closed vocabulary of failure strings, and the one mapping from exceptions to it.

Everything that affects how a failed network operation is *named* lives here. Names follow
OONI's data format (df-007) so exports interoperate. ``None`` always means success.
Unknown errors become ``unknown_failure: <text>`` with IP addresses scrubbed.

The mapping is ordered most specific first: errno values, then exception classes of the
libraries we use (ssl, dnspython, httpx, asyncio), then message patterns.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl

CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
EOF_ERROR = "eof_error"
GENERIC_TIMEOUT = "generic_timeout_error"
HOST_UNREACHABLE = "host_unreachable"
NETWORK_UNREACHABLE = "network_unreachable"
DNS_NXDOMAIN = "dns_nxdomain_error"
DNS_NO_ANSWER = "dns_no_answer"
DNS_REFUSED = "dns_refused_error"
DNS_SERVFAIL = "dns_servfail_error"
DNS_SERVER_MISBEHAVING = "dns_server_misbehaving"
DNS_TEMPORARY_FAILURE = "dns_temporary_failure"
DNS_BOGON = "dns_bogon_error"
SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"
HTTP_INVALID_REDIRECT_LOCATION_HOST = "http_invalid_redirect_location_host"
HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"
HTTP_PROTOCOL_ERROR = "http_protocol_error"
INTERRUPTED = "interrupted"
UNKNOWN_PREFIX = "unknown_failure: "

#: Every known failure string (``unknown_failure: …`` is matched by prefix).
VOCABULARY: frozenset[str] = frozenset(
    {
        CONNECTION_REFUSED,
        CONNECTION_RESET,
        EOF_ERROR,
        GENERIC_TIMEOUT,
        HOST_UNREACHABLE,
        NETWORK_UNREACHABLE,
        DNS_NXDOMAIN,
        DNS_NO_ANSWER,
        DNS_REFUSED,
        DNS_SERVFAIL,
        DNS_SERVER_MISBEHAVING,
        DNS_TEMPORARY_FAILURE,
        DNS_BOGON,
        SSL_INVALID_HOSTNAME,
        SSL_UNKNOWN_AUTHORITY,
        SSL_INVALID_CERTIFICATE,
        SSL_FAILED_HANDSHAKE,
        HTTP_INVALID_REDIRECT_LOCATION_HOST,
        HTTP_TOO_MANY_REDIRECTS,
        HTTP_PROTOCOL_ERROR,
        INTERRUPTED,
    }
)

#: DNS rcode text → failure string.
RCODE_FAILURES: dict[str, str] = {
    "NXDOMAIN": DNS_NXDOMAIN,
    "REFUSED": DNS_REFUSED,
    "SERVFAIL": DNS_SERVFAIL,
}

_ERRNO_FAILURES: dict[int, str] = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    errno.EPIPE: CONNECTION_RESET,
    errno.ECONNABORTED: CONNECTION_RESET,
    errno.ETIMEDOUT: GENERIC_TIMEOUT,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.EHOSTDOWN: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ENETDOWN: NETWORK_UNREACHABLE,
}

_GAI_FAILURES: dict[int, str] = {
    socket.EAI_NONAME: DNS_NXDOMAIN,
    socket.EAI_AGAIN: DNS_TEMPORARY_FAILURE,
    socket.EAI_FAIL: DNS_SERVER_MISBEHAVING,
}
for _name, _failure in (("EAI_NODATA", DNS_NO_ANSWER), ("EAI_ADDRFAMILY", DNS_NO_ANSWER)):
    if hasattr(socket, _name):
        _GAI_FAILURES[getattr(socket, _name)] = _failure

# Message patterns, checked in order, for exceptions that only carry text (ssl, httpx, h11).
_MESSAGE_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), f)
    for p, f in (
        (r"hostname mismatch|doesn't match|not valid for|IP address mismatch",
         SSL_INVALID_HOSTNAME),
        (r"unable to get local issuer|self[- ]signed|unknown ca|unable to get issuer",
         SSL_UNKNOWN_AUTHORITY),
        (r"certificate has expired|not yet valid|certificate verify failed|bad certificate",
         SSL_INVALID_CERTIFICATE),
        (r"connection reset|reset by peer|ECONNRESET", CONNECTION_RESET),
        (r"connection refused", CONNECTION_REFUSED),
        (r"timed out|timeout", GENERIC_TIMEOUT),
        (r"unexpected eof|EOF occurred|server disconnected|incomplete|peer closed|"
         r"connection closed|RemoteProtocolError.*without", EOF_ERROR),
        (r"no route to host|host unreachable", HOST_UNREACHABLE),
        (r"network is unreachable", NETWORK_UNREACHABLE),
        (r"wrong version number|unsupported protocol|handshake failure|record layer|"
         r"sslv3 alert|tlsv1 alert|packet length too long|decode error", SSL_FAILED_HANDSHAKE),
    )
)

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")


def scrub_addresses(text: str) -> str:
    """Replace every IPv4/IPv6 address literal in ``text`` with ``[scrubbed]``."""
    text = _IPV4.sub("[scrubbed]", text)
    return _IPV6.sub(lambda m: "[scrubbed]" if m.group(0).count(":") >= 2 else m.group(0), text)


def is_known(failure: str | None) -> bool:
    """True if ``failure`` is None (success) or belongs to the vocabulary."""
    return failure is None or failure in VOCABULARY or failure.startswith(UNKNOWN_PREFIX)


def unknown(text: str) -> str:
    """An ``unknown_failure: …`` string with addresses scrubbed and length capped."""
    return UNKNOWN_PREFIX + scrub_addresses(" ".join(text.split()))[:200]


def _walk(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts, outermost first (cycles cut)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def classify_exception(exc: BaseException) -> str:
    """Map an exception raised by a network operation to a failure string.

    Looks at the exception and everything it was raised from, most specific signal first.
    Never raises; anything unrecognised becomes ``unknown_failure: …``.
    """
    chain = _walk(exc)
    for e in chain:
        specific = _specific(e)
        if specific is not None:
            return specific
    for e in chain:
        text = f"{type(e).__name__} {e}"
        for pattern, failure in _MESSAGE_FAILURES:
            if pattern.search(text):
                return failure
    for e in chain:
        fallback = _fallback(e)
        if fallback is not None:
            return fallback
    text = str(exc)
    return unknown(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _specific(e: BaseException) -> str | None:
    # Imported lazily: failures.py must stay importable without optional libraries.
    import dns.exception
    import dns.resolver
    import httpx

    if isinstance(e, (asyncio.CancelledError, KeyboardInterrupt)):
        return INTERRUPTED
    if isinstance(e, dns.resolver.NXDOMAIN):
        return DNS_NXDOMAIN
    if isinstance(e, dns.resolver.NoAnswer):
        return DNS_NO_ANSWER
    if isinstance(e, dns.resolver.NoNameservers):
        return DNS_SERVER_MISBEHAVING
    if isinstance(e, dns.exception.Timeout):
        return GENERIC_TIMEOUT
    if isinstance(e, dns.exception.FormError | dns.exception.SyntaxError):
        return DNS_SERVER_MISBEHAVING
    if isinstance(e, httpx.TooManyRedirects):
        return HTTP_TOO_MANY_REDIRECTS
    if isinstance(e, _http_protocol_errors()):
        # h11 says "Server disconnected without sending a response" when the peer closes
        # (FIN) before or during the response; anything else is a malformed response.
        return EOF_ERROR if _DISCONNECTED.search(str(e)) else HTTP_PROTOCOL_ERROR
    if isinstance(e, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        return GENERIC_TIMEOUT
    if isinstance(e, socket.gaierror):
        return _GAI_FAILURES.get(e.errno, DNS_TEMPORARY_FAILURE) if e.errno else None
    if isinstance(e, ssl.SSLCertVerificationError):
        code = getattr(e, "verify_code", None)
        return _VERIFY_CODES.get(code, SSL_INVALID_CERTIFICATE) if code else None
    if isinstance(e, ssl.SSLEOFError | ssl.SSLZeroReturnError | asyncio.IncompleteReadError):
        return EOF_ERROR
    if isinstance(e, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return CONNECTION_RESET
    if isinstance(e, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(e, OSError) and e.errno in _ERRNO_FAILURES:
        return _ERRNO_FAILURES[e.errno]
    return None


_DISCONNECTED = re.compile(
    r"disconnected|without sending|incomplete|peer closed|connection closed", re.IGNORECASE
)


def _http_protocol_errors() -> tuple[type[BaseException], ...]:
    import h11
    import httpcore
    import httpx

    return (httpx.ProtocolError, httpcore.ProtocolError, h11.ProtocolError)


def _fallback(e: BaseException) -> str | None:
    """Family-level names, used only when neither a specific class nor a message matched."""
    import dns.exception

    if isinstance(e, ssl.SSLError):
        # Any other TLS-layer error (alert, garbage, unsupported parameters) ends the handshake.
        return SSL_FAILED_HANDSHAKE
    if isinstance(e, dns.exception.DNSException):
        # A DNS message we could not make sense of (bad wire format, bad EDNS, bad label…).
        return DNS_SERVER_MISBEHAVING
    return None


# OpenSSL X509_V_ERR_* codes → failure strings (openssl/x509_vfy.h).
_VERIFY_CODES: dict[int, str] = {
    2: SSL_UNKNOWN_AUTHORITY,  # unable to get issuer certificate
    18: SSL_UNKNOWN_AUTHORITY,  # self-signed leaf
    19: SSL_UNKNOWN_AUTHORITY,  # self-signed in chain
    20: SSL_UNKNOWN_AUTHORITY,  # unable to get local issuer
    21: SSL_UNKNOWN_AUTHORITY,  # unable to verify leaf signature
    9: SSL_INVALID_CERTIFICATE,  # not yet valid
    10: SSL_INVALID_CERTIFICATE,  # expired
    62: SSL_INVALID_HOSTNAME,  # hostname mismatch
    64: SSL_INVALID_HOSTNAME,  # IP address mismatch
}
