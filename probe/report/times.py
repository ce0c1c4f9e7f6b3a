"""Time handling for reports: parse ``--since/--until``, resolve ``--tz``, format instants.

Rules for this module:

* Everything stored is UTC; every ``datetime`` that leaves this module is timezone-aware.
* ``--tz`` names an IANA zone (``Asia/Almaty``), ``UTC``, a fixed offset (``+05:00``) or
  ``local`` (the machine's zone: ``$TZ``, then ``/etc/localtime``, then the current offset).
* ``--since`` is inclusive, ``--until`` exclusive. A date alone means the start of that day in
  the display zone; for ``--until`` it means the *end* of that day (so ``--until 2022-01-10``
  includes the 10th). Relative forms ``90m``, ``24h``, ``7d``, ``2w`` count back from now.
* Day boundaries (timeline buckets, axis ticks) are in the display zone, computed with the
  zone's rules for each instant (Kazakhstan: UTC+6 until 2024-03-01, UTC+5 since).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from pathlib import Path

from probe.errors import UsageError

UTC = dt.UTC
_RELATIVE = re.compile(r"^(\d+)\s*(m|min|h|d|w)$", re.IGNORECASE)
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def resolve_tz(name: str | None) -> dt.tzinfo:
    """The display zone for ``--tz`` (None or ``local`` = the machine's zone); UsageError."""
    if name is None or name.lower() == "local":
        return local_tz()
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = _OFFSET.match(name.strip())
    if m:
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes > 59:
            raise UsageError(f"--tz {name!r}: offset out of range")
        delta = dt.timedelta(hours=hours, minutes=minutes)
        return dt.timezone(-delta if sign == "-" else delta)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--tz {name!r}: unknown time zone (use e.g. Asia/Almaty, UTC or +05:00)"
        ) from None


def local_tz() -> dt.tzinfo:
    """The machine's zone, with its rules when they can be found (not just today's offset)."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return zoneinfo.ZoneInfo(env)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = str(Path("/etc/localtime").resolve())
        if "/zoneinfo/" in target:
            return zoneinfo.ZoneInfo(target.split("/zoneinfo/", 1)[1])
    except (OSError, zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    return dt.datetime.now().astimezone().tzinfo or UTC


def tz_name(tz: dt.tzinfo) -> str:
    """A short, stable name for a zone (``Asia/Almaty``, ``UTC``, ``UTC+05:00``)."""
    if tz is UTC:
        return "UTC"
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    offset = tz.utcoffset(None)
    if offset is None:
        return str(tz)
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    return f"UTC{sign}{hours:02d}:{rest // 60:02d}"


def parse_utc(text: str) -> dt.datetime:
    """A stored ISO 8601 instant (``...Z`` or with an offset; naive = UTC) as aware UTC."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso_utc(when: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (whole seconds) for JSON/CSV output."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(
    text: str, tz: dt.tzinfo, *, end: bool = False, now: dt.datetime | None = None
) -> dt.datetime:
    """Parse a ``--since``/``--until`` value into an aware UTC instant; UsageError if bad.

    ``end`` marks an ``--until``: a bare date then means the end of that day.
    """
    raw = text.strip()
    now = now or dt.datetime.now(UTC)
    if raw.lower() == "now":
        return now.astimezone(UTC)
    rel = _RELATIVE.match(raw)
    if rel:
        seconds = int(rel.group(1)) * _UNIT_SECONDS[rel.group(2).lower()]
        return (now - dt.timedelta(seconds=seconds)).astimezone(UTC)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = dt.date.fromisoformat(raw)
            if end:
                day += dt.timedelta(days=1)
            return local_midnight(day, tz)
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise UsageError(
            f"bad time {text!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM], "
            "or a relative age such as 24h, 7d, 2w"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The UTC instant at which ``day`` starts in ``tz``."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def fmt_local(when: dt.datetime | None, tz: dt.tzinfo, *, seconds: bool = False) -> str:
    """``YYYY-MM-DD HH:MM`` in the display zone ('' for None)."""
    if when is None:
        return ""
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def fmt_duration(seconds: float) -> str:
    """``3 d 4 h``, ``4 h 30 min``, ``12 min`` — for humans."""
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"
