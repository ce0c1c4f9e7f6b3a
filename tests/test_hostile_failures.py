"""probe.failures on what hostile peers make the libraries raise: named, never a traceback."""

from __future__ import annotations

import ssl

import dns.message
import dns.name
import h11
import httpcore
import pytest

from probe import failures

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(("exc", "failure"), [
    (h11.RemoteProtocolError("Receive buffer too long"), failures.HTTP_PROTOCOL_ERROR),
    (httpcore.RemoteProtocolError("illegal status line: bytearray(b'HTTP/1.1 2OO Okay')"),
     failures.HTTP_PROTOCOL_ERROR),
    (httpcore.RemoteProtocolError(
        "peer closed connection without sending complete message body: incomplete chunked read"),
     failures.EOF_ERROR),
    (ssl.SSLError(1, "[SSL: EXCESSIVE_MESSAGE_SIZE] excessive message size (_ssl.c:1006)"),
     failures.SSL_FAILED_HANDSHAKE),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
     failures.SSL_FAILED_HANDSHAKE),
    (dns.name.BadPointer(), failures.DNS_SERVER_MISBEHAVING),
    (dns.name.PointerChainTooLong(), failures.DNS_SERVER_MISBEHAVING),
    (dns.message.TrailingJunk(), failures.DNS_SERVER_MISBEHAVING),
    (TimeoutError(), failures.GENERIC_TIMEOUT),
])
def test_hostile_errors_have_names(exc: BaseException, failure: str) -> None:
    assert failures.classify_exception(exc) == failure


@pytest.mark.parametrize("exc", [MemoryError(), RecursionError("too deep"),
                                 ValueError("chunk size too big from 192.0.2.1"),
                                 UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")])
def test_anything_else_is_an_unknown_failure_without_addresses(exc: BaseException) -> None:
    got = failures.classify_exception(exc)
    assert got.startswith(failures.UNKNOWN_PREFIX) and failures.is_known(got)
    assert type(exc).__name__ in got and "192.0.2.1" not in got and not got.endswith(" ")
