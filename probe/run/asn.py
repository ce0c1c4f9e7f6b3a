"""IP → AS number lookups from an iptoasn.com TSV (``--asn-db``).

Format, one range per line, tab-separated: ``range_start range_end AS_number country AS_name``
(IPv4 or IPv6). AS 0 means "not routed". The table is immutable once loaded and is handed to
the classifier as data; this module does the file IO so the classifier stays pure.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from probe.errors import ProbeError


@dataclass(frozen=True, slots=True)
class AsnInfo:
    """The network an address belongs to."""

    asn: int
    country: str
    name: str


class AsnTable:
    """Sorted, non-overlapping ranges with binary-search lookup."""

    def __init__(self, rows: list[tuple[int, int, AsnInfo]]) -> None:
        rows = sorted(rows, key=lambda r: r[0])
        self._starts = [r[0] for r in rows]
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, ip: str) -> AsnInfo | None:
        """The AS of ``ip``; None = unknown address or not in any range (or AS 0)."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        key = _key(addr)
        i = bisect.bisect_right(self._starts, key) - 1
        if i < 0:
            return None
        start, end, info = self._rows[i]
        if start <= key <= end and info.asn != 0:
            return info
        return None

    def asn(self, ip: str) -> int | None:
        info = self.lookup(ip)
        return info.asn if info else None


def _key(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    # IPv4 and IPv6 share one key space: IPv4 is mapped into ::ffff:0:0/96.
    if isinstance(addr, ipaddress.IPv4Address):
        return (0xFFFF << 32) | int(addr)
    return int(addr)


def load(path: str | Path) -> AsnTable:
    """Load an iptoasn TSV; bad lines raise ProbeError naming ``FILE:LINE``."""
    rows: list[tuple[int, int, AsnInfo]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3:
                    raise ProbeError(f"{path}:{lineno}: expected 5 tab-separated columns")
                try:
                    start = _key(ipaddress.ip_address(parts[0].strip()))
                    end = _key(ipaddress.ip_address(parts[1].strip()))
                    asn = int(parts[2])
                except ValueError as e:
                    raise ProbeError(f"{path}:{lineno}: {e}") from None
                country = parts[3].strip() if len(parts) > 3 else ""
                name = parts[4].strip() if len(parts) > 4 else ""
                rows.append((start, end, AsnInfo(asn, country, name)))
    except OSError as e:
        raise ProbeError(f"{path}: cannot read: {e.strerror}") from None
    return AsnTable(rows)
