"""probe.failures: the one mapping from exceptions to failure strings (table-driven)."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

import dns.exception
import dns.message
import dns.resolver
import h11
import httpcore
import httpx
import pytest

from probe import failures

pytestmark = pytest.mark.timeout(10)


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


def _cert_error(code: int, text: str) -> ssl.SSLCertVerificationError:
    e = ssl.SSLCertVerificationError(1, text)
    e.verify_code = code
    return e


CASES: list[tuple[str, BaseException, str]] = [
    # errno / OSError subclasses
    ("refused", ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
     failures.CONNECTION_REFUSED),
    ("reset", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
     failures.CONNECTION_RESET),
    ("broken pipe", BrokenPipeError(errno.EPIPE, "Broken pipe"), failures.CONNECTION_RESET),
    ("host unreachable", OSError(errno.EHOSTUNREACH, "No route to host"),
     failures.HOST_UNREACHABLE),
    ("network unreachable", OSError(errno.ENETUNREACH, "Network is unreachable"),
     failures.NETWORK_UNREACHABLE),
    ("kernel timeout", OSError(errno.ETIMEDOUT, "Connection timed out"),
     failures.GENERIC_TIMEOUT),
    # timeouts and cancellation
    ("asyncio deadline", TimeoutError(), failures.GENERIC_TIMEOUT),
    ("httpx timeout", httpx.ReadTimeout("timed out"), failures.GENERIC_TIMEOUT),
    ("dns timeout", dns.exception.Timeout(), failures.GENERIC_TIMEOUT),
    ("cancelled", asyncio.CancelledError(), failures.INTERRUPTED),
    # resolver errors
    ("gai noname", socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
     failures.DNS_NXDOMAIN),
    ("gai again", socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
     failures.DNS_TEMPORARY_FAILURE),
    ("gai fail", socket.gaierror(socket.EAI_FAIL, "Non-recoverable failure"),
     failures.DNS_SERVER_MISBEHAVING),
    ("dnspython nxdomain", dns.resolver.NXDOMAIN(), failures.DNS_NXDOMAIN),
    ("dnspython no answer", dns.resolver.NoAnswer(), failures.DNS_NO_ANSWER),
    ("short header", dns.message.ShortHeader(), failures.DNS_SERVER_MISBEHAVING),
    ("other dns error", dns.exception.DNSException("bad label"),
     failures.DNS_SERVER_MISBEHAVING),
    # TLS
    ("tls eof", ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
     failures.EOF_ERROR),
    ("tls alert", ssl.SSLError(1, "[SSL: TLSV1_ALERT_INTERNAL_ERROR] tlsv1 alert internal error"),
     failures.SSL_FAILED_HANDSHAKE),
    ("tls garbage", ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
     failures.SSL_FAILED_HANDSHAKE),
    ("tls other", ssl.SSLError(1, "[SSL: NO_CIPHERS_AVAILABLE] no ciphers available"),
     failures.SSL_FAILED_HANDSHAKE),
    ("verify unknown ca", _cert_error(20, "unable to get local issuer certificate"),
     failures.SSL_UNKNOWN_AUTHORITY),
    ("verify expired", _cert_error(10, "certificate has expired"),
     failures.SSL_INVALID_CERTIFICATE),
    ("verify hostname", _cert_error(62, "Hostname mismatch"), failures.SSL_INVALID_HOSTNAME),
    # HTTP
    ("h11 disconnect", httpcore.RemoteProtocolError(
        "Server disconnected without sending a response."), failures.EOF_ERROR),
    ("h11 incomplete body", httpcore.RemoteProtocolError(
        "peer closed connection without sending complete message body: incomplete chunked "
        "read"), failures.EOF_ERROR),
    ("garbage status line", httpcore.RemoteProtocolError("illegal status line: bytearray(b'x')"),
     failures.HTTP_PROTOCOL_ERROR),
    ("h11 native", h11.RemoteProtocolError("malformed data"), failures.HTTP_PROTOCOL_ERROR),
    ("httpx protocol", httpx.RemoteProtocolError("bad header"), failures.HTTP_PROTOCOL_ERROR),
    ("too many redirects", httpx.TooManyRedirects("Exceeded"), failures.HTTP_TOO_MANY_REDIRECTS),
    # chains: the most specific cause wins
    ("reset inside a wrapper", _chained(RuntimeError("wrapper"),
                                        ConnectionResetError(errno.ECONNRESET, "reset")),
     failures.CONNECTION_RESET),
    ("message only", RuntimeError("Connection reset by peer"), failures.CONNECTION_RESET),
]


@pytest.mark.parametrize(("exc", "expected"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_classify_exception(exc: BaseException, expected: str) -> None:
    got = failures.classify_exception(exc)
    assert got == expected
    assert failures.is_known(got)


def test_unknown_failures_are_scrubbed_and_capped() -> None:
    text = "weird thing at 192.0.2.7 and 2001:db8::1 " * 20
    got = failures.classify_exception(RuntimeError(text))
    assert got.startswith(failures.UNKNOWN_PREFIX)
    assert "192.0.2.7" not in got and "2001:db8::1" not in got
    assert len(got) <= len(failures.UNKNOWN_PREFIX) + 200
    assert failures.is_known(got)


@pytest.mark.parametrize(("rcode", "failure"), [("NXDOMAIN", failures.DNS_NXDOMAIN),
                                                 ("REFUSED", failures.DNS_REFUSED),
                                                 ("SERVFAIL", failures.DNS_SERVFAIL)])
def test_rcode_failures(rcode: str, failure: str) -> None:
    assert failures.RCODE_FAILURES[rcode] == failure


def test_every_constant_is_in_the_vocabulary() -> None:
    names = {v for k, v in vars(failures).items()
             if k.isupper() and isinstance(v, str) and k != "UNKNOWN_PREFIX"}
    assert names == set(failures.VOCABULARY)
