"""Pluggable transports: obfs4proxy as a managed client transport, and dialling a bridge.

Responsibility: the client side of Tor's pluggable-transport protocol (tor-spec pt-spec: the
``TOR_PT_*`` environment, the ``VERSION``/``CMETHOD``/``CMETHODS DONE`` lines on the child's
standard output, SOCKS5 with the bridge's arguments carried in the username/password fields),
used by the ``tor`` test to perform an obfs4 handshake with a bridge. The child process is
started with its own state directory, and is always stopped and reaped (:class:`ManagedClient`
is an async context manager). A SOCKS reply only comes once the transport has dialled the
bridge and finished its handshake, so the reply *is* the handshake's outcome.

This module does IO only; what an outcome means is :mod:`probe.classify.tor`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from probe import failures
from probe.errors import ProbeError

#: The Debian package's binary (deps/apt.txt).
OBFS4PROXY = "obfs4proxy"
#: SOCKS5 reply codes (RFC 1928 §6) → failure strings; others are handshake failures.
_SOCKS_REPLIES: dict[int, str] = {
    3: failures.NETWORK_UNREACHABLE,
    4: failures.HOST_UNREACHABLE,
    5: failures.CONNECTION_REFUSED,
    6: failures.GENERIC_TIMEOUT,
}


class TransportError(ProbeError):
    """The managed transport could not be started (missing binary, protocol error)."""


@dataclass(frozen=True, slots=True)
class PTHandshake:
    """One transport handshake with a bridge through the managed client.

    ``t0``/``t`` on the measurement's clock; ``failure`` None = the transport connected and
    finished its handshake; ``socks_reply`` the SOCKS5 reply code (None = no reply).
    """

    transport: str
    address: str
    t0: float
    t: float
    failure: str | None
    socks_reply: int | None = None


def socks_auth(args: tuple[tuple[str, str], ...]) -> tuple[bytes, bytes]:
    """The bridge arguments as SOCKS5 username/password (pt-spec "per-connection
    arguments": ``k=v;k=v``, split over both fields when longer than 255 bytes, a lone NUL
    password when it fits in the username)."""
    text = ";".join(f"{k}={v.replace(';', chr(92) + ';')}" for k, v in args).encode()
    if len(text) <= 255:
        return text, b"\x00"
    if len(text) > 510:
        raise TransportError("bridge arguments longer than 510 bytes")
    return text[:255], text[255:]


class ManagedClient:
    """``obfs4proxy`` (or another managed transport) as a client: ``async with`` starts it
    and learns its SOCKS address; leaving stops it and removes its state directory."""

    def __init__(self, transport: str = "obfs4", binary: str = OBFS4PROXY,
                 start_timeout: float = 10.0) -> None:
        self.transport = transport
        self.binary = binary
        self.start_timeout = start_timeout
        self.socks: tuple[str, int] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._state: str | None = None

    async def __aenter__(self) -> ManagedClient:
        exe = shutil.which(self.binary)
        if exe is None:
            raise TransportError(f"{self.binary} not found (Debian package obfs4proxy)")
        self._state = tempfile.mkdtemp(prefix="probe-pt-")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "TOR_PT_MANAGED_TRANSPORT_VER": "1",
               "TOR_PT_STATE_LOCATION": self._state,
               "TOR_PT_CLIENT_TRANSPORTS": self.transport,
               "TOR_PT_EXIT_ON_STDIN_CLOSE": "1"}
        try:
            self._proc = await asyncio.create_subprocess_exec(
                exe, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=env, start_new_session=True)
            async with asyncio.timeout(self.start_timeout):
                await self._handshake_lines()
        except BaseException:
            await self.close()
            raise
        return self

    async def _handshake_lines(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            raw = await self._proc.stdout.readline()
            if not raw:
                raise TransportError(f"{self.binary} exited before CMETHODS DONE")
            words = raw.decode("utf-8", "replace").split()
            if not words:
                continue
            if words[0] in ("VERSION-ERROR", "ENV-ERROR", "CMETHOD-ERROR", "PROXY-ERROR"):
                raise TransportError(f"{self.binary}: {' '.join(words)}")
            if words[0] == "CMETHOD" and len(words) >= 4 and words[1] == self.transport:
                host, _, port = words[3].rpartition(":")
                self.socks = (host.strip("[]"), int(port))
            if words[0] == "CMETHODS" and words[1:2] == ["DONE"]:
                if self.socks is None:
                    raise TransportError(f"{self.binary} offered no {self.transport} method")
                return

    async def close(self) -> None:
        """Stop the child (closing its standard input, then SIGTERM, then SIGKILL) and
        remove its state directory. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(2):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._state is not None:
            shutil.rmtree(self._state, ignore_errors=True)
            self._state = None

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def dial(self, ip: str, port: int, args: tuple[tuple[str, str], ...],
                   limit: float, clock: Callable[[], float]
                   ) -> tuple[PTHandshake, asyncio.StreamReader | None,
                              asyncio.StreamWriter | None]:
        """Connect to the bridge ``ip:port`` through the transport within ``limit`` seconds.

        Returns the handshake record and, on success, the open tunnel (the caller closes
        the writer). Never raises for network trouble; cancellation propagates.
        """
        assert self.socks is not None, "use ManagedClient as an async context manager"
        address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        t0 = clock()
        writer: asyncio.StreamWriter | None = None
        reply: int | None = None
        try:
            async with asyncio.timeout(limit):
                reader, writer = await asyncio.open_connection(*self.socks)
                user, password = socks_auth(args)
                writer.write(b"\x05\x01\x02")
                if await reader.readexactly(2) != b"\x05\x02":
                    raise TransportError("the transport refused username/password auth")
                writer.write(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
                if (await reader.readexactly(2))[1] != 0:
                    raise TransportError("the transport rejected the bridge arguments")
                packed = ipaddress.ip_address(ip).packed
                atyp = 1 if len(packed) == 4 else 4
                writer.write(b"\x05\x01\x00" + bytes([atyp]) + packed + port.to_bytes(2, "big"))
                head = await reader.readexactly(4)
                reply = head[1]
                if reply != 0:
                    raise _Refused(reply)
                await reader.readexactly({1: 4, 4: 16}.get(head[3], 4) + 2)
        except _Refused:
            failure = _SOCKS_REPLIES.get(reply or 0, failures.unknown(
                f"{self.transport} handshake failed (SOCKS reply {reply})"))
        except TransportError as e:
            failure = failures.unknown(str(e))
        except asyncio.IncompleteReadError:
            failure = failures.EOF_ERROR
        except Exception as e:  # every network error becomes a failure string
            failure = failures.classify_exception(e)
        else:
            return PTHandshake(self.transport, address, t0, clock(), None, 0), reader, writer
        if writer is not None:
            writer.close()
        return PTHandshake(self.transport, address, t0, clock(), failure, reply), None, None


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"SOCKS reply {code}")
        self.code = code
