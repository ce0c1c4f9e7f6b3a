"""Address judging: which addresses are public, in every spelling, and the IPv4 an IPv6 carries.

The one place that decides what an address *is*, used by the probe (it never dials loopback or
unspecified addresses, :func:`is_loopback`) and by the control helper's policy
(:mod:`probe.control.policy`, :func:`special_purpose`). Rules:

* A host text is read the way the C library would dial it (:func:`parse_host`): brackets, zone
  ids (``%eth0``, ``%25eth0``) and trailing dots are dropped, and IPv4 in ``inet_aton`` forms
  (decimal ``2130706433``, octal ``0177.0.0.1``, hex ``0x7f.1``, short ``127.1``) is an address,
  not a name (glibc's getaddrinfo turns such "names" into addresses without any DNS query).
* An IPv6 address that carries an IPv4 address is judged by that IPv4 address
  (:func:`embedded_ipv4`): IPv4-mapped and IPv4-translated (RFC 4291 §2.5.5.2, RFC 2765),
  IPv4-compatible (RFC 4291 §2.5.5.1), NAT64 ``64:ff9b::/96`` (RFC 6052), 6to4 ``2002::/16``
  (RFC 3056), Teredo ``2001::/32`` (RFC 4380 §4: server, and the client obfuscated by XOR) and
  ISATAP interface identifiers (RFC 5214 §6.1).
* The special-purpose blocks are a table here (IANA's IPv4 and IPv6 Special-Purpose Address
  Registries, RFC 6890), not Python's ``is_global``, whose answer changes between versions;
  IPv6 outside ``2000::/3`` (IANA's global unicast allocation) is not public either.

Pure: no IO.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

#: IPv4 blocks that are not public destinations, with why (IANA IPv4 Special-Purpose Address
#: Registry; multicast RFC 5771; reserved RFC 1112 §4).
IPV4_SPECIAL: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "this network (unspecified)"),
    (_V4("10.0.0.0/8"), "private (RFC 1918)"),
    (_V4("100.64.0.0/10"), "shared address space, CGNAT (RFC 6598)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local, cloud metadata (RFC 3927)"),
    (_V4("172.16.0.0/12"), "private (RFC 1918)"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments (RFC 6890)"),
    (_V4("192.0.2.0/24"), "documentation TEST-NET-1 (RFC 5737)"),
    (_V4("192.88.99.0/24"), "deprecated 6to4 relay anycast (RFC 7526)"),
    (_V4("192.168.0.0/16"), "private (RFC 1918)"),
    (_V4("198.18.0.0/15"), "benchmarking (RFC 2544)"),
    (_V4("198.51.100.0/24"), "documentation TEST-NET-2 (RFC 5737)"),
    (_V4("203.0.113.0/24"), "documentation TEST-NET-3 (RFC 5737)"),
    (_V4("224.0.0.0/4"), "multicast (RFC 5771)"),
    (_V4("240.0.0.0/4"), "reserved, broadcast (RFC 1112)"),
)

#: IPv6 blocks that are not public destinations (IANA IPv6 Special-Purpose Address Registry).
#: The blocks that embed IPv4 are absent: they are judged by the address they carry, except
#: the NAT64 local-use prefix, which is never globally reachable (RFC 8215 §4).
IPV6_SPECIAL: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "NAT64 local-use prefix (RFC 8215)"),
    (_V6("100::/64"), "discard-only (RFC 6666)"),
    (_V6("2001:2::/48"), "benchmarking (RFC 5180)"),
    (_V6("2001:10::/28"), "deprecated ORCHID (RFC 4843)"),
    (_V6("2001:db8::/32"), "documentation (RFC 3849)"),
    (_V6("3fff::/20"), "documentation (RFC 9637)"),
    (_V6("5f00::/16"), "segment routing SIDs (RFC 9602)"),
    (_V6("fc00::/7"), "unique local (RFC 4193)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "deprecated site-local (RFC 3879)"),
    (_V6("ff00::/8"), "multicast"),
)

_GLOBAL_UNICAST = _V6("2000::/3")
_MAPPED = _V6("::ffff:0:0/96")
_TRANSLATED = _V6("::ffff:0:0:0/96")
_COMPATIBLE = _V6("::/96")
_NAT64 = _V6("64:ff9b::/96")
_6TO4 = _V6("2002::/16")
_TEREDO = _V6("2001::/32")

_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def parse_host(text: str) -> IPAddress | None:
    """The address a host text stands for, in any spelling a resolver library accepts; None
    when it is a name (or nothing sensible).

    ``[::1]``, ``fe80::1%eth0``, ``fe80::1%25eth0``, ``127.0.0.1.``, ``2130706433``,
    ``0177.0.0.1``, ``0x7f.1``, ``127.1`` are all addresses.
    """
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]  # zone id (RFC 6874 writes it %25 inside URLs)
    while host.endswith("."):
        host = host[:-1]
    if not host or not host.isascii():
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        return None
    return _inet_aton(host)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """IPv4 in the forms ``inet_aton(3)`` accepts: 1-4 parts, each decimal, 0-octal or 0x-hex;
    the last part fills the remaining bytes."""
    parts = host.split(".")
    if len(parts) > 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None
    values = []
    for p in parts:
        if p[:2] in ("0x", "0X"):
            values.append(int(p[2:] or "0", 16))
        elif p.startswith("0"):
            values.append(int(p, 8))
        else:
            values.append(int(p))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def embedded_ipv4(addr: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (empty for IPv4 and plain IPv6)."""
    if isinstance(addr, ipaddress.IPv4Address):
        return ()
    n = int(addr)
    low32 = ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if addr in _MAPPED or addr in _TRANSLATED or addr in _NAT64:
        return (low32,)
    if addr in _COMPATIBLE:
        return (low32,) if n > 1 else ()  # :: and ::1 are themselves
    if addr in _6TO4:
        return (ipaddress.IPv4Address((n >> 80) & 0xFFFFFFFF),)
    if addr in _TEREDO:
        server = ipaddress.IPv4Address((n >> 64) & 0xFFFFFFFF)
        return (server, ipaddress.IPv4Address((n & 0xFFFFFFFF) ^ 0xFFFFFFFF))
    if (n >> 32) & 0xFDFFFFFF == 0x00005EFE:  # ISATAP: 0000:5efe or 0200:5efe
        return (low32,)
    return ()


def special_purpose(addr: IPAddress) -> str | None:
    """Why ``addr`` (taken alone, not what it embeds) is not a public destination; None when
    it is public."""
    if isinstance(addr, ipaddress.IPv4Address):
        return next((why for net, why in IPV4_SPECIAL if addr in net), None)
    why = next((why for net, why in IPV6_SPECIAL if addr in net), None)
    if why is None and addr not in _GLOBAL_UNICAST and not embedded_ipv4(addr):
        why = "not global unicast (outside 2000::/3)"
    return why


def not_public(addr: IPAddress) -> str | None:
    """Why ``addr`` is not a public destination, judging embedded IPv4 by itself; None when
    it is public."""
    why = special_purpose(addr)
    if why is not None:
        return why
    for v4 in embedded_ipv4(addr):
        inner = special_purpose(v4)
        if inner is not None:
            return f"embeds {v4}: {inner}"
    return None


def is_loopback(text: str) -> bool:
    """True for loopback and unspecified addresses in any spelling, embedded ones included
    (dialling ``0.0.0.0`` or ``::ffff:127.0.0.1`` reaches this host)."""
    addr = parse_host(text)
    if addr is None:
        return False
    for a in (addr, *embedded_ipv4(addr)):
        if a.is_loopback or a.is_unspecified:
            return True
    return False
